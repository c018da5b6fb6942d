"""API keys and roles on `statefold serve` (spec section 9, docs/security.md), through the official OpenAI Python SDK.

serve runs on the real broker of STATEFOLD_BROKERS with keys made by `statefold auth new-key`; its gateway uses the
offline echo endpoint (no [upstream] table), so no fake upstream is needed. Checked: a key admits its roles and only
them (401 without or with a wrong key, 403 for a missing role, in OpenAI's error shape so the SDK raises the right
exception with the message), the rate limit answers 429 with Retry-After and recovers, /healthz and /readyz stay
open, keys never reach the log, and serve refuses to listen beyond loopback without keys unless told to.

Run by run_sdk_tests.sh (ctest: gateway_sdk_test).
"""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import openai
import pytest

from test_openai_sdk import SOURCE_DIR, Serve, free_port, http, tail, wait_until


def binary():
    path = os.environ.get("STATEFOLD_BIN") or str(SOURCE_DIR / "build" / "dev" / "tools" / "statefold" / "statefold")
    assert os.access(path, os.X_OK), "no statefold binary at %s (set STATEFOLD_BIN)" % path
    return path


def new_key(name, roles, rate=0):
    """(key, config lines) from `statefold auth new-key`."""
    argv = [binary(), "auth", "new-key", "--name", name, "--roles", ",".join(roles)]
    if rate:
        argv += ["--requests-per-second", str(rate)]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    key, _, config = run.stdout.partition("\n")
    assert key.startswith("sf-") and key not in config, run.stdout
    return key, config


class Keys:
    pass


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    brokers = os.environ.get("STATEFOLD_BROKERS")
    if not brokers:
        pytest.fail("STATEFOLD_BROKERS is not set: these tests need a real Kafka broker")
    keys = Keys()
    config = "[auth]\n"
    for name, roles, rate in [("all", ["read", "write", "chat", "admin"], 0), ("reader", ["read"], 0),
                              ("chatter", ["chat"], 0), ("slow", ["read"], 2)]:
        key, lines = new_key(name, roles, rate)
        setattr(keys, name, key)
        config += lines
    directory = tmp_path_factory.mktemp("auth")
    config_path = directory / "serve.toml"
    config_path.write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEFOLD_")}
    instance = Serve(binary(), brokers, "auth-" + uuid.uuid4().hex[:12], directory / "store", directory)
    try:
        instance.start(config_path, env)
        keys.serve = instance
        keys.url = "http://127.0.0.1:%d" % instance.port
        yield keys
    finally:
        status = instance.stop()
    assert status == 0, "serve exited with %s after SIGTERM:\n%s" % (status, tail(instance.log_path))
    log = instance.log()
    for name in ("all", "reader", "chatter", "slow"):
        assert getattr(keys, name) not in log, "a key reached serve's log"


def sdk(keyed, key):
    return openai.OpenAI(base_url=keyed.url + "/v1", api_key=key, max_retries=0, timeout=30)


def call(keyed, method, path, key=None, body=None):
    """(status, headers, JSON or text) of a call with `key` as the bearer (none: no Authorization header)."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = "Bearer " + key
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(keyed.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            status, headers, raw = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, dict(e.headers), e.read()
    try:
        return status, headers, json.loads(raw or b"null")
    except ValueError:
        return status, headers, raw.decode("utf-8", "replace")  # /metrics is text


def test_a_key_with_the_chat_role_chats_through_the_sdk(keyed):
    session = "auth-" + uuid.uuid4().hex[:8]
    reply = sdk(keyed, keyed.chatter).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hello"}], extra_headers={"X-Session-Id": session})
    assert reply.choices[0].message.content
    status, _, state = call(keyed, "GET", "/v1/sessions/" + session, keyed.reader)
    assert status == 200 and state["version"] >= 2, state


def test_no_key_or_a_wrong_key_is_401_in_openais_shape(keyed):
    with pytest.raises(openai.AuthenticationError) as wrong:
        sdk(keyed, "sf-" + "0" * 64).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hi"}], extra_headers={"X-Session-Id": "x"})
    assert "incorrect API key" in str(wrong.value)
    for path in ["/v1/sessions", "/v1/sessions/x", "/v1/snapshots", "/metrics"]:
        status, headers, body = call(keyed, "GET", path)
        assert status == 401, (path, body)
        assert body["error"]["code"] == "invalid_api_key" and "Bearer" in body["error"]["message"], body
        assert body["error"]["type"] == "authentication_error", body  # as every other /v1 401
        assert headers.get("WWW-Authenticate") == "Bearer"
    assert call(keyed, "POST", "/v1/sessions/x/events", None, [{"payload_type": "Message", "payload": {"role": "user", "content": [{"text": "hi"}]}}])[0] == 401


def test_each_role_is_needed_for_its_routes(keyed):
    session = "auth-roles-" + uuid.uuid4().hex[:8]
    event = [{"payload_type": "Message", "payload": {"role": "user", "content": [{"text": "hi"}]}}]
    assert call(keyed, "POST", "/v1/sessions/%s/events" % session, keyed.reader, event)[0] == 403
    assert call(keyed, "POST", "/v1/sessions/%s/events" % session, keyed.chatter, event)[0] == 403
    status, _, body = call(keyed, "POST", "/v1/sessions/%s/events" % session, keyed.all, event)
    assert status == 200, body
    with pytest.raises(openai.PermissionDeniedError) as denied:
        sdk(keyed, keyed.reader).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hi"}], extra_headers={"X-Session-Id": session})
    assert "reader" in str(denied.value) and "chat" in str(denied.value)
    status, _, body = call(keyed, "POST", "/v1/snapshots", keyed.chatter)
    assert status == 403 and body["error"]["code"] == "insufficient_role", body
    assert body["error"]["type"] == "permission_error", body
    assert call(keyed, "POST", "/v1/sessions/%s/fork" % session, keyed.reader, {"version": 1})[0] == 403
    assert call(keyed, "GET", "/v1/sessions/" + session, keyed.chatter)[0] == 403
    assert call(keyed, "GET", "/v1/sessions/" + session, keyed.reader)[0] == 200
    assert call(keyed, "GET", "/metrics", keyed.reader)[0] == 200


def test_health_and_readiness_need_no_key(keyed):
    assert call(keyed, "GET", "/healthz")[0] == 200
    assert call(keyed, "GET", "/readyz")[0] == 200


def test_a_rate_limit_answers_429_with_retry_after_and_recovers(keyed):
    statuses = []
    retry_after = None
    for _ in range(10):
        status, headers, body = call(keyed, "GET", "/v1/sessions", keyed.slow)
        statuses.append(status)
        if status == 429:
            retry_after = headers.get("Retry-After")
            assert body["error"]["code"] == "rate_limit_exceeded" and "slow" in body["error"]["message"], body
    assert 429 in statuses and statuses[0] == 200, statuses
    assert retry_after is not None and int(retry_after) >= 1
    time.sleep(int(retry_after))
    assert call(keyed, "GET", "/v1/sessions", keyed.slow)[0] == 200
    # Another key is not slowed by this one.
    assert call(keyed, "GET", "/v1/sessions", keyed.reader)[0] == 200


def serve_argv(tmp_path, address, *extra):
    brokers = os.environ["STATEFOLD_BROKERS"]
    topic = "auth-bind-" + uuid.uuid4().hex[:10]
    return [binary(), "serve", "--brokers", brokers, "--topic", topic, "--dead-letter-topic", topic + ".dlq",
            "--group", topic, "--data-dir", str(tmp_path / "store"), "--http-address", address, *extra]


def test_serve_refuses_to_listen_beyond_loopback_without_keys(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEFOLD_")}
    port = free_port()
    run = subprocess.run(serve_argv(tmp_path, "0.0.0.0:%d" % port), capture_output=True, text=True, timeout=60,
                         env=env)
    assert run.returncode == 2, run.stderr
    assert "without authentication" in run.stderr and "--insecure-no-auth" in run.stderr, run.stderr
    # Told explicitly, it listens, and says it is insecure.
    log_path = tmp_path / "insecure.log"
    with open(log_path, "wb") as err:
        process = subprocess.Popen(serve_argv(tmp_path, "0.0.0.0:%d" % port, "--insecure-no-auth"),
                                   stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        assert wait_until(lambda: process.poll() is not None or "HTTP API listening" in log_path.read_text(), 120), \
            tail(log_path)
        assert process.poll() is None, tail(log_path)
        assert "INSECURE" in log_path.read_text()
        assert http("GET", "http://127.0.0.1:%d/healthz" % port)[0] == 200
    finally:
        process.terminate()
        process.wait(60)


def test_a_key_in_clear_text_in_the_config_is_refused_naming_the_line(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[auth]\n[[auth.keys]]\nname = "x"\nkey = "sf-123"\nroles = ["read"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEFOLD_")}
    run = subprocess.run(serve_argv(tmp_path, "127.0.0.1:%d" % free_port(), "--config", str(config)),
                         capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 2, run.stderr
    assert "bad.toml:4: auth.keys.key: unknown field" in run.stderr, run.stderr
    assert "sf-123" not in run.stderr
