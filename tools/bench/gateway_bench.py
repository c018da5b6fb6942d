#!/usr/bin/env python3
"""gateway_bench: spec section 8, "gateway overhead beyond the upstream's own time: p99 < 2 ms". Prints figures;
not a test.

  tools/bench/gateway_bench.py --brokers 127.0.0.1:19292 [--turns 300] [--sessions 4] [--upstream-delay-ms 50]
                               [--statefold build/release/tools/statefold/statefold]

1. Starts the scripted fake upstream (tests/support/fake_upstream.py) answering every chat completion after
   --upstream-delay-ms (a model's think time), and `statefold serve` on a fresh topic and data dir with one
   openai_chat endpoint on it.
2. Runs --turns chat turns (non-streamed, only the new user message each time) over --sessions sessions, one
   turn at a time per session and the sessions side by side, after a warm-up.
3. For each turn: the client's latency, and the phases serve reports in its Server-Timing header (input appended and
   folded, render, upstream, reply and receipt recorded). The overhead is the client's latency less the upstream
   phase: what statefold adds to the model's own time, HTTP both ways included.
4. Prints p50/p99 of the overhead and of each phase, with the target.
Exit status 1 only when the run itself failed.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

TARGET_P99_MS = 2.0


def quantile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    rank = max(0, min(len(values) - 1, int(q * len(values) + 0.999999) - 1))
    return values[rank]


def wait_ready(port, proc, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_fake_upstream(source, work, actions):
    """The scripted fake upstream (tests/support/fake_upstream.py) on a free port, given `actions`: (process, port)."""
    port_file = os.path.join(work, "fake.port")
    fake = subprocess.Popen([sys.executable, os.path.join(source, "tests/support/fake_upstream.py"), "--port", "0",
                             "--port-file", port_file], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(port_file) and open(port_file).read().strip():
            break
        time.sleep(0.05)
    port = int(open(port_file).read().strip())
    ctl = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    ctl.request("POST", "/__script", json.dumps({"actions": actions}), {"content-type": "application/json"})
    ctl.getresponse().read()
    return fake, port


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    source = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--turns", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--upstream-delay-ms", type=int, default=50)
    ap.add_argument("--statefold", default=os.path.join(source, "build/release/tools/statefold/statefold"))
    args = ap.parse_args()
    if not os.access(args.statefold, os.X_OK):
        print(f"gateway_bench: no statefold binary at {args.statefold} (build it, or pass --statefold)",
              file=sys.stderr)
        return 1

    work = tempfile.mkdtemp(prefix="gateway-bench-")
    total = args.turns + args.warmup
    fake, fake_port = start_fake_upstream(
        source, work, [{"reply": "Fine, thanks.", "delay_ms": args.upstream_delay_ms, "repeat": total + 10}])
    serve = None
    try:

        config = os.path.join(work, "serve.toml")
        with open(config, "w") as f:
            f.write(f"""[upstream]
default_endpoint = "fake"
[[upstream.endpoints]]
name = "fake"
provider = "openai_chat"
base_url = "http://127.0.0.1:{fake_port}/v1"
model = "gpt-4o"
""")
        port = free_port()
        topic = f"gateway-bench-{os.getpid()}-{int(time.time())}"
        log = open(os.path.join(work, "serve.log"), "w")
        serve = subprocess.Popen([args.statefold, "serve", "--brokers", args.brokers, "--topic", topic,
                                  "--dead-letter-topic", topic + ".dlq", "--group", topic + ".group",
                                  "--data-dir", os.path.join(work, "data"), "--http-address", f"127.0.0.1:{port}",
                                  "--config", config], stdout=log, stderr=subprocess.STDOUT)
        if not wait_ready(port, serve):
            print(f"gateway_bench: serve did not become ready; log {log.name}", file=sys.stderr)
            return 1

        results = []  # (client_ms, {phase: ms})
        errors = []
        lock = threading.Lock()
        per_session = (total + args.sessions - 1) // args.sessions

        def run(s):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for k in range(per_session):
                body = json.dumps({"model": "gpt-4o",
                                   "messages": [{"role": "user", "content": f"turn {k}: how are you today?"}]})
                start = time.perf_counter()
                conn.request("POST", "/v1/chat/completions", body,
                             {"content-type": "application/json", "x-session-id": f"bench-{s}"})
                r = conn.getresponse()
                r.read()
                elapsed = (time.perf_counter() - start) * 1000
                if r.status != 200:
                    with lock:
                        errors.append(r.status)
                    continue
                phases = {}
                for part in (r.getheader("server-timing") or "").split(","):
                    name, _, dur = part.strip().partition(";dur=")
                    if dur:
                        phases[name] = float(dur)
                with lock:
                    results.append((elapsed, phases))

        threads = [threading.Thread(target=run, args=(s,)) for s in range(args.sessions)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.time() - t0
        measured = results[args.warmup:]
        if not measured:
            print(f"gateway_bench: no turn succeeded (errors: {errors[:5]})", file=sys.stderr)
            return 1
        overhead = [c - p.get("upstream", 0.0) for c, p in measured]
        print(f"gateway_bench: {len(measured)} chat turns measured ({args.warmup} warm-up) over {args.sessions} "
              f"sessions in {wall:.1f} s; upstream answers after {args.upstream_delay_ms} ms; errors: {len(errors)}")
        print(f"  {'':34} {'p50 ms':>9} {'p99 ms':>9}")
        print(f"  {'client latency':34} {quantile([c for c, _ in measured], .5):9.2f} "
              f"{quantile([c for c, _ in measured], .99):9.2f}")
        for phase, what in (("start", "worker, parse, lock, read, route"),
                            ("input", "input appended and folded"), ("render", "materialise + render"),
                            ("upstream", "upstream call (fake, fixed delay)"),
                            ("record", "reply and receipt recorded")):
            values = [p[phase] for _, p in measured if phase in p]
            print(f"  {phase + ': ' + what:34} {quantile(values, .5):9.2f} {quantile(values, .99):9.2f}")
        p99 = quantile(overhead, .99)
        print(f"  {'overhead (latency - upstream)':34} {quantile(overhead, .5):9.2f} {p99:9.2f}   "
              f"target p99 < {TARGET_P99_MS} ms: {'PASS' if p99 < TARGET_P99_MS else 'MISS'}")
        return 0
    finally:
        if serve is not None:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(30)
            except subprocess.TimeoutExpired:
                serve.kill()
        fake.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
