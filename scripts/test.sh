#!/usr/bin/env bash
# Builds lx and runs the whole test suite.
#   scripts/test.sh             Release build (build/), every test
#   scripts/test.sh --sanitize  ASan+UBSan build (build-asan/), every test but the fault injection
#   scripts/test.sh --fault     the allocation-failure injection (test_alloc_failure*) in that
#                               build: LeakSanitizer checks its failed runs for leaked host memory
#   scripts/test.sh --tsan      ThreadSanitizer build (build-tsan/), the tests that use threads
# Each prints the skipped tests with their reasons at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=$(nproc)
mode=${1:-}
targets=()
ctest_args=()
case "$mode" in
--sanitize | --fault)
  dir=build-asan
  # no CUDA module: nvcc's code is not instrumented, and the CUDA runtime it loads (and
  # dlclose drops when there is no GPU) leaves libstdc++'s exception pool behind, which
  # LeakSanitizer reports as a leak of an unknown module.
  # -O1, as AddressSanitizer's documentation advises: at -O0 each real-model test alone runs
  # over 7 minutes on 2 cores; at -O1 the whole suite takes about 4
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-g -O1" -DLX_SANITIZE=ON -DLX_WERROR=ON \
        -DLX_CPU_VARIANTS=OFF -DLX_BUILD_BENCH=OFF -DLX_CUDA=OFF >/dev/null
  rm -f "$dir"/liblx-cuda.so # one an earlier configure built would still be found and loaded
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  if [ "$mode" = --fault ]; then
    targets=(--target test_alloc_failure)
    ctest_args=(-R '^test_alloc_failure')
  else
    ctest_args=(-E '^test_alloc_failure')
  fi
  ;;
--tsan)
  dir=build-tsan
  # the programs whose threads are lx's: test_threads (threads of the caller's, the async
  # worker, the kernel pool, the JIT's background compile), test_memory (trackers on two
  # threads, async loops), test_compile (closure replays on three threads), test_model
  # (sessions: the async decode loop), test_indexing (an async eval). test_sampler's async
  # loops are left out: ~15 min under TSan for a path test_model also takes.
  tsan_tests=(test_threads test_memory test_compile test_model test_indexing)
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-g -O1" \
        "-DCMAKE_C_FLAGS=-fsanitize=thread" "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread" \
        "-DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread" "-DCMAKE_MODULE_LINKER_FLAGS=-fsanitize=thread" \
        -DLX_WERROR=ON -DLX_CPU_VARIANTS=OFF -DLX_BUILD_BENCH=OFF -DLX_CUDA=OFF >/dev/null
  rm -f "$dir"/liblx-cuda.so
  # halt at the first report (the test then fails); tests/tsan.supp is for uninstrumented
  # libraries only
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp"
  for t in "${tsan_tests[@]}"; do targets+=(--target "$t"); done
  ctest_args=(-R "^($(IFS='|'; echo "${tsan_tests[*]}"))\$")
  ;;
"")
  dir=build
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DLX_WERROR=ON >/dev/null
  ;;
*)
  echo "usage: scripts/test.sh [--sanitize | --tsan | --fault]" >&2
  exit 2
  ;;
esac
cmake --build "$dir" -j"$jobs" "${targets[@]}"
junit="$PWD/$dir/ctest-results.xml"
rm -f "$junit"
rc=0
ctest --test-dir "$dir" --output-on-failure -j"$jobs" --output-junit "$junit" "${ctest_args[@]}" || rc=$?
# the skipped tests (exit 77) and why: the line of their output that says so
if [ -s "$junit" ]; then
  /usr/bin/python3 - "$junit" <<'EOF'
import sys
import xml.etree.ElementTree as ET

skipped = []
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    if case.find("skipped") is None:
        continue
    out = (case.findtext("system-out") or "").strip().splitlines()
    why = [l.strip() for l in out if "skip" in l.lower()] or [l.strip() for l in out[-1:]]
    skipped.append((case.get("name"), why[0] if why else "no reason printed"))
print("skipped: %d test%s" % (len(skipped), "" if len(skipped) == 1 else "s"))
for name, why in skipped:
    print("  %s: %s" % (name, why[:200]))
EOF
fi
exit "$rc"
