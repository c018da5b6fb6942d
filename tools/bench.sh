#!/usr/bin/env bash
# The benchmarks of spec section 8 (docs/performance.md): builds the release preset, starts a local single-node
# Kafka broker with tools/kafka.sh unless one is given, runs every *_bench program and prints their figures.
# Exit status: 0 when every benchmark ran (a MISS is a figure, not a failure), 1 when one could not run.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<EOF
Usage: tools/bench.sh [OPTIONS]

Options:
  --brokers B      Use this broker instead of starting one (e.g. 127.0.0.1:9092).
  --port P         Port of the broker this script starts (default 19292; controller P+1).
  --dir DIR        Broker home for tools/kafka.sh (default /tmp/bench-kafka).
  --keep-broker    Leave a broker this script started running afterwards (default: stop it).
  --events N       Events in the fold throughput and replay workloads (default 200000).
  --sessions N     Sessions in those workloads (default 2000).
  --rounds N       Raw/engine and raw/replay alternations (default 3).
  --no-build       Use the binaries already in build/release.
  -h, --help       This help.

Environment:
  STATEFOLD_JOBS               build parallelism (default nproc)
  STATEFOLD_BENCH_CMAKE_ARGS   extra arguments for 'cmake --preset release' (e.g. -DSTATEFOLD_WERROR=OFF)
EOF
}

brokers=""
port=19292
kafka_dir=/tmp/bench-kafka
keep_broker=0
events=200000
sessions=2000
rounds=3
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --brokers) brokers="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --dir) kafka_dir="$2"; shift 2 ;;
    --keep-broker) keep_broker=1; shift ;;
    --events) events="$2"; shift 2 ;;
    --sessions) sessions="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) printf 'bench.sh: unknown option %s\n' "$1" >&2; usage >&2; exit 2 ;;
  esac
done

step() { printf '\n=== %s\n' "$*"; }
bin=build/release/tools/bench

if [ "$build" -eq 1 ]; then
  step "build (release preset)"
  # shellcheck disable=SC2086  # word splitting of the extra arguments is intended
  cmake --preset release ${STATEFOLD_BENCH_CMAKE_ARGS:-} >/dev/null
  cmake --build --preset release -j "${STATEFOLD_JOBS:-$(nproc)}" --target fold_throughput_bench fold_cost_bench \
    replay_bench time_travel_bench tokenizer_bench context_bench statefold
fi
for b in fold_throughput_bench fold_cost_bench replay_bench time_travel_bench tokenizer_bench context_bench; do
  [ -x "$bin/$b" ] || { printf 'bench.sh: %s/%s is missing (build the release preset)\n' "$bin" "$b" >&2; exit 1; }
done

if [ -z "$brokers" ]; then
  step "Kafka broker ($kafka_dir, port $port)"
  started=0
  if ! bash tools/kafka.sh status --dir "$kafka_dir" >/dev/null 2>&1; then started=1; fi
  brokers=$(bash tools/kafka.sh start --port "$port" --dir "$kafka_dir" | tail -n 1)
  if [ "$started" -eq 1 ] && [ "$keep_broker" -eq 0 ]; then
    trap 'bash tools/kafka.sh stop --dir "$kafka_dir" >/dev/null 2>&1 || true' EXIT
  fi
fi
printf 'brokers: %s\n' "$brokers"

step "machine"
printf '%s, %s hardware threads, %s\n' "$(uname -sr)" "$(nproc)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/^model name[[:space:]]*: /cpu: /' || true

status=0
logs=$(mktemp -d)
step "fold throughput: engine vs raw librdkafka consume (spec 8: ratio >= 0.8)"
# The engine's own log lines go to a file; the figures go to the terminal.
"$bin/fold_throughput_bench" --brokers "$brokers" --events "$events" --sessions "$sessions" --rounds "$rounds" \
  2>"$logs/fold_throughput.log" || { status=1; tail -n 20 "$logs/fold_throughput.log" >&2; }

step "per-event fold cost at 10,000 vs 10 items (spec 8: ratio <= 1.2)"
"$bin/fold_cost_bench" 2>"$logs/fold_cost.log" || { status=1; tail -n 20 "$logs/fold_cost.log" >&2; }

step "replay: statefold replay vs raw librdkafka consume (spec 8: ratio >= 0.8)"
# It runs the real command, build/release/tools/statefold/statefold replay, as a child process (built above).
"$bin/replay_bench" --brokers "$brokers" --events "$events" --sessions "$sessions" --rounds "$rounds" \
  2>"$logs/replay.log" || { status=1; tail -n 20 "$logs/replay.log" >&2; }

step "time travel: session read at versions 10 and 10,000 (issue 4; cost bounded by the checkpoint interval)"
"$bin/time_travel_bench" 2>"$logs/time_travel.log" || { status=1; tail -n 20 "$logs/time_travel.log" >&2; }

step "tokenizer throughput, o200k_base and cl100k_base"
"$bin/tokenizer_bench" 2>"$logs/tokenizer.log" || { status=1; tail -n 20 "$logs/tokenizer.log" >&2; }

step "context materialisation at 10,000 items / 128k tokens (spec 8: p99 < 1 ms) and prefix stability (>= 90 %)"
"$bin/context_bench" 2>"$logs/context.log" || { status=1; tail -n 20 "$logs/context.log" >&2; }
rm -rf "$logs"

if [ "$status" -eq 0 ]; then step "done"; else step "a benchmark could not run (see above)"; fi
exit "$status"
