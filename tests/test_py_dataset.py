"""cnnkit.utils.PyDataset (Keras 3's keras.utils.PyDataset, alias Sequence): its arguments,
iterating by hand, an endless dataset, and the threads that read batches ahead: in order, at
most max_queue_size in flight, their exceptions raised for their batch, stopped at the end."""
import threading
import time

import numpy as np
import pytest

import cnnkit
from cnnkit import data_adapters, layers, models
from cnnkit.utils import PyDataset, Sequence


class Squares(PyDataset):
    def __init__(self, count=6, delays=None, fail_at=None, **kwargs):
        super().__init__(**kwargs)
        self.count, self.delays, self.fail_at = count, delays, fail_at
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.delays is not None:
                time.sleep(self.delays[index % len(self.delays)])
            if index == self.fail_at:
                raise IndexError(f"no batch {index}")
            x = np.full((2, 3), index, np.float32)
            return x, np.full(2, index % 2)
        finally:
            with self.lock:
                self.in_flight -= 1


class Endless(PyDataset):
    @property
    def num_batches(self):
        return None

    def __getitem__(self, index):
        return np.full((2, 3), index, np.float32), np.zeros(2, np.int64)


def read_all(dataset, shuffle=False):
    stream = data_adapters.Stream(dataset, "test", shuffle, lambda: np.random.default_rng(0))
    try:
        return [int(x[0, 0]) for x, _ in stream.new_pass()]
    finally:
        stream.close()


def test_defaults_and_alias():
    data = Squares()
    assert (data.workers, data.use_multiprocessing, data.max_queue_size) == (1, False, 10)
    assert Sequence is PyDataset
    assert cnnkit.utils.PyDataset is PyDataset


def test_a_subclass_that_skips_super_init_gets_the_defaults():
    class NoInit(PyDataset):
        def __init__(self):
            pass

        def __len__(self):
            return 2

        def __getitem__(self, index):
            return np.zeros((1, 3), np.float32), np.zeros(1)
    data = NoInit()
    assert (data.workers, data.use_multiprocessing, data.max_queue_size) == (1, False, 10)
    assert len(list(data)) == 2


def test_iterating_by_hand_reads_the_batches_in_order():
    assert [int(x[0, 0]) for x, _ in Squares(4)] == [0, 1, 2, 3]
    assert Squares(4).num_batches == 4


def test_a_dataset_without_len_must_say_so():
    class Nothing(PyDataset):
        pass
    with pytest.raises(NotImplementedError, match="__len__"):
        Nothing().num_batches
    with pytest.raises(NotImplementedError, match="__getitem__"):
        Nothing()[0]


@pytest.mark.parametrize("kwargs, error, word", [
    (dict(workers=0), ValueError, "workers"),
    (dict(workers="2"), ValueError, "workers"),
    (dict(max_queue_size=-1), ValueError, "max_queue_size"),
    (dict(use_multiprocessing=1.0), ValueError, "use_multiprocessing"),
    (dict(use_multiprocessing=True), NotImplementedError, "threads"),
])
def test_bad_arguments(kwargs, error, word):
    with pytest.raises(error, match=word):
        Squares(**kwargs)


def test_workers_read_ahead_in_order_within_max_queue_size():
    delays = [0.05, 0.0, 0.01, 0.0]  # later batches finish first
    data = Squares(12, delays, workers=3, max_queue_size=4)
    assert read_all(data) == list(range(12))
    assert 1 < data.most_in_flight <= 4


def test_shuffle_reads_each_batch_once_per_pass():
    order = read_all(Squares(12, workers=2), shuffle=True)
    assert sorted(order) == list(range(12)) and order != list(range(12))


def test_an_exception_in_a_worker_is_raised_for_its_batch_and_the_threads_stop():
    before = threading.active_count()
    stream = data_adapters.Stream(Squares(8, [0.0], fail_at=3, workers=3), "test")
    got = []
    with pytest.raises(IndexError, match="no batch 3"):
        for x, _ in stream.new_pass():
            got.append(int(x[0, 0]))
    stream.close()
    assert got == [0, 1, 2]
    assert threading.active_count() == before


def test_stopping_early_cancels_the_reads_ahead():
    before = threading.active_count()
    stream = data_adapters.Stream(Squares(1000, workers=3, max_queue_size=5), "test")
    batches = stream.new_pass()
    next(batches), next(batches)
    stream.close()
    assert threading.active_count() == before


def test_an_endless_dataset_trains_with_steps_per_epoch():
    cnnkit.utils.set_random_seed(0)
    m = models.Sequential([layers.Input((3,)), layers.Dense(2, activation="softmax")])
    m.compile("sgd", "sparse_categorical_crossentropy")
    for workers in (1, 3):
        history = m.fit(Endless(workers=workers), epochs=2, steps_per_epoch=3, verbose=0,
                        shuffle=False)
        assert len(history.history["loss"]) == 2
    assert m.predict(Endless(), steps=2, verbose=0).shape == (4, 2)
