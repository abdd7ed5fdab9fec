"""cnnkit.mixed_precision: Keras' dtype policies (`keras.mixed_precision`), as far as cnnkit
runs them.

cnnkit computes in float32. A program written for Keras' bfloat16 mixed precision still runs:
`set_global_policy("mixed_bfloat16")` (or a layer's `dtype="mixed_bfloat16"`) is accepted and
the model computes in float32, with one warning that says so, since it is then more exact than
in Keras but not faster. cnnkit has no bfloat16 kernels yet (README, "Near the hardware's
limit"), on CPUs with avx512_bf16 or AMX as on others, and the warning names which this CPU is.
Every other policy but "float32" (float16, bfloat16 without "mixed_", float64) raises: those
would change the model's numbers or its memory in ways a float32 run does not imitate.
"""

import warnings

__all__ = ["DTypePolicy", "Policy", "dtype_policy", "global_policy", "set_dtype_policy",
           "set_global_policy"]

# name -> (compute dtype, variable dtype), as Keras 3 reports them.
_KERAS_POLICIES = {
    "float32": ("float32", "float32"),
    "mixed_bfloat16": ("bfloat16", "float32"),
    "mixed_float16": ("float16", "float32"),
    "bfloat16": ("bfloat16", "bfloat16"),
    "float16": ("float16", "float16"),
    "float64": ("float64", "float64"),
}
_RUNS_AS_FLOAT32 = ("float32", "mixed_bfloat16")
_warned = False


def _cpu_has_bf16():
    """True or False from /proc/cpuinfo's flags (avx512_bf16 or amx_bf16); None where unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        pass
    return None


def _warn_float32(where):
    global _warned
    if _warned:
        return
    _warned = True
    has = _cpu_has_bf16()
    cpu = ("this CPU has avx512_bf16/AMX, but cnnkit has no bfloat16 kernels yet"
           if has else "this CPU has no avx512_bf16 or AMX" if has is False
           else "cnnkit has no bfloat16 kernels yet")
    warnings.warn(f"{where}: the 'mixed_bfloat16' policy runs in float32 in cnnkit ({cpu}): the "
                  f"model computes, stores and returns float32, more exact than bfloat16 and at "
                  f"float32 speed. This warning is shown once.", UserWarning, stacklevel=3)


class DTypePolicy:
    """A dtype policy by Keras' name: "float32", or "mixed_bfloat16" (run in float32, with one
    warning). name, compute_dtype and variable_dtype read as in Keras."""

    def __init__(self, name="float32"):
        if isinstance(name, DTypePolicy):
            name = name.name
        if not isinstance(name, str) or name not in _KERAS_POLICIES:
            raise ValueError(f"DTypePolicy: unknown policy {name!r}; Keras' policies are "
                             f"{sorted(_KERAS_POLICIES)}")
        if name not in _RUNS_AS_FLOAT32:
            raise ValueError(f"DTypePolicy: cnnkit computes in float32 and does not run the "
                             f"{name!r} policy; use 'float32' (or 'mixed_bfloat16', which runs "
                             f"in float32)")
        self.name = name
        self.compute_dtype, self.variable_dtype = _KERAS_POLICIES[name]

    def __repr__(self):
        return f'<DTypePolicy "{self.name}">'

    def __eq__(self, other):
        return isinstance(other, DTypePolicy) and other.name == self.name

    def __hash__(self):
        return hash(self.name)

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


Policy = DTypePolicy  # Keras 2's name, still exported by keras.mixed_precision
_global = DTypePolicy("float32")


def policy_of(value, where):
    """The DTypePolicy a `dtype=` argument (or set_global_policy) names; warns once for
    mixed_bfloat16. None means the global policy."""
    if value is None:
        return _global
    if isinstance(value, DTypePolicy):
        policy = value
    else:
        import numpy as np
        if value is np.float32 or (isinstance(value, np.dtype) and value == np.float32):
            value = "float32"
        try:
            policy = DTypePolicy(value)
        except ValueError as e:
            raise ValueError(f"{where}: {str(e).split(': ', 1)[1]} (dtype={value!r})") from None
    if policy.name == "mixed_bfloat16":
        _warn_float32(where)
    return policy


def set_global_policy(policy):
    """The policy of layers made from now on without a dtype (keras.mixed_precision's)."""
    global _global
    _global = policy_of("float32" if policy is None else policy, "set_global_policy")


def global_policy():
    return _global


set_dtype_policy = set_global_policy  # keras.config's names
dtype_policy = global_policy
