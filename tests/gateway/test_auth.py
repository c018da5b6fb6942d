"""API keys, JWT bearer tokens, roles, tenants, limits and usage on `statefold serve` (spec section 9,
docs/security.md), through the official OpenAI Python SDK.

serve runs on the real broker of STATEFOLD_BROKERS with keys made by `statefold auth new-key`; its gateway routes to
offline echo endpoints and, for the slow turns of the concurrency test, to the scripted fake upstream. Checked: a key
admits its roles and only them (401 without or with a wrong key, 403 for a missing role, in OpenAI's error shape so
the SDK raises the right exception with the message), the rate limit and the concurrent-turn limit answer 429 with
Retry-After and recover, a token budget refuses turns once the receipts reach it and GET /v1/usage shows each tenant
its own use, JWTs minted here (openssl, RS256) admit their tenant and roles and are refused expired, forged, for
another audience or tenantless, a tenant's key finds no other tenant's session on any route (read, list, append, fork,
erase, context, chat, responses) and its turns take its tenant's routes whatever session id it picks, /healthz and
/readyz stay open, keys never reach the log, and serve refuses to listen beyond loopback without keys unless told to.

Run by run_sdk_tests.sh (ctest: gateway_sdk_test).
"""

import base64
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import openai
import pytest

from gateway_harness import KEY_ENV, SOURCE_DIR, UPSTREAM_KEY, free_port, http, running_serve, tail, wait_until


def binary():
    path = os.environ.get("STATEFOLD_BIN") or str(SOURCE_DIR / "build" / "dev" / "tools" / "statefold" / "statefold")
    assert os.access(path, os.X_OK), "no statefold binary at %s (set STATEFOLD_BIN)" % path
    return path


def new_key(name, roles, rate=0, tenant=None, turns=0, budget=0):
    """(key, config lines) from `statefold auth new-key`."""
    argv = [binary(), "auth", "new-key", "--name", name, "--roles", ",".join(roles)]
    if rate:
        argv += ["--requests-per-second", str(rate)]
    if tenant:
        argv += ["--tenant", tenant]
    if turns:
        argv += ["--max-concurrent-turns", str(turns)]
    if budget:
        argv += ["--token-budget", str(budget)]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    key, _, config = run.stdout.partition("\n")
    assert key.startswith("sf-") and key not in config, run.stdout
    return key, config


class Keys:
    pass


ALL_ROLES = ["read", "write", "chat", "admin"]
KEYS = [  # name, roles, requests per second, tenant, concurrent turns, token budget per day
    ("all", ALL_ROLES, 0, None, 0, 0),
    ("reader", ["read"], 0, None, 0, 0),
    ("chatter", ["chat"], 0, None, 0, 0),
    ("slow", ["read"], 2, None, 0, 0),
    ("acme", ALL_ROLES, 0, "acme", 0, 0),
    ("acme_writer", ["read", "write"], 0, "acme", 0, 0),
    ("acme_one_turn", ["chat"], 0, "acme", 1, 0),
    ("acme_capped", ["chat", "read"], 0, "acme", 0, 5),
    ("globex", ALL_ROLES, 0, "globex", 0, 0),
    ("vip", ["chat", "read"], 0, "vip", 0, 0),
]


def upstream_tables(fake_port):
    # "paid" is what the vip tenant may use; a session_prefix rule under acme's namespace must not reach it for acme's
    # keys (routes follow the key's tenant, not the id the client picks).
    return """
[upstream]
default_endpoint = "echo"
[[upstream.endpoints]]
name = "echo"
provider = "echo"
model = "echo"
[[upstream.endpoints]]
name = "paid"
provider = "echo"
model = "paid-model"
[[upstream.endpoints]]
name = "fake"
provider = "openai_chat"
base_url = "http://127.0.0.1:%d/v1"
api_key_env = "%s"
model = "gpt-4o"
[[upstream.routes]]
session_prefix = ""
endpoints = ["echo", "fake"]
[[upstream.routes]]
tenant = "vip"
endpoints = ["paid"]
[[upstream.routes]]
session_prefix = "acme/vip"
endpoints = ["paid"]
""" % (fake_port, KEY_ENV)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, fake_upstream):
    brokers = os.environ.get("STATEFOLD_BROKERS")
    if not brokers:
        pytest.fail("STATEFOLD_BROKERS is not set: these tests need a real Kafka broker")
    keys = Keys()
    config = "[auth]\n"
    for name, roles, rate, tenant, turns, budget in KEYS:
        key, lines = new_key(name, roles, rate, tenant, turns, budget)
        setattr(keys, name, key)
        config += lines
    directory = tmp_path_factory.mktemp("auth")
    keys.jwt_key = make_rsa_key(directory)
    config += ('[auth.jwt]\nissuer = "https://idp.test/"\naudience = "statefold"\npublic_key_file = "%s"\n'
               'algorithms = ["RS256"]\nroles_claim = "scope"\n' % (directory / "idp-public.pem"))
    config += upstream_tables(fake_upstream.port)
    config_path = directory / "serve.toml"
    config_path.write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEFOLD_")}
    env[KEY_ENV] = UPSTREAM_KEY
    with running_serve(binary(), brokers, "auth-" + uuid.uuid4().hex[:12], directory / "store", directory,
                       config_path, env) as instance:
        keys.serve = instance
        keys.url = "http://127.0.0.1:%d" % instance.port
        yield keys
    log = instance.log()
    for name, *_ in KEYS:
        assert getattr(keys, name) not in log, "a key reached serve's log"


def make_rsa_key(directory):
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                    str(directory / "idp.pem")], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(directory / "idp.pem"), "-pubout", "-out",
                    str(directory / "idp-public.pem")], check=True, capture_output=True)
    return directory / "idp.pem"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(private_key, claims, alg="RS256"):
    """A JWT signed RS256 by the `openssl` command (PKCS#1 v1.5 over SHA-256 is what RS256 is)."""
    signing_input = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + "." + b64url(json.dumps(claims).encode())
    signed = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(private_key)], input=signing_input.encode(),
                            capture_output=True, check=True)
    return signing_input + "." + b64url(signed.stdout)


def token_claims(tenant, scope, expires_in=600, **extra):
    return dict({"iss": "https://idp.test/", "aud": "statefold", "sub": "bob", "tenant": tenant, "scope": scope,
                 "exp": int(time.time()) + expires_in}, **extra)


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


MESSAGE = [{"payload_type": "Message", "payload": {"role": "user", "content": [{"text": "hi"}]}}]
ERASURE = [{"payload_type": "ErasureRequest", "payload": {"reason": "test", "requested_by": "test"}}]


def listed(keyed, key, prefix=None):
    path = "/v1/sessions?limit=1000" + ("" if prefix is None else "&prefix=" + urllib.parse.quote(prefix, safe=""))
    status, _, body = call(keyed, "GET", path, key)
    assert status == 200, body
    return [s["session_id"] for s in body["sessions"]]


def test_another_tenants_session_does_not_exist_on_any_route(keyed):
    mine = "acme/" + uuid.uuid4().hex[:8]
    assert call(keyed, "POST", "/v1/sessions/%s/events" % mine, keyed.acme, MESSAGE)[0] == 200
    reply = sdk(keyed, keyed.acme).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hello"}], extra_headers={"X-Session-Id": mine})
    assert reply.choices[0].message.content
    response = sdk(keyed, keyed.acme).responses.create(model="echo", input="a question")
    assert call(keyed, "GET", "/v1/responses/" + response.id, keyed.acme)[0] == 200
    status, _, before = call(keyed, "GET", "/v1/sessions/" + mine, keyed.acme)
    assert status == 200 and before["version"] >= 4, before  # the append, the turn's input, receipt and reply

    quoted = urllib.parse.quote(mine, safe="")
    theirs = keyed.globex
    attempts = [
        ("GET", "/v1/sessions/" + quoted, None),
        ("GET", "/v1/sessions/" + mine, None),
        ("GET", "/v1/sessions/%s/events" % quoted, None),
        ("GET", "/v1/sessions/%s/context" % quoted, None),
        ("POST", "/v1/sessions/%s/events" % quoted, MESSAGE),
        ("POST", "/v1/sessions/%s/events" % quoted, ERASURE),
        ("POST", "/v1/sessions/%s/fork" % quoted, {"version": 1, "session_id": "globex/stolen"}),
        ("GET", "/v1/responses/" + response.id, None),
    ]
    for method, path, body in attempts:
        status, _, answer = call(keyed, method, path, theirs, body)
        assert status == 404, (method, path, answer)
        assert answer["error"]["type"] == "invalid_request_error", answer
    # Forking its own session into the other tenant's namespace is refused too.
    own = "globex/" + uuid.uuid4().hex[:8]
    assert call(keyed, "POST", "/v1/sessions/%s/events" % own, theirs, MESSAGE)[0] == 200
    status, _, answer = call(keyed, "POST", "/v1/sessions/%s/fork" % own, theirs, {"session_id": "acme/planted"})
    assert status == 404 and "globex/" in answer["error"]["message"], answer
    # Chat and Responses through the SDK: no such session, no such response.
    client = sdk(keyed, theirs)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "leak?"}],
                                       extra_headers={"X-Session-Id": mine})
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="echo", input="leak?", previous_response_id=response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    # Nothing was written to acme's session by any of it.
    status, _, state = call(keyed, "GET", "/v1/sessions/" + quoted, keyed.acme)
    assert status == 200 and not state["erased"] and state["version"] == before["version"], state
    assert call(keyed, "GET", "/v1/sessions/globex%2Fstolen", keyed.globex)[0] == 404


def test_listings_hold_only_the_tenants_own_sessions(keyed):
    for tenant, key in (("acme", keyed.acme), ("globex", keyed.globex)):
        assert call(keyed, "POST", "/v1/sessions/%s%%2Flisted-%s/events" % (tenant, uuid.uuid4().hex[:6]), key,
                    MESSAGE)[0] == 200
    acme = listed(keyed, keyed.acme)
    assert acme and all(s.startswith("acme/") for s in acme), acme
    globex = listed(keyed, keyed.globex)
    assert globex and all(s.startswith("globex/") for s in globex), globex
    assert listed(keyed, keyed.globex, "acme/") == []
    assert listed(keyed, keyed.globex, "") == globex
    assert listed(keyed, keyed.globex, "g") == globex  # a prefix reaching beyond the namespace is narrowed to it
    everything = listed(keyed, keyed.all)  # a key without a tenant is an operator's: every session
    assert set(acme) <= set(everything) and set(globex) <= set(everything)


def test_erasing_needs_the_admin_role_and_is_logged_with_the_key(keyed):
    session = "acme/erase-" + uuid.uuid4().hex[:6]
    path = "/v1/sessions/%s/events" % urllib.parse.quote(session, safe="")
    assert call(keyed, "POST", path, keyed.acme_writer, MESSAGE)[0] == 200
    status, _, body = call(keyed, "POST", path, keyed.acme_writer, ERASURE)
    assert status == 403 and body["error"]["code"] == "insufficient_role" and "admin" in body["error"]["message"], body
    status, _, body = call(keyed, "POST", path, keyed.acme, ERASURE)
    assert status == 200, body
    assert call(keyed, "GET", "/v1/sessions/" + urllib.parse.quote(session, safe=""), keyed.acme)[2]["erased"]
    assert wait_until(lambda: "erasure requested" in keyed.serve.log(), 10)
    line = [l for l in keyed.serve.log().splitlines() if "erasure requested" in l and session in l]
    assert line and "acme" in line[0], keyed.serve.log()[-2000:]


def test_snapshots_and_metrics_need_a_key_without_a_tenant(keyed):
    for method, path in (("POST", "/v1/snapshots"), ("GET", "/v1/snapshots"), ("GET", "/metrics")):
        status, _, body = call(keyed, method, path, keyed.acme)
        assert status == 403 and "every tenant" in body["error"]["message"], (path, body)
    assert call(keyed, "GET", "/v1/snapshots", keyed.all)[0] == 200


def test_turns_take_the_tenants_routes_whatever_session_id_the_client_picks(keyed):
    acme = sdk(keyed, keyed.acme)
    # "acme/vip..." matches the session_prefix rule that allows only "paid", but acme's turns route as acme's.
    session = "acme/vip-" + uuid.uuid4().hex[:6]
    reply = acme.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}],
                                         extra_headers={"X-Session-Id": session})
    assert reply.model == "echo"
    with pytest.raises(openai.PermissionDeniedError):
        acme.chat.completions.create(model="paid-model", messages=[{"role": "user", "content": "hi"}],
                                     extra_headers={"X-Session-Id": session})
    # The "vip/anyone" of the original report: outside acme's namespace it is no session at all.
    with pytest.raises(openai.NotFoundError):
        acme.chat.completions.create(model="paid-model", messages=[{"role": "user", "content": "hi"}],
                                     extra_headers={"X-Session-Id": "vip/anyone"})
    # The vip tenant's key reaches "paid", and only it.
    vip = sdk(keyed, keyed.vip)
    reply = vip.chat.completions.create(model="paid-model", messages=[{"role": "user", "content": "hi"}],
                                        extra_headers={"X-Session-Id": "vip/" + uuid.uuid4().hex[:6]})
    assert reply.model == "paid-model"
    models = [m.id for m in vip.models.list()]
    assert models == ["paid-model"], models
    # A Responses turn without a session gets one in the key's namespace.
    response = vip.responses.create(model="paid-model", input="hello")
    assert call(keyed, "GET", "/v1/responses/" + response.id, keyed.vip)[0] == 200
    vip_sessions = listed(keyed, keyed.vip)
    assert any(s.startswith("vip/resp-") for s in vip_sessions), vip_sessions


def test_concurrent_turns_over_the_keys_limit_get_429_and_recover(keyed, fake):
    fake.script({"reply": "one two three four five six", "chunk_delay_ms": 250}, {"reply": "after"})
    client = sdk(keyed, keyed.acme_one_turn)
    session = "acme/turns-" + uuid.uuid4().hex[:6]
    other = "acme/turns-other-" + uuid.uuid4().hex[:6]
    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "slow"}],
                                            stream=True, extra_headers={"X-Session-Id": session})
    first = next(iter(stream))
    assert first is not None
    # The key's one turn is in progress: a second one, even on another session, waits for it.
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "too"}],
                                       extra_headers={"X-Session-Id": other})
    assert "turns in progress" in str(limited.value)
    assert limited.value.response.headers.get("Retry-After") == "1"
    text = "".join((c.choices[0].delta.content or "") for c in stream if c.choices)
    assert "six" in text
    # The stream is over: the slot is free again.
    reply = None
    for _ in range(50):
        try:
            reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "now"}],
                                                   extra_headers={"X-Session-Id": other})
            break
        except openai.RateLimitError:
            time.sleep(0.1)  # the turn's worker ends just after the last chunk is sent
    assert reply is not None and reply.choices[0].message.content == "after"


def usage(keyed, key, query=""):
    status, _, body = call(keyed, "GET", "/v1/usage" + query, key)
    assert status == 200, body
    return body


def test_usage_by_key_model_and_day_comes_from_the_receipts_and_stays_in_the_tenant(keyed):
    acme_session = "acme/usage-" + uuid.uuid4().hex[:6]
    for text in ("one", "two"):
        sdk(keyed, keyed.acme).chat.completions.create(model="echo", messages=[{"role": "user", "content": text}],
                                                       extra_headers={"X-Session-Id": acme_session})
    sdk(keyed, keyed.globex).chat.completions.create(model="echo", messages=[{"role": "user", "content": "three"}],
                                                     extra_headers={"X-Session-Id": "globex/usage"})

    def acme_rows():
        return [r for r in usage(keyed, keyed.acme)["data"] if r["key"] == "acme" and r["model"] == "echo"]
    assert wait_until(lambda: sum(r["calls"] for r in acme_rows()) >= 2, 10), usage(keyed, keyed.acme)
    mine = usage(keyed, keyed.acme)
    assert {r["tenant"] for r in mine["data"]} == {"acme"}, mine
    row = acme_rows()[0]
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0 and row["failed"] == 0, row
    assert len(row["day"]) == 10 and mine["from"] <= row["day"] <= mine["to"], (row, mine)
    assert mine["totals"]["calls"] == sum(r["calls"] for r in mine["data"]), mine
    assert wait_until(lambda: usage(keyed, keyed.globex)["data"], 10)
    assert {r["tenant"] for r in usage(keyed, keyed.globex)["data"]} == {"globex"}
    # An operator's key sees every tenant, or the one it names; a tenant's key cannot ask for another's.
    assert {"acme", "globex"} <= {r["tenant"] for r in usage(keyed, keyed.all)["data"]}
    assert {r["tenant"] for r in usage(keyed, keyed.all, "?tenant=globex")["data"]} == {"globex"}
    status, _, body = call(keyed, "GET", "/v1/usage?tenant=globex", keyed.acme)
    assert status == 403, body
    assert call(keyed, "GET", "/v1/usage?from=yesterday", keyed.acme)[0] == 400
    assert usage(keyed, keyed.acme, "?from=2000-01-01&to=2000-01-31")["data"] == []


def test_a_token_budget_refuses_turns_once_the_receipts_reach_it(keyed):
    capped = sdk(keyed, keyed.acme_capped)
    session = "acme/capped-" + uuid.uuid4().hex[:6]
    capped.chat.completions.create(model="echo", messages=[{"role": "user", "content": "spend more than five tokens"}],
                                   extra_headers={"X-Session-Id": session})
    assert wait_until(lambda: usage(keyed, keyed.acme_capped)["budget"]["used"] >= 5, 10)
    budget = usage(keyed, keyed.acme_capped)["budget"]
    assert budget["key"] == "acme_capped" and budget["token_budget"] == 5 and budget["period"] == "day", budget
    with pytest.raises(openai.RateLimitError) as refused:
        capped.chat.completions.create(model="echo", messages=[{"role": "user", "content": "again"}],
                                       extra_headers={"X-Session-Id": session})
    assert refused.value.code == "insufficient_quota" and "of its 5 tokens this day" in str(refused.value)
    retry_after = int(refused.value.response.headers["Retry-After"])
    assert 0 < retry_after <= 86400 and abs(retry_after - budget["renews_in_s"]) < 60
    # Nothing of the refused turn was recorded, and the tenant's other keys go on.
    status, _, state = call(keyed, "GET", "/v1/sessions/" + urllib.parse.quote(session, safe=""), keyed.acme)
    assert status == 200 and state["version"] == 4, state  # opened, input, receipt, reply: the first turn only
    sdk(keyed, keyed.acme).chat.completions.create(model="echo", messages=[{"role": "user", "content": "fine"}],
                                                   extra_headers={"X-Session-Id": session})


def test_jwt_bearer_tokens_from_an_identity_provider(keyed):
    token = mint(keyed.jwt_key, token_claims("acme", "read chat"))
    session = "acme/jwt-" + uuid.uuid4().hex[:6]
    reply = sdk(keyed, token).chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}],
                                                      extra_headers={"X-Session-Id": session})
    assert reply.choices[0].message.content
    assert wait_until(lambda: any(r["key"] == "jwt:bob" for r in usage(keyed, token)["data"]), 10)
    # The token's tenant is its namespace, its scope its roles.
    globex = mint(keyed.jwt_key, token_claims("globex", "read"))
    assert call(keyed, "GET", "/v1/sessions/" + urllib.parse.quote(session, safe=""), globex)[0] == 404
    with pytest.raises(openai.PermissionDeniedError):
        sdk(keyed, globex).chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}],
                                                   extra_headers={"X-Session-Id": "globex/x"})
    # Expired, forged, malformed, for another audience: 401 in OpenAI's shape.
    refused = {
        "expired": mint(keyed.jwt_key, token_claims("acme", "chat", expires_in=-300)),
        "not a JWT signed by the configured key": token[:-8] + ("A" * 8 if not token.endswith("A" * 8) else "B" * 8),
        "not meant for audience": mint(keyed.jwt_key, token_claims("acme", "chat", aud="someone-else")),
        "must name the tenant": mint(keyed.jwt_key, token_claims(None, "chat")),
    }
    for says, bad in refused.items():
        with pytest.raises(openai.AuthenticationError) as denied:
            sdk(keyed, bad).chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}],
                                                    extra_headers={"X-Session-Id": session})
        assert says in str(denied.value), (says, str(denied.value))
    assert call(keyed, "GET", "/v1/sessions", "a.b.c")[0] == 401
    assert token not in keyed.serve.log()


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
