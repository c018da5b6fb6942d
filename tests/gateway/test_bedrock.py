"""statefold's gateway routed to AWS Bedrock (provider bedrock_converse), with the official OpenAI Python SDK as its
client (spec section 6).

The Bedrock is tests/support/fake_bedrock.py: a scripted Converse / ConverseStream server that recomputes every
request's SigV4 signature with botocore's signer and refuses (403) any that does not match, and answers streams in
AWS event-stream frames. Beside it, the scripted OpenAI / Anthropic fake (tests/support/fake_upstream.py) serves the
other clouds, so one session can be routed to OpenAI, Azure OpenAI, Anthropic and Bedrock in turn, and its receipts
name the cloud that served each call.

Sections: 1. the fake itself (its signature check can fail, its frames decode with botocore); 2. Converse: a plain
turn, the model id in the path, credentials from the environment or a profile with a session token; 3.
ConverseStream with usage; 4. a tool round trip, whole and streamed; 5. upstream errors (a Bedrock error, an
exception and a corrupt CRC in the stream); 6. one session across four clouds, then `statefold audit`.

Run by run_sdk_tests.sh beside test_openai_sdk.py (ctest: gateway_sdk_test); it needs STATEFOLD_BIN and
STATEFOLD_BROKERS, and botocore (requirements.txt).
"""

import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

import openai
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer

from gateway_harness import (CLIENT_KEY, FAKE_UPSTREAM, SOURCE_DIR, FakeUpstream, assert_audited, contains_key, http,
                             running_serve, session_header, sha256_hex, tail, wait_until)

FAKE_BEDROCK = SOURCE_DIR / "tests" / "support" / "fake_bedrock.py"
sys.path.insert(0, str(FAKE_BEDROCK.parent))
import fake_bedrock  # noqa: E402  (its frame encoder, checked against botocore's decoder)

REGION = "us-west-2"
# The environment's credentials (long-term keys) and a profile's (temporary, with a session token).
ENV_KEY, ENV_SECRET = "AKIDENV" + uuid.uuid4().hex[:8].upper(), "env-secret-" + uuid.uuid4().hex
PROFILE_KEY, PROFILE_SECRET = "ASIAPROFILE" + uuid.uuid4().hex[:6].upper(), "profile-secret-" + uuid.uuid4().hex
PROFILE_TOKEN = "session-token-" + uuid.uuid4().hex
CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
LLAMA = "meta.llama3-70b-instruct-v1:0"
OTHER_KEY_ENV = "FAKE_CLOUD_KEY"
OTHER_KEY = "sk-cloud-" + uuid.uuid4().hex


def start_fake(script, args, directory):
    port_file = directory / "port"
    log_path = directory / "fake.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, str(script), "--port", "0", "--port-file", str(port_file)] + args,
                                   stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, FAKE_UPSTREAM_VERBOSE="1"))
    assert wait_until(lambda: port_file.exists() or process.poll() is not None, 30), "%s did not start" % script
    assert process.poll() is None, "%s exited: %s" % (script, tail(log_path))
    fake = FakeUpstream(process, int(port_file.read_text().strip()), log_path)
    assert http("GET", fake.url + "/__health")[0] == 200
    return fake


def stop_fake(fake):
    fake.process.terminate()
    try:
        fake.process.wait(10)
    except subprocess.TimeoutExpired:
        fake.process.kill()
        fake.process.wait()


@pytest.fixture(scope="module")
def bedrock_server(tmp_path_factory):
    fake = start_fake(FAKE_BEDROCK, ["--region", REGION, "--credentials", "%s:%s" % (ENV_KEY, ENV_SECRET),
                                     "--credentials", "%s:%s:%s" % (PROFILE_KEY, PROFILE_SECRET, PROFILE_TOKEN)],
                      tmp_path_factory.mktemp("bedrock"))
    yield fake
    stop_fake(fake)


@pytest.fixture(scope="module")
def clouds_server(tmp_path_factory):
    fake = start_fake(FAKE_UPSTREAM, [], tmp_path_factory.mktemp("clouds"))
    yield fake
    stop_fake(fake)


@pytest.fixture
def bedrock(bedrock_server):
    bedrock_server.reset()
    return bedrock_server


@pytest.fixture
def clouds(clouds_server):
    clouds_server.reset()
    return clouds_server


def serve_config(bedrock_port, clouds_port):
    cloud = "http://127.0.0.1:%d" % clouds_port
    return """\
[upstream]
default_endpoint = "openai"

[[upstream.endpoints]]
name = "openai"
provider = "openai_chat"
base_url = "{cloud}/v1"
api_key_env = "{env}"
model = "gpt-4o"
max_retries = 0

[[upstream.endpoints]]
name = "azure"
provider = "openai_chat"
base_url = "{cloud}/openai/deployments/gpt-4o-eu/v1"
api_key_env = "{env}"
auth = "api-key"
model = "azure-gpt-4o"
max_retries = 0

[[upstream.endpoints]]
name = "anthropic"
provider = "anthropic"
base_url = "{cloud}/v1"
api_key_env = "{env}"
model = "claude-sonnet-4"
max_retries = 0

[[upstream.endpoints]]
name = "bedrock"
provider = "bedrock_converse"
base_url = "http://127.0.0.1:{bedrock}"
region = "{region}"
model = "{claude}"
read_timeout_ms = 5000
max_retries = 1
backoff_base_ms = 50

[[upstream.endpoints]]
name = "bedrock-profile"
provider = "bedrock_converse"
base_url = "http://127.0.0.1:{bedrock}"
region = "{region}"
aws_profile = "statefold-test"
model = "{llama}"
max_retries = 0
""".format(cloud=cloud, env=OTHER_KEY_ENV, bedrock=bedrock_port, region=REGION, claude=CLAUDE, llama=LLAMA)


@pytest.fixture(scope="module")
def serve(bedrock_server, clouds_server, tmp_path_factory):
    brokers = os.environ.get("STATEFOLD_BROKERS")
    if not brokers:
        pytest.fail("STATEFOLD_BROKERS is not set: these tests need a real Kafka broker")
    binary = os.environ.get("STATEFOLD_BIN") or str(SOURCE_DIR / "build" / "dev" / "tools" / "statefold" / "statefold")
    directory = tmp_path_factory.mktemp("serve-bedrock")
    config_path = directory / "serve.toml"
    config_path.write_text(serve_config(bedrock_server.port, clouds_server.port))
    credentials = directory / "aws-credentials"
    credentials.write_text("[default]\naws_access_key_id = AKIDNOTUSED\naws_secret_access_key = wrong\n\n"
                           "[statefold-test]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                           "aws_session_token = %s\n" % (PROFILE_KEY, PROFILE_SECRET, PROFILE_TOKEN))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STATEFOLD_", "AWS_"))}
    env.update({OTHER_KEY_ENV: OTHER_KEY, "AWS_ACCESS_KEY_ID": ENV_KEY, "AWS_SECRET_ACCESS_KEY": ENV_SECRET,
                "AWS_SHARED_CREDENTIALS_FILE": str(credentials)})
    with running_serve(binary, brokers, "gateway-bedrock-" + uuid.uuid4().hex[:12], directory / "store", directory,
                       config_path, env) as instance:
        yield instance


@pytest.fixture
def client(serve):
    with openai.OpenAI(base_url=serve.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=60) as c:
        yield c


def converse_turns(body):
    """[(role, [block kinds and texts])] of a Converse request body."""
    return [(m["role"], [next(iter(b.items())) for b in m["content"]]) for m in body["messages"]]


def assert_signed(request, key):
    """botocore's signer, over the same request and credentials, computed the Authorization header it carried."""
    assert request["signature"] == {"ok": True, "error": None}, request["signature"]
    assert request["access_key"] == key
    assert request["headers"]["x-amz-content-sha256"] == hashlib.sha256(request["body"].encode()).hexdigest()


# ------------------------------------------------------------------------------------------------ 1. the fake itself

def test_the_fake_refuses_what_botocore_does_not_sign_alike(bedrock):
    body = json.dumps({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}).encode()
    url = bedrock.url + "/model/%s/converse" % urllib.parse.quote(CLAUDE, safe="")

    def send(secret, token=None, tamper=False):
        request = AWSRequest(method="POST", url=url, data=body,
                             headers={"Content-Type": "application/json",
                                      "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
        SigV4Auth(Credentials(ENV_KEY, secret, token), "bedrock", REGION).add_auth(request)
        prepared = request.prepare()
        data = body.replace(b"hi", b"ho") if tamper else body
        raw = urllib.request.Request(url, data=data, method="POST", headers=dict(prepared.headers))
        try:
            with urllib.request.urlopen(raw, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    status, reply = send(ENV_SECRET)
    assert status == 200, reply
    assert reply["output"]["message"]["content"] == [{"text": "echo: hi"}]
    assert send("not-the-secret")[0] == 403
    assert send(ENV_SECRET, tamper=True)[0] == 403  # the body is not the one signed
    records = bedrock.requests()
    assert [r["signature"]["ok"] for r in records] == [True, False, False]
    assert "signature mismatch" in records[1]["signature"]["error"]
    assert records[0]["model"] == CLAUDE


def test_the_fakes_frames_decode_with_botocore():
    stream = EventStreamBuffer()
    stream.add_data(fake_bedrock.event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hé"}}) +
                    fake_bedrock.exception_frame("throttlingException", "slow down"))
    messages = list(stream)
    assert messages[0].headers[":event-type"] == "contentBlockDelta"
    assert json.loads(messages[0].payload) == {"contentBlockIndex": 0, "delta": {"text": "hé"}}
    assert messages[1].headers[":message-type"] == "exception"
    assert json.loads(messages[1].payload) == {"message": "slow down"}


# ------------------------------------------------------------------------------------------------ 2. Converse

def test_plain_turns_are_signed_and_the_model_is_in_the_path(serve, bedrock, client):
    session = serve.new_session("bedrock")
    bedrock.script({"reply": "Paris.", "usage": {"prompt_tokens": 31, "completion_tokens": 2}},
                   {"reply": "About two million.", "usage": {"prompt_tokens": 45, "completion_tokens": 4}})
    first = client.chat.completions.create(
        model=CLAUDE, extra_headers=session_header(session), temperature=0.3, max_tokens=300,
        messages=[{"role": "system", "content": "You are a terse geography tutor."},
                  {"role": "user", "content": "Capital of France?"}])
    assert first.choices[0].message.content == "Paris."
    assert first.choices[0].finish_reason == "stop"
    assert (first.usage.prompt_tokens, first.usage.completion_tokens) == (31, 2)
    second = client.chat.completions.create(model=CLAUDE, extra_headers=session_header(session),
                                            messages=[{"role": "user", "content": "Population?"}])
    assert second.choices[0].message.content == "About two million."

    requests = bedrock.requests()
    assert len(requests) == 2
    for r in requests:
        assert r["path"] == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse", r["path"]
        assert r["model"] == CLAUDE and not r["stream"]
        assert_signed(r, ENV_KEY)
        assert "x-amz-security-token" not in r["headers"]  # long-term keys from the environment
        assert "model" not in r["json"]
        assert r["json"]["system"] == [{"text": "You are a terse geography tutor."}]
    assert requests[0]["json"]["inferenceConfig"] == {"maxTokens": 300, "temperature": 0.3}
    assert converse_turns(requests[1]["json"]) == [
        ("user", [("text", "Capital of France?")]), ("assistant", [("text", "Paris.")]),
        ("user", [("text", "Population?")])]

    receipts = serve.receipts(session)
    assert [(r["provider"], r["endpoint"], r["model"], r["status"]) for r in receipts] == [
        ("bedrock_converse", "bedrock", CLAUDE, 200)] * 2
    assert [r["usage"]["input_tokens"] for r in receipts] == [31, 45]
    for receipt, request in zip(receipts, requests):
        assert receipt["request_hash"] == sha256_hex(request["body"])
    status, _, overview = serve.get("/v1/sessions/%s/context?provider=bedrock_converse" % session)
    assert status == 200, overview
    assert overview["provider"] == "bedrock_converse"
    assert overview["body"]["system"] == [{"text": "You are a terse geography tutor."}]


def test_a_profile_with_a_session_token(serve, bedrock, client):
    session = serve.new_session("bedrock-profile")
    bedrock.script({"reply": "Hola."})
    reply = client.chat.completions.create(model=LLAMA, extra_headers=session_header(session),
                                           messages=[{"role": "user", "content": "Say hi in Spanish."}])
    assert reply.choices[0].message.content == "Hola."
    request, = bedrock.requests()
    assert request["path"] == "/model/meta.llama3-70b-instruct-v1%3A0/converse"
    assert_signed(request, PROFILE_KEY)
    assert request["headers"]["x-amz-security-token"] == PROFILE_TOKEN
    assert serve.receipts(session)[0]["endpoint"] == "bedrock-profile"
    # No secret in what serve logged.
    log = serve.log()
    for secret in (ENV_SECRET, PROFILE_SECRET, PROFILE_TOKEN):
        assert secret not in log


# ------------------------------------------------------------------------------------------------ 3. ConverseStream

def test_streamed_turn_with_usage(serve, bedrock, client):
    session = serve.new_session("bedrock-stream")
    reply = "alpha beta gamma delta"
    bedrock.script({"reply": reply, "chunk_delay_ms": 30, "usage": {"prompt_tokens": 12, "completion_tokens": 4}})
    raw = client.chat.completions.with_raw_response.create(
        model=CLAUDE, extra_headers=session_header(session), stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Four Greek letters."}])
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == reply
    assert len(pieces) == 4
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (12, 4)

    request, = bedrock.requests()
    assert request["path"] == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
    assert request["stream"] and "stream" not in request["json"]
    assert request["headers"]["accept"] == "application/vnd.amazon.eventstream"
    assert_signed(request, ENV_KEY)
    state = serve.session(session)
    assert [(m["role"], m["content"]) for m in state["messages"]] == [("user", "Four Greek letters."),
                                                                      ("assistant", reply)]
    receipt, = serve.receipts(session)
    assert (receipt["provider"], receipt["endpoint"], receipt["status"]) == ("bedrock_converse", "bedrock", 200)
    assert (receipt["usage"]["input_tokens"], receipt["usage"]["output_tokens"]) == (12, 4)
    assert receipt["request_hash"] == sha256_hex(request["body"])
    assert raw.headers["x-statefold-request-hash"] == receipt["request_hash"]


# ------------------------------------------------------------------------------------------------ 4. tools

WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_tool_round_trip(serve, bedrock, client, stream):
    session = serve.new_session("bedrock-tools")
    bedrock.script({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "tooluse_p1"}]},
                   {"reply": "It is 18C and sunny in Paris."})
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        chunks = list(client.chat.completions.create(model=CLAUDE, extra_headers=session_header(session),
                                                     tools=WEATHER, tool_choice="required", stream=True,
                                                     messages=messages))
        calls = [t for c in chunks if c.choices for t in (c.choices[0].delta.tool_calls or [])]
        assert calls[0].id == "tooluse_p1" and calls[0].function.name == "get_weather"
        assert "".join(t.function.arguments or "" for t in calls) == '{"city":"Paris"}'
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == \
            ["tool_calls"]
    else:
        first = client.chat.completions.create(model=CLAUDE, extra_headers=session_header(session), tools=WEATHER,
                                               tool_choice="required", messages=messages)
        assert first.choices[0].finish_reason == "tool_calls"
        call, = first.choices[0].message.tool_calls
        assert (call.id, call.function.name, json.loads(call.function.arguments)) == \
            ("tooluse_p1", "get_weather", {"city": "Paris"})
    second = client.chat.completions.create(
        model=CLAUDE, extra_headers=session_header(session), tools=WEATHER,
        messages=[{"role": "tool", "tool_call_id": "tooluse_p1", "content": "18C, sunny"}])
    assert second.choices[0].message.content == "It is 18C and sunny in Paris."

    first_request, second_request = bedrock.requests()
    assert first_request["json"]["toolConfig"] == {
        "toolChoice": {"any": {}},
        "tools": [{"toolSpec": {"name": "get_weather", "description": "Current weather for a city", "inputSchema": {
            "json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}}]}
    assert converse_turns(second_request["json"]) == [
        ("user", [("text", "Weather in Paris?")]),
        ("assistant", [("toolUse", {"input": {"city": "Paris"}, "name": "get_weather", "toolUseId": "tooluse_p1"})]),
        ("user", [("toolResult", {"toolUseId": "tooluse_p1", "content": [{"text": "18C, sunny"}]})])]
    assert "toolChoice" not in second_request["json"]["toolConfig"]
    for r in (first_request, second_request):
        assert_signed(r, ENV_KEY)
    assert [r["status"] for r in serve.receipts(session)] == [200, 200]


# ------------------------------------------------------------------------------------------------ 5. errors

def test_a_bedrock_error_goes_back_with_its_message(serve, bedrock, client):
    session = serve.new_session("bedrock-error")
    bedrock.script({"status": 400, "message": "The provided model identifier is invalid."})
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=CLAUDE, extra_headers=session_header(session),
                                       messages=[{"role": "user", "content": "Hello?"}])
    assert "The provided model identifier is invalid." in str(raised.value)
    assert len(bedrock.requests()) == 1  # a 400 is not retried
    receipt, = serve.receipts(session)
    assert (receipt["endpoint"], receipt["provider"], receipt["status"]) == ("bedrock", "bedrock_converse", 400)
    assert "The provided model identifier is invalid." in receipt["error"]


def test_throttling_is_retried(serve, bedrock, client):
    session = serve.new_session("bedrock-throttled")
    bedrock.script({"status": 429, "message": "Too many requests, please wait before trying again."},
                   {"reply": "Finally."})
    reply = client.chat.completions.create(model=CLAUDE, extra_headers=session_header(session),
                                           messages=[{"role": "user", "content": "Now?"}])
    assert reply.choices[0].message.content == "Finally."
    first, second = bedrock.requests()
    assert first["signature"]["ok"] and second["signature"]["ok"]  # each attempt signed (again)
    assert first["body"] == second["body"]


@pytest.mark.parametrize("fault", ["exception", "corrupt_crc"])
def test_a_broken_stream_is_an_upstream_error(serve, bedrock, client, fault):
    session = serve.new_session("bedrock-" + fault.replace("_", "-"))
    action = {"reply": "one two three four"}
    if fault == "exception":
        action["exception"] = {"type": "throttlingException", "message": "Too many tokens, please wait.", "after": 3}
    else:
        action["corrupt_crc"] = 2
    bedrock.script(action)
    pieces, failure = [], None
    try:
        for chunk in client.chat.completions.create(model=CLAUDE, extra_headers=session_header(session), stream=True,
                                                    messages=[{"role": "user", "content": "Count."}]):
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
    except openai.APIError as e:
        failure = e
    assert failure is not None, "the stream ended without an error after %s" % pieces
    expected = "rate limited: Too many tokens, please wait." if fault == "exception" else "message CRC mismatch"
    assert expected in str(failure), str(failure)
    receipt, = serve.receipts(session)
    assert (receipt["endpoint"], receipt["provider"]) == ("bedrock", "bedrock_converse")
    assert expected in receipt["error"], receipt
    # The failed turn left no assistant reply.
    assert [m["role"] for m in serve.session(session)["messages"]] == ["user"]


# ------------------------------------------------------------------------------------------------ 6. four clouds

def test_one_session_across_four_clouds(serve, bedrock, clouds, client):
    session = serve.new_session("clouds")
    clouds.script({"reply": "OpenAI here."}, {"reply": "Azure here."}, {"reply": "Anthropic here."})
    bedrock.script({"reply": "Bedrock here."})
    turns = [("gpt-4o", "openai"), ("azure-gpt-4o", "azure"), ("claude-sonnet-4", "anthropic"), (CLAUDE, "bedrock")]
    for i, (model, _) in enumerate(turns):
        reply = client.chat.completions.create(model=model, extra_headers=session_header(session),
                                               messages=[{"role": "user", "content": "Who are you, %d?" % i}])
        assert reply.choices[0].message.content.endswith("here.")

    receipts = serve.receipts(session)
    assert [(r["endpoint"], r["provider"], r["model"], r["status"]) for r in receipts] == [
        ("openai", "openai_chat", "gpt-4o", 200), ("azure", "openai_chat", "azure-gpt-4o", 200),
        ("anthropic", "anthropic", "claude-sonnet-4", 200), ("bedrock", "bedrock_converse", CLAUDE, 200)]
    openai_call, azure_call, anthropic_call = clouds.requests()
    bedrock_call, = bedrock.requests()
    # Each receipt's hash is of the bytes the cloud that served it received.
    for receipt, request in zip(receipts, (openai_call, azure_call, anthropic_call, bedrock_call)):
        assert receipt["request_hash"] == sha256_hex(request["body"])
    assert openai_call["path"] == "/v1/chat/completions" and openai_call["auth"]["header"] == "authorization"
    assert azure_call["path"] == "/openai/deployments/gpt-4o-eu/v1/chat/completions"
    assert azure_call["auth"]["header"] == "api-key"
    assert anthropic_call["path"] == "/v1/messages" and anthropic_call["auth"]["header"] == "x-api-key"
    assert {r["auth"]["sha256"] for r in (openai_call, azure_call, anthropic_call)} == {sha256_hex(OTHER_KEY)}
    assert_signed(bedrock_call, ENV_KEY)
    # Bedrock got the whole conversation, the other clouds' replies included.
    assert converse_turns(bedrock_call["json"]) == [
        ("user", [("text", "Who are you, 0?")]), ("assistant", [("text", "OpenAI here.")]),
        ("user", [("text", "Who are you, 1?")]), ("assistant", [("text", "Azure here.")]),
        ("user", [("text", "Who are you, 2?")]), ("assistant", [("text", "Anthropic here.")]),
        ("user", [("text", "Who are you, 3?")])]
    assert not contains_key(bedrock_call["json"], "model")

    # statefold audit re-renders every receipt, Bedrock's included, from the log.
    assert assert_audited(serve, [session]) == 1
