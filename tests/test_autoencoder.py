"""The convolutional autoencoder (cnnkit.models.conv_autoencoder), the psnr metric and the
train-autoencoder command: shapes, shared weights, saving, PSNR's definition, and short fits.
The real-data test follows test_cifar10_real.py ($CNNKIT_DATA; skips, or fails with
CNNKIT_REQUIRE_DATA=1). About 20-30 s on 2 cores, most of it the real-data fit."""
import math

import numpy as np
import pytest

from cnnkit import metrics
from cnnkit.cli import main
from cnnkit.cli.train_autoencoder import image_grid, write_png
from cnnkit.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D, Reshape, UpSampling2D
from cnnkit.models import Sequential, conv_autoencoder, load_model
from cnnkit.utils import set_random_seed
from test_cifar10_data import write_batches
from test_cifar10_real import data_dir


def images(n, shape=(32, 32, 3), seed=0):
    """Smooth random images in [0, 1]: something an autoencoder can learn quickly."""
    rng = np.random.default_rng(seed)
    h, w, c = shape
    coarse = rng.random((n, h // 4, w // 4, c), dtype=np.float32)
    return coarse.repeat(4, axis=1).repeat(4, axis=2)


# ---------------------------------------------------------------- the models

@pytest.mark.parametrize("shape, code", [((32, 32, 3), 256), ((16, 16, 1), 8), ((28, 28, 3), 32)])
def test_encoder_and_decoder_have_the_documented_shapes(shape, code):
    autoencoder, encoder, decoder = conv_autoencoder(shape, code)
    assert encoder.input_shape == (None,) + shape and encoder.output_shape == (None, code)
    assert decoder.input_shape == (None, code) and decoder.output_shape == (None,) + shape
    h4, w4 = shape[0] // 4, shape[1] // 4
    assert decoder.layers[1].output_shape == (None, h4, w4, 64)   # the Reshape
    x = images(3, shape)
    codes = encoder.predict(x)
    assert codes.shape == (3, code)
    out = decoder.predict(codes)
    assert out.shape == (3,) + shape and out.min() >= 0 and out.max() <= 1  # sigmoid
    np.testing.assert_array_equal(out, autoencoder.predict(x))
    assert autoencoder.metrics_names[:1] == ["loss"] and autoencoder.optimizer.learning_rate == 1e-3


@pytest.mark.parametrize("kwargs", [{"input_shape": (30, 32, 3)}, {"input_shape": (32, 18, 3)},
                                    {"input_shape": (32, 32)}, {"input_shape": (32, 32, 0)},
                                    {"code_size": 0}, {"code_size": 2.5}])
def test_bad_shapes_and_code_sizes_are_clear_value_errors(kwargs):
    with pytest.raises(ValueError, match="conv_autoencoder: (input_shape|height|code_size)"):
        conv_autoencoder(**kwargs)


def test_the_builder_is_the_hand_written_keras_tutorial_model():
    """Same seed, same layers by hand with public Sequential: same weights, same outputs."""
    set_random_seed(3)
    built, _, _ = conv_autoencoder((16, 16, 3), 16)
    set_random_seed(3)
    encoder = Sequential([Input((16, 16, 3)),
                          Conv2D(32, 3, padding="same", activation="relu"), MaxPooling2D(2),
                          Conv2D(64, 3, padding="same", activation="relu"), MaxPooling2D(2),
                          Flatten(), Dense(16)])
    decoder = Sequential([Input((16,)), Dense(4 * 4 * 64, activation="relu"), Reshape((4, 4, 64)),
                          UpSampling2D(2), Conv2D(32, 3, padding="same", activation="relu"),
                          UpSampling2D(2), Conv2D(3, 3, padding="same", activation="sigmoid")])
    by_hand = Sequential([encoder, decoder])
    for a, b in zip(built.get_weights(), by_hand.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = images(4, (16, 16, 3))
    np.testing.assert_array_equal(built.predict(x), by_hand.predict(x))


def test_the_three_models_share_one_set_of_weights():
    set_random_seed(0)
    autoencoder, encoder, decoder = conv_autoencoder((16, 16, 3), 16)
    assert autoencoder.layers == [encoder, decoder]
    assert len(autoencoder.weights) == len(encoder.weights) + len(decoder.weights)
    x = images(32, (16, 16, 3))
    codes, out = encoder.predict(x), decoder.predict(encoder.predict(x))
    for _ in range(3):
        autoencoder.train_on_batch(x, x)
    assert not np.allclose(encoder.predict(x), codes)       # training the whole moved the halves
    assert not np.allclose(decoder.predict(codes), out)
    np.testing.assert_array_equal(decoder.predict(encoder.predict(x)), autoencoder.predict(x))
    encoder.layers[-1].set_weights([np.zeros_like(w) for w in encoder.layers[-1].weights])
    assert np.all(autoencoder.predict(x) == autoencoder.predict(x[:1])[0])  # zero code: one image


def test_save_and_load_keep_all_three_models(tmp_path):
    """autoencoder.save(path), load_model(path), then `encoder, decoder = model.layers`."""
    set_random_seed(1)
    autoencoder, encoder, decoder = conv_autoencoder((16, 16, 1), 8)
    x = images(24, (16, 16, 1))
    autoencoder.fit(x, x, epochs=1, batch_size=8, verbose=0)
    autoencoder.save(tmp_path / "ae.cnnkit")

    restored = load_model(tmp_path / "ae.cnnkit")
    encoder2, decoder2 = restored.layers
    assert (encoder2.name, decoder2.name) == ("encoder", "decoder")
    codes = encoder.predict(x)
    np.testing.assert_array_equal(encoder2.predict(x), codes)
    np.testing.assert_array_equal(decoder2.predict(codes), decoder.predict(codes))
    np.testing.assert_array_equal(restored.predict(x), autoencoder.predict(x))
    assert restored.evaluate(x, x, verbose=0) == autoencoder.evaluate(x, x, verbose=0)
    assert restored.metrics_names == ["loss", "mse", "psnr"]
    # Training resumes (optimizer state restored) and still moves the loaded halves.
    autoencoder.fit(x, x, epochs=1, batch_size=8, verbose=0, shuffle=False)
    restored.fit(x, x, epochs=1, batch_size=8, verbose=0, shuffle=False)
    np.testing.assert_array_equal(restored.predict(x), autoencoder.predict(x))
    assert not np.array_equal(encoder2.predict(x), codes)


# ---------------------------------------------------------------- psnr

def test_psnr_is_the_mean_of_each_images_psnr():
    rng = np.random.default_rng(0)
    x = rng.random((5, 6, 7, 3))
    x_hat = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1)
    by_hand = [10 * math.log10(1 / np.mean((a - b) ** 2)) for a, b in zip(x, x_hat)]
    np.testing.assert_allclose(metrics.psnr_per_image(x, x_hat), by_hand, rtol=1e-12)
    assert metrics.psnr(x, x_hat) == pytest.approx(np.mean(by_hand), rel=1e-12)
    assert metrics.psnr(x * 255, x_hat * 255, max_val=255) == pytest.approx(np.mean(by_hand), rel=1e-9)


def test_psnr_known_values():
    x = np.zeros((2, 4, 4, 3))
    assert metrics.psnr(x, x + 0.1) == pytest.approx(20.0)          # mse 0.01 -> 20 dB
    assert metrics.psnr(x, x + 0.01) == pytest.approx(40.0)         # mse 1e-4 -> 40 dB
    assert metrics.psnr(x, x + 25.5, max_val=255) == pytest.approx(20.0)
    # The mean of per-image PSNRs (20 and 40 dB), not the PSNR of the mean MSE (22.97 dB).
    mixed = np.stack([x[0] + 0.1, x[1] + 0.01])
    assert metrics.psnr(x, mixed) == pytest.approx(30.0)
    assert metrics.psnr(x, x) == math.inf                           # as tf.image.psnr
    assert metrics.psnr_per_image(x, np.stack([x[0], x[1] + 0.1])).tolist() == [math.inf, pytest.approx(20.0)]


def test_psnr_and_mse_as_compile_metrics_average_over_images_not_batches():
    set_random_seed(2)
    model = Sequential([Input((4, 4, 1)), Conv2D(1, 3, padding="same", activation="sigmoid")])
    for psnr in ("psnr", metrics.psnr):
        model.compile(optimizer="adam", loss="mse", metrics=["mse", psnr])
        x = images(10, (4, 4, 1))
        loss, mse, value = model.evaluate(x, x, batch_size=4, verbose=0)   # batches 4, 4, 2
        predicted = model.predict(x)
        assert mse == pytest.approx(np.mean((predicted - x) ** 2), rel=1e-6) == pytest.approx(loss, rel=1e-6)
        assert value == pytest.approx(metrics.psnr(x, predicted), rel=1e-6)
        assert model.metrics_names == ["loss", "mse", "psnr"]


# ---------------------------------------------------------------- training, the command line

def test_a_short_fit_on_real_cifar10_lowers_the_test_mse():
    from cnnkit.cli.train_cifar10 import prepared_data

    (x_train, _), (x_test, _) = prepared_data(data_dir(), limit=1000)
    x_test = x_test[:500]
    set_random_seed(0)
    autoencoder, _, _ = conv_autoencoder()
    before = autoencoder.evaluate(x_test, x_test, verbose=0, return_dict=True)
    autoencoder.fit(x_train, x_train, epochs=1, batch_size=64, verbose=0)
    after = autoencoder.evaluate(x_test, x_test, verbose=0, return_dict=True)
    # Seeds 0-4 (one epoch of 1,000 images): MSE 0.065 -> 0.045-0.048 (ratio 0.69-0.74), PSNR
    # 12.4 -> 13.6-13.8 dB (+1.2 to +1.4 dB); the bounds leave room for other thread counts.
    assert after["mse"] < 0.85 * before["mse"], (before, after)
    assert after["psnr"] > before["psnr"] + 0.7, (before, after)


def test_train_autoencoder_command_saves_the_model_and_the_samples(tmp_path, capsys):
    """A tiny run on synthetic CIFAR-like batches: prints test MSE and PSNR, saves a model that
    loads back (with its two halves) and gives the printed MSE, and writes the PNG grid."""
    from cnnkit.cli.train_cifar10 import prepared_data

    write_batches(tmp_path / "data", n=40)
    model_file, samples = tmp_path / "ae.cnnkit", tmp_path / "samples.png"
    assert main(["train-autoencoder", "--epochs", "1", "--limit", "40", "--batch-size", "32",
                 "--code-size", "16", "--data", str(tmp_path / "data"), "--save", str(model_file),
                 "--samples", str(samples), "--seed", "0", "--verbose", "2"]) == 0
    out = capsys.readouterr().out
    assert "40 training and 40 test images" in out and "Epoch 1: test MSE" in out
    mse = float(out.split("Test MSE:")[1].split()[0])
    restored = load_model(model_file)
    encoder, decoder = restored.layers
    assert encoder.output_shape == (None, 16) and decoder.output_shape == (None, 32, 32, 3)
    x_test = prepared_data(str(tmp_path / "data"), limit=40)[1][0]
    assert restored.evaluate(x_test, x_test, verbose=0)[1] == pytest.approx(mse, abs=1e-5)
    png = samples.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"


def test_png_writer_round_trips_through_a_png_reader(tmp_path):
    """The zlib PNG writer's output, decoded by matplotlib's reader (skipped without it)."""
    pyplot_image = pytest.importorskip("matplotlib.image")
    rows = [images(3, (8, 8, 3), seed=1), images(3, (8, 8, 3), seed=2)]
    grid = image_grid(rows)
    write_png(tmp_path / "rgb.png", grid)
    np.testing.assert_array_equal(np.round(pyplot_image.imread(tmp_path / "rgb.png")[..., :3] * 255), grid)
    write_png(tmp_path / "grey.png", grid[..., :1])
    np.testing.assert_array_equal(np.round(pyplot_image.imread(tmp_path / "grey.png") * 255), grid[..., 0])
