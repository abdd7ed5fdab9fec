"""The child process of bench/compare.py: builds one framework's models, times them, and prints
one line `RESULT {json}`. One framework per process: the thread pools of two runtimes in one
process take each other's cores (OpenBLAS, libgomp, torch's and TF's pools all spin a while
after each parallel region), and the peak memory read from ru_maxrss is then that framework's.

    python bench/_peers.py --framework {cnnkit,torch,tf,numpy} --threads N [--steps 20]
                           [--warmup 3] [--batch 64] [--workloads cnn_train,cnn_infer,...]
                           [--alloc-steps 0]

The parent sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and OPENBLAS_THREAD_TIMEOUT in the
environment before this process starts; the framework's own setting is applied here too.
--workloads defaults to all below but cnn_aug_train (bench/augment_overhead.py asks for it).

Workloads (one batch of random float32 images in [0, 1) and random one-hot labels, the same
batch every step; speed does not depend on the pixels):
  cnn_train      the classic Keras CIFAR-10 CNN, one Adam step (categorical cross-entropy)
  cnn_infer      the same CNN, forward only (training=False / torch.no_grad)
  ae_train       the conv autoencoder of cnnkit.models.conv_autoencoder(), one Adam step (MSE)
  resnet_train   the CIFAR ResNet-20 of bench/_models.py, one Adam step (categorical
                 cross-entropy); BatchNormalization with batch statistics
  resnet_infer   the same ResNet-20, forward only (BatchNormalization with moving statistics)
  mobile_train   the small MobileNet of bench/_models.py (DepthwiseConv2D, 1x1 Conv2D,
                 BatchNormalization), one Adam step
  mobile_infer   the same MobileNet, forward only
  cnn_aug_train  cnn_train with RandomFlip("horizontal") and RandomTranslation(0.1, 0.1)
                 (reflect fill, bilinear) in front of the CNN, each framework's own layers,
                 which act in training only; not in the default set (bench/augment_overhead.py
                 runs it). PyTorch has no such layers without torchvision: its process lists
                 the workload under "skipped", with the reason, and times nothing for it.
  keras_infer    "a Keras model, loaded": the ResNet-20 saved by Keras 3 as a .keras file
                 (--keras-file, made by bench/compare.py), loaded by each framework and run
                 forward: cnnkit.models.load_model, keras.saving.load_model (TensorFlow), and ONNX
                 Runtime on cnnkit's ONNX export of it (--keras-file with .onnx for .keras). Not
                 in the default set; PyTorch cannot load the file and skips it. The result
                 carries the first image's outputs, so that the parent checks they agree.
How each framework runs them: cnnkit model.train_on_batch and model(x, training=False); Keras 3
on TensorFlow model.train_on_batch (a tf.function, as fit runs it; no XLA, Keras' default on a
CPU) and model.predict_on_batch (Keras' compiled predict function); PyTorch a plain loop
(zero_grad, forward, loss, backward, Adam step, loss.item()) in its default NCHW layout,
inference under torch.no_grad().
"""
import argparse
import gc
import json
import os
import resource
import sys
import time

import numpy as np

from _models import KERAS_BUILDERS, torch_models

WORKLOADS = ("cnn_train", "cnn_infer", "ae_train", "resnet_train", "resnet_infer",
             "mobile_train", "mobile_infer")  # the default set
EXTRA_WORKLOADS = ("cnn_aug_train", "keras_infer")  # run only when asked for


class Unsupported(Exception):
    """This framework cannot run this workload; the message says why."""


def batch_data(batch, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((batch, 32, 32, 3), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    return x, labels, np.eye(10, dtype=np.float32)[labels]


def rss_bytes():
    """Current resident set size, from /proc (ru_maxrss is only the peak)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def maxrss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


# ------------------------------------------------------------------ cnnkit
class Cnnkit:
    def __init__(self, threads):
        import cnnkit
        from cnnkit.utils import set_random_seed
        cnnkit.set_num_threads(threads)
        set_random_seed(0)
        self.cnnkit = cnnkit
        self.version = f"cnnkit {cnnkit.__version__}"

    def build(self, workload, data):
        from cnnkit.applications import classic_cnn
        from cnnkit.models import conv_autoencoder
        x, _, y = data
        if workload == "keras_infer":
            model = self.cnnkit.models.load_model(KERAS_FILE[0], compile=False)
            return model, lambda: model.predict_on_batch(x), model.count_params()
        name, _, mode = workload.partition("_")
        if name in KERAS_BUILDERS:
            model = KERAS_BUILDERS[name](self.cnnkit)
            model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
            if mode == "train":
                return model, lambda: model.train_on_batch(x, y), model.count_params()
            return model, lambda: model.predict_on_batch(x), model.count_params()
        if workload == "ae_train":
            model = conv_autoencoder()[0]
            return model, lambda: model.train_on_batch(x, x), model.count_params()
        model = classic_cnn()
        if workload == "cnn_aug_train":
            from cnnkit.layers import Input, RandomFlip, RandomTranslation
            from cnnkit.models import Sequential
            model = Sequential([Input((32, 32, 3)), RandomFlip("horizontal"),
                                RandomTranslation(0.1, 0.1)] + model.layers)
            model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        if workload in ("cnn_train", "cnn_aug_train"):
            return model, lambda: model.train_on_batch(x, y), model.count_params()
        model.build((None, 32, 32, 3))
        return model, lambda: model(x, training=False), model.count_params()


# ------------------------------------------------------------------ PyTorch
class Torch:
    def __init__(self, threads):
        import torch
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)  # the models are sequential: no inter-op parallelism
        torch.manual_seed(0)
        self.torch = torch
        self.version = f"PyTorch {torch.__version__}"

    def classic_cnn(self):
        nn = self.torch.nn
        return nn.Sequential(
            nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(6 * 6 * 64, 128), nn.ReLU(),
            nn.Linear(128, 10))  # softmax fused into the loss, as cnnkit fuses it

    def conv_autoencoder(self):
        nn = self.torch.nn
        return nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(8 * 8 * 64, 256),
            nn.Linear(256, 8 * 8 * 64), nn.ReLU(), nn.Unflatten(1, (64, 8, 8)),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(64, 32, 3, padding=1), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(32, 3, 3, padding=1), nn.Sigmoid())

    def build(self, workload, data):
        if workload == "cnn_aug_train":
            raise Unsupported("no RandomFlip / RandomTranslation layers without torchvision")
        if workload == "keras_infer":
            raise Unsupported("PyTorch does not load Keras files")
        torch = self.torch
        F = torch.nn.functional
        x = torch.from_numpy(np.ascontiguousarray(data[0].transpose(0, 3, 1, 2)))  # NCHW
        labels = torch.from_numpy(data[1])
        name, _, mode = workload.partition("_")
        if name in KERAS_BUILDERS:
            model = torch_models(torch)[name]()
        else:
            model = self.conv_autoencoder() if workload == "ae_train" else self.classic_cnn()
        # BatchNorm's running statistics count, as Keras counts its moving statistics.
        params = sum(p.numel() for p in model.parameters()) + sum(
            b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
        if mode == "infer":
            model.eval()

            def infer():
                with torch.no_grad():
                    return torch.softmax(model(x), dim=1)
            return model, infer, params
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)  # Keras' epsilon
        target = x if workload == "ae_train" else labels
        loss_fn = F.mse_loss if workload == "ae_train" else F.cross_entropy

        def train():
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), target)
            loss.backward()
            optimizer.step()
            return loss.item()
        return model, train, params


# ------------------------------------------------------------------ TensorFlow / Keras
class TensorFlow:
    def __init__(self, threads):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        import keras
        keras.utils.set_random_seed(0)
        self.tf, self.keras = tf, keras
        self.version = f"TensorFlow {tf.__version__} (Keras {keras.__version__})"

    def classic_cnn(self, augment=False):
        L = self.keras.layers
        front = [L.RandomFlip("horizontal"), L.RandomTranslation(0.1, 0.1)] if augment else []
        model = self.keras.Sequential([
            L.Input((32, 32, 3)), *front,
            L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
            L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2),
            L.Flatten(), L.Dense(128, activation="relu"), L.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        return model

    def conv_autoencoder(self):
        L = self.keras.layers
        model = self.keras.Sequential([
            L.Input((32, 32, 3)),
            L.Conv2D(32, 3, padding="same", activation="relu"), L.MaxPooling2D(2),
            L.Conv2D(64, 3, padding="same", activation="relu"), L.MaxPooling2D(2),
            L.Flatten(), L.Dense(256),
            L.Dense(8 * 8 * 64, activation="relu"), L.Reshape((8, 8, 64)),
            L.UpSampling2D(2), L.Conv2D(32, 3, padding="same", activation="relu"),
            L.UpSampling2D(2), L.Conv2D(3, 3, padding="same", activation="sigmoid")])
        model.compile(optimizer=self.keras.optimizers.Adam(1e-3), loss="mse", metrics=["mse"])
        return model

    def build(self, workload, data):
        x, _, y = data
        tx, ty = self.tf.constant(x), self.tf.constant(y)
        if workload == "keras_infer":
            model = self.keras.saving.load_model(KERAS_FILE[0], compile=False)
            return model, lambda: model.predict_on_batch(tx), model.count_params()
        name, _, mode = workload.partition("_")
        if name in KERAS_BUILDERS:
            model = KERAS_BUILDERS[name](self.keras)
            model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
            if mode == "train":
                return model, lambda: model.train_on_batch(tx, ty), model.count_params()
            return model, lambda: model.predict_on_batch(tx), model.count_params()
        if workload == "ae_train":
            model = self.conv_autoencoder()
            return model, lambda: model.train_on_batch(tx, tx), model.count_params()
        model = self.classic_cnn(augment=workload == "cnn_aug_train")
        if workload in ("cnn_train", "cnn_aug_train"):
            # The augmentation layers run inside the train step's tf.function, with training=True.
            return model, lambda: model.train_on_batch(tx, ty), model.count_params()
        # predict_on_batch runs Keras' compiled predict function (a tf.function, as predict
        # does); model(x, training=False) runs eagerly, op by op, and took 2.4 times as long.
        return model, lambda: model.predict_on_batch(tx), model.count_params()


# ------------------------------------------------------------------ ONNX Runtime
class OnnxRuntime:
    """Runs cnnkit's ONNX export of the Keras file (keras_infer only): one session, intra-op
    threads as asked, sequential execution, all graph optimizations (ONNX Runtime's defaults
    for a CPU session)."""

    def __init__(self, threads):
        import onnxruntime
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.ort, self.options = onnxruntime, options
        self.version = f"ONNX Runtime {onnxruntime.__version__}"

    def build(self, workload, data):
        if workload != "keras_infer":
            raise Unsupported("ONNX Runtime runs only the exported Keras file (keras_infer)")
        path = KERAS_FILE[0][: -len(".keras")] + ".onnx"
        session = self.ort.InferenceSession(path, self.options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: data[0]}
        import onnx
        params = sum(int(np.prod(t.dims)) for t in onnx.load(path).graph.initializer)
        return session, lambda: session.run(None, feed)[0], params


FRAMEWORKS = {"cnnkit": Cnnkit, "torch": Torch, "tf": TensorFlow, "ort": OnnxRuntime}
KERAS_FILE = [None]  # --keras-file


# ------------------------------------------------------------------ measurements
def timed(step, steps):
    """Seconds and minor page faults for `steps` calls of step."""
    faults = minor_faults()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start, minor_faults() - faults


def numpy_matmul(threads, repeats=5, size=1024):
    """float32 matmul rate (GFLOP/s) at this process's thread count (OPENBLAS_NUM_THREADS)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(np.float32)
    b = rng.standard_normal((size, size)).astype(np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / sorted(times)[len(times) // 2] / 1e9


def allocation_check(step, steps, traced_steps=20):
    """What a warm training step allocates. RSS and minor page faults over `steps` steps (native
    memory included), then tracemalloc over `traced_steps` steps: NumPy registers its array
    buffers with tracemalloc, so the traced peak above the level before a step is the memory
    allocated during the step and alive at one time (a lower bound of what the step
    allocates: what is freed before the peak is not counted), and the traced level after the
    step minus the level before it is what the step keeps."""
    import tracemalloc
    gc.collect()
    rss_before = rss_bytes()
    seconds, faults = timed(step, steps)
    gc.collect()
    rss_after = rss_bytes()
    tracemalloc.start()
    for _ in range(3):
        step()
    transient, kept = [], []
    for _ in range(traced_steps):
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        current, peak = tracemalloc.get_traced_memory()
        transient.append(peak - before)
        kept.append(current - before)
    # Where the arrays alive between two steps were allocated (held by the layers until the
    # next step replaces them): NumPy's buffers carry tracemalloc domain 389047.
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.DomainFilter(True, 389047)])
    sites = [(str(stat.traceback[0]), stat.size, stat.count)
             for stat in snapshot.statistics("lineno")[:8]]
    numpy_bytes = sum(stat.size for stat in snapshot.statistics("filename"))
    tracemalloc.stop()
    transient.sort()
    kept.sort()
    return {"steps": steps, "seconds": seconds, "rss_before": rss_before, "rss_after": rss_after,
            "faults": faults, "traced_steps": traced_steps,
            "transient_median": transient[len(transient) // 2], "transient_max": transient[-1],
            "kept_median": kept[len(kept) // 2], "numpy_live_bytes": numpy_bytes, "sites": sites}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", required=True, choices=sorted(FRAMEWORKS) + ["numpy"])
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workloads",
                        default=",".join(WORKLOADS),
                        help=f"comma-separated, from {', '.join(WORKLOADS + EXTRA_WORKLOADS)}")
    parser.add_argument("--keras-file", help="the .keras file of keras_infer (its .onnx beside)")
    parser.add_argument("--alloc-steps", type=int, default=0,
                        help="then check what a warm cnn_train step allocates, over this many steps")
    args = parser.parse_args()
    workloads = args.workloads.split(",")
    unknown = sorted(set(workloads) - set(WORKLOADS + EXTRA_WORKLOADS))
    if unknown:
        parser.error(f"--workloads: unknown {', '.join(unknown)}")

    if args.framework == "numpy":
        result = {"version": f"NumPy {np.__version__}", "matmul_gflops": numpy_matmul(args.threads)}
        print("RESULT " + json.dumps(result), flush=True)
        return

    KERAS_FILE[0] = args.keras_file
    if "keras_infer" in workloads and not args.keras_file:
        parser.error("keras_infer needs --keras-file")
    data = batch_data(args.batch)
    framework = FRAMEWORKS[args.framework](args.threads)
    result = {"version": framework.version, "maxrss_import": maxrss_bytes(),
              "rss_import": rss_bytes(), "workloads": {}, "skipped": {}}
    for workload in workloads:
        try:
            model, step, params = framework.build(workload, data)
        except Unsupported as reason:
            result["skipped"][workload] = str(reason)
            continue
        for _ in range(args.warmup):
            step()
        seconds, faults = timed(step, args.steps)
        result["workloads"][workload] = {"seconds": seconds, "steps": args.steps, "faults": faults,
                                         "params": params, "maxrss": maxrss_bytes()}
        if workload == "keras_infer":  # the first image's outputs, for the parent's check
            result["workloads"][workload]["first"] = np.asarray(step())[0].tolist()
        if workload == "cnn_train" and args.alloc_steps:
            result["alloc"] = allocation_check(step, args.alloc_steps)
        del model, step
        gc.collect()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
