"""Issue #6: the kernels release the GIL, and several Python threads calling predict on one model
at once get exactly the answers each would get alone (layers/base.py: a call holds the locks of
the layers it runs, so threads take turns batch by batch; models sharing layers share locks)."""
import threading
import time

import numpy as np
import pytest

import cnnkit
from cnnkit import layers, models, ops
from cnnkit.utils import set_random_seed


def run_in_threads(jobs):
    """Runs each job in its own thread, all released at once; returns their results in order."""
    results, errors = [None] * len(jobs), []
    start = threading.Barrier(len(jobs))

    def work(i):
        try:
            start.wait()
            results[i] = jobs[i]()
        except Exception as error:  # reported in the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


@pytest.fixture(scope="module")
def cnn():
    set_random_seed(0)
    model = models.Sequential([layers.Input((16, 16, 3)), layers.Conv2D(8, 3, activation="relu"),
                               layers.MaxPooling2D(), layers.Conv2D(8, 3, activation="relu"),
                               layers.Flatten(), layers.Dense(10, activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
    return model


def test_threads_calling_predict_on_one_model_get_their_own_answers(cnn):
    rng = np.random.default_rng(1)
    inputs = [rng.random((37, 16, 16, 3), dtype=np.float32) for _ in range(6)]
    alone = [cnn.predict(x, batch_size=4) for x in inputs]
    for _ in range(3):
        together = run_in_threads([lambda x=x: cnn.predict(x, batch_size=4) for x in inputs])
        for got, want in zip(together, alone):
            np.testing.assert_array_equal(got, want)


def test_direct_calls_and_predict_on_batch_from_threads(cnn):
    rng = np.random.default_rng(2)
    inputs = [rng.random((5, 16, 16, 3), dtype=np.float32) for _ in range(4)]
    alone = [cnn(x) for x in inputs]
    jobs = [lambda x=x: cnn(x) for x in inputs] + [lambda x=x: cnn.predict_on_batch(x)
                                                   for x in inputs]
    together = run_in_threads(jobs)
    for got, want in zip(together, alone + alone):
        np.testing.assert_array_equal(got, want)


def test_an_autoencoder_and_its_encoder_predicting_at_once():
    """The two models share the encoder's layers, and so their locks."""
    set_random_seed(0)
    autoencoder, encoder, _ = models.conv_autoencoder()
    rng = np.random.default_rng(3)
    images = [rng.random((9, 32, 32, 3), dtype=np.float32) for _ in range(4)]
    alone = [autoencoder.predict(x, batch_size=2) for x in images[:2]] + \
            [encoder.predict(x, batch_size=2) for x in images[2:]]
    jobs = [lambda x=x: autoencoder.predict(x, batch_size=2) for x in images[:2]] + \
           [lambda x=x: encoder.predict(x, batch_size=2) for x in images[2:]]
    for got, want in zip(run_in_threads(jobs), alone):
        np.testing.assert_array_equal(got, want)


def test_a_kernel_lets_other_python_threads_run():
    """While a long convolution runs in one thread, the main thread keeps running Python: the
    longest pause it sees is far shorter than the kernel (it would be the whole kernel if the
    GIL were held)."""
    threads = cnnkit.get_num_threads()
    cnnkit.set_num_threads(1)  # leave the second core to the main thread
    rng = np.random.default_rng(4)
    x = rng.random((32, 32, 32, 64), dtype=np.float32)  # 4.8 GFLOP: tens of ms
    w = rng.random((3, 3, 64, 128), dtype=np.float32)
    # Up to three tries: on a shared 2-core machine another process can take the main thread's
    # core for a while (one try in about five full-suite runs failed so); a held GIL would
    # stall the main thread for a whole kernel in every try.
    tries = []
    try:
        for _ in range(3):
            began = time.perf_counter()
            ops.conv2d_forward(x, w)
            kernel = time.perf_counter() - began
            worker = threading.Thread(target=lambda: [ops.conv2d_forward(x, w) for _ in range(3)])
            longest, last = 0.0, time.perf_counter()
            worker.start()
            while worker.is_alive():
                now = time.perf_counter()
                longest, last = max(longest, now - last), now
            worker.join()
            tries.append((longest, kernel))
            if longest < 0.5 * kernel:
                break
    finally:
        cnnkit.set_num_threads(threads)
    assert any(longest < 0.5 * kernel for longest, kernel in tries), tries
