#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine: installs what is missing, builds, starts a real single-node Kafka
# broker and `statefold serve`, feeds it a generated workload, waits until it is folded, and prints where to look.
#   tools/quickstart.sh          run it (again: a new workload is appended to the same topic and store)
#   tools/quickstart.sh stop     stop serve and the broker (state is kept under .statefold/ and the broker dir)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

port=${STATEFOLD_KAFKA_PORT:-9092}
brokers="127.0.0.1:$port"
kafka_dir=${STATEFOLD_KAFKA_DIR:-/tmp/statefold-kafka}
work=${STATEFOLD_QUICKSTART_DIR:-$root/.statefold}
data_dir="$work/data"
bin="$root/build/dev/tools/statefold/statefold"
sessions=${SESSIONS:-200}
events=${EVENTS:-20000}

step() { printf '\n=== %s\n' "$*"; }

stop_serve() {
  # Only our serve: a stale pid file may name a process that reused the number.
  if [ -f "$work/serve.pid" ] && kill -0 "$(cat "$work/serve.pid")" 2>/dev/null &&
     tr '\0' ' ' <"/proc/$(cat "$work/serve.pid")/cmdline" 2>/dev/null | grep -q "statefold serve"; then
    kill -TERM "$(cat "$work/serve.pid")"
    for _ in $(seq 1 100); do kill -0 "$(cat "$work/serve.pid")" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$work/serve.pid"
}

if [ "${1:-}" = "stop" ]; then
  stop_serve
  bash tools/kafka.sh stop --dir "$kafka_dir"
  exit 0
fi

step "dependencies (installs only what is missing)"
bash tools/setup.sh

step "build"
cmake --preset dev >/dev/null
cmake --build --preset dev -j "$(nproc)"

step "Kafka broker on $brokers"
bash tools/kafka.sh start --port "$port" --dir "$kafka_dir"

step "statefold serve"
mkdir -p "$work"
stop_serve
"$bin" serve --brokers "$brokers" --data-dir "$data_dir" >>"$work/serve.log" 2>&1 &
echo $! >"$work/serve.pid"
echo "serve pid $(cat "$work/serve.pid"), log $work/serve.log"

step "workload: $events events over $sessions sessions"
seed=$(date +%s)
"$bin" gen --sessions "$sessions" --events "$events" --seed "$seed" --session-prefix "demo-$seed-" -o "$work/workload.jsonl"
"$bin" append --brokers "$brokers" "$work/workload.jsonl"

step "waiting until serve has folded everything"
target=$("$bin" inspect --data-dir "$data_dir" --summary --format json 2>/dev/null | python3 -c '
import json,sys; s=json.load(sys.stdin); print(s["events_applied"]+s["duplicates"]+s["rejections"]+s["dlq_records"])' || echo 0)
lines=$(grep -c . "$work/workload.jsonl")
for i in $(seq 1 600); do
  if ! kill -0 "$(cat "$work/serve.pid")" 2>/dev/null; then
    echo "serve exited; its log:" >&2; tail -20 "$work/serve.log" >&2; exit 1
  fi
  done_count=$("$bin" inspect --data-dir "$data_dir" --summary --format json | python3 -c '
import json,sys; s=json.load(sys.stdin); print(s["events_applied"]+s["duplicates"]+s["rejections"]+s["dlq_records"])')
  printf '\r  folded %s of %s new records' "$((done_count - target))" "$lines"
  [ "$((done_count - target))" -ge "$lines" ] && break
  sleep 0.5
done
echo

step "summary (statefold inspect --data-dir $data_dir --summary)"
"$bin" inspect --data-dir "$data_dir" --summary
session="demo-$seed-000001"
step "one session (statefold inspect --data-dir $data_dir --session $session --messages 6)"
"$bin" inspect --data-dir "$data_dir" --session "$session" --messages 6

step "the stateful gateway: two turns, sending only the new message each time (docs/gateway.md)"
chat="chat-$seed"
for text in "My name is Ada and I like Kafka." "What is my name?"; do
  printf '> %s\n' "$text"
  curl -sS --fail-with-body localhost:8080/v1/chat/completions -H "X-Session-Id: $chat" \
    -d "{\"model\":\"echo\",\"messages\":[{\"role\":\"user\",\"content\":\"$text\"}]}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["message"]["content"])'
done
step "audit of that session: history checked against Kafka, each receipt re-rendered and its hash checked"
"$bin" audit --brokers "$brokers" --data-dir "$data_dir" --session "$chat" | tail -4

cat <<MSG

Where to look next:
  $bin inspect --data-dir $data_dir --summary --format json
  $bin inspect --data-dir $data_dir --session $session --format json
  $bin append --brokers $brokers FILE.jsonl      # your own events (docs/events.md)
  curl localhost:8080/v1/sessions/$chat/context   # what the next model call would be sent
  tail -f $work/serve.log                         # serve's progress lines
  tools/quickstart.sh stop                        # stop serve and the broker
MSG
