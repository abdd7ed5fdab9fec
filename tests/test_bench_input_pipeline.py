"""Smoke test of bench/input_pipeline.py: with tiny settings it writes its JPEG folders, runs
its child processes and prints both tables with a positive figure in every timed cell. No
TensorFlow (--only cnnkit,pillow); a few seconds."""
import os
import subprocess
import sys

import pytest

import cnnkit

pytest.importorskip("PIL")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where this process imported cnnkit from (the source tree here, the installed package in CI).
CNNKIT_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(cnnkit.__file__)))
SCRIPT = os.path.join(ROOT, "bench", "input_pipeline.py")


def markdown_rows(output, first_header):
    """The body rows of the Markdown table whose first header cell is first_header."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def number(cell):
    return float(cell.replace(",", "").rstrip("x%"))


def test_tiny_run_prints_both_tables(tmp_path):
    env = dict(os.environ, PYTHONPATH=CNNKIT_PARENT)
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--images", "64", "--photos", "8", "--repeats", "1",
         "--epochs", "2", "--threads", "1,2", "--only", "cnnkit,pillow", "--synthetic",
         "--markdown", "--workdir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "avx2" in out and "cores" in out  # the machine line

    decode = markdown_rows(out, "decoding")
    seen = {(row[0], row[1], row[2]) for row in decode}
    for image_set in ("32x32 JPEG -> 32x32", "180x180 JPEG -> 128x128"):
        assert {(image_set, "cnnkit", "1"), (image_set, "cnnkit", "2"),
                (image_set, "Pillow loop", "1")} <= seen
    assert len(decode) == 6  # the Pillow loop runs at 1 thread only
    for row in decode:
        assert all(number(cell) > 0 for cell in (row[3], row[4], row[6])), row

    fit = markdown_rows(out, "fit")
    assert [row[:2] for row in fit] == [["cnnkit", "memory"], ["cnnkit", "folder"]]
    for row in fit:
        assert number(row[2]) > 0 and number(row[4]) > 0, row
    assert number(fit[1][6]) > 0 and number(fit[1][7]) > 0  # folder/memory ratios
    assert "Target, cached epochs >= 90% of in-memory speed:" in out

    # The folders were written once: a second look finds them, 64 + 8 JPEGs in 10 classes.
    folders = sorted(os.listdir(tmp_path))
    assert len(folders) == 2 and not any(f.endswith(".partial") for f in folders)
    counts = [sum(len(files) for _, _, files in os.walk(tmp_path / f)) for f in folders]
    assert sorted(counts) == [8, 64]


def test_bad_arguments_are_usage_errors(tmp_path):
    env = dict(os.environ, PYTHONPATH=CNNKIT_PARENT)
    for bad in (["--epochs", "1"], ["--only", "cnnkit,mxnet"], ["--threads", "a"]):
        proc = subprocess.run([sys.executable, SCRIPT, "--workdir", str(tmp_path)] + bad,
                              env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "error" in proc.stderr, (bad, proc.stderr)
    assert not os.listdir(tmp_path)  # nothing written before the arguments are checked
