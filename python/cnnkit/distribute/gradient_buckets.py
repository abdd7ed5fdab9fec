"""GradientBuckets: a step's weight gradients summed over the ranks while the backward pass is
still computing the layers before them (PyTorch DDP's buckets, Horovod's tensor fusion).

One float32 buffer holds every trainable weight's gradient, laid out in the order the backward
pass finishes them: the last layer's first. It is cut into buckets of about `bucket_bytes`.
After each step of the backward pass (Graph.backward's after_step hook), the layers that step
finished copy their gradients in, scaled by this rank's share of the global batch (n_rank / B,
so that the sum over the ranks is the gradient of the global batch's mean loss); a bucket
whose layers are all in is summed with a non-blocking Allreduce at once, and each later hook
tests the buckets in flight, which lets MPI move them on while the next layers compute.
finish() starts what is left and waits for all of them.

The optimizer then reads the gradients as views of the buffer, in trainable_weights' order:
no copy back. The buffer's first float is the batch's mean loss (this rank's times its share),
so the sum is the global batch's loss and every rank takes the same decision on a non-finite
step. A layer called several times (shared) has its calls' gradients summed into its place; one
the training graph never calls gets zeros.

Buckets start in their index order on every rank (bucket k only after bucket k-1), as MPI wants
each communicator's collectives in the same order everywhere.
"""
import numpy as np

__all__ = ["GradientBuckets"]


class GradientBuckets:
    def __init__(self, world, graph, sources, bucket_bytes):
        """sources: [(layer, [call states])] of each trainable layer, in trainable_weights'
        order (the trainer's step plan); graph: the training graph the hooks come from."""
        self.world = world
        finished_at = _finishing_steps(graph, [layer for layer, _ in sources])
        order = sorted(range(len(sources)), key=lambda i: (-finished_at[i], i))
        total = 1 + sum(w.size for layer, _ in sources for w in layer._trainable_variables)
        self.buffer = np.zeros(total, np.float32)
        self.loss_slot = self.buffer[:1]
        views = [None] * len(sources)
        self.bucket_of = [0] * len(sources)
        bounds, start, offset = [], 0, 1  # bucket 0 holds the loss slot too
        for i in order:
            layer, _ = sources[i]
            views[i] = []
            for w in layer._trainable_variables:
                views[i].append(self.buffer[offset:offset + w.size].reshape(w.shape))
                offset += w.size
            self.bucket_of[i] = len(bounds)
            if (offset - start) * 4 >= bucket_bytes:
                bounds.append((start, offset))
                start = offset
        if start < offset or not bounds:
            bounds.append((start, offset))
        self.buckets = [self.buffer[a:b] for a, b in bounds]
        self.sources = sources
        self.views = views
        self.grads = [v for i in range(len(sources)) for v in views[i]]
        self.layers_in = [0] * len(self.buckets)  # sources each bucket still waits for
        self.size_of = [0] * len(self.buckets)
        for i in range(len(sources)):
            self.size_of[self.bucket_of[i]] += 1
        # The sources each backward step finishes (by step index); -1: never called
        self.finished_by_step = {}
        for i, step in enumerate(finished_at):
            self.finished_by_step.setdefault(step, []).append(i)
        self.scale = 1.0
        self.requests, self.started, self.done_sources = [], 0, None

    # ------------------------------------------------------------ one step
    def begin(self, scale, loss):
        """A new step: this rank's share of the global batch, and its mean loss."""
        self.scale = np.float32(scale)
        self.loss_slot[0] = loss * scale
        self.requests, self.started = [], 0
        self.layers_in = list(self.size_of)

    def after_step(self, index):
        """Graph.backward's hook: backward step `index` is done."""
        finished = self.finished_by_step.get(index)
        if finished:
            for i in finished:
                self._take(i)
            self._start_ready()
        if self.requests:
            self.world.MPI.Request.Testall(self.requests)  # lets MPI move them on

    def _take(self, i):
        layer, calls = self.sources[i]
        views = self.views[i]
        if not calls:
            for v in views:
                v.fill(0)
        else:
            for j, v in enumerate(views):
                if len(calls) == 1:
                    np.multiply(calls[0].grads[j], self.scale, out=v)
                else:
                    np.add(calls[0].grads[j], calls[1].grads[j], out=v)
                    for other in calls[2:]:
                        np.add(v, other.grads[j], out=v)
                    np.multiply(v, self.scale, out=v)
        self.layers_in[self.bucket_of[i]] -= 1

    def _start_ready(self):
        while self.started < len(self.buckets) and self.layers_in[self.started] == 0:
            self.requests.append(self.world.start_allreduce(self.buckets[self.started]))
            self.started += 1

    def finish(self, what):
        """Takes the layers no hook finished, starts the buckets left, waits for every bucket;
        returns the global batch's loss (the buffer's first float)."""
        for i in self.finished_by_step.get(-1, ()):
            self._take(i)
        self._start_ready()
        if self.started < len(self.buckets):
            raise RuntimeError("distributed training: a layer's gradient was never finished "
                               "by the backward pass")
        self.world.wait(self.requests, what)
        self.requests = []
        return float(self.loss_slot[0])

    def idle(self, what):
        """A rank without samples in this step: zeros, summed with the others'."""
        self.buffer.fill(0)
        self.requests = [self.world.start_allreduce(b) for b in self.buckets]
        self.world.wait(self.requests, what)
        self.requests = []
        return float(self.loss_slot[0])


def _finishing_steps(graph, layers):
    """For each layer, the index of the top-level graph step whose backward finishes its
    gradient: its first call in forward order (a nested model's step holds its layers), or
    -1 when the graph never calls it."""
    first = {}
    for index, step in enumerate(graph.steps):
        inner = step.layer._flat_layers() if step.is_model else [step.layer]
        for layer in inner:
            first.setdefault(id(layer), index)
    return [first.get(id(layer), -1) for layer in layers]
