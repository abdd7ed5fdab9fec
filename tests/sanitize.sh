#!/usr/bin/env bash
# Runs cnnkit's kernel tests against a build of the C++ extension instrumented with
# AddressSanitizer + UndefinedBehaviorSanitizer; exits non-zero on any sanitizer report.
#
#   bash tests/sanitize.sh                 # from the repository root (or anywhere)
#   bash tests/sanitize.sh -k conv2d       # extra arguments go to pytest
#
# Needs g++ (with libasan/libubsan), and in the current Python: scikit-build-core, pybind11,
# numpy, pytest and hypothesis (pip install ".[test]" scikit-build-core pybind11). The build is
# installed into a throwaway folder put first on PYTHONPATH, so the cnnkit installed for the
# user (if any) is neither used nor touched.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cnnkit-sanitize.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
py=${PYTHON:-python3}

# CNNKIT_SANITIZE=ON (CMakeLists.txt) adds -fsanitize=address,undefined, frame pointers and
# -fno-sanitize-recover=undefined (a UB report aborts instead of printing and going on).
# RelWithDebInfo (-O2, with CMakeLists.txt's -g1): optimised as shipped (vectorised loops, same
# code paths), with the line tables that the reports' stack traces need.
built_from=$SECONDS
"$py" -m pip install --quiet --no-build-isolation --no-deps --target "$tmp/site" \
  -C cmake.define.CNNKIT_SANITIZE=ON -C cmake.build-type=RelWithDebInfo \
  -C build-dir="$tmp/build" "$repo"
echo "sanitize.sh: built in $((SECONDS - built_from)) s"
export PYTHONPATH="$tmp/site${PYTHONPATH:+:$PYTHONPATH}"

# The interpreter is not instrumented, so the ASan runtime must be preloaded: it has to come
# before every other library to intercept malloc/free (libubsan is pulled in by _core itself).
# libstdc++ is preloaded too: python does not link it, and ASan resolves the real __cxa_throw
# when it starts; without it the first C++ exception (a ValueError from the bindings) dies in
# "CHECK failed: ... real___cxa_throw != 0" (github.com/google/sanitizers/issues/934).
preload=
for lib in libasan.so libstdc++.so; do
  path=$(g++ -print-file-name=$lib)
  [[ -f $path ]] || { echo "sanitize.sh: $lib not found (g++ -print-file-name)" >&2; exit 2; }
  preload+="${preload:+ }$path"
done

# detect_leaks=0: CPython and NumPy keep allocations alive until exit by design; leak reports
# would be noise, not cnnkit bugs. halt_on_error/abort_on_error: the first report kills the
# process with a non-zero status, so pytest (and this script) fail on it.
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1

cd "$repo"
# Prove the sanitized build is the one under test before running anything.
LD_PRELOAD=$preload "$py" -c "
import cnnkit, sys
assert cnnkit.__file__.startswith('$tmp/site'), cnnkit.__file__
print('sanitize.sh: testing', cnnkit.__file__)"

# The kernel tests (every instruction set the CPU runs, 1 and 2 threads, via conftest.py), with
# every tests/test_kernels_<family>.py: each newer op family keeps its kernel tests there.
shopt -s nullglob
family_tests=(tests/test_kernels_*.py)
# --capture=sys: pytest's default fd capture would swallow a report written to fd 2 when the
# process aborts; at sys level the report reaches the terminal. -p no:cacheprovider: no cache dir.
LD_PRELOAD=$preload "$py" -m pytest -q -p no:cacheprovider --capture=sys \
  tests/test_ops_match_reference.py tests/test_ops_errors.py tests/test_threads.py \
  tests/test_fused_kernels.py tests/test_first_layer_conv.py tests/test_step_allocations.py \
  tests/test_layers.py tests/test_augment.py tests/test_concurrent_predict.py \
  tests/test_views_and_nonfinite.py tests/test_bad_input.py tests/test_fuzz.py \
  tests/test_inference_plan.py \
  "${family_tests[@]}" "$@"
echo "sanitize.sh: clean under ASan + UBSan"
