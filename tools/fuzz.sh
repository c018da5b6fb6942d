#!/usr/bin/env bash
# Builds the libFuzzer targets (the fuzz preset: clang-14, ASan + UBSan) and runs each on its committed seed corpus
# (tests/fuzz/corpus/<target>) for a bounded time. Prints executions and crashes per target; exit 1 on a crash,
# whose input is kept in build/fuzz/artifacts/<target>/ for a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<EOF2
Usage: tools/fuzz.sh [--seconds N] [--no-build] [TARGET...]

  --seconds N   how long each target runs (default 60)
  --no-build    use the binaries already in build/fuzz
  TARGET        one or more of: $(cd tests/fuzz && ls ./*_fuzz.cc | sed 's|./||; s|\.cc||' | tr '\n' ' ')(default: all)
New inputs that reach new code go to build/fuzz/corpus/<target> (kept between runs; the committed seeds are read
only). Needs clang-14 and libclang-rt-14-dev (tools/setup.sh installs them).
EOF2
}

seconds=60
build=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) printf 'fuzz.sh: unknown option %s\n' "$1" >&2; usage >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/*_fuzz.cc; do targets+=("$(basename "$f" .cc)"); done
fi

if [ "$build" -eq 1 ]; then
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake --preset fuzz "${launcher[@]}" >/dev/null
  cmake --build --preset fuzz -j "${STATEFOLD_JOBS:-$(nproc)}" --target "${targets[@]}"
fi

failed=0
printf '\n%-20s %12s %10s %8s\n' target executions exec/s crashes
for t in "${targets[@]}"; do
  work="build/fuzz/corpus/$t"
  artifacts="build/fuzz/artifacts/$t"
  mkdir -p "$work" "$artifacts"
  log="build/fuzz/$t.log"
  status=0
  "build/fuzz/tests/fuzz/$t" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  crashes=0
  if [ "$status" -ne 0 ]; then
    crashes=1
    failed=1
  fi
  printf '%-20s %12s %10s %8s\n' "$t" "${runs:-?}" "${rate:-?}" "$crashes"
  if [ "$status" -ne 0 ]; then
    echo "fuzz.sh: $t failed (exit $status); the input is in $artifacts, the log in $log:" >&2
    grep -E 'ERROR|SUMMARY|==[0-9]+==|#[0-9]+ ' "$log" | head -20 >&2 || tail -20 "$log" >&2
  fi
done
exit "$failed"
