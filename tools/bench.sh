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
  --no-build       Use the binaries already in build/release (and the peer already built by Maven).
  --peers          Run only the Kafka Streams peer comparison instead (docs/performance.md, "Kafka Streams peer"):
                   one topic, then per round statefold's engine and the Kafka Streams peer (a cold JVM pass and
                   a warm one) on it, with --rounds rounds. Needs Java 17 and Maven; the first build resolves the
                   peer's dependencies from Maven Central.
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
peers=0
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
    --peers) peers=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) printf 'bench.sh: unknown option %s\n' "$1" >&2; usage >&2; exit 2 ;;
  esac
done

step() { printf '\n=== %s\n' "$*"; }
bin=build/release/tools/bench

peer_dir=tools/bench/peers/kstreams
if [ "$build" -eq 1 ] && [ "$peers" -eq 1 ]; then
  step "build (release preset: fold_throughput_bench; the Kafka Streams peer with Maven)"
  # shellcheck disable=SC2086  # word splitting of the extra arguments is intended
  cmake --preset release ${STATEFOLD_BENCH_CMAKE_ARGS:-} >/dev/null
  cmake --build --preset release -j "${STATEFOLD_JOBS:-$(nproc)}" --target fold_throughput_bench
  # Offline once the local Maven repository holds everything; the first build resolves from Maven Central.
  (cd "$peer_dir" && { mvn -B -q -o package 2>/dev/null || mvn -B -q package; })
elif [ "$build" -eq 1 ]; then
  step "build (release preset)"
  # shellcheck disable=SC2086  # word splitting of the extra arguments is intended
  cmake --preset release ${STATEFOLD_BENCH_CMAKE_ARGS:-} >/dev/null
  cmake --build --preset release -j "${STATEFOLD_JOBS:-$(nproc)}" --target fold_throughput_bench fold_cost_bench \
    replay_bench time_travel_bench tokenizer_bench context_bench statefold
fi
benches="fold_throughput_bench fold_cost_bench replay_bench time_travel_bench tokenizer_bench context_bench"
[ "$peers" -eq 1 ] && benches=fold_throughput_bench
for b in $benches; do
  [ -x "$bin/$b" ] || { printf 'bench.sh: %s/%s is missing (build the release preset)\n' "$bin" "$b" >&2; exit 1; }
done

own_broker=0
if [ -z "$brokers" ]; then
  own_broker=1
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

if [ "$peers" -eq 1 ]; then
  [ -d "$peer_dir/target/classes" ] && [ -d "$peer_dir/target/lib" ] ||
    { printf 'bench.sh: the peer is not built (run without --no-build)\n' >&2; exit 1; }
  logs=$(mktemp -d)
  # The broker's CPU is read from /proc when this script knows its pid: the broker of --dir, not one of --brokers.
  broker_pid=""
  [ "$own_broker" -eq 1 ] && broker_pid=$(cat "$kafka_dir/kafka.pid" 2>/dev/null || true)
  [ -n "$broker_pid" ] && [ -r "/proc/$broker_pid/stat" ] || broker_pid=""
  broker_cpu_s() {  # utime + stime, fields 14 and 15 of /proc/PID/stat
    [ -n "$broker_pid" ] || { echo 0; return; }
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$broker_pid/stat"
  }

  step "Kafka Streams peer: produce one topic ($events events, $sessions sessions)"
  "$bin/fold_throughput_bench" --brokers "$brokers" --events "$events" --sessions "$sessions" --rounds 1 \
    --only raw --keep-topic >"$logs/produce.out" 2>"$logs/produce.log" ||
    { cat "$logs/produce.out"; tail -n 20 "$logs/produce.log" >&2; exit 1; }
  topic=$(sed -n 's/^topic \([^:]*\): .*/\1/p' "$logs/produce.out")
  records=$(sed -n 's/^topic [^:]*: \([0-9]*\) records.*/\1/p' "$logs/produce.out")
  grep '^producer' "$logs/produce.out" || true
  printf 'topic %s: %s records\n' "$topic" "$records"

  status=0
  figures="$logs/figures"
  : >"$figures"
  for round in $(seq 1 "$rounds"); do
    step "round $round: statefold engine (fold_throughput_bench --topic T --only engine)"
    b0=$(broker_cpu_s)
    if "$bin/fold_throughput_bench" --brokers "$brokers" --topic "$topic" --only engine --rounds 1 --no-floor \
        >"$logs/engine.out" 2>"$logs/engine.log"; then
      b1=$(broker_cpu_s)
      # The engine's row: round, four '-' raw columns, then events/s, wall, CPU and thread CPU ("N s", "N us").
      awk -v r="$round" -v b0="$b0" -v b1="$b1" -v n="$records" -v bp="$broker_pid" \
        '$1 == "1" && $2 == "-" { printf "{\"side\":\"statefold\",\"round\":%d,\"events_per_s\":%s,\"cpu_us_per_event\":%s,\"thread_cpu_us_per_event\":%s,\"broker_cpu_us_per_event\":%s}\n", r, $5, $8, $10, bp == "" ? "null" : sprintf("%.2f", (b1 - b0) * 1e6 / n) }' \
        "$logs/engine.out" | tee -a "$figures"
    else
      status=1; tail -n 20 "$logs/engine.log" >&2
    fi

    step "round $round: Kafka Streams peer (pass 1 in a fresh JVM, pass 2 warm in the same JVM)"
    last=()
    [ "$round" -eq "$rounds" ] && last=(--delete-source-topic)
    pid_args=()
    [ -n "$broker_pid" ] && pid_args=(--broker-pid "$broker_pid" --clock-ticks "$(getconf CLK_TCK)")
    if java -cp "$peer_dir/target/classes:$peer_dir/target/lib/*" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
        statefold.peer.KStreamsPeer --brokers "$brokers" --topic "$topic" --records "$records" --passes 2 \
        "${pid_args[@]}" "${last[@]}" 2>"$logs/peer.log" | sed "s/^{/{\"side\":\"kafka-streams\",\"round\":$round,/" |
        tee -a "$figures"; then :
    else
      status=1; tail -n 20 "$logs/peer.log" >&2
    fi
  done

  step "statefold engine vs Kafka Streams peer, same topic, same run"
  python3 - "$figures" <<'PY' || status=1
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def fmt(v, spec):
    return "-" if v is None else format(v, spec)
print(f"{'round':<6} {'side':<26} {'events/s':>9} {'CPU/event':>10} {'broker CPU/event':>17} {'stored':>22}")
for r in rows:
    side = "statefold engine" if r["side"] == "statefold" else f"Kafka Streams ({r['jvm']} JVM)"
    stored = "-"
    if r["side"] != "statefold":
        stored = f"{r['state_dir_bytes']/1e6:.0f} MB + {r['changelog_bytes']/1e6:.0f} MB log"
    print(f"{r['round']:<6} {side:<26} {r['events_per_s']:>9,.0f} {fmt(r['cpu_us_per_event'], '.2f'):>7} us "
          f"{fmt(r['broker_cpu_us_per_event'], '.2f'):>14} us {stored:>22}")
counts = {(r["accepted"], r["duplicates"], r["rejected"]) for r in rows if r["side"] != "statefold"}
print("peer counts (accepted, duplicates, rejected):", ", ".join(str(c) for c in sorted(counts)))
for jvm in ("warm", "cold"):
    ratios = []
    for r in rows:
        if r["side"] != "statefold": continue
        peer = [p for p in rows if p["side"] != "statefold" and p["round"] == r["round"] and p["jvm"] == jvm]
        if peer: ratios.append(r["events_per_s"] / peer[0]["events_per_s"])
    if ratios:
        print(f"events/s statefold / Kafka Streams {jvm}: " + " ".join(f"{x:.2f}" for x in ratios) +
              f"  (median {statistics.median(ratios):.2f}; issue 14 target against warm: >= 3)")
for jvm in ("warm", "cold"):
    ratios = []
    for r in rows:
        if r["side"] != "statefold": continue
        peer = [p for p in rows if p["side"] != "statefold" and p["round"] == r["round"] and p["jvm"] == jvm]
        if peer: ratios.append(peer[0]["cpu_us_per_event"] / r["cpu_us_per_event"])
    if ratios:
        print(f"CPU per event Kafka Streams {jvm} / statefold: " + " ".join(f"{x:.1f}" for x in ratios) +
              f"  (median {statistics.median(ratios):.1f})")
PY
  rm -rf "$logs"
  if [ "$status" -eq 0 ]; then step "done"; else step "a side could not run (see above)"; fi
  exit "$status"
fi

status=0
logs=$(mktemp -d)
step "fold throughput: engine vs raw librdkafka consume (spec 8: ratio >= 0.25)"
# The engine's own log lines go to a file; the figures go to the terminal.
"$bin/fold_throughput_bench" --brokers "$brokers" --events "$events" --sessions "$sessions" --rounds "$rounds" \
  2>"$logs/fold_throughput.log" || { status=1; tail -n 20 "$logs/fold_throughput.log" >&2; }

step "per-event fold cost at 10,000 vs 10 items (spec 8: ratio <= 1.2)"
"$bin/fold_cost_bench" 2>"$logs/fold_cost.log" || { status=1; tail -n 20 "$logs/fold_cost.log" >&2; }

step "replay: statefold replay vs raw librdkafka consume (spec 8: ratio >= 0.25)"
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
