#!/usr/bin/env python3
"""security_bench: what API keys and TLS cost (spec sections 8 and 9): the session read p99 and the gateway overhead
p99, measured side by side with and without them. Prints figures; not a test.

  tools/bench/security_bench.py --brokers 127.0.0.1:19292 [--reads 4000] [--turns 200] [--rounds 4]
                                [--upstream-delay-ms 20] [--statefold build/release/tools/statefold/statefold]

1. Starts the scripted fake upstream (tests/support/fake_upstream.py) and three `statefold serve` instances on the
   same broker, each on a fresh topic and data dir with one openai_chat endpoint on the fake: "plain" (no keys,
   HTTP), "keys" (an [[auth.keys]] key of tenant "bench", so every request is authenticated, its role and tenant
   checked) and "keys+tls" (the same over HTTPS, TLS 1.3, certificates made by the `openssl` command).
2. Seeds one session per instance with a chat turn, then measures in --rounds rounds, the three instances taking
   turns within each round so that machine noise falls on all of them alike:
   - session reads: GET /v1/sessions/{id} on one keep-alive connection, closed-loop, --reads in all;
   - gateway turns: chat completions with only the new message, --turns in all; the overhead is the client's
     latency less the upstream phase serve reports in Server-Timing (what statefold adds to the model's time).
3. Prints p50/p99 of each, and the difference from "plain". The client is Python: its own per-request cost (some
   tens of microseconds) is the same in every column, so the differences are statefold's.
Exit status 1 only when the run itself failed.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time

from gateway_bench import free_port, quantile, start_fake_upstream

CONFIGS = ("plain", "keys", "keys+tls")


def openssl(work, *args):
    subprocess.run(["openssl", *args], cwd=work, check=True, capture_output=True)


def make_certificates(work):
    openssl(work, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=security_bench CA")
    openssl(work, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(work, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    openssl(work, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.ext")


class Instance:
    def __init__(self, name, args, work, fake_port, key_lines):
        self.name = name
        self.port = free_port()
        self.dir = os.path.join(work, name.replace("+", "-"))
        os.makedirs(self.dir)
        config = os.path.join(self.dir, "serve.toml")
        with open(config, "w") as f:
            f.write(f"""[upstream]
default_endpoint = "fake"
[[upstream.endpoints]]
name = "fake"
provider = "openai_chat"
base_url = "http://127.0.0.1:{fake_port}/v1"
model = "gpt-4o"
""")
            if name != "plain":
                f.write("[auth]\n" + key_lines)
        topic = f"security-bench-{name.replace('+', '-')}-{os.getpid()}-{int(time.time())}"
        argv = [args.statefold, "serve", "--brokers", args.brokers, "--topic", topic, "--dead-letter-topic",
                topic + ".dlq", "--group", topic, "--data-dir", os.path.join(self.dir, "data"), "--http-address",
                f"127.0.0.1:{self.port}", "--config", config]
        self.tls = None
        if name == "keys+tls":
            argv += ["--tls-cert", os.path.join(work, "server.pem"), "--tls-key", os.path.join(work, "server.key")]
            self.tls = ssl.create_default_context(cafile=os.path.join(work, "ca.pem"))
        self.log = open(os.path.join(self.dir, "serve.log"), "w")
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        self.reads = []
        self.overheads = []

    def connect(self):
        if self.tls is not None:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=60, context=self.tls)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def headers(self, key):
        h = {"content-type": "application/json"}
        if self.name != "plain":
            h["authorization"] = "Bearer " + key
        return h

    def wait_ready(self, seconds=120):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                c = self.connect()
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def turn(conn, instance, key, session, k):
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": f"turn {k}: and now?"}]})
    headers = dict(instance.headers(key), **{"x-session-id": session})
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, headers)
    r = conn.getresponse()
    r.read()
    elapsed = (time.perf_counter() - start) * 1000
    if r.status != 200:
        raise RuntimeError(f"{instance.name}: chat turn answered {r.status}")
    upstream = 0.0
    for part in (r.getheader("server-timing") or "").split(","):
        name, _, dur = part.strip().partition(";dur=")
        if name == "upstream" and dur:
            upstream = float(dur)
    return elapsed - upstream


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    source = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--reads", type=int, default=4000)
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--upstream-delay-ms", type=int, default=20)
    ap.add_argument("--statefold", default=os.path.join(source, "build/release/tools/statefold/statefold"))
    args = ap.parse_args()
    if not os.access(args.statefold, os.X_OK):
        print(f"security_bench: no statefold binary at {args.statefold} (build it, or pass --statefold)",
              file=sys.stderr)
        return 1

    work = tempfile.mkdtemp(prefix="security-bench-")
    make_certificates(work)
    made = subprocess.run([args.statefold, "auth", "new-key", "--name", "bench", "--tenant", "bench", "--roles",
                           "read,chat"], capture_output=True, text=True, check=True)
    key, _, key_lines = made.stdout.partition("\n")
    fake, fake_port = start_fake_upstream(
        source, work, [{"reply": "Fine.", "delay_ms": args.upstream_delay_ms, "repeat": 3 * (args.turns + 40)}])
    instances = []
    try:

        instances = [Instance(name, args, work, fake_port, key_lines) for name in CONFIGS]
        for instance in instances:
            if not instance.wait_ready():
                print(f"security_bench: serve ({instance.name}) did not become ready; log {instance.log.name}",
                      file=sys.stderr)
                return 1
        session = "bench/session"
        connections = {}
        for instance in instances:
            conn = instance.connect()
            connections[instance.name] = conn
            for k in range(10):  # warm-up: the session exists, caches and TLS sessions are warm
                turn(conn, instance, key, session, k)
            for _ in range(200):
                conn.request("GET", "/v1/sessions/bench%2Fsession", headers=instance.headers(key))
                conn.getresponse().read()

        reads_per_round = max(1, args.reads // args.rounds)
        turns_per_round = max(1, args.turns // args.rounds)
        t0 = time.time()
        for round_number in range(args.rounds):
            order = instances if round_number % 2 == 0 else list(reversed(instances))
            for instance in order:
                conn = connections[instance.name]
                headers = instance.headers(key)
                for _ in range(reads_per_round):
                    start = time.perf_counter()
                    conn.request("GET", "/v1/sessions/bench%2Fsession", headers=headers)
                    r = conn.getresponse()
                    r.read()
                    instance.reads.append((time.perf_counter() - start) * 1000)
                    if r.status != 200:
                        raise RuntimeError(f"{instance.name}: read answered {r.status}")
                for k in range(turns_per_round):
                    instance.overheads.append(turn(conn, instance, key, session, 100 + round_number * 1000 + k))
        wall = time.time() - t0

        print(f"security_bench: {reads_per_round * args.rounds} session reads and {turns_per_round * args.rounds} "
              f"chat turns per configuration, {args.rounds} interleaved rounds, {wall:.1f} s; upstream answers "
              f"after {args.upstream_delay_ms} ms; TLS {ssl.OPENSSL_VERSION.split()[1]} (client), keep-alive")
        print(f"  {'':30} {'read p50':>9} {'read p99':>9} {'Δp99':>7}   {'gw p50':>7} {'gw p99':>7} {'Δp99':>7}  (ms)")
        base_read = quantile(instances[0].reads, .99)
        base_gw = quantile(instances[0].overheads, .99)
        for instance in instances:
            r99 = quantile(instance.reads, .99)
            g99 = quantile(instance.overheads, .99)
            print(f"  {instance.name:30} {quantile(instance.reads, .5):9.3f} {r99:9.3f} {r99 - base_read:+7.3f}   "
                  f"{quantile(instance.overheads, .5):7.2f} {g99:7.2f} {g99 - base_gw:+7.2f}")
        print("  (gw: gateway overhead = client latency - upstream phase; targets: read p99 < 1 ms, gw p99 < 2 ms)")
        return 0
    finally:
        for instance in instances:
            instance.stop()
        fake.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
