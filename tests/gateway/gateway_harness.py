"""What the gateway's client suites share: `statefold serve` as a child process on the real broker of
STATEFOLD_BROKERS with its [upstream] endpoints on the scripted fake model provider (tests/support/fake_upstream.py),
and plain HTTP helpers to read what the session recorded and what the fake received.

Used by test_openai_sdk.py (the OpenAI Python SDK), test_node_sdk.py (the OpenAI Node SDK), test_langchain.py
(langchain-openai), test_bedrock.py, test_auth.py, test_tls.py and test_kafka_security.py; the pytest fixtures built
on it (`fake_upstream`, `fake`, `serve`: one fake and one serve for the whole run) are in conftest.py.
"""

import hashlib
import json
import os
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
    request hash, none skipped. Returns how many sessions were audited."""
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
        assert report["ok"] is True and report["version"] == state["version"], report
        assert len(report["receipts"]) == state["counts"]["receipts"], report
        assert [r["verdict"] for r in report["receipts"]] == ["ok"] * len(report["receipts"]), report["receipts"]
        audited += 1
    return audited
