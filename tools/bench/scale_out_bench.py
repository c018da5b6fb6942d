#!/usr/bin/env python3
"""scale_out_bench: what running several `statefold serve` instances in one consumer group costs. Prints figures;
not a test.

  python3 tools/bench/scale_out_bench.py --brokers 127.0.0.1:9092 [--bin build/release/tools/statefold/statefold] [--requests 2000]
                                         [--sessions 40] [--backlog-events 200000] [--backlog-sessions 2000]
                                         [--staggered] [--keep]

1. Starts 2 serve instances on a fresh topic and group (4 partitions) and waits until both /readyz answer 200 and
   the partitions are split between them (the keys of /readyz "lag" are the partitions an instance owns).
   --staggered starts b only once a holds every partition: a scale-out from 1 to 2 instances.
2. Forwarding overhead. Opens --sessions sessions through their owner (found by asking with
   X-Statefold-No-Forward: 1, whose 421 names the owner and partition), then for --requests requests each measures
   the client's latency of: GET /v1/sessions/{id} to the owner and to the other instance (forwarded), and an append
   of one Message to the owner and to the other instance (forwarded, read-your-writes). Direct and forwarded
   alternate in the loop, so noise hits both alike; one keep-alive connection per instance.
3. Failover by full replay. Appends a backlog (--backlog-events over --backlog-sessions sessions, through
   `statefold append`) and waits until both instances have folded it. No partition snapshot exists yet. Appends one
   more event to a session on partition P (the last acknowledged write), kill -9s P's owner and times, from the
   kill: the survivor's "partitions assigned" naming P (the group waits session.timeout.ms for a static member,
   10 s), its "partitions ready" naming P, and the first 200 with that last version of a GET of the session through
   the survivor (polled every 20 ms; any answer but 503 before it is reported). Then the records the survivor read
   again: per moved partition, the killed instance's stored next offset (statefold inspect --summary) less the
   offset the survivor started from (its "partitions assigned" line), and bytes as that times the mean backlog
   JSON line.
4. Failover through a partition snapshot. Starts a third instance c with an empty store, which takes half the
   partitions from the survivor (which drops their state a second later: --drop-lost-after 1). Publishes snapshots
   of c's partitions (`statefold snapshot publish` on c's live store), appends --tail-events more events, then
   kill -9s c and times the same steps: the survivor restores the snapshots and folds only the tail. Bytes read:
   the snapshot topic's (from the survivor's "partition restored from a snapshot" lines) plus the tail's records.
   With --standby-replicas N (N > 0), every instance keeps warm standbys: the failover of step 3 is then the one
   "with a standby" (the survivor goes on from its standby's offset) and step 4 is skipped.
5. Stops everything (SIGTERM, then SIGKILL) and deletes its temporary directory unless --keep.
Exit status 1 only when the run itself failed.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

PARTITIONS = 4
JSON = {"content-type": "application/json"}


def quantile(values, q):
    values = sorted(values)
    return values[max(0, min(len(values) - 1, int(q * len(values) + 0.999999) - 1))]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Instance:
    """One `statefold serve`, its log lines (with the monotonic time each arrived) and a keep-alive connection."""

    def __init__(self, name, args, run, work):
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = os.path.join(work, f"data-{name}")
        self.log_path = os.path.join(work, f"serve-{name}.log")
        self.lines = []  # (time.monotonic(), line)
        self.proc = subprocess.Popen(
            [args.bin, "serve", "--brokers", args.brokers, "--topic", run, "--group", run, "--data-dir", self.data_dir,
             "--http-address", f"127.0.0.1:{self.port}", "--snapshot-interval-s", "0", "--partitions", str(PARTITIONS),
             # Partition snapshots only on demand (step 4), and a lost partition's state dropped at once, so that
             # a partition coming back is restored from a snapshot or folded from the log, never resumed.
             "--partition-snapshot-interval-s", "0", "--drop-lost-after", "1",
             "--standby-replicas", str(args.standby_replicas)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read_log, daemon=True).start()
        self.conn = None

    def _read_log(self):
        with open(self.log_path, "w") as log:
            for line in self.proc.stdout:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                log.write(line)
                log.flush()

    def request(self, method, path, body=None, headers=None):
        """(status, headers, body) over the keep-alive connection, connecting again once if it was closed."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            try:
                self.conn.request(method, path, body, headers or {})
                r = self.conn.getresponse()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise

    def readyz(self):
        try:
            status, _, body = self.request("GET", "/readyz")
            return status, json.loads(body)
        except (OSError, http.client.HTTPException, ValueError):
            return None, {}

    def owned(self):
        return sorted(int(p) for p in self.readyz()[1].get("lag", {}))

    def first_line_after(self, since, pattern, partition):
        """Time of the first log line after `since` matching `pattern` whose captured list names `partition`."""
        for t, line in list(self.lines):
            m = t > since and re.search(pattern, line)
            if m and partition in [int(x.split("@")[0]) for x in m.group(1).strip('"').split(",") if x]:
                return t, line
        return None, None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_for(what, check, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    sys.exit(f"scale_out_bench: timed out waiting for {what}")


def wait_split(instances, seconds=120, caught_up=False):
    """Both /readyz 200 and the partitions split between them; caught_up: every lag 0 as well."""
    def split():
        for i in instances:
            if i.proc.poll() is not None:
                sys.exit(f"scale_out_bench: serve {i.name} exited ({i.proc.returncode}); see {i.log_path} (--keep)")
        views = [i.readyz() for i in instances]
        if any(s != 200 for s, _ in views):
            return False
        owned = [set(v.get("lag", {})) for _, v in views]
        lags_zero = all(lag == 0 for _, v in views for lag in v.get("lag", {}).values())
        return (all(owned) and not owned[0] & owned[1] and len(owned[0] | owned[1]) == PARTITIONS
                and (lags_zero or not caught_up))
    wait_for("both instances ready with the partitions split", split, seconds)
    return {p: i for i in instances for p in i.owned()}


def message(text):
    return json.dumps({"payload_type": "Message", "payload": {"role": "user", "content": [{"text": text}]}})


def note(notes, what):
    notes[what] = notes.get(what, 0) + 1


def reason_of(raw):
    """The error message of a JSON error answer, else the start of the body."""
    try:
        error = json.loads(raw).get("error")
        return error.get("message", error) if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        return raw[:120].decode(errors="replace")


def append(instance, sid, body, notes, headers=None):
    """Append through `instance`, retrying 503 (partition moving, members' view settling) a while; the answer."""
    for _ in range(200):
        status, h, raw = instance.request("POST", f"/v1/sessions/{sid}/events", body, {**JSON, **(headers or {})})
        if status != 503:
            return status, h, raw
        note(notes, f"503 on append via {instance.name} while opening sessions")
        time.sleep(0.05)
    return status, h, raw


def open_sessions(args, instances, owner_of, run, notes):
    """Opens the sessions through their owners, found via a 421; {session id: (owner, partition, version)}."""
    by_url = {i.url: i for i in instances}
    out, misdirected = {}, 0
    opened = json.dumps({"payload_type": "SessionOpened", "payload": {"model": "echo-1"}})
    for n in range(args.sessions):
        sid = f"bench-{run}-{n}"
        status, h, raw = append(instances[0], sid, opened, notes, {"X-Statefold-No-Forward": "1"})
        if status == 421:
            misdirected += 1
            owner, partition = by_url.get(h.get("x-statefold-owner")), int(h.get("x-statefold-partition", -1))
            if owner is None or owner_of.get(partition) is not owner:
                note(notes, f"421 named owner {h.get('x-statefold-owner')} partition {partition}, /readyz says "
                            f"{owner_of.get(partition) and owner_of[partition].url}")
                owner = owner_of[partition]
            status, h, raw = append(owner, sid, opened, notes, {"X-Statefold-No-Forward": "1"})
        else:
            owner = instances[0]
        if status != 200:
            sys.exit(f"scale_out_bench: opening {sid}: {status} {raw[:300]!r}")
        answer = json.loads(raw)
        partition = answer["events"][0]["partition"]
        if owner_of[partition] is not owner:
            note(notes, f"{sid}: answered by {owner.name} but partition {partition} is {owner_of[partition].name}'s")
        version = answer["version"]
        for k in range(3):
            status, _, raw = append(owner, sid, message(f"hello {k}"), notes, {"X-Statefold-No-Forward": "1"})
            if status != 200:
                sys.exit(f"scale_out_bench: message to {sid} via its owner: {status} {raw[:300]!r}")
            version = json.loads(raw)["version"]
        out[sid] = [owner, partition, version]
    print(f"Opened {len(out)} sessions (1 SessionOpened + 3 Messages each) through their owners: {misdirected} "
          f"first sent to {instances[0].name} were 421 naming the owner, the rest were {instances[0].name}'s")
    return out


def measure_forwarding(args, instances, sessions, notes):
    other = {instances[0]: instances[1], instances[1]: instances[0]}
    ids = list(sessions)
    lat = {k: [] for k in ("get direct", "get forwarded", "append direct", "append forwarded")}

    def timed(kind, instance, method, sid, body):
        t0 = time.perf_counter()
        status, _, raw = instance.request(method, f"/v1/sessions/{sid}" + ("/events" if body else ""), body,
                                          JSON if body else {})
        elapsed = time.perf_counter() - t0
        if status != 200:
            note(notes, f"{kind}: status {status}")
        elif body:
            sessions[sid][2] = json.loads(raw)["version"]
        return elapsed

    warmup = min(50, args.requests)
    for op in ("get", "append"):
        for i in range(warmup + args.requests):
            sid = ids[i % len(ids)]
            owner = sessions[sid][0]
            body = message(f"m{i}") if op == "append" else None
            method = "POST" if body else "GET"
            order = [("direct", owner), ("forwarded", other[owner])]
            if i % 2:
                order.reverse()
            for how, instance in order:
                elapsed = timed(f"{op} {how}", instance, method, sid, body)
                if i >= warmup:
                    lat[f"{op} {how}"].append(elapsed * 1e6)
    print(f"\nForwarding overhead ({args.requests} requests each, {len(ids)} sessions, keep-alive, microseconds)")
    print(f"  {'':18} {'p50':>8} {'p99':>8} {'mean':>8}")
    for kind, values in lat.items():
        print(f"  {kind:18} {quantile(values, 0.5):8.0f} {quantile(values, 0.99):8.0f} {statistics.mean(values):8.0f}")
    for op in ("get", "append"):
        d, f = lat[f"{op} direct"], lat[f"{op} forwarded"]
        print(f"  {op} forwarded - direct: p50 {quantile(f, 0.5) - quantile(d, 0.5):+.0f} us "
              f"(x{quantile(f, 0.5) / quantile(d, 0.5):.2f}), p99 {quantile(f, 0.99) - quantile(d, 0.99):+.0f} us, "
              f"mean {statistics.mean(f) - statistics.mean(d):+.0f} us (x{statistics.mean(f) / statistics.mean(d):.2f})")


def write_backlog(args, run, work, events=None, name="backlog"):
    """Appends the backlog with `statefold append`; the mean line length in bytes."""
    path = os.path.join(work, f"{name}.jsonl")
    events = events or args.backlog_events
    per_session = max(2, events // args.backlog_sessions)
    total_bytes = lines = 0
    with open(path, "w") as f:
        for s in range(args.backlog_sessions):
            sid = f"bk-{s}"
            for k in range(per_session):
                event = {"event_id": os.urandom(16).hex(), "session_id": sid}
                if k == 0 and name == "backlog":
                    event.update(payload_type="SessionOpened", payload={"model": "echo-1"})
                else:
                    event.update(payload_type="Message", payload={"role": "user", "content": [{"text": "x"}]})
                line = json.dumps(event, separators=(",", ":"))
                f.write(line + "\n")
                total_bytes, lines = total_bytes + len(line), lines + 1
    t0 = time.monotonic()
    subprocess.run([args.bin, "append", "--brokers", args.brokers, "--topic", run, path], check=True,
                   stdout=subprocess.DEVNULL)
    print(f"\n{name.capitalize()}: {lines} events over {args.backlog_sessions} sessions appended in {time.monotonic() - t0:.1f} s "
          f"(mean JSON line {total_bytes / lines:.0f} B; sent as FlatBuffers)")
    return total_bytes / lines


def failover(args, victim, survivor, owner_of, sessions, mean_line, notes, path):
    partition = min(p for p, i in owner_of.items() if i is victim)
    moved = sorted(p for p, i in owner_of.items() if i is victim)
    sid = next((s for s, (_, p, _) in sessions.items() if p == partition), None)
    if sid is None:
        sys.exit(f"scale_out_bench: no benchmark session on partition {partition}; use more --sessions")
    # The session's newest event is the last acknowledged write before the crash: it must be visible afterwards.
    status, _, raw = sessions[sid][0].request("POST", f"/v1/sessions/{sid}/events", message("last words"), JSON)
    if status != 200:
        sys.exit(f"scale_out_bench: last append to {sid}: {status} {raw[:300]!r}")
    expected = json.loads(raw)["version"]
    print(f"\nFailover {path}: kill -9 {victim.name} (partitions {','.join(map(str, moved))}); "
          f"reading {sid} (partition {partition}, version {expected}) through {survivor.name}")
    t_kill = time.monotonic()
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    statuses, reasons, first_200, wrong_version = {}, {}, None, 0
    deadline = t_kill + args.failover_timeout
    while time.monotonic() < deadline:
        try:
            status, h, raw = survivor.request("GET", f"/v1/sessions/{sid}")
        except (OSError, http.client.HTTPException) as e:
            status, h, raw = f"error {type(e).__name__}", {}, b""
        statuses[status] = statuses.get(status, 0) + 1
        why = None
        if status != 200:
            why = f"{status} (Retry-After {h.get('retry-after', 'absent')}) {reason_of(raw)}"
        elif json.loads(raw).get("version") != expected:
            why = f"200 with version {json.loads(raw).get('version')}"
            wrong_version += 1
        if why:
            first, _, count = reasons.get(why, (time.monotonic() - t_kill, 0, 0))
            reasons[why] = (first, time.monotonic() - t_kill, count + 1)
        else:
            first_200 = time.monotonic()
            break
        time.sleep(0.02)
    assigned, assigned_line = survivor.first_line_after(t_kill, r"partitions assigned.*?start=(\S+)", partition)
    ready, _ = survivor.first_line_after(t_kill, r"partitions ready.*?partitions=(\S+)", partition)
    announced, _ = survivor.first_line_after(t_kill, r"cluster: announced.*?partitions=(\S+)", partition)

    def since(t):
        return f"{t - t_kill:7.3f} s" if t else "    never"
    rows = [(f"survivor logs 'partitions assigned' with {partition}", since(assigned) +
             "  (the group waits session.timeout.ms for a static member)"),
            (f"survivor announces {partition} on the members topic", since(announced)),
            (f"survivor logs 'partitions ready' with {partition}", since(ready)),
            (f"first GET 200 with version {expected}", since(first_200))]
    if assigned and ready:
        rows.append(("assigned -> ready (the replay itself)", f"{ready - assigned:7.3f} s"))
    if ready and first_200:
        rows.append(("ready -> first 200", f"{first_200 - ready:7.3f} s"))
    for label, value in rows:
        print(f"  {label:52} {value}")
    print(f"  GET statuses while polling: {', '.join(f'{k}: {v}' for k, v in sorted(statuses.items(), key=str))}")
    for why, (first, last, count) in reasons.items():
        print(f"    {count:5} x from {first:6.3f} s to {last:6.3f} s: {why}")
    for status, count in statuses.items():
        if status not in (200, 503):
            note(notes, f"failover: {count} GET(s) of an existing session answered {status} (expected 503 until ready)")
    if wrong_version:
        note(notes, f"failover: {wrong_version} GET 200 with a version other than {expected}")
    if first_200 is None:
        note(notes, "failover: no GET 200 with the expected version before --failover-timeout")
    restored = [line for t, line in list(survivor.lines) if t > t_kill and "partition restored from a snapshot" in line]
    snapshot_bytes = 0
    for line in restored:
        m = re.search(r"partition=(\d+).*?next_offset=(\d+).*?bytes_read=(\d+) ms=([\d.]+) read_ms=([\d.]+) "
                      r"verify_ms=([\d.]+) load_ms=([\d.]+)", line)
        if m and int(m.group(1)) in moved:
            print(f"  partition {m.group(1)}: restored from a snapshot up to offset {m.group(2)}: "
                  f"{int(m.group(3)) / 1e6:.2f} MB read from the snapshot topic, {float(m.group(4)):.0f} ms "
                  f"(read {float(m.group(5)):.0f}, check {float(m.group(6)):.0f}, write {float(m.group(7)):.0f})")
            snapshot_bytes += int(m.group(3))
    if path == "through a snapshot" and not restored:
        note(notes, "failover through a snapshot: the survivor restored no snapshot")
    print_reread(args, victim, moved, assigned_line, mean_line, snapshot_bytes)


def snapshot_failover(args, instances, run, work, sessions, mean_line, notes):
    """Step 4: a third instance takes partitions, publishes their snapshots, and is killed after a tail."""
    survivor = instances[0]
    t0 = time.monotonic()
    instances.append(Instance("c", args, run, work))
    c = instances[-1]
    owner_of = wait_split([survivor, c], seconds=600, caught_up=True)
    print(f"\nc joined and folded its partitions ({','.join(map(str, c.owned()))}) in {time.monotonic() - t0:.1f} s")
    moved = [p for p, i in owner_of.items() if i is c]
    wait_for("the survivor to drop the state of c's partitions",
             lambda: all(any(f"partition={p} " in line or line.endswith(f"partition={p}")
                             for _, line in list(survivor.lines) if "folded elsewhere dropped" in line) for p in moved),
             60)
    t0 = time.monotonic()
    out = subprocess.run([args.bin, "snapshot", "publish", "--data-dir", c.data_dir, "--brokers", args.brokers,
                          "--topic", run], check=True, capture_output=True, text=True).stdout
    print(f"partition snapshots of c published in {time.monotonic() - t0:.1f} s:")
    for line in out.splitlines():
        print(f"  {line}")
    for sid, (owner, p, _) in sessions.items():
        sessions[sid] = [c if p in moved else survivor, p, _]
    write_backlog(args, run, work, events=args.tail_events, name="tail")
    owner_of = wait_split([survivor, c], seconds=600, caught_up=True)
    failover(args, c, survivor, owner_of, sessions, mean_line, notes, "through a snapshot")


def print_reread(args, victim, moved, assigned_line, mean_line, snapshot_bytes):
    """Records the survivor read again: the killed store's next offsets less where the survivor started (as its
    "partitions assigned" line says); bytes estimated from the mean backlog line."""
    summary = json.loads(subprocess.run([args.bin, "inspect", "--data-dir", victim.data_dir, "--summary", "--format",
                                         "json"], check=True, capture_output=True, text=True).stdout)
    starts = {}
    if assigned_line:
        for item in re.search(r"start=(\S+)", assigned_line).group(1).strip('"').split(","):
            p, _, at = item.partition("@")
            starts[int(p)] = 0 if at == "beginning" else int(at)
    records = 0
    for p in moved:
        end = int(summary["offsets"].get(str(p), 0))
        start = starts.get(p)
        if start is None:
            print(f"  partition {p}: end offset {end}, not (yet) in the survivor's assignment line")
            continue
        print(f"  partition {p}: read again from offset {start} to {end}: {end - start} records")
        records += end - start
    print(f"  records read again to rebuild: {records}; bytes ~ {records * mean_line / 1e6:.1f} MB "
          f"(records x mean backlog JSON line of {mean_line:.0f} B: an estimate, the values are FlatBuffers)")
    if snapshot_bytes:
        print(f"  plus {snapshot_bytes / 1e6:.2f} MB of partition snapshots: "
              f"{snapshot_bytes / 1e6 + records * mean_line / 1e6:.1f} MB read from Kafka in all")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    built = [os.path.join(root, "build", preset, "tools", "statefold", "statefold") for preset in ("release", "dev")]
    ap.add_argument("--brokers", default=os.environ.get("STATEFOLD_BROKERS", "127.0.0.1:9092"),
                    help="a running broker (tools/kafka.sh start)")
    ap.add_argument("--bin", default=next((b for b in built if os.path.exists(b)), built[0]),
                    help="the statefold binary (default: the release build, else the dev build)")
    ap.add_argument("--requests", type=int, default=2000, help="K: requests of each kind in the forwarding test")
    ap.add_argument("--sessions", type=int, default=40)
    ap.add_argument("--backlog-events", type=int, default=200000)
    ap.add_argument("--backlog-sessions", type=int, default=2000)
    ap.add_argument("--tail-events", type=int, default=20000,
                    help="events appended after the partition snapshots, before the second kill -9")
    ap.add_argument("--failover-timeout", type=float, default=120.0)
    ap.add_argument("--standby-replicas", type=int, default=0,
                    help="serve --standby-replicas: > 0 measures the failover with a warm standby instead")
    ap.add_argument("--staggered", action="store_true",
                    help="start b only once a is ready holding every partition (a scale-out from 1 to 2 instances)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (data dirs, logs)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("scale_out_bench: terminated"))  # still runs the finally

    run = f"statefold.scale-out.{os.getpid()}-{int(time.time())}"
    work = tempfile.mkdtemp(prefix="statefold-scale-out-")
    instances, notes = [], {}
    try:
        t0 = time.monotonic()
        instances.append(Instance("a", args, run, work))
        if args.staggered:
            wait_for("a ready with every partition",
                     lambda: instances[0].readyz()[0] == 200 and len(instances[0].owned()) == PARTITIONS, 120)
        instances.append(Instance("b", args, run, work))
        owner_of = wait_split(instances)
        print(f"topic/group {run}; {len(instances)} instances ready and split in {time.monotonic() - t0:.1f} s: "
              + "; ".join(f"{i.name} {i.url} partitions {','.join(map(str, i.owned()))}" for i in instances))
        sessions = open_sessions(args, instances, owner_of, run, notes)
        measure_forwarding(args, instances, sessions, notes)
        mean_line = write_backlog(args, run, work)
        t0 = time.monotonic()
        owner_of_now = wait_split(instances, seconds=600, caught_up=True)
        print(f"  both instances folded it (every lag 0) {time.monotonic() - t0:.1f} s after the append returned")
        if owner_of_now != owner_of:
            note(notes, "the partitions moved between the forwarding test and the failover")
        if args.standby_replicas > 0:
            wait_for("a's standbys to follow b's partitions",
                     lambda: any("standbys following=" in line for _, line in list(instances[0].lines)), 60)
            time.sleep(2)  # the standby folds the backlog's last records
            failover(args, instances[1], instances[0], owner_of_now, sessions, mean_line, notes, "with a standby")
        else:
            failover(args, instances[1], instances[0], owner_of_now, sessions, mean_line, notes, "by full replay")
            snapshot_failover(args, instances, run, work, sessions, mean_line, notes)
        print("\nNoteworthy:" if notes else "\nNothing unexpected seen.")
        for what, count in notes.items():
            print(f"  {what}" + (f" (x{count})" if count > 1 else ""))
        return 0
    finally:
        for i in instances:
            i.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
