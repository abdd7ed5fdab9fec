"""Issue 14's input-pipeline benchmark: how fast cnnkit reads a folder of JPEGs, and what that
costs a training run against the same images held in memory.

    python bench/input_pipeline.py [--images 50000] [--photos 2000] [--threads 1,2]
                                   [--repeats 3] [--epochs 3] [--batch 32]
                                   [--only cnnkit,pillow,tf] [--workdir DIR] [--markdown]
                                   [--photo-size 128] [--fit-threads N] [--no-prefetch]
                                   [--data DIR | --synthetic]

1. Writes, once (kept in --workdir, default <tempdir>/cnnkit-input-pipeline, and reused by later
   runs with the same settings), a folder of JPEGs (quality 90) in ten class sub-folders: --images
   CIFAR-size 32x32 images, the CIFAR-10 training images when cifar10.load_data finds them
   (--data, default $CNNKIT_DATA, or cnnkit's cache), else random images; and --photos 180x180
   "photos", the CIFAR images upscaled (bicubic), or smooth random images with a little noise.
   Deterministic: the same settings write the same files.
2. Decoding: images/s of one pass over each folder, decoded and resized (bilinear) to 32x32 for
   the CIFAR-size set and to --photo-size (default 128, a real downscale: a same-size resize is a
   copy in cnnkit) for the photos, batches of --batch, file order (no shuffle), at each --threads:
     cnnkit   cnnkit.utils.image_dataset_from_directory(num_threads=threads), no cache
     pillow   a plain single-threaded loop: Image.open, convert("RGB"), resize(BILINEAR),
              np.asarray(float32), np.stack per batch (run at 1 thread only: it has no threads)
     tf       keras.utils.image_dataset_from_directory on TensorFlow, its tf.data private
              thread pool and op pools set to the thread count (skipped when not importable)
   Each pass follows one warm-up batch from a separate iteration (thread pools, TF's kernels).
3. Training: model.fit of the classic Keras CIFAR-10 CNN (cnnkit.applications.classic_cnn's
   layers behind a Rescaling(1/255) layer, as the Keras tutorials feed 0..255 pixels; Adam,
   categorical cross-entropy), --epochs epochs of all --images 32x32 images, batch --batch,
   shuffled, at --fit-threads threads (default: the largest of --threads):
     memory   fit(x, y) on the images decoded beforehand into NumPy arrays (a Pillow loop,
              untimed), one-hot labels
     folder   fit(image_dataset_from_directory(label_mode="categorical").cache().prefetch(
              AUTOTUNE)) (--no-prefetch drops the prefetch): epoch 1 decodes the files, the
              later ones replay the cache
   for cnnkit and for Keras on TensorFlow (when importable). Epochs are timed by a callback
   (epoch begin to end). Ratios folder/memory: epoch 1, and the median of the later epochs.
   Issue 14's targets: cached epochs >= 90% of the in-memory speed; epoch 1 at least as fast as
   TensorFlow's folder pipeline (its epoch 1 when TF trained, else its decoding rate).

Every contender runs in its own process (this file with --child), with OMP_NUM_THREADS and
OPENBLAS_NUM_THREADS set to its thread count, and the processes alternate in --repeats rounds
(decoding at each thread count, then training); figures are medians over rounds, and ratios
compare medians of the same run. The defaults were not run here (2 shared cores); from tiny
runs, estimated at some 10-12 minutes a round on 2 cores with TensorFlow (cnnkit's fits some
2 minutes each, TF's likely longer; the decoding passes 1-2 minutes in all), so 30-40 minutes
for 3 rounds, plus a minute to write the folders the first time: --repeats 1 or --images 10000
cut it. A smoke run with --images 64 --photos 8 --repeats 1 --epochs 2 --only cnnkit,pillow
takes some 4 s (TF's start-up and tracing add some 50 s, mostly a tiny run's fixed cost).
"""
import os

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # see bench/kernels.py; before NumPy loads

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from compare import ChildFailed, child_result, importable, table, thread_env  # noqa: E402

NAMES = {"cnnkit": "cnnkit", "pillow": "Pillow loop", "tf": "TensorFlow"}
MODULES = {"cnnkit": "cnnkit", "pillow": "PIL", "tf": "tensorflow"}
INSTALL = {"cnnkit": "pip install .", "pillow": 'pip install "cnnkit[images]"',
           "tf": "pip install tensorflow-cpu==2.21.0"}
CLASSES = 10
PHOTO_SIDE = 180
FORMAT_VERSION = 1  # bump when the written files change, so an old cache is not reused


# ------------------------------------------------------------------ machine
def cpu_description():
    """'model name, N cores, avx2 yes, avx512f no' from lscpu or /proc/cpuinfo."""
    name, flags = None, set()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                name = value.strip()
            elif key.strip() == "Flags":
                flags = set(value.split())
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not name:
                    name = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    name = name or platform.processor() or platform.machine()
    marks = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in ("avx2", "avx512f"))
    return f"{name}, {os.cpu_count()} cores, {marks if flags else 'CPU flags unknown'}"


# ------------------------------------------------------------------ the image folders
def source_images(count, data, synthetic):
    """(uint8 images (count, 32, 32, 3), labels (count,), source name)."""
    if not synthetic:
        try:
            from cnnkit.datasets import cifar10
            (x, y), _ = cifar10.load_data(data)
            reps = -(-count // len(x))
            x, y = np.concatenate([x] * reps)[:count], np.concatenate([y] * reps).reshape(-1)[:count]
            return x, y.astype(np.int64), "cifar10"
        except Exception as error:  # not found, damaged: random images say the same about speed
            print(f"CIFAR-10 not available ({type(error).__name__}: {str(error).splitlines()[0]}); "
                  "writing random images", file=sys.stderr)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    return x, np.arange(count) % CLASSES, "random"


def write_folder(path, images, labels, make_image):
    """Writes images[i] (through make_image) as path/class_<label>/<i>.jpg, quality 90, into a
    temporary folder renamed at the end, so that a cut-short run leaves no half folder."""
    from PIL import Image
    partial = path + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    for k in range(CLASSES):
        os.makedirs(os.path.join(partial, f"class_{k}"))
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(make_image(i, image)).save(
            os.path.join(partial, f"class_{label}", f"{i:06d}.jpg"), quality=90)
    os.rename(partial, path)


def photo_maker(source):
    """i, 32x32 image -> a 180x180 uint8 photo: the image upscaled (bicubic) for CIFAR; for
    random images, smooth random colour fields (12x12 upscaled) with some noise, from seed i."""
    from PIL import Image

    def upscale(image):
        return np.asarray(Image.fromarray(image).resize((PHOTO_SIDE, PHOTO_SIDE),
                                                        Image.Resampling.BICUBIC))
    if source == "cifar10":
        return lambda i, image: upscale(image)

    def smooth(i, _):
        rng = np.random.default_rng([1, i])
        field = upscale(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).astype(np.int16)
        noise = rng.normal(0, 6, field.shape).astype(np.int16)
        return np.clip(field + noise, 0, 255).astype(np.uint8)
    return smooth


def prepare_folders(args):
    """{'cifar': folder, 'photos': folder, 'source': name}, written unless already there."""
    x, y, source = source_images(max(args.images, args.photos), args.data, args.synthetic)
    folders = {"source": source}
    for key, count, make in (("cifar", args.images, lambda i, image: image),
                             ("photos", args.photos, photo_maker(source))):
        side = 32 if key == "cifar" else PHOTO_SIDE
        path = os.path.join(args.workdir, f"v{FORMAT_VERSION}-{source}-{side}px-{count}")
        if not os.path.isdir(path):
            start = time.perf_counter()
            os.makedirs(args.workdir, exist_ok=True)
            write_folder(path, x[:count], y[:count], make)
            print(f"wrote {count} {side}x{side} JPEGs to {path} in "
                  f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
        folders[key] = path
    return folders


def image_files(folder):
    """(path, label) of every .jpg, in image_dataset_from_directory's order (sorted)."""
    files = []
    for k, name in enumerate(sorted(os.listdir(folder))):
        for file in sorted(os.listdir(os.path.join(folder, name))):
            files.append((os.path.join(folder, name, file), k))
    return files


# ------------------------------------------------------------------ child: decoding
def decode_pass_cnnkit(folder, size, batch, threads):
    import cnnkit
    from cnnkit.utils import image_dataset_from_directory
    cnnkit.set_num_threads(threads)
    ds = image_dataset_from_directory(folder, image_size=size, batch_size=batch, shuffle=False,
                                      num_threads=threads, verbose=False)
    return ds, lambda images: images.shape[0]


def decode_pass_tf(folder, size, batch, threads):
    import tensorflow as tf
    import keras
    ds = keras.utils.image_dataset_from_directory(folder, image_size=size, batch_size=batch,
                                                  shuffle=False, verbose=False)
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    return ds.with_options(options), lambda images: int(images.shape[0])


def pillow_batches(folder, size, batch):
    """The plain loop: each file decoded, converted, resized and made float32, then stacked."""
    from PIL import Image
    files = [path for path, _ in image_files(folder)]
    for start in range(0, len(files), batch):
        arrays = []
        for path in files[start:start + batch]:
            with Image.open(path) as img:
                img = img.convert("RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR)
                arrays.append(np.asarray(img, dtype=np.float32))
        yield np.stack(arrays), None


def child_decode(spec):
    """{set: {"seconds": s, "images": n}}: one warm-up batch, then one timed pass per set."""
    results = {}
    for key, folder, size in (("cifar", spec["cifar"], (32, 32)),
                              ("photos", spec["photos"], (spec["photo_size"],) * 2)):
        if spec["framework"] == "pillow":
            dataset, count = None, lambda images: images.shape[0]
            make = lambda: pillow_batches(folder, size, spec["batch"])  # noqa: E731
        else:
            maker = decode_pass_cnnkit if spec["framework"] == "cnnkit" else decode_pass_tf
            dataset, count = maker(folder, size, spec["batch"], spec["threads"])
            make = lambda: iter(dataset)  # noqa: E731
        warm = make()
        next(warm)
        del warm  # a generator closes (and cnnkit's stops its workers) when released
        images, start = 0, time.perf_counter()
        for x, _ in make():
            images += count(x)
        results[key] = {"seconds": time.perf_counter() - start, "images": images}
    return results


# ------------------------------------------------------------------ child: training
def memory_data(folder):
    """The folder's images as float32 NHWC 0..255 and one-hot labels (a Pillow loop)."""
    from PIL import Image
    files = image_files(folder)
    x = np.empty((len(files), 32, 32, 3), np.float32)
    for i, (path, _) in enumerate(files):
        with Image.open(path) as img:
            x[i] = np.asarray(img.convert("RGB"), dtype=np.float32)
    return x, np.eye(CLASSES, dtype=np.float32)[[label for _, label in files]]


def cnnkit_fit(spec, timer_base):
    import cnnkit
    import cnnkit.callbacks
    from cnnkit.applications import classic_cnn
    from cnnkit.layers import Input, Rescaling
    from cnnkit.models import Sequential
    from cnnkit.utils import image_dataset_from_directory, set_random_seed
    from cnnkit.utils.dataset import AUTOTUNE
    cnnkit.set_num_threads(spec["threads"])
    set_random_seed(0)
    model = Sequential([Input((32, 32, 3)), Rescaling(1 / 255)]
                       + classic_cnn(compile=False).layers)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    timer = timer_base(cnnkit.callbacks.Callback)
    if spec["data"] == "memory":
        x, y = memory_data(spec["cifar"])
        model.fit(x, y, batch_size=spec["batch"], epochs=spec["epochs"], shuffle=True, verbose=0,
                  callbacks=[timer])
        return timer.seconds, model.count_params()
    ds = image_dataset_from_directory(spec["cifar"], image_size=(32, 32), batch_size=spec["batch"],
                                      label_mode="categorical", seed=0,
                                      num_threads=spec["threads"], verbose=False).cache()
    if spec["prefetch"]:
        ds = ds.prefetch(AUTOTUNE)
    model.fit(ds, epochs=spec["epochs"], verbose=0, callbacks=[timer])
    return timer.seconds, model.count_params()


def tf_fit(spec, timer_base):
    import tensorflow as tf
    import keras
    keras.utils.set_random_seed(0)
    L = keras.layers
    model = keras.Sequential([
        L.Input((32, 32, 3)), L.Rescaling(1 / 255),
        L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
        L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2),
        L.Flatten(), L.Dense(128, activation="relu"), L.Dense(CLASSES, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    timer = timer_base(keras.callbacks.Callback)
    if spec["data"] == "memory":
        x, y = memory_data(spec["cifar"])
        model.fit(x, y, batch_size=spec["batch"], epochs=spec["epochs"], shuffle=True, verbose=0,
                  callbacks=[timer])
        return timer.seconds, model.count_params()
    ds = keras.utils.image_dataset_from_directory(spec["cifar"], image_size=(32, 32),
                                                  batch_size=spec["batch"],
                                                  label_mode="categorical", seed=0, verbose=False)
    options = tf.data.Options()
    options.threading.private_threadpool_size = spec["threads"]
    ds = ds.with_options(options).cache()
    if spec["prefetch"]:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    model.fit(ds, epochs=spec["epochs"], verbose=0, callbacks=[timer])
    return timer.seconds, model.count_params()


def child_fit(spec):
    def timer_base(base):
        class EpochTimer(base):
            def __init__(self):
                super().__init__()
                self.seconds = []

            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self.start)
        return EpochTimer()
    fit = cnnkit_fit if spec["framework"] == "cnnkit" else tf_fit
    seconds, params = fit(spec, timer_base)
    return {"epoch_seconds": seconds, "images": len(image_files(spec["cifar"])), "params": params}


def child_main(spec):
    threads = spec["threads"]
    if spec["framework"] == "tf":
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        import keras
        version = f"TensorFlow {tf.__version__} (Keras {keras.__version__})"
    elif spec["framework"] == "cnnkit":
        import cnnkit
        version = f"cnnkit {cnnkit.__version__}"
    else:
        import PIL
        version = f"Pillow {PIL.__version__}"
    result = child_decode(spec) if spec["task"] == "decode" else child_fit(spec)
    result["version"] = version
    print("RESULT " + json.dumps(result), flush=True)


# ------------------------------------------------------------------ parent
def run_child(spec):
    command = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
    return child_result(command, thread_env(spec["threads"]))


def available(framework):
    return importable(MODULES[framework])


def run_rounds(frameworks, thread_counts, folders, args):
    """Alternating child processes: per round, decoding at each thread count (each
    contender), then training (each framework, in memory then from the folder)."""
    frameworks = list(frameworks)
    decode, fit, versions = {}, {}, {}
    base = {**folders, "batch": args.batch, "photo_size": args.photo_size, "epochs": args.epochs,
            "prefetch": not args.no_prefetch}

    def attempt(fw, spec):
        try:
            result = run_child(spec)
        except ChildFailed as error:
            print(f"{NAMES[fw]} ({spec['task']}) failed, dropped: {error}")
            frameworks.remove(fw)
            return None
        versions[fw] = result.pop("version")
        return result

    for round_ in range(args.repeats):
        progress, started = [], time.perf_counter()
        for threads in thread_counts:
            for fw in list(frameworks):
                if fw == "pillow" and threads != 1:
                    continue  # a single-threaded loop: its 1-thread figure is the reference
                result = attempt(fw, {**base, "task": "decode", "framework": fw, "threads": threads})
                for key, r in (result or {}).items():
                    decode.setdefault((key, threads, fw), []).append(r["images"] / r["seconds"])
        for fw in [f for f in frameworks if f != "pillow"]:
            for data in ("memory", "folder"):
                if fw not in frameworks:
                    break
                result = attempt(fw, {**base, "task": "fit", "framework": fw, "data": data,
                                      "threads": args.fit_threads})
                if result:
                    seconds, images = result["epoch_seconds"], result["images"]
                    runs = fit.setdefault((fw, data), {"first": [], "later": [], "images": images,
                                                       "params": set()})
                    runs["first"].append(images / seconds[0])
                    runs["later"].append(images / statistics.median(seconds[1:]))
                    runs["params"].add(result["params"])
        progress.append(f"{time.perf_counter() - started:.0f} s")
        print(f"  round {round_ + 1}/{args.repeats}: " + ", ".join(progress), file=sys.stderr,
              flush=True)
    return decode, fit, versions


def rate_cells(samples):
    rate = statistics.median(samples)
    return rate, [f"{rate:,.0f}", f"{max(samples):,.0f}", f"{(max(samples) - min(samples)) / rate:.0%}"]


def print_decode(decode, thread_counts, frameworks, args):
    rows = []
    sets = {"cifar": "32x32 JPEG -> 32x32",
            "photos": f"{PHOTO_SIDE}x{PHOTO_SIDE} JPEG -> {args.photo_size}x{args.photo_size}"}
    for key, title in sets.items():
        reference = decode.get((key, 1, "pillow"))
        for threads in thread_counts:
            for fw in frameworks:
                samples = decode.get((key, threads, fw))
                if not samples:
                    continue
                rate, cells = rate_cells(samples)
                ratio = f"{rate / statistics.median(reference):.2f}x" if reference else "-"
                rows.append([title, NAMES[fw], threads] + cells + [ratio])
    print()
    print(table(["decoding", "contender", "threads", "img/s", "best", "spread", "vs Pillow loop"],
                rows, args.markdown, text_columns=2))
    print("(img/s: one pass over the folder, decoded, resized (bilinear) and batched, median over "
          "rounds; best: the fastest round; spread: (best - slowest) / median; vs Pillow loop: "
          "over the single-threaded Pillow loop's img/s)")


def print_fit(fit, frameworks, args):
    rows, summary = [], {}
    for fw in frameworks:
        memory = fit.get((fw, "memory"))
        for data in ("memory", "folder"):
            runs = fit.get((fw, data))
            if not runs:
                continue
            first, first_cells = rate_cells(runs["first"])
            later, later_cells = rate_cells(runs["later"])
            if data == "folder" and memory:
                ratios = [first / statistics.median(memory["first"]),
                          later / statistics.median(memory["later"])]
                summary[fw] = {"first": first, "ratios": ratios}
                ratio_cells = [f"{r:.0%}" for r in ratios]
            else:
                ratio_cells = ["", ""]
                summary.setdefault(fw, {})["memory_first"] = first
            rows.append([NAMES[fw], data, first_cells[0], first_cells[2], later_cells[0],
                         later_cells[2]] + ratio_cells)
        if runs and len(runs["params"]) > 1:
            print(f"WARNING: {NAMES[fw]}'s parameter counts differ: {runs['params']}")
    pipeline = "cache().prefetch(AUTOTUNE)" if not args.no_prefetch else "cache()"
    later = "epoch 2" if args.epochs == 2 else f"epochs 2-{args.epochs}"
    print()
    print(table(["fit", "data", "epoch 1 img/s", "spread", f"{later} img/s",
                 "spread", "folder/memory, epoch 1", f"folder/memory, {later}"],
                rows, args.markdown, text_columns=2))
    print(f"(classic CIFAR-10 CNN, {args.fit_threads} thread{'s' * (args.fit_threads > 1)}, batch "
          f"{args.batch}, {args.images} images an epoch; memory: fit(x, y) of NumPy arrays; folder: "
          f"fit(image_dataset_from_directory(...).{pipeline}); {later}: the median epoch time; img/s "
          "median over rounds)")
    return summary


def print_targets(summary, decode, args):
    ours = summary.get("cnnkit")
    if not ours or "ratios" not in ours:
        return
    cached = ours["ratios"][1]
    print()
    print(f"Target, cached epochs >= 90% of in-memory speed: {cached:.0%} "
          f"({'met' if cached >= 0.9 else 'NOT met'})")
    tf_run = summary.get("tf", {})
    tf_decode = decode.get(("cifar", args.fit_threads, "tf"))
    if "first" in tf_run:
        reference, what = tf_run["first"], "TensorFlow's epoch 1 from the folder"
    elif tf_decode:
        reference, what = statistics.median(tf_decode), "TensorFlow's decoding rate (no TF fit)"
    else:
        print("Target, epoch 1 at least as fast as TensorFlow's pipeline: no TensorFlow figure "
              "(not importable or not in --only)")
        return
    ratio = ours["first"] / reference
    print(f"Target, epoch 1 at least as fast as TensorFlow's pipeline: {ours['first']:,.0f} vs "
          f"{reference:,.0f} img/s, {what}: {ratio:.2f}x ({'met' if ratio >= 1 else 'NOT met'})")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        return child_main(json.loads(sys.argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50000,
                        help="32x32 images in the CIFAR-size folder, trained on (default 50000)")
    parser.add_argument("--photos", type=int, default=2000, help="180x180 photos (default 2000)")
    parser.add_argument("--photo-size", type=int, default=128,
                        help="the size the photos are resized to (default 128)")
    parser.add_argument("--threads", default="1,2", help="decoding thread counts (default 1,2)")
    parser.add_argument("--fit-threads", type=int, help="training threads (default: the most of --threads)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; figures are medians (default 3)")
    parser.add_argument("--epochs", type=int, default=3, help="fit epochs, at least 2 (default 3)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32, Keras')")
    parser.add_argument("--only", default="cnnkit,pillow,tf", help="contenders, in running order")
    parser.add_argument("--no-prefetch", action="store_true", help="fit from .cache() alone")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "cnnkit-input-pipeline"),
                        help="where the JPEG folders are written once and kept")
    parser.add_argument("--data", default=os.environ.get("CNNKIT_DATA"),
                        help="folder with CIFAR-10 (default: $CNNKIT_DATA, cnnkit's cache)")
    parser.add_argument("--synthetic", action="store_true", help="random images, not CIFAR-10")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    args = parser.parse_args()
    for name in ("images", "photos", "photo_size", "repeats", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (epoch 1 decodes, the later ones replay the cache)")
    try:
        thread_counts = [int(t) for t in args.threads.split(",")]
    except ValueError:
        parser.error(f"--threads: comma-separated integers, got {args.threads!r}")
    if min(thread_counts) < 1:
        parser.error("--threads must be positive")
    args.fit_threads = args.fit_threads or max(thread_counts)
    frameworks = []
    for name in args.only.split(","):
        if name not in NAMES:
            parser.error(f"--only: unknown contender {name!r} (choose from {', '.join(NAMES)})")
        if available(name):
            frameworks.append(name)
        else:
            print(f"{NAMES[name]}: not importable, skipped ({INSTALL[name]} to include it)")
    if not available("pillow"):
        sys.exit('Pillow is needed to write the JPEGs: pip install "cnnkit[images]"')

    folders = prepare_folders(args)
    print(f"{cpu_description()}; Python {platform.python_version()}, NumPy {np.__version__}")
    print(f"{args.images} {folders['source']} 32x32 JPEGs, {args.photos} {PHOTO_SIDE}x{PHOTO_SIDE} "
          f"photos (quality 90) in {args.workdir}; batch {args.batch}, {args.repeats} rounds, "
          f"{args.epochs} epochs")
    started, load = time.perf_counter(), os.getloadavg()[0]
    decode, fit, versions = run_rounds(frameworks, thread_counts, folders, args)
    frameworks = [fw for fw in frameworks if fw in versions]
    if not frameworks:
        sys.exit("no contender ran")
    print("Versions: " + "; ".join(versions[fw] for fw in frameworks)
          + f"; run took {time.perf_counter() - started:.0f} s; load average {load:.1f} before it, "
          f"{os.getloadavg()[0]:.1f} after")
    print_decode(decode, thread_counts, frameworks, args)
    summary = print_fit(fit, [fw for fw in frameworks if fw != "pillow"], args)
    print_targets(summary, decode, args)


if __name__ == "__main__":
    main()
