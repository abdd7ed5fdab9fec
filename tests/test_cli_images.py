"""`python -m cnnkit train-images` and `predict` on tiny folders of synthetic 8x8 PNGs."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")

import cnnkit  # noqa: E402
from cnnkit.cli import main  # noqa: E402
from cnnkit.cli.train_images import classes_path, load_class_names, save_class_names  # noqa: E402

COLORS = {"blue": (0, 0, 1), "green": (0, 1, 0), "red": (1, 0, 0)}
# Where this process imported cnnkit from (the source tree here, the installed package in CI).
REPO_PYTHON = os.path.dirname(os.path.dirname(os.path.abspath(cnnkit.__file__)))


def colored_image(path, color, rng, size=8):
    """A noisy image dominated by one color channel."""
    pixels = rng.uniform(150, 255, (size, size, 1)) * np.array(COLORS[color]) + rng.uniform(0, 40, (size, size, 3))
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path)
    return str(path)


def image_folder(root, classes, per_class, seed=0):
    rng = np.random.default_rng(seed)
    for name in classes:
        os.makedirs(root / name)
        for i in range(per_class):
            colored_image(root / name / f"{i}.png", name, rng)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A red-vs-blue model trained for a few epochs, its path and the training output."""
    root = tmp_path_factory.mktemp("red_blue")
    data = image_folder(root / "data", ["blue", "red"], 16)
    model = root / "model.cnnkit"
    args = [str(data), "--image-size", "8", "--batch-size", "4", "--epochs", "6", "--save", str(model),
            "--verbose", "0", "--threads", "1"]
    import cnnkit
    threads = cnnkit.get_num_threads()
    yield model, root, args
    cnnkit.set_num_threads(threads)  # --threads 1 set it for the whole process


def test_train_images_saves_model_and_class_names(trained, capsys):
    model, _, args = trained
    assert main(["train-images", *args]) == 0
    out = capsys.readouterr().out
    assert "Validation accuracy:" in out
    accuracy = float(out.split("Validation accuracy:")[1].split()[0])
    assert 0 <= accuracy <= 1
    assert model.exists()
    with open(classes_path(model)) as f:
        assert json.load(f) == {"class_names": ["blue", "red"]}

    from cnnkit.models import load_model
    loaded = load_model(model)
    assert tuple(loaded.input_shape) == (None, 8, 8, 3)
    assert tuple(loaded.output_shape) == (None, 1)  # two classes: one sigmoid unit


def test_predict_names_the_right_color(trained, capsys):
    model, root, _ = trained
    if not model.exists():
        pytest.skip("the training test did not run")
    rng = np.random.default_rng(99)  # images the model never saw
    red = colored_image(root / "new_red.png", "red", rng)
    blue = colored_image(root / "new_blue.png", "blue", rng)
    capsys.readouterr()
    assert main(["predict", str(model), red, blue, "--top", "2"]) == 0
    out = capsys.readouterr().out
    blocks = {block.split(":")[0]: block for block in out.strip().split("\n") if block.endswith(":")}
    assert set(blocks) == {red, blue}
    lines = out.strip().split("\n")
    for path, expected in [(red, "red"), (blue, "blue")]:
        first = lines[lines.index(f"{path}:") + 1].split(":")
        second = lines[lines.index(f"{path}:") + 2].split(":")
        assert first[0].strip() == expected
        p, q = float(first[1]), float(second[1])
        assert p > 0.5 and abs(p + q - 1) < 1e-3  # sigmoid: p and 1 - p


def test_predict_via_subprocess(trained, tmp_path):
    model, root, _ = trained
    if not model.exists():
        pytest.skip("the training test did not run")
    red = colored_image(tmp_path / "r.png", "red", np.random.default_rng(5))
    env = {**os.environ, "PYTHONPATH": REPO_PYTHON}
    result = subprocess.run([sys.executable, "-m", "cnnkit", "predict", str(model), red, "--top", "1"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[1].strip().startswith("red:")

    bad = tmp_path / "bad.cnnkit"
    bad.write_text("not a model")
    result = subprocess.run([sys.executable, "-m", "cnnkit", "predict", str(bad), red],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert str(bad) in result.stderr and "Traceback" not in result.stderr


def test_three_classes_softmax_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    data = image_folder(tmp_path / "data", ["blue", "green", "red"], 5)
    model, plot = tmp_path / "m.cnnkit", tmp_path / "report.png"
    assert main(["train-images", str(data), "--image-size", "8", "--batch-size", "4", "--epochs", "1",
                 "--save", str(model), "--plot", str(plot), "--verbose", "0"]) == 0
    with open(plot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert load_class_names(model) == ["blue", "green", "red"]
    capsys.readouterr()
    image = colored_image(tmp_path / "x.png", "green", np.random.default_rng(1))
    assert main(["predict", str(model), image, "--top", "3"]) == 0
    lines = capsys.readouterr().out.strip().split("\n")
    assert lines[0] == f"{image}:"
    names = [line.split(":")[0].strip() for line in lines[1:]]
    assert sorted(names) == ["blue", "green", "red"]
    probabilities = [float(line.split(":")[1]) for line in lines[1:]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert abs(sum(probabilities) - 1) < 1e-3


def test_class_names_round_trip(tmp_path):
    model = tmp_path / "m.cnnkit"
    assert load_class_names(model) is None
    names = ["chat", "chien", "éléphant", "猫"]
    save_class_names(model, names)
    assert load_class_names(model) == names
    assert [p.name for p in tmp_path.iterdir()] == ["m.cnnkit.classes.json"]  # no temporary left
    with open(classes_path(model), "w") as f:
        f.write("{broken")
    with pytest.raises(ValueError, match="classes.json"):
        load_class_names(model)


def test_predict_bad_images_and_missing_class_names(trained, tmp_path, capsys):
    model, root, _ = trained
    if not model.exists():
        pytest.skip("the training test did not run")
    # A copy of the model without its class names prints class indices.
    bare = tmp_path / "bare.cnnkit"
    bare.write_bytes(model.read_bytes())
    good = colored_image(tmp_path / "good.png", "red", np.random.default_rng(2))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    missing = tmp_path / "missing.png"
    capsys.readouterr()
    assert main(["predict", str(bare), good, str(corrupt), str(missing)]) == 1
    captured = capsys.readouterr()
    assert f"{good}:" in captured.out and "class 1:" in captured.out and "class 0:" in captured.out
    assert "no class names" in captured.err
    assert str(corrupt) in captured.err and str(missing) in captured.err
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("content", [None, b"", b"hello", b"PK\x03\x04 not a zip"])
def test_predict_wrong_model_file(tmp_path, capsys, content):
    model = tmp_path / "wrong.cnnkit"
    if content is not None:
        model.write_bytes(content)
    image = colored_image(tmp_path / "x.png", "red", np.random.default_rng(0))
    assert main(["predict", str(model), image]) == 1
    err = capsys.readouterr().err
    assert str(model) in err and err.startswith("error:")


def test_train_images_bad_directory(tmp_path, capsys):
    assert main(["train-images", str(tmp_path / "nowhere"), "--verbose", "0"]) == 1
    assert str(tmp_path / "nowhere") in capsys.readouterr().err
    image_folder(tmp_path / "one", ["red"], 3)
    assert main(["train-images", str(tmp_path / "one"), "--verbose", "0"]) == 1
    assert "at least two" in capsys.readouterr().err


def test_train_images_rejects_bad_split():
    with pytest.raises(SystemExit):
        main(["train-images", "x", "--validation-split", "1.5"])


def test_predict_model_that_takes_no_images(tmp_path, capsys):
    import cnnkit
    model = cnnkit.Sequential([cnnkit.Input((4,)), cnnkit.layers.Dense(2, activation="softmax")])
    path = tmp_path / "dense.cnnkit"
    model.save(path)
    image = colored_image(tmp_path / "x.png", "red", np.random.default_rng(0))
    assert main(["predict", str(path), image]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "not images" in err


def test_plot_without_matplotlib_fails_before_training(tmp_path, monkeypatch, capsys):
    from cnnkit.cli import plots
    monkeypatch.setattr(plots, "require_matplotlib", lambda: "--plot needs matplotlib, which is not installed")
    data = image_folder(tmp_path / "data", ["blue", "red"], 2)
    with pytest.raises(SystemExit) as exit_info:
        main(["train-images", str(data), "--plot", str(tmp_path / "p.png"), "--save", str(tmp_path / "m.cnnkit")])
    assert exit_info.value.code == 2
    assert "matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "m.cnnkit").exists()
