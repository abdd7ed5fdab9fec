"""One CIFAR-10 training recipe run in cnnkit, Keras 3 (TensorFlow) or PyTorch, for comparing the
accuracy each reaches: ResNet-20 (bench/_models.py), SGD with Nesterov momentum 0.9, a cosine
learning-rate schedule, decoupled weight decay, and random horizontal flips and translations.

    python bench/resnet_recipe.py --framework {cnnkit,keras,torch} [--epochs 30] [--seed 1]
        [--train-samples 50000] [--batch-size 128] [--learning-rate 0.1]
        [--weight-decay 0.005] [--threads 2] [--json out.json]

The recipe, the same in each framework:
- data: CIFAR-10 from $CNNKIT_DATA (cnnkit.datasets.cifar10), scaled to [0, 1] and standardised
  per channel with the training images' mean and deviation. --train-samples takes that many
  training images, a subset fixed by a generator of seed 0 (the same in every run); the test
  set is always all 10,000 images.
- augmentation, every batch: a horizontal flip with probability 1/2, and a translation of up to
  1/8 of the image (4 pixels) each way with reflected borders. cnnkit and Keras use their
  RandomFlip('horizontal') and RandomTranslation(0.125, 0.125) layers (shifts drawn uniformly,
  bilinear); PyTorch pads 4 pixels by reflection and crops at a random whole-pixel offset, the
  usual PyTorch form of the same augmentation.
- optimizer: Keras 3's SGD(momentum=0.9, nesterov=True, weight_decay=wd) with
  CosineDecay(learning_rate, decay_steps=epochs * steps_per_epoch). Keras 3's weight decay is
  decoupled (each weight is multiplied by 1 - lr * wd before the update) and reaches every
  weight; the PyTorch run applies exactly that rule and Keras' form of the Nesterov update by
  hand, so all three run one optimizer, not three look-alikes.
- loss: categorical cross-entropy on the softmax (fused with it in cnnkit and PyTorch).
Printed at the end, and written with --json: the test accuracy and loss, the training time and
the CPU.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import cpu_name  # noqa: E402
from _models import resnet20, torch_models  # noqa: E402

TRANSLATE = 0.125  # of the image size, each way
MOMENTUM = 0.9


def load(train_samples):
    from cnnkit.datasets import cifar10
    (x, y), (x_test, y_test) = cifar10.load_data()
    subset = np.sort(np.random.default_rng(0).permutation(len(x))[:train_samples])
    x, y = x[subset].astype(np.float32) / 255, y[subset].reshape(-1).astype(np.int64)
    x_test, y_test = x_test.astype(np.float32) / 255, y_test.reshape(-1).astype(np.int64)
    mean, std = x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2))
    return ((x - mean) / std, y), ((x_test - mean) / std, y_test)


def cosine(step, base, total):
    """Keras' CosineDecay(base, total) with alpha 0, at this step."""
    return base * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


def run_keras_api(keras, args, data):
    """cnnkit or Keras 3: the same program, `keras` being either module."""
    (x, y), (x_test, y_test) = data
    keras.utils.set_random_seed(args.seed)
    steps = math.ceil(len(x) / args.batch_size)
    augment = [keras.layers.RandomFlip("horizontal", seed=args.seed),
               keras.layers.RandomTranslation(TRANSLATE, TRANSLATE, seed=args.seed + 1)]
    model = resnet20(keras, augment)
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, args.epochs * steps)
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=MOMENTUM, nesterov=True,
                                                 weight_decay=args.weight_decay),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=2)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
    return float(loss), float(accuracy), seconds


def run_torch(torch, args, data):
    (x, y), (x_test, y_test) = data
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = torch_models(torch)["resnet"]()
    params = list(model.parameters())
    velocities = [torch.zeros_like(p) for p in params]
    pad = round(TRANSLATE * 32)
    x_nchw = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    labels = torch.from_numpy(y)
    steps = math.ceil(len(x) / args.batch_size)
    total, iterations = args.epochs * steps, 0
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        seen, loss_sum, correct = 0, 0.0, 0
        for step in range(steps):
            idx = order[step * args.batch_size:(step + 1) * args.batch_size]
            batch = x_nchw[idx]
            flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
            batch[flip] = batch[flip].flip(3)
            padded = torch.nn.functional.pad(batch, (pad,) * 4, mode="reflect")
            offsets = rng.integers(0, 2 * pad + 1, size=(len(idx), 2))
            batch = torch.stack([padded[i, :, r:r + 32, c:c + 32]
                                 for i, (r, c) in enumerate(offsets)])
            logits = model(batch)
            loss = loss_fn(logits, labels[idx])
            model.zero_grad(set_to_none=False)
            loss.backward()
            lr = cosine(iterations, args.learning_rate, total)
            with torch.no_grad():  # Keras 3's SGD: decoupled decay, then its Nesterov form
                for p, v in zip(params, velocities):
                    p.mul_(1 - lr * args.weight_decay)
                    v.mul_(MOMENTUM).add_(p.grad, alpha=-lr)
                    p.add_(v, alpha=MOMENTUM).add_(p.grad, alpha=-lr)
            iterations += 1
            seen += len(idx)
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == labels[idx]).sum())
        print(f"epoch {epoch + 1}/{args.epochs} - loss: {loss_sum / seen:.4f} - accuracy: "
              f"{correct / seen:.4f} - {time.perf_counter() - start:.0f}s", flush=True)
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        xt = torch.from_numpy(np.ascontiguousarray(x_test.transpose(0, 3, 1, 2)))
        logits = torch.cat([model(xt[i:i + 500]) for i in range(0, len(xt), 500)])
        loss = float(loss_fn(logits, torch.from_numpy(y_test)))
        accuracy = float((logits.argmax(1).numpy() == y_test).mean())
    return loss, accuracy, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", choices=("cnnkit", "keras", "torch"), required=True)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--train-samples", type=int, default=50000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=0.005)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json")
    args = parser.parse_args()
    data = load(args.train_samples)
    if args.framework == "cnnkit":
        import cnnkit
        cnnkit.set_num_threads(args.threads)
        version = f"cnnkit {cnnkit.__version__}"
        result = run_keras_api(cnnkit, args, data)
    elif args.framework == "keras":
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        import keras
        version = f"Keras {keras.__version__} ({keras.backend.backend()})"
        result = run_keras_api(keras, args, data)
    else:
        import torch
        torch.set_num_threads(args.threads)
        version = f"PyTorch {torch.__version__}"
        result = run_torch(torch, args, data)
    loss, accuracy, seconds = result
    report = {"framework": version, "seed": args.seed, "epochs": args.epochs,
              "train_samples": len(data[0][0]), "batch_size": args.batch_size,
              "learning_rate": args.learning_rate, "weight_decay": args.weight_decay,
              "threads": args.threads, "test_accuracy": accuracy, "test_loss": loss,
              "train_seconds": round(seconds, 1), "cpu": cpu_name()}
    print(json.dumps(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
