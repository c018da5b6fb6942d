#!/usr/bin/env bash
# Ready after kill -9 (spec 8: < 1 s, independent of store size): folds a workload, kills serve with SIGKILL,
# restarts it on the same store and prints how long until its partitions are assigned and until /readyz answers
# 200, and how many records the restarted engine had to read again. Repeats for two store sizes so the independence
# is visible.
#   tools/bench/restart_bench.sh --brokers 127.0.0.1:9092 [--bin build/release/tools/statefold/statefold]
#                                [--wal on|off] [--kill-at idle|busy] [--events "20000 200000"]
# --wal: serve --wal for both lives. --kill-at idle (default): the kill comes once the store shows every event and
# serve is idle-but-serving (with --wal off its idle flush has run by then); busy: the kill comes the moment serve's
# /metrics counts every event folded, before the memtable is flushed, which is the worst case for --wal off.
set -euo pipefail
brokers=127.0.0.1:9092
bin=build/release/tools/statefold/statefold
wal=on
kill_at=idle
sizes="20000 200000"
while [ $# -gt 0 ]; do
  case "$1" in
    --brokers) brokers=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --wal) wal=$2; shift 2 ;;
    --kill-at) kill_at=$2; shift 2 ;;
    --events) sizes=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$wal" in on|off) ;; *) echo "--wal on or off" >&2; exit 2 ;; esac
case "$kill_at" in idle|busy) ;; *) echo "--kill-at idle or busy" >&2; exit 2 ;; esac
work=$(mktemp -d /tmp/statefold-restart-XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))

now_ms() { date +%s%3N; }
stored() {  # records in the store (read-only: what is flushed, or in the WAL)
  "$bin" inspect --data-dir "$1" --summary --format json |
    python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["events_applied"]+s["duplicates"]+s["rejections"])'
}
folded() {  # records the running serve folded since it started, from /metrics
  curl -sf "127.0.0.1:$port/metrics" 2>/dev/null | awk '$1 == "statefold_records_total" {print int($2)}'
}
serve() {
  "$bin" serve --brokers "$brokers" --topic "$topic" --group "$topic" --data-dir "$dir/" --wal "$wal" \
      --http-address "127.0.0.1:$port" --snapshot-interval-s 0 >"$1" 2>&1 &
  pid=$!
}

echo "WAL $wal, kill when $kill_at"
printf '%-8s %-10s %-10s %-9s %-14s %-11s %-12s %s\n' events "store size" "reread" assigned "ready (lag<=1000)" \
    "caught up" "ready target" ""
for events in $sizes; do
  topic="statefold.restart.$events.$wal.$$"
  dir="$work/data-$events"
  "$bin" gen --sessions $((events / 100)) --events "$events" --seed 3 -o "$work/w.jsonl"
  "$bin" append --brokers "$brokers" --topic "$topic" "$work/w.jsonl" >/dev/null
  serve "$work/serve1.log"
  if [ "$kill_at" = busy ]; then
    until [ "$(folded || true)" -ge "$events" ] 2>/dev/null; do sleep 0.02; done
  else
    until curl -sf "127.0.0.1:$port/readyz" >/dev/null 2>&1 && [ "$(stored "$dir")" -ge "$events" ]; do sleep 0.2; done
  fi
  kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
  pid=""
  size=$(du -sh "$dir/store" | cut -f1)
  reread=$((events - $(stored "$dir")))
  start=$(now_ms)
  serve "$work/serve2.log"
  assigned=""
  ready=""
  caught=""
  while [ -z "$caught" ]; do
    [ -z "$assigned" ] && grep -q "partitions assigned" "$work/serve2.log" && assigned=$(( $(now_ms) - start ))
    [ -z "$ready" ] && curl -sf "127.0.0.1:$port/readyz" >/dev/null 2>&1 && ready=$(( $(now_ms) - start ))
    [ -n "$ready" ] && [ "$(folded || echo 0)" -ge "$reread" ] && caught=$(( $(now_ms) - start ))
    [ $(( $(now_ms) - start )) -gt 120000 ] && { echo "not caught up within 120 s" >&2; exit 1; }
    sleep 0.02
  done
  [ -z "$assigned" ] && assigned=$ready
  verdict=MISS; [ "$ready" -lt 1000 ] && verdict=PASS
  printf '%-8s %-10s %-10s %-9s %-18s %-11s %s\n' "$events" "$size" "$reread" "$assigned ms" "$ready ms" \
      "$caught ms" "< 1000 ms $verdict"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  pid=""
done
