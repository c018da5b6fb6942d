"""What the gateway's client suites share: `statefold serve` as a child process on the real broker of
STATEFOLD_BROKERS with its [upstream] endpoints on the scripted fake model provider (tests/support/fake_upstream.py),
and plain HTTP helpers to read what the session recorded and what the fake received.

Used by test_openai_sdk.py (the OpenAI Python SDK), test_node_sdk.py (the OpenAI Node SDK), test_langchain.py
(langchain-openai), test_bedrock.py, test_auth.py, test_tls.py, test_group_budget.py and test_kafka_security.py; the pytest fixtures built
on it (`fake_upstream`, `fake`, `serve`: one fake and one serve for the whole run) are in conftest.py, and
test_bedrock.py's and test_auth.py's serves of their own are running_serve too. Several instances on one topic
(test_tls.py, test_group_budget.py) are ServeProcess each.
"""

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("STATEFOLD_SOURCE_DIR") or Path(__file__).resolve().parents[2])
FAKE_UPSTREAM = SOURCE_DIR / "tests" / "support" / "fake_upstream.py"

# The key serve sends upstream (from the environment variable the endpoint names), and the one the SDK sends to
# the gateway: neither may appear in a body the fake receives, and only the first in its auth header.
UPSTREAM_KEY = "sk-upstream-" + uuid.uuid4().hex
CLIENT_KEY = "sk-client-" + uuid.uuid4().hex
KEY_ENV = "FAKE_UPSTREAM_KEY"

READ_TIMEOUT_MS = 3000
MAX_RETRIES = 2


def sha256_hex(data):
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode("utf-8")).hexdigest()


def wait_until(predicate, timeout_s, interval_s=0.05):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(interval_s)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, timeout=30):
    """(status, headers, parsed JSON or text) of a plain HTTP call; error statuses are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            status, headers, raw = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, dict(e.headers), e.read()
    try:
        return status, headers, json.loads(raw)
    except ValueError:
        return status, headers, raw.decode("utf-8", "replace")


def text_of(content):
    """The text of an OpenAI / Anthropic / Responses content value: a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] if isinstance(p, dict) and isinstance(p.get("text"), str) else
                       (p if isinstance(p, str) else "") for p in content)
    return ""


def tail(path, lines=60):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log at %s)" % path


def contains_key(value, key):
    """True if `key` appears anywhere (as a dict key) in a JSON value."""
    if isinstance(value, dict):
        return key in value or any(contains_key(v, key) for v in value.values())
    if isinstance(value, list):
        return any(contains_key(v, key) for v in value)
    return False


# ------------------------------------------------------------------------------------------------ the fake upstream

class FakeUpstream:
    def __init__(self, process, port, log_path):
        self.process = process
        self.port = port
        self.log_path = log_path
        self.url = "http://127.0.0.1:%d" % port
        self.seen = []  # every request received before the last reset()

    def script(self, *actions):
        status, _, body = http("POST", self.url + "/__script", {"actions": list(actions)})
        assert status == 200, body

    def requests(self):
        """The model requests received since the last reset(), in order."""
        status, _, body = http("GET", self.url + "/__requests")
        assert status == 200, body
        return body["requests"]

    def all_requests(self):
        return self.seen + self.requests()

    def reset(self):
        self.seen.extend(self.requests())
        status, _, body = http("POST", self.url + "/__reset", {})
        assert status == 200, body


# ------------------------------------------------------------------------------------------------ statefold serve

def upstream_config(port):
    # The wildcard endpoint comes last: a model is routed to the first endpoint (in file order) that serves it, and
    # `models = ["*"]` serves every model.
    base = "http://127.0.0.1:%d/v1" % port
    return """\
[upstream]
default_endpoint = "fake"

[[upstream.endpoints]]
name = "fake-responses"
provider = "openai_responses"
base_url = "{base}"
api_key_env = "{env}"
model = "gpt-4.1"
read_timeout_ms = {timeout}
max_retries = {retries}
backoff_base_ms = 50

[[upstream.endpoints]]
name = "fake-anthropic"
provider = "anthropic"
base_url = "{base}"
api_key_env = "{env}"
model = "claude-sonnet-4"
max_output_tokens = 32000
read_timeout_ms = {timeout}
max_retries = {retries}
backoff_base_ms = 50

[[upstream.endpoints]]
name = "fake"
provider = "openai_chat"
base_url = "{base}"
api_key_env = "{env}"
model = "gpt-4o"
models = ["*"]
read_timeout_ms = {timeout}
max_retries = {retries}
backoff_base_ms = 50
""".format(base=base, env=KEY_ENV, timeout=READ_TIMEOUT_MS, retries=MAX_RETRIES)


class Serve:
    def __init__(self, binary, brokers, topic, data_dir, directory):
        self.binary = binary
        self.brokers = brokers
        self.topic = topic
        self.data_dir = data_dir
        self.directory = directory
        self.process = None
        self.port = None
        self.log_path = None
        self.sessions = []  # every session a test used, for the audit
        self.starts = 0

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def new_session(self, name):
        session = "sdk-%s-%s" % (name, uuid.uuid4().hex[:10])
        self.sessions.append(session)
        return session

    def get(self, path):
        return http("GET", self.url + path)

    def session(self, session):
        status, _, body = self.get("/v1/sessions/%s?messages=1000" % urllib.parse.quote(session, safe=""))
        assert status == 200, "GET /v1/sessions/%s: %s %s" % (session, status, body)
        return body

    def events(self, session):
        """The session's whole history: [{version, payload_type, event}...]."""
        out, start = [], 1
        while True:
            status, _, page = self.get("/v1/sessions/%s/events?from_version=%d&limit=1000"
                                       % (urllib.parse.quote(session, safe=""), start))
            assert status == 200, page
            out.extend(page["events"])
            if page.get("next_from_version") is None:
                return out
            start = page["next_from_version"]

    def receipts(self, session):
        return [e["event"]["payload"] for e in self.events(session) if e["payload_type"] == "InferenceReceipt"]

    def event_at(self, session, version):
        status, _, page = self.get("/v1/sessions/%s/events?from_version=%d&limit=1"
                                   % (urllib.parse.quote(session, safe=""), version))
        assert status == 200 and page["events"], page
        return page["events"][0]

    def log(self):
        return Path(self.log_path).read_text(errors="replace")

    def start(self, config_path, env):
        for attempt in range(3):
            self.port = free_port()
            self.starts += 1
            self.log_path = self.directory / ("serve-%d.log" % self.starts)
            argv = [self.binary, "serve", "--brokers", self.brokers, "--topic", self.topic,
                    "--dead-letter-topic", self.topic + ".dlq", "--group", self.topic + ".group",
                    "--data-dir", str(self.data_dir), "--http-address", "127.0.0.1:%d" % self.port,
                    "--config", str(config_path)]
            with open(self.log_path, "wb") as err, open(str(self.log_path) + ".out", "wb") as out:
                self.process = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
            listening = wait_until(lambda: self.process.poll() is not None or "HTTP API listening" in self.log(), 120)
            if listening and self.process.poll() is None:
                break
            if "cannot listen" not in self.log() or attempt == 2:
                raise AssertionError("serve did not start its HTTP API:\n" + tail(self.log_path))
        last = [None]

        def ready():
            if self.process.poll() is not None:
                return True
            try:
                last[0] = self.get("/readyz")
            except OSError as e:
                last[0] = e
                return False
            return last[0][0] == 200
        assert wait_until(ready, 120) and self.process.poll() is None, \
            "serve not ready within 2 minutes; last /readyz: %s\n%s" % (last[0], tail(self.log_path))

    def stop(self):
        """SIGTERM, then wait; the exit status (killed and -9 after 120 s)."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return -9


@contextlib.contextmanager
def running_serve(binary, brokers, topic, data_dir, directory, config_path, env):
    """A Serve started with config_path and env (its logs in directory, its store in data_dir) for the with block;
    then SIGTERM, after which it must have exited 0, and when STATEFOLD_KAFKA_DIR is set tools/kafka.sh check-logs of
    the broker's log and every serve log in directory (as the C++ integration tests do). A failure in the block is
    raised as it is, after the stop."""
    instance = Serve(binary, brokers, topic, data_dir, directory)
    try:
        instance.start(config_path, env)
        yield instance
    finally:
        status = instance.stop()
    assert status == 0, "serve exited with %s after SIGTERM:\n%s" % (status, tail(instance.log_path))
    kafka_dir = os.environ.get("STATEFOLD_KAFKA_DIR")
    if kafka_dir:
        logs = [str(p) for p in Path(directory).glob("serve-*.log")]
        check = subprocess.run(["bash", str(SOURCE_DIR / "tools" / "kafka.sh"), "check-logs", "--dir", kafka_dir]
                               + logs, capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, "kafka.sh check-logs: " + check.stdout + check.stderr


def session_header(session):
    return {"X-Session-Id": session}


def chat_turns(body):
    """[(role, text)] of a Chat Completions request body's messages."""
    return [(m.get("role"), text_of(m.get("content"))) for m in body["messages"]]


def responses_turns(body):
    """[(role, text)] of a Responses request body's input (a string input is one user message)."""
    items = body.get("input")
    if isinstance(items, str):
        return [("user", items)]
    out = []
    for item in items or []:
        if item.get("type", "message") == "message":
            out.append((item.get("role"), text_of(item.get("content"))))
        else:
            out.append((item.get("type"), item.get("output") or item.get("arguments") or ""))
    return out



def chat_roles(body):
    """The roles of a Chat Completions request body's messages."""
    return [m["role"] for m in body["messages"]]


def assert_each_message_once(body):
    """No message of a Chat Completions request the upstream got is there twice (same role, text, tool calls and
    tool_call_id): a client that resent the conversation had it recognised, not recorded again."""
    seen = [json.dumps([m.get("role"), text_of(m.get("content")), m.get("tool_calls"), m.get("tool_call_id")],
                       sort_keys=True) for m in body["messages"]]
    assert len(seen) == len(set(seen)), "a message sent twice upstream: %s" % body["messages"]


def stored_turns(state):
    """[(role, content)] of GET /v1/sessions/{id}'s messages."""
    return [(m["role"], m["content"]) for m in state["messages"]]


def assert_audited(serve, sessions):
    """`statefold audit` of each session (that exists): every receipt re-rendered from its state version matches its
    request hash, none skipped or unverifiable, and the receipts audited are the session's own (its id, its version,
    its receipts' hashes in order). Returns how many sessions were audited."""
    audited = 0
    for session in dict.fromkeys(sessions):
        status, _, state = serve.get("/v1/sessions/%s" % urllib.parse.quote(session, safe=""))
        if status != 200:
            continue  # a test that failed before it opened its session
        run = subprocess.run([serve.binary, "audit", "--brokers", serve.brokers, "--topic", serve.topic,
                              "--data-dir", str(serve.data_dir), "--session", session, "--format", "json"],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, "audit of %s exited %d:\n%s\n%s" % (session, run.returncode, run.stdout,
                                                                        run.stderr)
        report = json.loads(run.stdout)
        assert report["ok"] is True and report["session_id"] == session, report
        assert report["version"] == state["version"], report
        assert len(report["receipts"]) == state["counts"]["receipts"], report
        assert [r["verdict"] for r in report["receipts"]] == ["ok"] * len(report["receipts"]), report["receipts"]
        # "ok" verdicts alone would pass a report that re-rendered nothing: each one verified, and each the receipt
        # the session holds at that place.
        assert report["receipts_verified"] == len(report["receipts"]), report
        assert report["receipts_unverifiable"] == 0, report
        held = [r["request_hash"] for r in serve.receipts(session)]
        assert [r["request_hash"] for r in report["receipts"]] == held, (report["receipts"], held)
        audited += 1
    return audited


# ------------------------------------------------------------------------------------------------ streamed twice

# Two streamed turns with usage on one session, the second asked after the first's reply: the streaming tests of
# test_node_sdk.py (node/scenarios.mjs `stream`, which asks these questions) and test_langchain.py.
STREAMED_QUESTIONS = ("Count in Greek letters.", "Again, in Latin.")
STREAMED_REPLIES = ("alpha beta gamma delta epsilon", "unus duo tres")


def script_streamed_twice(fake):
    """The fake's answers to STREAMED_QUESTIONS: the first a chunk every 20 ms (so it arrives in pieces) with usage
    12 in / 5 out, the second with 30 in / 3 out."""
    fake.script({"reply": STREAMED_REPLIES[0], "chunk_delay_ms": 20,
                 "usage": {"prompt_tokens": 12, "completion_tokens": 5}},
                {"reply": STREAMED_REPLIES[1], "usage": {"prompt_tokens": 30, "completion_tokens": 3}})


def assert_streamed_twice_recorded_once(serve, fake, session):
    """After script_streamed_twice and the two questions streamed on `session`, whatever the client resent (the Node
    SDK sends only the new question, LangChain its whole list): two upstream calls, both streamed with include_usage;
    the second got the first turn once, then its question; the session recorded the four messages once each and a
    receipt per turn with the upstream's usage. Returns (the fake's requests, the session's receipts)."""
    (in_greek, in_latin), (greek, latin) = STREAMED_QUESTIONS, STREAMED_REPLIES
    requests = fake.requests()
    assert len(requests) == 2, [chat_turns(r["json"]) for r in requests]
    for r in requests:
        assert r["json"]["stream"] is True and r["json"]["stream_options"] == {"include_usage": True}, r["json"]
    assert chat_turns(requests[1]["json"]) == [("user", in_greek), ("assistant", greek), ("user", in_latin)]
    assert stored_turns(serve.session(session)) == [("user", in_greek), ("assistant", greek), ("user", in_latin),
                                                    ("assistant", latin)]
    receipts = serve.receipts(session)
    assert [(r["usage"]["input_tokens"], r["usage"]["output_tokens"]) for r in receipts] == [(12, 5), (30, 3)]
    return requests, receipts


class ServeProcess:
    """`statefold serve` on the real broker of STATEFOLD_BROKERS with the [auth] lines `key_config`, its own data dir
    under `directory` and a free port, waited for until it listens and holds `ready` partitions of `topic` folded
    up to date (several instances on one topic share its 4 partitions)."""

    def __init__(self, binary, directory, extra, key_config, topic, ready=4, https=False):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = "%s://127.0.0.1:%d" % ("https" if https else "http", self.port)
        self.log_path = directory / "serve.log"
        config = directory / "serve.toml"
        config.write_text("[auth]\n" + key_config)
        argv = [binary, "serve", "--brokers", os.environ["STATEFOLD_BROKERS"], "--topic", topic,
                "--dead-letter-topic", topic + ".dlq", "--group", topic, "--data-dir", str(directory / "store"),
                "--http-address", "127.0.0.1:%d" % self.port, "--config", str(config), *extra]
        env = {k: v for k, v in os.environ.items() if not k.startswith("STATEFOLD_")}
        with open(self.log_path, "wb") as err:
            self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
        # Listening, and its partitions of the topic ready: a turn before that is 503 (no partitions assigned yet,
        # or one just assigned and not yet folded up to the end of the log); the log says both, whatever the scheme.
        assert wait_until(lambda: self.process.poll() is not None or
                          ("HTTP API listening" in self.log() and len(self.ready_partitions()) >= ready), 120), \
            tail(self.log_path)
        assert self.process.poll() is None, tail(self.log_path)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def ready_partitions(self):
        ready = set()
        for listed in re.findall(r"partitions ready topic=\S+ partitions=([0-9,]+)", self.log()):
            ready.update(listed.split(","))
        return ready

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
