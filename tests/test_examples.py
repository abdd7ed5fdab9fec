"""The example programs (examples/*.py) run end to end, as a user runs them, on a slice of the
real CIFAR-10: cifar10.load_data is replaced by the first 512 training and 256 test images,
and fit by one that trains for one epoch whatever the example asks. Each example's globals are
then checked: the model it builds, the names in its History, finite losses, the shapes and
ranges of what it predicts. Skipped without the real data (see test_cifar10_real.data_dir),
like the other real-data tests; 5-10 s on 2 cores.
"""
import math
import os
import runpy

import numpy as np
import pytest

import cnnkit
from cnnkit.datasets import cifar10
from cnnkit.trainer import Trainer
from test_cifar10_real import data_dir

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
N_TRAIN, N_TEST = 512, 256


@pytest.fixture(scope="module")
def small_cifar():
    (x_train, y_train), (x_test, y_test) = cifar10.load_data(data_dir())
    return ((x_train[:N_TRAIN].copy(), y_train[:N_TRAIN].copy()),
            (x_test[:N_TEST].copy(), y_test[:N_TEST].copy()))


@pytest.fixture
def run_example(small_cifar, monkeypatch):
    """run_example(name) -> (the example's globals, [the keyword arguments of each fit call])."""
    fits = []
    real_fit = Trainer.fit

    def load_data(path=None):
        (x_train, y_train), (x_test, y_test) = small_cifar
        return (x_train.copy(), y_train.copy()), (x_test.copy(), y_test.copy())

    def one_epoch_fit(self, *args, **kwargs):
        fits.append(dict(kwargs, args=args))
        kwargs["epochs"] = 1
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(cifar10, "load_data", load_data)
    monkeypatch.setattr(Trainer, "fit", one_epoch_fit)

    def run(name):
        cnnkit.utils.set_random_seed(0)
        namespace = runpy.run_path(os.path.join(EXAMPLES, name), run_name="__main__")
        return namespace, fits

    return run


def finite_history(history, keys):
    """history.history has exactly these keys, one finite value each (one epoch)."""
    assert set(history.history) == set(keys), sorted(history.history)
    for key, values in history.history.items():
        assert len(values) == 1 and math.isfinite(values[0]), (key, values)
    return {key: values[0] for key, values in history.history.items()}


def test_functional_autoencoder(run_example, capsys):
    ns, fits = run_example("functional_autoencoder.py")
    autoencoder, x_test = ns["autoencoder"], ns["x_test"]
    assert isinstance(autoencoder, cnnkit.Model) and not isinstance(autoencoder, cnnkit.Sequential)
    kinds = [type(layer).__name__ for layer in autoencoder.layers]
    assert kinds.count("UpSampling2D") == 2 and kinds.count("MaxPooling2D") == 2, kinds
    assert len(fits) == 1 and fits[0]["batch_size"] == 128 and fits[0]["shuffle"] is True
    assert fits[0]["y"] is fits[0]["x"] and fits[0]["validation_data"][1] is x_test
    logs = finite_history(ns["history"], ["loss", "val_loss"])
    predictions = ns["predictions"]
    assert predictions.shape == x_test.shape == (N_TEST, 32, 32, 3)
    assert np.isfinite(predictions).all()
    assert predictions.min() >= 0 and predictions.max() <= 1
    # The validation loss is the binary cross-entropy of exactly these reconstructions.
    p = np.clip(predictions.astype(np.float64), 1e-7, 1 - 1e-7)
    bce = -np.mean(x_test * np.log(p) + (1 - x_test) * np.log(1 - p))
    assert logs["val_loss"] == pytest.approx(bce, rel=1e-3)
    assert "Test PSNR (dB):" in capsys.readouterr().out


def test_residual_classifier(run_example):
    ns, fits = run_example("residual_classifier.py")
    model = ns["model"]
    assert model.name == "toy_resnet" and not isinstance(model, cnnkit.Sequential)
    adds = [layer for layer in model.layers if isinstance(layer, cnnkit.layers.Add)]
    assert len(adds) == 2
    assert model.count_params() == 223_242  # as the guide's summary says
    assert any(isinstance(layer, cnnkit.layers.GlobalAveragePooling2D) for layer in model.layers)
    assert model.get_layer(index=-1).output_activation in (None, "linear")  # logits
    assert len(fits) == 1 and fits[0]["validation_split"] == 0.2 and fits[0]["batch_size"] == 64
    logs = finite_history(ns["history"], ["loss", "acc", "val_loss", "val_acc"])
    assert 0 <= logs["acc"] <= 1 and 0 <= logs["val_acc"] <= 1
    assert math.isfinite(ns["test_loss"]) and 0 <= ns["test_acc"] <= 1
    assert len(ns["x_test"]) == N_TEST


def test_two_input_model(run_example):
    ns, fits = run_example("two_input_model.py")
    model, encoder = ns["model"], ns["encoder"]
    assert [t.name for t in model.inputs] == ["image_a", "image_b"]
    assert sorted(model.output_names) == ["class_a", "same_class"]
    # One encoder, called on both images: its weights are in the model once.
    assert [layer for layer in model.layers if layer is encoder] == [encoder]
    heads = (256 * 64 + 64) + (64 + 1) + (128 * 10 + 10)  # Dense(64), same_class, class_a
    assert model.count_params() == encoder.count_params() + heads
    keys = ["loss", "same_class_loss", "class_a_loss", "same_class_accuracy", "class_a_accuracy"]
    logs = finite_history(ns["history"], keys + ["val_" + k for k in keys])
    assert len(fits) == 1 and isinstance(fits[0]["x"], list) and sorted(fits[0]["y"]) == [
        "class_a", "same_class"]
    # loss_weights: the total is same_class_loss + 0.5 * class_a_loss.
    for prefix in ("", "val_"):
        assert logs[prefix + "loss"] == pytest.approx(
            logs[prefix + "same_class_loss"] + 0.5 * logs[prefix + "class_a_loss"], rel=1e-4)
    # evaluate() on the validation pairs, after fit, gives the last epoch's val_ logs.
    results = ns["results"]
    assert set(results) == set(keys)
    for key in keys:
        assert results[key] == pytest.approx(logs["val_" + key], rel=1e-4, abs=1e-6)
    # Half the pairs, give or take, are of the same class.
    assert set(np.unique(ns["train_same"])) == {0.0, 1.0}
    assert 0.35 < ns["train_same"].mean() < 0.65
    # Both branches run the encoder's weights: the model's outputs, recomputed with NumPy from
    # encoder.predict on each image and the heads' weights, match model.predict.
    a, b = ns["test_a"][:8], ns["test_b"][:8]
    out = model.predict([a, b])
    code_a, code_b = encoder.predict(a), encoder.predict(b)
    dense = [layer for layer in model.layers if isinstance(layer, cnnkit.layers.Dense)
             and layer.name not in ("same_class", "class_a")]
    assert len(dense) == 1
    k1, c1 = dense[0].get_weights()
    k2, c2 = model.get_layer("same_class").get_weights()
    k3, c3 = model.get_layer("class_a").get_weights()
    hidden = np.maximum(np.concatenate([code_a, code_b], axis=1) @ k1 + c1, 0)
    same = 1 / (1 + np.exp(-(hidden @ k2 + c2)))
    z = code_a @ k3 + c3
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out["same_class"], same, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["class_a"], probs, rtol=1e-4, atol=1e-5)


def test_cifar10_resnet(run_example, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # its ModelCheckpoint writes saved_models/ in the working folder
    ns, fits = run_example("cifar10_resnet.py")
    model = ns["model"]
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("BatchNormalization") == 19 and kinds.count("Add") == 9, kinds
    assert kinds.count("Conv2D") == 21 and "AveragePooling2D" in kinds
    assert model.count_params() == 274_442  # keras.io's ResNet20 v1 summary
    regularized = [layer for layer in model.layers if isinstance(layer, cnnkit.layers.Conv2D)]
    assert all(layer.kernel_regularizer.l2 == pytest.approx(1e-4) for layer in regularized)
    assert "RandomFlip" in kinds and "RandomTranslation" in kinds
    assert len(fits) == 1 and fits[0]["batch_size"] == 32
    logs = finite_history(ns["history"], ["loss", "accuracy", "val_loss", "val_accuracy",
                                          "learning_rate"])
    assert logs["learning_rate"] == pytest.approx(1e-3)  # the schedule's first epoch
    saved = sorted(os.listdir(tmp_path / "saved_models"))
    assert saved == ["cifar10_ResNet20v1_model.001.keras"], saved  # the best (only) epoch
    test_loss, test_acc = ns["scores"]
    assert test_loss == pytest.approx(logs["val_loss"], rel=1e-4) and 0 <= test_acc <= 1
    # evaluate's loss is the cross-entropy plus the kernels' L2 penalty: without the
    # regularizers, the same model and data lose exactly that penalty.
    penalty = sum(1e-4 * float(np.sum(layer.kernel.astype(np.float64) ** 2))
                  for layer in regularized)
    for layer in regularized:
        layer._weight_regularizers = []
    data_loss, _ = model.evaluate(ns["x_test"], ns["y_test"], verbose=0)
    assert penalty > 1e-3 and test_loss == pytest.approx(data_loss + penalty, rel=1e-5)


def test_denoising_autoencoder(run_example, capsys):
    ns, fits = run_example("denoising_autoencoder.py")
    autoencoder = ns["autoencoder"]
    assert isinstance(autoencoder, cnnkit.Model)
    kinds = [type(layer).__name__ for layer in autoencoder.decoder.layers]
    assert kinds == ["Conv2DTranspose", "Conv2DTranspose", "Conv2D"]
    assert ns["encoded_imgs"].shape == (N_TEST, 8, 8, 8)
    decoded = ns["decoded_imgs"]
    assert decoded.shape == (N_TEST, 32, 32, 3) and decoded.min() >= 0 and decoded.max() <= 1
    logs = finite_history(ns["history"], ["loss", "val_loss"])
    assert logs["val_loss"] == pytest.approx(
        float(np.mean((decoded.astype(np.float64) - ns["x_test"]) ** 2)), rel=1e-3)
    assert "Test MSE: noisy" in capsys.readouterr().out
