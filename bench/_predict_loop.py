"""The child process of bench/wait_policy.py and bench/split_inference.py: loads a .keras file
in cnnkit and times predict_on_batch in a loop; prints the seconds per predict.

    python bench/_predict_loop.py MODEL.keras THREADS SECONDS BATCH split|whole
"""
import sys
import time

import numpy as np

import cnnkit
from cnnkit.engine import split_inference


def main(path, threads, seconds, batch, way):
    cnnkit.set_num_threads(int(threads))
    split_inference.ENABLED = way == "split"
    model = cnnkit.models.load_model(path, compile=False)
    x = np.random.default_rng(0).standard_normal((int(batch), 32, 32, 3)).astype(np.float32)
    for _ in range(3):
        model.predict_on_batch(x)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < float(seconds):
        model.predict_on_batch(x)
        n += 1
    print((time.perf_counter() - start) / n)


if __name__ == "__main__":
    main(*sys.argv[1:6])
