"""cnnkit.distribute under a real launcher: `mpiexec -n N` (the MPICH wheel, pip install
'cnnkit[mpi]') runs the programs in tests/mpi_programs/. Skipped, naming what is missing, when
mpi4py or mpiexec is not installed, except where CNNKIT_REQUIRE_MPI=1 (CI) makes that a failure.

- equivalence: N ranks with a global batch B end with the weights of one process with batch B
  (float32 summation order aside), for N = 2 and 4, on a data set whose size no N divides (the
  last batch leaves a rank without samples at N = 4), with and without synchronized batch norm;
- faults: a rank that raises, is killed, hangs or loses its data makes every other rank stop
  with an error naming it, within the timeout; ranks of another model or cnnkit version are
  refused at the start;
- resume: a BackupAndRestore backup written by 2 ranks resumes on 2 or 4 ranks, or on one
  process, where the backup stopped;
- the command line: `python -m cnnkit train-cifar10` under mpiexec.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import cnnkit

PROGRAMS = os.path.join(os.path.dirname(__file__), "mpi_programs")
# The folder of the cnnkit these tests import (the installed one, or the source tree's with
# its built module): the child processes must run the same one.
PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(cnnkit.__file__)))


def _mpiexec():
    """The mpiexec of this Python's environment (the one mpi4py's MPI goes with), else PATH's."""
    local = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return local if os.path.exists(local) else shutil.which("mpiexec")


def _missing():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'cnnkit[mpi]')"
    if _mpiexec() is None:
        return "no mpiexec (pip install mpich)"
    return None


if _missing():
    if os.environ.get("CNNKIT_REQUIRE_MPI") == "1":
        pytest.fail(f"CNNKIT_REQUIRE_MPI=1 but {_missing()}", pytrace=False)
    pytest.skip(_missing(), allow_module_level=True)


def run_mpi(n, program, *args, launcher_args=(), timeout=120, env=None):
    """Runs a program of tests/mpi_programs on n ranks (n=None: one plain process)."""
    command = [sys.executable, os.path.join(PROGRAMS, program), *map(str, args)]
    if n is not None:
        command = [_mpiexec(), *launcher_args, "-n", str(n), *command]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    # the cnnkit under test: an installed one, or the source tree's with its built module
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (PYTHON_DIR, environment.get("PYTHONPATH")) if p)
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env=environment)
    return done, time.monotonic() - start


def trained(tmp_path, name, n, *args):
    out = str(tmp_path / name)
    done, _ = run_mpi(n, "train_tiny.py", "--out", out, *(["--single"] if n is None else []),
                      *args)
    assert done.returncode == 0, done.stdout + done.stderr
    with open(out + ".json") as f:
        return np.load(out + ".npy"), json.load(f)


@pytest.mark.parametrize("options", [[], ["--bn", "--sync-bn"], ["--stream"]],
                         ids=["plain", "sync-bn", "stream"])
def test_n_ranks_train_as_one_process_with_the_global_batch(tmp_path, options):
    # 103 samples, global batch 10: 11 steps an epoch, 22 in all; the last batch of 3 leaves
    # rank 3 of 4 without samples (it still takes part in every collective)
    alone, alone_log = trained(tmp_path, "one", None, *options)
    for n in (2, 4):
        weights, log = trained(tmp_path, f"n{n}", n, *options)
        assert log["size"] == n
        np.testing.assert_allclose(weights, alone, rtol=0, atol=2e-6)
        # the loss and metrics are the global batch's, summed over the ranks
        for key in ("loss", "accuracy"):
            np.testing.assert_allclose(log["history"][key], alone_log["history"][key],
                                       rtol=1e-5)
            # evaluate splits the batches over the ranks and sums the metrics
            np.testing.assert_allclose(log["evaluate"][key], alone_log["evaluate"][key],
                                       rtol=1e-5)
        assert "train_on_batch is not distributed" in log["train_on_batch"]
        assert alone_log["train_on_batch"] is None
    assert not np.allclose(weights, trained(tmp_path, "short", None, *options,
                                            "--epochs", "1")[0])


def test_per_rank_batch_norm_statistics_are_the_default(tmp_path):
    # without synchronization each rank normalises with its own part of the batch: not the
    # weights of one process (the reason synchronized=True exists)
    alone, _ = trained(tmp_path, "one", None, "--bn")
    weights, _ = trained(tmp_path, "n2", 2, "--bn")
    assert np.abs(weights - alone).max() > 1e-4


def _lines(done):
    """What each rank of faults.py reported, by rank (the launcher may interleave the ranks'
    lines: each report ends with its own marker)."""
    return {int(m[1]): m[0] for m in re.finditer(r"rank (\d+): (.*?)\[after [\d.]+ s\]",
                                                 done.stdout, re.S)}


def test_a_rank_that_raises_stops_the_others_naming_it():
    done, seconds = run_mpi(3, "faults.py", "raise")
    lines = _lines(done)
    assert done.returncode != 0 and seconds < 60
    assert "RuntimeError: failed on purpose" in lines[1]
    for rank in (0, 2):
        assert "RankFailedError: rank 1 failed: RuntimeError: failed on purpose" in lines[rank]


def test_a_rank_that_loses_its_data_stops_the_others_naming_it():
    done, _ = run_mpi(3, "faults.py", "data-lost")
    lines = _lines(done)
    assert done.returncode != 0
    for rank in (0, 2):
        assert "rank 1 failed: FileNotFoundError: batch 4's file is gone" in lines[rank]


def test_a_stream_that_runs_out_on_one_rank_is_an_error_naming_it():
    done, _ = run_mpi(2, "faults.py", "data-short")
    lines = _lines(done)
    assert done.returncode != 0
    for rank in (0, 1):
        assert "ValueError" in lines[rank] and "rank(s) [1] ran out at batch 15" in lines[rank]


def test_ranks_with_streams_of_other_lengths_are_refused_at_the_start():
    done, _ = run_mpi(2, "faults.py", "data-other")
    lines = _lines(done)
    for rank in (0, 1):
        assert "refuses to start. data: rank 0 has ('PyDataset', 20), rank 1 has " \
               "('PyDataset', 15)" in lines[rank]


def test_a_hung_rank_is_named_by_the_others_after_the_timeout():
    done, seconds = run_mpi(3, "faults.py", "hang", env={"CNNKIT_TEST_TIMEOUT": "2"})
    lines = _lines(done)
    assert done.returncode != 0 and seconds < 60
    named = [lines[r] for r in (0, 2) if r in lines]
    assert named, done.stdout + done.stderr
    for line in named:  # the launcher may end one survivor once the other has failed
        assert "CollectiveTimeoutError" in line and "rank(s) 1 did not answer" in line


def test_a_killed_rank_ends_the_job():
    # MPICH's launcher ends the whole job at once, naming the killed process
    done, seconds = run_mpi(3, "faults.py", "kill")
    assert done.returncode != 0 and seconds < 30
    assert "Killed (signal 9)" in done.stdout + done.stderr


def test_a_killed_rank_is_named_when_the_launcher_does_not_clean_up():
    # With -disable-auto-cleanup the survivors run on: cnnkit's timeout finds the dead rank.
    # MPICH itself sometimes notices the dead peer first and aborts the survivors (the job
    # still ends); a run where a survivor reports is then looked for, up to 3 runs.
    reports = []
    for _ in range(3):
        done, seconds = run_mpi(3, "faults.py", "kill", launcher_args=["-disable-auto-cleanup"],
                                env={"CNNKIT_TEST_TIMEOUT": "2"})
        assert done.returncode != 0 and seconds < 60
        lines = _lines(done)
        reports = [lines[r] for r in (0, 2) if r in lines]
        if reports:
            break
    assert reports, done.stdout + done.stderr
    for line in reports:
        assert "CollectiveTimeoutError" in line and "rank(s) 1 did not answer" in line


@pytest.mark.parametrize("kind, what", [
    ("other-model", "model: rank 0 has layer 0 Conv2D [(3, 3, 3, 4), (4,)], rank 1 has layer "
                    "0 Conv2D [(3, 3, 3, 5), (5,)]"),
    ("other-version", "cnnkit version: rank 0 has '0.1.0', rank 1 has '0.0.0-other'"),
    ("other-validation", "validation_data: rank 0 has (20, ")])
def test_ranks_that_differ_are_refused_at_the_start(kind, what):
    import cnnkit
    done, _ = run_mpi(2, "faults.py", kind)
    lines = _lines(done)
    assert done.returncode != 0
    what = what.replace("0.1.0", cnnkit.__version__)
    for rank in (0, 1):
        assert "ValueError" in lines[rank] and "refuses to start" in lines[rank]
        assert what in lines[rank], lines[rank]
    if kind == "other-validation":
        assert "rank 1 has (30, " in lines[0]


@pytest.mark.parametrize("resume_on", [2, 4, None], ids=["2-ranks", "4-ranks", "one-process"])
def test_a_backup_of_two_ranks_resumes_elsewhere_exactly(tmp_path, resume_on):
    whole, whole_log = trained(tmp_path, "whole", None, "--epochs", "3")
    backup = str(tmp_path / "backup")
    done, _ = run_mpi(2, "train_tiny.py", "--out", str(tmp_path / "cut"), "--epochs", "3",
                      "--backup", backup, "--interrupt-at-epoch", "1")
    assert done.returncode != 0 and os.listdir(backup), done.stdout + done.stderr
    resumed, log = trained(tmp_path, "resumed", resume_on, "--epochs", "3", "--backup", backup)
    np.testing.assert_allclose(resumed, whole, rtol=0, atol=2e-6)
    assert len(log["history"]["loss"]) == 2  # epochs 2 and 3 only
    np.testing.assert_allclose(log["history"]["loss"], whole_log["history"]["loss"][1:],
                               rtol=1e-5)


def test_train_cifar10_runs_under_mpiexec(tmp_path):
    data = os.environ.get("CNNKIT_DATA")
    if not data:
        pytest.skip("CNNKIT_DATA is not set (the CIFAR-10 test runs where it is)")
    saved = tmp_path / "m.cnnkit"
    command = [_mpiexec(), "-n", "2", sys.executable, "-m", "cnnkit", "train-cifar10",
               "--epochs", "1", "--limit", "600", "--save", str(saved), "--verbose", "2"]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (PYTHON_DIR, os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=environment)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Distributed over 2 MPI ranks" in out
    assert out.count("Test accuracy:") == 1  # rank 0 alone prints
    import cnnkit
    model = cnnkit.models.load_model(saved)
    assert model.count_params() > 0


def test_train_images_runs_under_mpiexec(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(12):
            pixels = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / name / f"{i}.png")
    saved = tmp_path / "images.cnnkit"
    command = [_mpiexec(), "-n", "2", sys.executable, "-m", "cnnkit", "train-images",
               str(tmp_path / "images"), "--image-size", "16", "--epochs", "1",
               "--batch-size", "6", "--save", str(saved)]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (PYTHON_DIR, os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=environment)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("Saved the model") == 1
    assert saved.exists() and (tmp_path / "images.cnnkit.classes.json").exists()
