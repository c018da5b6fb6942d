#!/usr/bin/env bash
# Ready after kill -9 (spec 8: < 1 s, independent of store size): folds a workload, kills serve with SIGKILL while
# it is idle-but-serving, restarts it on the same store and prints how long until its partitions are assigned and
# until /readyz answers 200. Repeats for two store sizes so the independence is visible.
#   tools/bench/restart_bench.sh --brokers 127.0.0.1:9092 [--bin build/release/tools/statefold/statefold]
set -euo pipefail
brokers=127.0.0.1:9092
bin=build/release/tools/statefold/statefold
while [ $# -gt 0 ]; do
  case "$1" in
    --brokers) brokers=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d /tmp/statefold-restart-XXXXXX)
trap 'pkill -KILL -f -- "--data-dir $work/" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))

now_ms() { date +%s%3N; }

printf '%-10s %-14s %-18s %-16s %s\n' events "store size" "assigned (ms)" "ready (ms)" "target"
for events in 20000 200000; do
  topic="statefold.restart.$events.$$"
  dir="$work/data-$events"
  "$bin" gen --sessions $((events / 100)) --events "$events" --seed 3 -o "$work/w.jsonl"
  "$bin" append --brokers "$brokers" --topic "$topic" "$work/w.jsonl" >/dev/null
  "$bin" serve --brokers "$brokers" --topic "$topic" --group "$topic" --data-dir "$dir/" \
      --http-address "127.0.0.1:$port" --snapshot-interval-s 0 >"$work/serve1.log" 2>&1 &
  pid=$!
  until curl -sf "127.0.0.1:$port/readyz" >/dev/null 2>&1 &&
        [ "$("$bin" inspect --data-dir "$dir" --summary --format json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["events_applied"]+s["duplicates"]+s["rejections"])')" -ge "$events" ]; do
    sleep 0.2
  done
  kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
  size=$(du -sh "$dir/store" | cut -f1)
  : >"$work/serve2.log"
  start=$(now_ms)
  "$bin" serve --brokers "$brokers" --topic "$topic" --group "$topic" --data-dir "$dir/" \
      --http-address "127.0.0.1:$port" --snapshot-interval-s 0 >"$work/serve2.log" 2>&1 &
  pid=$!
  assigned=""
  ready=""
  while [ -z "$ready" ]; do
    [ -z "$assigned" ] && grep -q "partitions assigned" "$work/serve2.log" && assigned=$(( $(now_ms) - start ))
    curl -sf "127.0.0.1:$port/readyz" >/dev/null 2>&1 && ready=$(( $(now_ms) - start ))
    [ $(( $(now_ms) - start )) -gt 60000 ] && { echo "not ready within 60 s" >&2; exit 1; }
    sleep 0.02
  done
  [ -z "$assigned" ] && assigned=$ready
  verdict=MISS; [ "$ready" -lt 1000 ] && verdict=PASS
  printf '%-10s %-14s %-18s %-16s %s\n' "$events" "$size" "$assigned" "$ready" "< 1000 ms $verdict"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
done
