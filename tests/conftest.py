"""Fixtures shared by the kernel tests."""

import pytest

import cnnkit
from cnnkit import _core


def runnable_isas():
    """The micro-kernel instruction sets this CPU and build can run."""
    start, found = _core.simd_isa(), []
    for isa in ("generic", "avx2", "avx512"):
        try:
            _core.set_simd_isa(isa)
            found.append(isa)
        except ValueError:
            pass
    _core.set_simd_isa(start)
    return found


@pytest.fixture(params=[(isa, t) for isa in runnable_isas() for t in (1, 2)],
                ids=lambda p: f"{p[0]}-{p[1]}thr")
def isa_threads(request):
    """Runs the test once per runnable instruction set and thread count (1 and 2), restoring both."""
    isa, threads = request.param
    old_isa, old_threads = _core.simd_isa(), cnnkit.get_num_threads()
    _core.set_simd_isa(isa)
    cnnkit.set_num_threads(threads)
    yield
    _core.set_simd_isa(old_isa)
    cnnkit.set_num_threads(old_threads)


def _threads_fixture(n, doc):
    def fixture():
        before = cnnkit.get_num_threads()
        cnnkit.set_num_threads(n)
        yield
        cnnkit.set_num_threads(before)
    fixture.__doc__ = doc
    return pytest.fixture(fixture)


one_thread = _threads_fixture(1, "Runs the test on one thread, restoring the count after it.")
two_threads = _threads_fixture(2, "Runs the test on two threads, restoring the count after it.")


def predict_without(switch, model, x):
    """model.predict_on_batch(x) with an engine module's ENABLED switch (split_inference,
    inference_plan) off: the way its own way is compared with."""
    switch.ENABLED = False
    try:
        return model.predict_on_batch(x)
    finally:
        switch.ENABLED = True
