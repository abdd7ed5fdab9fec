"""The seed's CIFAR-10 CNN trained in Keras 3 on TensorFlow, saved as .keras (and as a legacy
.h5), then loaded by cnnkit: the test accuracy must be the same in both.

    python bench/keras_seed_cnn.py [--epochs 2] [--data DIR] [--out FOLDER] [--threads N]

Trains in a TensorFlow process of its own (Keras' classic CNN: Conv2D(32)-MaxPool-Conv2D(64)-
MaxPool-Flatten-Dense(128)-Dense(10), Adam, batch 32, inputs scaled to [0, 1], seed 0), evaluates
it there on the 10,000 test images, and saves cifar10_cnn.keras and cifar10_cnn.h5 in --out; then,
in this process, cnnkit loads each file and evaluates it on the same images. Prints both
accuracies and the largest difference of the two predictions. TensorFlow is needed (it is not a
cnnkit dependency): pip install tensorflow-cpu==2.21.0. --data: the folder holding
cifar-10-batches-py/ (default $CNNKIT_DATA).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

TRAIN = """
import json, os, sys, time
import numpy as np
import keras
import tensorflow as tf
folder, epochs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(threads)
data = np.load(os.path.join(folder, "cifar10.npz"))
keras.utils.set_random_seed(0)
L = keras.layers
model = keras.Sequential([keras.Input((32, 32, 3)), L.Conv2D(32, 3, activation="relu"),
                          L.MaxPooling2D(2), L.Conv2D(64, 3, activation="relu"),
                          L.MaxPooling2D(2), L.Flatten(), L.Dense(128, activation="relu"),
                          L.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
start = time.perf_counter()
model.fit(data["x_train"], keras.utils.to_categorical(data["y_train"], 10), batch_size=32,
          epochs=epochs, verbose=2)
seconds = time.perf_counter() - start
_, accuracy = model.evaluate(data["x_test"], keras.utils.to_categorical(data["y_test"], 10),
                             verbose=0)
np.save(os.path.join(folder, "keras_predictions.npy"), model.predict(data["x_test"], verbose=0))
model.save(os.path.join(folder, "cifar10_cnn.keras"))
model.save(os.path.join(folder, "cifar10_cnn.h5"))
print("RESULT " + json.dumps({"accuracy": accuracy, "train_seconds": seconds,
                              "version": f"Keras {keras.__version__}, TensorFlow {tf.__version__}"}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--data", default=os.environ.get("CNNKIT_DATA"))
    parser.add_argument("--out", default="keras_seed_cnn")
    args = parser.parse_args()

    import cnnkit
    from cnnkit.datasets import cifar10
    (x_train, y_train), (x_test, y_test) = cifar10.load_data(args.data)
    os.makedirs(args.out, exist_ok=True)
    np.savez(os.path.join(args.out, "cifar10.npz"), x_train=x_train.astype(np.float32) / 255,
             y_train=y_train, x_test=x_test.astype(np.float32) / 255, y_test=y_test)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", TRAIN, args.out, str(args.epochs),
                           str(args.threads)], env=env, capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode or not lines:
        sys.exit(f"training in TensorFlow failed:\n{proc.stderr[-3000:]}")
    theirs = json.loads(lines[-1][len("RESULT "):])
    print(f"{theirs['version']}: {args.epochs} epochs in {theirs['train_seconds']:.0f} s, test "
          f"accuracy {theirs['accuracy']:.4f}")
    cnnkit.set_num_threads(args.threads)
    x = x_test.astype(np.float32) / 255
    labels = np.asarray(y_test).reshape(-1)
    reference = np.load(os.path.join(args.out, "keras_predictions.npy"))
    for name in ("cifar10_cnn.keras", "cifar10_cnn.h5"):
        start = time.perf_counter()
        model = cnnkit.models.load_model(os.path.join(args.out, name))
        predictions = model.predict(x, verbose=0)
        accuracy = float(np.mean(predictions.argmax(1) == labels))
        print(f"cnnkit {cnnkit.__version__}, {name}: test accuracy {accuracy:.4f} (load and "
              f"predict {time.perf_counter() - start:.1f} s), max |prediction difference| "
              f"{np.abs(predictions - reference).max():.1e}, top-1 disagreements "
              f"{int(np.sum(predictions.argmax(1) != reference.argmax(1)))}")


if __name__ == "__main__":
    main()
