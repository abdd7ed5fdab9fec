"""The airbench94 recipe (applications/speedrun.py) run for a few steps on a small random set,
with a small batch: its report, the whitening bias frozen after its epochs, the weights ending
on Lookahead's slow weights; and the command line's arguments."""
import numpy as np
import pytest

from cnnkit.applications import speedrun as recipe_module
from cnnkit.cli import build_parser
from cnnkit.cli.speedrun_cifar10 import bitexact_rows


def test_a_few_steps_of_the_recipe(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(160, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=160)
    seen = {}
    original = recipe_module._Recipe.on_epoch_end

    def record(self, epoch, logs=None):
        seen.setdefault("bias", []).append(self.model.get_layer("whiten").bias.copy())
        original(self, epoch, logs)
    monkeypatch.setattr(recipe_module._Recipe, "on_epoch_end", record)
    lines = []
    model, report = recipe_module.speedrun(
        x, y, x[:40], y[:40], epochs=2.5, seed=1, say=lines.append,
        recipe={"batch_size": 32, "whiten_images": 100, "whiten_bias_epochs": 1,
                "lookahead_start_epoch": 1, "lookahead_every": 2})
    steps = 160 // 32
    assert report["steps"] == int(np.ceil(steps * 2.5))  # 13: the third epoch cut short
    assert len(report["epoch_seconds"]) == 3 and len(lines) == 3
    assert all(0 <= a <= 1 for a in report["epoch_test_accuracy"] + [report["test_accuracy_tta"]])
    assert report["total_seconds"] > report["train_seconds"] > 0
    bias = seen["bias"]
    assert np.abs(bias[0]).max() > 0  # trained in epoch 1
    # Frozen from epoch 2 on: no update. Lookahead still averages it with itself,
    # decay * b + (1 - decay) * b, which float32 rounds by up to an ulp or so.
    np.testing.assert_allclose(bias[1], bias[2], rtol=1e-6, atol=0)
    kernel = model.get_layer("whiten").kernel
    normalised = recipe_module.normalise(x[:100])
    np.testing.assert_allclose(  # the whitening kernel never moved
        kernel, recipe_module.patch_whitening_kernel(normalised, eps=5e-4), rtol=1e-6)


def test_the_command_line():
    parser = build_parser()
    args = parser.parse_args(["speedrun-cifar10", "--seed", "3", "--epochs", "0.5"])
    assert args.seed == 3 and args.epochs == 0.5 and args.threads is None
    for bad in (["--epochs", "0"], ["--threads", "0"], ["--limit", "-1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["speedrun-cifar10", *bad])


def test_bitexact_rows_are_read_from_the_data_folder(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "BITEXACT_ROWS.json").write_text(
        '{"bitexact_leading_rows": {"test_batch": 846}}')
    assert bitexact_rows(str(tmp_path)) == 846
