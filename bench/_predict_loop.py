"""The child process of bench/wait_policy.py, bench/split_inference.py and
bench/inference_plan.py: loads a .keras file in cnnkit and times predict_on_batch in a loop;
prints the seconds per predict. MODEL: a .keras file, or cnn (cnnkit.applications' classic
CNN) or mobilenet (bench/_models.py's), built here. way: plan (an inference plan, then batch
split: the defaults), split (no plan), whole (neither). pass_bytes: inference_plan.PASS_BYTES.

    python bench/_predict_loop.py MODEL THREADS SECONDS BATCH plan|split|whole [PASS_BYTES]
"""
import sys
import time

import numpy as np

import cnnkit
from cnnkit.engine import inference_plan, split_inference


def main(path, threads, seconds, batch, way, pass_bytes=None):
    cnnkit.set_num_threads(int(threads))
    inference_plan.ENABLED = way == "plan"
    split_inference.ENABLED = way in ("plan", "split")
    if pass_bytes is not None:
        inference_plan.PASS_BYTES = int(pass_bytes)
    if path == "cnn":
        from cnnkit.applications import classic_cnn
        model = classic_cnn(compile=False)
    elif path == "mobilenet":
        from _models import mobilenet
        model = mobilenet(cnnkit)
    else:
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
    main(*sys.argv[1:7])
