"""The machine probes bench/peak.py times (cpp/machine_probe.cpp): the FMA loop does the work
it reports for every instruction set the CPU runs, the copy copies, bad arguments are refused,
and a tiny bench/peak.py run prints every table with positive figures."""
import os
import subprocess
import sys

import numpy as np
import pytest

import cnnkit
from cnnkit import _core
from conftest import runnable_isas

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CNNKIT_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(cnnkit.__file__)))
LANES = {"generic": 1, "avx2": 8, "avx512": 16}


@pytest.fixture
def threads():
    old = cnnkit.get_num_threads()
    yield
    cnnkit.set_num_threads(old)


@pytest.mark.parametrize("isa", runnable_isas())
@pytest.mark.parametrize("count", [1, 2])
def test_fma_probe_reports_the_work_it_did(isa, count, threads):
    cnnkit.set_num_threads(count)
    result = _core.fma_probe(isa, 5000)
    used = result["threads"]
    assert used == (count if cnnkit.openmp_enabled() else 1)
    assert result["lanes"] == LANES[isa]
    assert result["chains"] == (12 if isa == "avx2" else 16)  # avx2: 16 ymm registers in all
    assert result["flops"] == 2 * 5000 * result["chains"] * LANES[isa] * used
    assert result["seconds"] > 0
    # 16 chains a_i(k) = a_i(k-1) * 0.9999999 + 1e-7 from 1..16 stay finite and near their start
    assert np.isfinite(result["sum"]) and 0 < result["sum"] <= 136 * LANES[isa] * used


def test_fma_probe_refuses_an_unknown_isa_and_no_work():
    with pytest.raises(ValueError, match="isa 'sse9'"):
        _core.fma_probe("sse9", 10)
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        _core.fma_probe("generic", 0)


@pytest.mark.parametrize("count", [1, 2])
def test_copy_probe_copies_every_element(count, threads):
    cnnkit.set_num_threads(count)
    rng = np.random.default_rng(0)
    for n in (0, 1, 17, 100_003):
        src = rng.standard_normal(n).astype(np.float32)
        dst = np.full(n, np.nan, np.float32)
        _core.copy_probe(dst, src)
        np.testing.assert_array_equal(dst, src)


def test_copy_probe_refuses_bad_buffers():
    src = np.ones(8, np.float32)
    with pytest.raises(ValueError, match="same size"):
        _core.copy_probe(np.zeros(7, np.float32), src)
    read_only = np.zeros(8, np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError):
        _core.copy_probe(read_only, src)
    with pytest.raises(ValueError, match="share memory"):
        _core.copy_probe(src, src)


def test_peak_bench_tiny_run_prints_every_table():
    env = dict(os.environ, PYTHONPATH=CNNKIT_PARENT)
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "peak.py"), "--threads", "1",
         "--repeats", "1", "--steps", "1", "--batch", "2", "--models", "cnn", "--markdown"],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for header in ("| yardstick |", "| model | layer |", "| kernel |", "| model | ms/step |"):
        assert header in out, out
    rows = [line.strip("|").split("|") for line in out.splitlines()
            if line.startswith("| ") and "---" not in line and not line.startswith(
                ("| yardstick", "| model", "| kernel"))]
    assert len(rows) >= 2 + 4 + 9 + 1  # yardsticks, CNN layers, memory kernels, one step
    for row in rows:
        numbers = [cell.strip().rstrip("%").replace(",", "") for cell in row[1:]]
        for cell in numbers:
            try:
                value = float(cell)
            except ValueError:
                continue  # a text cell (layer shape, fused note)
            # never negative or NaN; a rate of a 2-image step may round to 0.0 on a busy machine
            assert value >= 0, row
