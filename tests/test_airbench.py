"""The airbench94 pieces (cnnkit.applications.airbench): the whitening kernel against its
definition, the identity initialisation, the triangular schedule, and the test-time
augmentation against the views it averages."""
import numpy as np
import pytest

import cnnkit
from cnnkit import layers as L
from cnnkit.applications.airbench import (Triangular, airbench94, patch_whitening_kernel,
                                          predict_with_tta)


def test_the_whitening_convolution_whitens_the_patches():
    rng = np.random.default_rng(0)
    # correlated channels and neighbours, as in images
    base = rng.normal(size=(40, 9, 9, 1)).astype(np.float32)
    images = np.concatenate([base, 0.8 * base + 0.2 * rng.normal(size=base.shape),
                             np.roll(base, 1, axis=2)], axis=-1).astype(np.float32)
    kernel = patch_whitening_kernel(images, eps=5e-4)
    assert kernel.shape == (2, 2, 3, 24)
    conv = L.Conv2D(24, 2, use_bias=False)
    conv.build((None, 9, 9, 3))
    conv.set_weights([kernel])
    out = np.asarray(conv(images), np.float64).reshape(-1, 24)
    moments = out.T @ out / len(out)
    # the second moments of the patches, as the definition computes them
    rows = np.stack([images[:, i:i + 2, j:j + 2, :].reshape(40, -1) for i in range(8)
                     for j in range(8)], axis=1).reshape(-1, 12).astype(np.float64)
    values = np.sort(np.linalg.eigvalsh(rows.T @ rows / len(rows)))[::-1]
    expected = values / (values + 5e-4)
    np.testing.assert_allclose(np.diag(moments)[:12], expected, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(np.diag(moments)[12:], expected, rtol=1e-3, atol=1e-4)
    off = moments[:12, :12] - np.diag(np.diag(moments[:12, :12]))
    assert np.abs(off).max() < 1e-3  # uncorrelated outputs
    np.testing.assert_array_equal(kernel[..., 12:], -kernel[..., :12])


def test_the_network_is_airbench94():
    model = airbench94()
    assert model.count_params() == 1_973_944
    assert model.output_shape == (None, 10)
    conv = model.get_layer("block2_conv1")  # 64 -> 256: its first 64 filters pass through
    kernel = conv.get_weights()[0]
    np.testing.assert_array_equal(kernel[1, 1, :, :64], np.eye(64))
    assert not kernel[0, 0, :, :64].any() and kernel[..., 64:].std() > 0
    norm = model.get_layer("block1_norm1")
    assert not norm.scale and norm.momentum == 0.4 and norm.epsilon == 1e-12


def test_the_triangular_schedule():
    schedule = Triangular(2.0, total_steps=100, start=0.2, peak=0.25, end=0.05)
    np.testing.assert_allclose([schedule(s) for s in (0, 25, 100, 200)], [0.4, 2.0, 0.1, 0.1])
    np.testing.assert_allclose(schedule(12.5), 1.2)
    assert Triangular.from_config(schedule.get_config())(60) == schedule(60)
    with pytest.raises(ValueError, match="peak"):
        Triangular(1.0, 10, peak=1.5)


def test_tta_averages_the_mirrored_and_translated_views():
    cnnkit.utils.set_random_seed(1)
    model = cnnkit.Sequential([cnnkit.Input((5, 5, 2)), L.Conv2D(3, 3), L.Flatten(),
                               L.Dense(4)])
    x = np.random.default_rng(2).random((6, 5, 5, 2)).astype(np.float32)

    def f(images):
        return model.predict(np.ascontiguousarray(images), verbose=0)

    def mirror(images):
        return 0.5 * (f(images) + f(images[:, :, ::-1]))
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    expected = 0.5 * mirror(x) + 0.25 * (mirror(padded[:, :5, :5]) + mirror(padded[:, 2:, 2:]))
    np.testing.assert_allclose(predict_with_tta(model, x, level=2), expected, rtol=1e-5)
    np.testing.assert_allclose(predict_with_tta(model, x, level=1), mirror(x), rtol=1e-5)
    np.testing.assert_allclose(predict_with_tta(model, x, level=0), f(x), rtol=1e-6)
    with pytest.raises(ValueError, match="level"):
        predict_with_tta(model, x, level=3)
