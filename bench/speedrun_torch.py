"""The airbench94 CIFAR-10 speedrun recipe (K. Jordan, "94% on CIFAR-10 in 3.29 seconds on a
single GPU", 2024; github.com/KellerJordan/cifar10-airbench, airbench94.py) in PyTorch, on the
CPU in float32: the reference that cnnkit's version of the same recipe is compared against, for
accuracy and wall time. An optional benchmark, not used by the tests (torch is not a cnnkit
dependency).

    python bench/speedrun_torch.py [--seed 0] [--threads N] [--epochs 9.9] [--data DIR]
        [--limit N] [--compile] [--json]

--data is a folder holding cifar-10-batches-py/ (default $CNNKIT_DATA, else ~/.cnnkit/datasets);
the pickled batches are read in place. --limit N trains on the first N training images and
tests on the first N test images (smoke tests; N >= 1024, one batch). --compile wraps the
network in torch.compile (off by default).

The recipe, with airbench94.py's constants:
- inputs: pixels in [0, 1] standardised with CIFAR-10's fixed channel mean and std.
- network (1.97M weights): a 2x2 convolution 3 -> 24 without padding, its weights the
  whitening filters of the 2x2 patches of the first 5000 training images (eigenvectors of the
  patch covariance over sqrt(eigenvalue + 5e-4), and their negatives) and frozen, its bias
  trained for 3 epochs then frozen; GELU; three groups of widths 64, 256, 256, each
  conv3x3 -> max-pool 2 -> batch norm -> GELU -> conv3x3 -> batch norm -> GELU, the convolutions
  without bias and identity-initialised on their first in-channels outputs, the batch norms
  with eps 1e-12, running statistics 0.6 old / 0.4 new, scale fixed at 1 and a learned bias;
  a 3x3 max-pool (3x3 -> 1x1), a linear layer 256 -> 10 without bias, the logits times 1/9.
- loss: cross-entropy with label smoothing 0.2, summed over the batch.
- optimizer: torch.optim.SGD, Nesterov momentum 0.85, batch 1024, in airbench's decoupled
  parametrisation: lr 11.5 per 1024 images and weight decay 0.0153 per 1024 images are turned
  into SGD's lr = 11.5 / (1024 * (1 + 1 / (1 - 0.85))) and weight_decay = wd / lr with
  wd = 0.0153 * 1024 / (1024 * (1 + 1 / (1 - 0.85))), so the decay per step does not depend on
  the lr; the batch-norm biases take 64 times the lr (and the same decay per step).
- schedule: the lr multiplier rises linearly from 0.2 to 1 over the first 23% of the steps,
  then falls linearly to 0.07 at the last step.
- Lookahead: from epoch 3, every 5 steps, a copy of the weights (and batch-norm statistics)
  moves towards the network by 1 - rho, rho = 0.95**5 * (step / total_steps)**3, and the
  network takes the copy's values; after each epoch the network takes the copy's values again.
- augmentation: a random half of the images flipped once, then every image flipped every odd
  epoch (airbench's alternating flip), and a random translation of up to 2 pixels each way
  (crops of the images reflect-padded by 2), redrawn each epoch.
- 9.9 epochs: 48 steps an epoch (the partial last batch dropped), ceil(48 * 9.9) = 476 steps,
  the tenth epoch stopping at step 476.
- evaluation: test accuracy after each epoch, and at the end with airbench's test-time
  augmentation (level 2): half the weight on the image and its mirror, half on the mirrored
  pairs of the image translated one pixel up-left and down-right (reflect padding).
Times: each epoch's training (its data augmentation included, as airbench times it), the
whitening initialisation, and the TTA evaluation; the total is their sum, as airbench's.
Printed per epoch and at the end; --json adds a final line with one JSON object.
"""
import argparse
import json
import math
import os
import pickle
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import cpu_name  # noqa: E402

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
BATCH_SIZE = 1024
LR = 11.5                 # per 1024 images
WEIGHT_DECAY = 0.0153     # per 1024 images, independent of the lr
MOMENTUM = 0.85
BIAS_SCALER = 64.0        # lr factor of the batch-norm biases
LABEL_SMOOTHING = 0.2
WHITEN_BIAS_EPOCHS = 3
WHITEN_IMAGES = 5000
WHITEN_EPS = 5e-4
WIDTHS = (64, 256, 256)
BN_MOMENTUM = 0.6         # airbench's: the weight of the old running statistics
BN_EPS = 1e-12
LOGIT_SCALE = 1 / 9
TRANSLATE = 2
LR_START, LR_PEAK_AT, LR_END = 0.2, 0.23, 0.07
EMA_START_EPOCH, EMA_EVERY, EMA_BASE, EMA_POW = 3, 5, 0.95, 3.0
EVAL_BATCH = 2000


def load_cifar10(root, limit=None):
    """((x, y), (x_test, y_test)): float32 NCHW pixels in [0, 1] and int64 labels."""
    folder = os.path.join(os.path.expanduser(root), "cifar-10-batches-py")
    if not os.path.isdir(folder):
        raise SystemExit(f"no CIFAR-10 at {folder}: pass --data DIR or set $CNNKIT_DATA")

    def read(names):
        xs, ys = [], []
        for name in names:
            with open(os.path.join(folder, name), "rb") as f:
                batch = pickle.load(f, encoding="bytes")
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8))
            ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
        x, y = np.concatenate(xs)[:limit], np.concatenate(ys)[:limit]
        x = torch.from_numpy(x.reshape(-1, 3, 32, 32)).float().div_(255)
        return x, torch.from_numpy(y)

    return read([f"data_batch_{i}" for i in range(1, 6)]), read(["test_batch"])


def bitexact_rows(root):
    """How many leading test rows hold the official pixels (BITEXACT_ROWS.json beside this
    project's copy of CIFAR-10), or None where the file is absent."""
    path = os.path.join(os.path.expanduser(root), "cifar-10-batches-py", "BITEXACT_ROWS.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return int(json.load(f)["bitexact_leading_rows"]["test_batch"])


def normalize(x):
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def conv3x3(c_in, c_out):
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    # Identity on the first c_in outputs: a deep plain network then starts close to a residual
    # one; the other outputs keep PyTorch's default initialisation.
    nn.init.dirac_(conv.weight.data[:c_in])
    return conv


def batch_norm(c):
    # PyTorch's momentum is the weight of the new batch statistics.
    bn = nn.BatchNorm2d(c, eps=BN_EPS, momentum=1 - BN_MOMENTUM)
    bn.weight.requires_grad_(False)  # the scale stays at 1; only the bias learns
    return bn


class ConvGroup(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv1, self.norm1 = conv3x3(c_in, c_out), batch_norm(c_out)
        self.conv2, self.norm2 = conv3x3(c_out, c_out), batch_norm(c_out)

    def forward(self, x):
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        nn.init.zeros_(self.whiten.bias)
        widths = (24,) + WIDTHS
        self.groups = nn.Sequential(*[ConvGroup(a, b) for a, b in zip(widths, widths[1:])])
        self.head = nn.Linear(WIDTHS[-1], 10, bias=False)

    def forward(self, x):
        x = self.groups(F.gelu(self.whiten(x)))
        x = F.max_pool2d(x, 3).flatten(1)  # 31 -> 15 -> 7 -> 3 after the groups, then 1
        return self.head(x) * LOGIT_SCALE


@torch.no_grad()
def init_whitening(conv, images):
    """Filters that decorrelate 2x2 patches: the covariance's eigenvectors, largest first, over
    sqrt(eigenvalue + eps), then their negatives, so that the GELU after them loses nothing."""
    patches = F.unfold(images, conv.kernel_size)  # (N, 12, 961), features in (c, h, w) order
    n = patches.shape[0] * patches.shape[2]
    cov = torch.einsum("nip,njp->ij", patches, patches) / n  # uncentred, as airbench
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.T.flip(0)
    filters = (eigenvectors / torch.sqrt(eigenvalues + WHITEN_EPS)[:, None])
    filters = filters.reshape(-1, *conv.weight.shape[1:])
    conv.weight.copy_(torch.cat([filters, -filters]))


def lr_factor(step, total):
    """airbench's triangle: 0.2 -> 1 over the first 23% of the steps, then -> 0.07 at the end."""
    peak = int(LR_PEAK_AT * total)
    if step < peak:
        return LR_START + (1 - LR_START) * step / peak
    return 1 + (LR_END - 1) * (step - peak) / (total - peak)


class Lookahead:
    """A slow copy of every float tensor of the state dict (weights and batch-norm statistics)."""

    def __init__(self, model):
        self.pairs = [(t, t.detach().clone()) for t in model.state_dict().values()
                      if t.is_floating_point()]

    @torch.no_grad()
    def update(self, decay):
        for live, slow in self.pairs:
            slow.lerp_(live, 1 - decay)
            live.copy_(slow)


class TrainImages:
    """airbench's loader on the CPU: the random first flip and the reflect padding are done once;
    each epoch takes new random crops, mirrors them all in odd epochs (so every image alternates
    between its two orientations) and shuffles."""

    def __init__(self, x, y):
        self.x, self.y, self.epoch, self.padded = x, y, 0, None

    def _crops(self):
        n, size = len(self.padded), self.padded.shape[-1] - 2 * TRANSLATE
        shifts = torch.randint(0, 2 * TRANSLATE + 1, (n, 2))
        out = torch.empty(n, 3, size, size)
        for dy in range(2 * TRANSLATE + 1):
            for dx in range(2 * TRANSLATE + 1):
                idx = ((shifts[:, 0] == dy) & (shifts[:, 1] == dx)).nonzero().flatten()
                out[idx] = self.padded[idx, :, dy:dy + size, dx:dx + size]
        return out

    def batches(self):
        if self.padded is None:  # in the first epoch's time, as airbench
            x = normalize(self.x)
            flip = torch.rand(len(x)) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            self.padded = F.pad(x, (TRANSLATE,) * 4, mode="reflect")
        images = self._crops()
        if self.epoch % 2 == 1:
            images = images.flip(-1)
        self.epoch += 1
        order = torch.randperm(len(images))
        for i in range(len(images) // BATCH_SIZE):  # the partial last batch is dropped
            idx = order[i * BATCH_SIZE:(i + 1) * BATCH_SIZE]
            yield images[idx].contiguous(memory_format=torch.channels_last), self.y[idx]


@torch.no_grad()
def evaluate(model, x, y, tta=False):
    """Test accuracy; with tta, airbench's level 2: 1/4 each on the image and its mirror, 1/8
    each on the mirrored pairs of its one-pixel up-left and down-right translations."""
    model.eval()

    def mirror(v):
        return 0.5 * model(v) + 0.5 * model(v.flip(-1))

    logits = []
    for v in normalize(x).split(EVAL_BATCH):
        v = v.contiguous(memory_format=torch.channels_last)
        if not tta:
            logits.append(model(v))
            continue
        padded = F.pad(v, (1,) * 4, mode="reflect")
        shifted = 0.5 * (mirror(padded[:, :, :32, :32]) + mirror(padded[:, :, 2:, 2:]))
        logits.append(0.5 * mirror(v) + 0.5 * shifted)
    return (torch.cat(logits).argmax(1) == y).float().mean().item()


def train(args, data):
    (x, y), (x_test, y_test) = data
    steps_per_epoch = len(x) // BATCH_SIZE
    if steps_per_epoch == 0:
        raise SystemExit(f"--limit must leave at least one batch of {BATCH_SIZE} images")
    total_steps = math.ceil(steps_per_epoch * args.epochs)

    net = Net().to(memory_format=torch.channels_last)
    model = torch.compile(net) if args.compile else net
    # SGD's own parameters: the lr is divided by the step growth that momentum brings under a
    # constant gradient, and the decay by the lr, so that lr and decay can be tuned apart.
    kilostep = 1024 * (1 + 1 / (1 - MOMENTUM))
    lr, wd = LR / kilostep, WEIGHT_DECAY * BATCH_SIZE / kilostep
    lr_bias = lr * BIAS_SCALER
    norm_biases = [m.bias for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    others = [p for p in net.parameters()
              if p.requires_grad and all(p is not q for q in norm_biases)]
    groups = [dict(params=norm_biases, lr=lr_bias, weight_decay=wd / lr_bias),
              dict(params=others, lr=lr, weight_decay=wd / lr)]
    optimizer = torch.optim.SGD(groups, momentum=MOMENTUM, nesterov=True)
    for group in optimizer.param_groups:
        group["base_lr"] = group["lr"]

    start = time.perf_counter()
    init_whitening(net.whiten, normalize(x[:WHITEN_IMAGES]))
    whiten_seconds = time.perf_counter() - start

    loader = TrainImages(x, y)
    lookahead, step = None, 0
    epoch_seconds, epoch_rates, epoch_accuracy = [], [], []
    for epoch in range(math.ceil(args.epochs)):
        # A frozen bias gets no gradient (zero_grad sets grads to None), so SGD leaves it
        # untouched: no momentum, no decay.
        net.whiten.bias.requires_grad_(epoch < WHITEN_BIAS_EPOCHS)
        start, seen = time.perf_counter(), 0
        model.train()
        for images, labels in loader.batches():
            factor = lr_factor(step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
            loss = F.cross_entropy(model(images), labels, label_smoothing=LABEL_SMOOTHING,
                                   reduction="sum")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step, seen = step + 1, seen + len(images)
            if epoch >= EMA_START_EPOCH and step % EMA_EVERY == 0:
                if lookahead is None:
                    lookahead = Lookahead(net)
                else:  # weak averaging early on, strong at the end
                    lookahead.update(EMA_BASE ** EMA_EVERY * (step / total_steps) ** EMA_POW)
            if step >= total_steps:
                break
        if lookahead is not None:
            lookahead.update(1.0)  # the network ends each epoch on the slow weights
        seconds = time.perf_counter() - start
        accuracy = evaluate(model, x_test, y_test)
        epoch_seconds.append(seconds)
        epoch_rates.append(seen / seconds)
        epoch_accuracy.append(accuracy)
        print(f"epoch {epoch + 1:2d}  train {seconds:8.2f} s  {seen / seconds:7.1f} images/s  "
              f"test accuracy {accuracy:.4f}", flush=True)

    start = time.perf_counter()
    tta_accuracy = evaluate(model, x_test, y_test, tta=True)
    tta_seconds = time.perf_counter() - start
    train_seconds = whiten_seconds + sum(epoch_seconds)
    report = {
        "recipe": "airbench94", "framework": f"PyTorch {torch.__version__}",
        "seed": args.seed, "threads": torch.get_num_threads(), "compile": args.compile,
        "epochs": args.epochs, "steps": step, "batch_size": BATCH_SIZE,
        "train_images": len(x), "test_images": len(x_test),
        "epoch_seconds": epoch_seconds, "epoch_images_per_second": epoch_rates,
        "epoch_test_accuracy": epoch_accuracy, "whiten_seconds": whiten_seconds,
        "train_seconds": train_seconds, "tta_seconds": tta_seconds,
        "test_accuracy": epoch_accuracy[-1], "test_accuracy_tta": tta_accuracy,
        "total_seconds": train_seconds + tta_seconds, "cpu": cpu_name(),
    }
    exact = bitexact_rows(args.data)
    if exact:  # outside the timed parts, as in cnnkit's command
        rows = slice(0, min(exact, len(x_test)))
        report["bitexact_test_rows"] = rows.stop
        report["bitexact_accuracy"] = evaluate(model, x_test[rows], y_test[rows])
        report["bitexact_accuracy_tta"] = evaluate(model, x_test[rows], y_test[rows], tta=True)
    print(f"whitening init {whiten_seconds:.2f} s, training {train_seconds:.2f} s, "
          f"TTA evaluation {tta_seconds:.2f} s")
    print(f"test accuracy {tta_accuracy:.4f} with TTA, {epoch_accuracy[-1]:.4f} without; "
          f"total {report['total_seconds']:.2f} s")
    if exact:
        print(f"on the {report['bitexact_test_rows']} bit-exact test rows: "
              f"{report['bitexact_accuracy_tta']:.4f} with TTA, "
              f"{report['bitexact_accuracy']:.4f} without")
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--epochs", type=float, default=9.9)
    parser.add_argument("--data", default=os.environ.get("CNNKIT_DATA")
                        or os.path.join("~", ".cnnkit", "datasets"))
    parser.add_argument("--limit", type=int, help="the first N training and N test images")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--json", action="store_true", help="end with a line of JSON")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = train(args, load_cifar10(args.data, args.limit))
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
