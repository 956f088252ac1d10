#!/usr/bin/env bash
# Builds the unit and golden tests (CPU only; CTEST_REGEX picks some) under a sanitizer in build-<sanitizer>/ and runs them:
#   scripts/sanitize.sh thread                 # ThreadSanitizer: the tensor-parallel ranks, the engine loop, transports
#   scripts/sanitize.sh address [CTEST_REGEX]  # AddressSanitizer + UndefinedBehaviorSanitizer
# Needs scripts/setup.sh first (dependencies, the SmolLM2 GGUF). Reports go to the test output; a
# finding fails the test (halt_on_error). Tests on the real SmolLM2 run 10-50x slower under
# ThreadSanitizer: TIMEOUT (seconds per test, default 1800) bounds them.
set -euo pipefail
san=${1:?usage: scripts/sanitize.sh address|thread [CTEST_REGEX]}
regex=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-$san"
cmake -S "$root" -B "$build" -G Ninja -DTANDEM_SANITIZE="$san" -DTANDEM_CUDA=OFF -DTANDEM_BUILD_BENCHMARKS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$build.configure.log"
# Only the tests asked for (CTEST_REGEX, else every unit and golden test) and what they link.
targets=$(cd "$build" && ctest -N -L 'unit|golden' ${regex:+-R "$regex"} | awk '/Test +#/{print $3}')
nice ninja -C "$build" -j "${JOBS:-2}" $targets
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="halt_on_error=1 detect_leaks=1 ${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1 ${UBSAN_OPTIONS:-}"
# UCX patches malloc/mmap to track memory (its "ucm" hooks), which crashes under the sanitizers'
# own interceptors: off for these runs (the transport maps its memory explicitly anyway).
export UCX_MEM_MALLOC_HOOKS=no UCX_MEM_MMAP_HOOK_MODE=none UCX_MEM_EVENTS=no
cd "$build"
if [[ -n $regex ]]; then
  ctest -L 'unit|golden' -R "$regex" --output-on-failure -j "${JOBS:-2}" --timeout "${TIMEOUT:-1800}"
else
  ctest -L 'unit|golden' --output-on-failure -j "${JOBS:-2}" --timeout "${TIMEOUT:-1800}"
fi
