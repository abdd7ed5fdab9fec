"""`python -m cnnkit`: the argument parser, the optional matplotlib, and a tiny train-cifar10
run on synthetic CIFAR-like batches (no real data needed; see test_cifar10_real.py for that)."""
import subprocess
import sys

import pytest

from cnnkit.cli import main, plots, train_cifar10
from test_cifar10_data import write_batches


def test_help_lists_the_commands():
    result = subprocess.run([sys.executable, "-m", "cnnkit", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "train-cifar10" in result.stdout


@pytest.mark.parametrize("argv", [["train-cifar10", "--epochs", "0"], ["train-cifar10", "--verbose", "3"],
                                  ["train-cifar10", "--save", "a", "--no-save"], []])
def test_bad_arguments_exit_with_usage(argv):
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2


def test_plot_without_matplotlib_fails_before_loading_data(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    monkeypatch.setattr(train_cifar10, "prepared_data", lambda *a: pytest.fail("loaded the data"))
    with pytest.raises(SystemExit) as raised:
        main(["train-cifar10", "--plot", "report.png"])
    assert raised.value.code == 2
    assert "pip install 'cnnkit[plot]'" in capsys.readouterr().err


def test_confusion_matrix_counts_true_rows_against_predicted_columns():
    counts = plots.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_train_cifar10_on_synthetic_batches_saves_the_model_and_the_plot(tmp_path, capsys, monkeypatch):
    write_batches(tmp_path / "data", n=40)
    monkeypatch.chdir(tmp_path)  # the default --save lands here
    plot = [] if plots.require_matplotlib() else ["--plot", "report.png"]
    assert main(["train-cifar10", "--epochs", "2", "--batch-size", "16", "--limit", "100",
                 "--data", str(tmp_path / "data"), "--seed", "1", "--verbose", "0"] + plot) == 0
    out = capsys.readouterr().out
    assert out.startswith("Test loss:") and "Test accuracy:" in out
    assert (tmp_path / train_cifar10.DEFAULT_SAVE).stat().st_size > 0
    if plot:
        assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_or_damaged_data_is_one_clear_error_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CNNKIT_DATA", raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setattr("cnnkit.datasets.cifar10.URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    with pytest.warns(UserWarning, match="no CIFAR-10 under"):
        assert main(["train-cifar10", "--data", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err.startswith("error: CIFAR-10 was not found")
    write_batches(tmp_path / "data")
    (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").write_bytes(b"junk")
    assert main(["train-cifar10", "--data", str(tmp_path / "data")]) == 1
    assert "test_batch" in capsys.readouterr().err
