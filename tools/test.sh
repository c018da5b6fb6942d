#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this): installs what is missing, builds the developer
# preset, starts a real single-node Kafka broker, runs every test (unit + integration against the broker), builds
# every target of the release preset (what ships and the published benchmarks, not run), then builds the unit tests
# under the ASan+UBSan preset and runs them, then the fuzz targets. Each step prints the minutes since the start, so
# a slow step shows against CI's 90-minute limit. Exit status: 0 only if everything passed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

port=${STATEFOLD_TEST_KAFKA_PORT:-19092}
kafka_dir=${STATEFOLD_TEST_KAFKA_DIR:-/tmp/statefold-test-kafka}
jobs=${STATEFOLD_JOBS:-$(nproc)}

started=$SECONDS
step() { printf '\n=== %s  [%d min %02d s]\n' "$*" $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)); }

step "dependencies"
bash tools/setup.sh

step "build (dev preset: warnings are errors; what the tests run)"
# The benchmarks are left to the release step, which builds them at -O3 (run cmake --build --preset dev for them).
cmake --preset dev >/dev/null
cmake --build --preset dev -j "$jobs" --target all_tests

step "Kafka broker on 127.0.0.1:$port"
# A fresh broker per run: tests create their own topics, but old data would only slow things down.
bash tools/kafka.sh stop --dir "$kafka_dir" >/dev/null 2>&1 || true
rm -rf "$kafka_dir"
bash tools/kafka.sh start --port "$port" --dir "$kafka_dir"
trap 'bash tools/kafka.sh stop --dir "$kafka_dir" >/dev/null 2>&1 || true' EXIT

step "tests (unit + integration, real broker)"
export STATEFOLD_BROKERS="127.0.0.1:$port"
export STATEFOLD_KAFKA_DIR="$kafka_dir"
status=0
ctest --test-dir build/dev --output-on-failure --timeout 1800 || status=1

step "broker and client logs: no unsupported compression"
bash tools/kafka.sh check-logs --dir "$kafka_dir" || status=1

step "build (release preset: every target, benchmarks included, not run)"
# -O3 finds warnings the dev preset does not; tools/bench.sh and docs/performance.md use this build. The preset
# leaves the tests out: they run in the dev build.
cmake --preset release >/dev/null
release_log=$(mktemp)
if cmake --build --preset release -j "$jobs" >"$release_log" 2>&1; then
  echo "ok"
else
  grep -v '^\[' "$release_log" || true  # the errors, without ninja's progress lines
  status=1
fi
rm -f "$release_log"

step "build (asan preset: the unit tests' targets) and unit tests under ASan+UBSan"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/asan --output-on-failure -L unit || status=1

step "fuzz targets (fuzz preset), each for ${STATEFOLD_FUZZ_SECONDS:-20} s on its seed corpus"
STATEFOLD_JOBS="$jobs" bash tools/fuzz.sh --seconds "${STATEFOLD_FUZZ_SECONDS:-20}" || status=1

if [ "$status" -eq 0 ]; then
  step "all tests passed"
else
  step "FAILED (see above)"
fi
exit "$status"
