"""The installed package: version, build facts, and the functional API's surface."""

import importlib.metadata

import cnnkit
from cnnkit import _core, ops, reference


def test_version_is_one_string_everywhere():
    assert cnnkit.__version__ == _core.__version__ == importlib.metadata.version("cnnkit")


def test_build_reports_openmp_threads_and_instruction_set():
    assert isinstance(cnnkit.openmp_enabled(), bool)
    assert cnnkit.get_num_threads() >= 1
    assert _core.simd_isa() in ("generic", "avx2", "avx512")


def test_reference_offers_every_op_with_the_same_signature():
    import inspect

    for name in ops.__all__:
        ours, theirs = inspect.signature(getattr(ops, name)), inspect.signature(getattr(reference, name))
        public = [p for p in ours.parameters.values() if not p.name.startswith("_")]
        assert [(p.name, p.default) for p in public] == [(p.name, p.default) for p in theirs.parameters.values()], name
