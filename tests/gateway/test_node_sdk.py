"""statefold's gateway with the official OpenAI Node SDK (npm `openai`, pinned in node/package.json) as its client.

Each test scripts the fake upstream, runs one scenario of node/scenarios.mjs (`node scenarios.mjs NAME`: the SDK used
as its users write it, printing what it saw as JSON), then checks that against what the fake received (each message
once, whole conversations resent by runTools and cookbook loops recognised) and what the session recorded
(GET /v1/sessions/{id}: messages, receipts). Issue 12: the defects its reporter found with this SDK (resent
histories recorded again, limits cut to 4096, retries unsafe...) are reproduced here through it.

Run by run_sdk_tests.sh (ctest: gateway_sdk_test), which installs the package with `npm ci` into BUILD_DIR/gateway-node
(STATEFOLD_NODE_DIR) beside a copy of scenarios.mjs; serve and the fake are the shared fixtures of conftest.py.
"""

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from gateway_harness import (CLIENT_KEY, MAX_RETRIES, STREAMED_REPLIES, assert_audited, assert_each_message_once,
                             assert_streamed_twice_recorded_once, chat_roles, chat_turns, responses_turns,
                             script_streamed_twice, sha256_hex, stored_turns, text_of)

SCENARIOS = Path(__file__).resolve().parent / "node" / "scenarios.mjs"


@pytest.fixture(scope="session")
def node_dir():
    """The directory with node_modules/openai (npm ci of node/package-lock.json) and a copy of scenarios.mjs: Node
    resolves `import 'openai'` from the script's own directory, so the script runs from there."""
    directory = os.environ.get("STATEFOLD_NODE_DIR")
    if not directory:
        pytest.fail("STATEFOLD_NODE_DIR is not set: run these tests with tests/gateway/run_sdk_tests.sh, which "
                    "installs the Node SDK (npm ci) into BUILD_DIR/gateway-node")
    directory = Path(directory)
    assert (directory / "node_modules" / "openai" / "package.json").exists(), \
        "no openai package under %s (run_sdk_tests.sh installs it)" % directory
    node = shutil.which(os.environ.get("NODE", "node"))
    assert node, "node not found"
    shutil.copyfile(SCENARIOS, directory / SCENARIOS.name)
    return directory, node


@pytest.fixture
def run_node(node_dir, serve):
    directory, node = node_dir

    def run(name, timeout=120, **args):
        env = dict(os.environ, STATEFOLD_URL=serve.url, STATEFOLD_CLIENT_KEY=CLIENT_KEY, SCENARIO_ARGS=json.dumps(args))
        done = subprocess.run([node, str(directory / SCENARIOS.name), name], cwd=directory, env=env,
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, "node scenario %s exited %d:\n%s\n%s" % (name, done.returncode, done.stdout,
                                                                                done.stderr)
        return json.loads(done.stdout.strip().splitlines()[-1])
    return run


@pytest.fixture(scope="module", autouse=True)
def sessions_of_this_file(serve):
    """The sessions this file's tests open (serve.sessions from here on), for the audit at its end."""
    start = len(serve.sessions)
    return lambda: serve.sessions[start:]


# ------------------------------------------------------------------------------------------------ chat

def test_chat_through_a_session(serve, fake, run_node):
    session, meta = serve.new_session("node-chat"), serve.new_session("node-meta")
    reply1, reply2 = "Paris is the capital of France.", "About two million people live there."
    fake.script({"reply": reply1, "usage": {"prompt_tokens": 17, "completion_tokens": 7}},
                {"reply": reply2, "usage": {"prompt_tokens": 41, "completion_tokens": 8}},
                {"reply": "first"}, {"reply": "second"})
    out = run_node("chat", session=session, metaSession=meta)

    first, second = out["turns"]
    assert (first["object"], first["content"], first["finish"]) == ("chat.completion", reply1, "stop")
    assert first["usage"] == {"prompt": 17, "completion": 7, "total": 24}
    assert (second["content"], second["usage"]) == (reply2, {"prompt": 41, "completion": 8, "total": 49})
    assert first["headers"]["x-session-id"] == second["headers"]["x-session-id"] == session
    assert int(second["headers"]["x-statefold-state-version"]) > int(first["headers"]["x-statefold-state-version"])

    requests = fake.requests()
    assert len(requests) == 4, [r["path"] for r in requests]
    # The SDK sent one new message; the upstream got the whole conversation, the system prompt first.
    assert chat_turns(requests[1]["json"]) == [("system", "You are a terse geography tutor."),
                                               ("user", "What is the capital of France?"), ("assistant", reply1),
                                               ("user", "And its population?")]
    for turn, request in zip(out["turns"], requests):
        assert turn["headers"]["x-statefold-request-hash"] == sha256_hex(request["body"])
    state = serve.session(session)
    assert state["system_prompt"] == "You are a terse geography tutor."
    assert stored_turns(state) == [("user", "What is the capital of France?"), ("assistant", reply1),
                                   ("user", "And its population?"), ("assistant", reply2)]
    receipts = serve.receipts(session)
    assert [(r["status"], r["usage"]["input_tokens"], r["usage"]["output_tokens"]) for r in receipts] == \
        [(200, 17, 7), (200, 41, 8)]
    assert [r["request_hash"] for r in receipts] == [t["headers"]["x-statefold-request-hash"] for t in out["turns"]]

    # metadata.session_id names the session when there is no header; it does not go upstream.
    assert [m["content"] for m in out["meta"]] == ["first", "second"]
    assert out["meta"][1]["headers"]["x-session-id"] == meta
    assert chat_turns(requests[3]["json"]) == [("user", "one"), ("assistant", "first"), ("user", "two")]
    assert "metadata" not in requests[3]["json"]
    assert serve.session(meta)["counts"]["messages"] == 4
    # Neither: the SDK's BadRequestError with the gateway's code, and no upstream call.
    assert (out["missing"]["class"], out["missing"]["status"], out["missing"]["code"]) == \
        ("BadRequestError", 400, "missing_session"), out["missing"]


def test_streaming_with_usage(serve, fake, run_node):
    session = serve.new_session("node-stream")
    reply, latin = STREAMED_REPLIES
    script_streamed_twice(fake)
    out = run_node("stream", session=session)

    assert out["headers"]["content-type"].startswith("text/event-stream")
    assert out["headers"]["x-session-id"] == session
    chunks = out["chunks"]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    content = [c["content"] for c in chunks if c["content"]]
    assert "".join(content) == reply and len(content) >= 4, content
    assert [c["finish"] for c in chunks if c["finish"]] == ["stop"]
    # include_usage: the last chunk has no choices and the usage; no other chunk has usage.
    assert chunks[-1]["choices"] == 0 and chunks[-1]["usage"] == {"prompt": 12, "completion": 5, "total": 17}
    assert all(c["usage"] is None for c in chunks[:-1])
    assert len({c["id"] for c in chunks}) == 1
    # The stream helper: its content events and its final completion, usage included.
    helper = out["helper"]
    assert "".join(helper["deltas"]) == helper["content"] == latin
    assert helper["usage"] == {"prompt": 30, "completion": 3, "total": 33}

    requests, receipts = assert_streamed_twice_recorded_once(serve, fake, session)
    assert receipts[0]["request_hash"] == out["headers"]["x-statefold-request-hash"] == sha256_hex(requests[0]["body"])


# ------------------------------------------------------------------------------------------------ whole histories

def test_run_tools_resends_the_conversation_and_each_message_is_recorded_once(serve, fake, run_node):
    """Issue 12, defect 1, through `client.chat.completions.runTools`: each round sends the whole conversation so
    far (the assistant's tool calls as the SDK returned them, the tool results it made); the session records each
    message once and the upstream gets each once."""
    session = serve.new_session("node-runtools")
    ids = ["call_" + uuid.uuid4().hex[:12] for _ in range(4)]
    final, tomorrow = "Paris: 21 C, Oslo: -3 C, noon in Oslo.", "Tomorrow: Paris 21 C too."
    fake.script({"tool_calls": [{"id": ids[0], "name": "get_weather", "arguments": {"city": "Paris"}},
                                {"id": ids[1], "name": "get_weather", "arguments": {"city": "Oslo"}}]},
                {"tool_calls": [{"id": ids[2], "name": "get_time", "arguments": {"city": "Oslo"}}]},
                {"reply": final},
                {"tool_calls": [{"id": ids[3], "name": "get_weather", "arguments": {"city": "Paris"}}]},
                {"reply": tomorrow, "chunk_delay_ms": 5})
    out = run_node("runTools", session=session)

    assert out["called"] == [["get_weather", "Paris"], ["get_weather", "Oslo"], ["get_time", "Oslo"],
                             ["get_weather", "Paris"]]
    assert out["firstRound"]["content"] == final and out["firstRound"]["calls"] == 3
    assert out["firstRound"]["roles"] == ["system", "user", "assistant", "tool", "tool", "assistant", "tool",
                                          "assistant"]
    assert out["second"]["content"] == "".join(out["second"]["deltas"]) == tomorrow
    assert out["second"]["calls"] == 2

    requests = fake.requests()
    assert len(requests) == 5, "runTools made %d upstream calls" % len(requests)
    assert [chat_roles(r["json"]) for r in requests] == [
        ["system", "user"],
        ["system", "user", "assistant", "tool", "tool"],
        ["system", "user", "assistant", "tool", "tool", "assistant", "tool"],
        ["system", "user", "assistant", "tool", "tool", "assistant", "tool", "assistant", "user"],
        ["system", "user", "assistant", "tool", "tool", "assistant", "tool", "assistant", "user", "assistant",
         "tool"]]
    assert [r["json"].get("stream", False) for r in requests] == [False] * 3 + [True] * 2
    for r in requests:
        assert_each_message_once(r["json"])
    last = requests[-1]["json"]["messages"]
    assert last[9]["tool_calls"][0]["id"] == ids[3] and last[10]["tool_call_id"] == ids[3]
    assert [c["id"] for c in last[2]["tool_calls"]] == ids[:2]
    assert [json.loads(c["function"]["arguments"]) for c in last[2]["tool_calls"]] == [{"city": "Paris"},
                                                                                        {"city": "Oslo"}]
    assert [(m["tool_call_id"], json.loads(text_of(m["content"]))) for m in last[3:5]] == [
        (ids[0], {"city": "Paris", "temp_c": 21}), (ids[1], {"city": "Oslo", "temp_c": -3})]
    assert (last[6]["tool_call_id"], text_of(last[6]["content"])) == (ids[2], "12:00 in Oslo")
    assert (last[7]["role"], text_of(last[7]["content"])) == ("assistant", final)

    state = serve.session(session)
    assert state["system_prompt"] == "You use tools."
    assert [m["role"] for m in state["messages"]] == ["user", "assistant", "tool", "tool", "assistant", "tool",
                                                      "assistant", "user", "assistant", "tool", "assistant"], \
        state["messages"]
    assert (state["counts"]["messages"], state["counts"]["tool_calls"], state["counts"]["receipts"]) == (11, 4, 5)
    assert [r["status"] for r in serve.receipts(session)] == [200] * 5


def test_a_cookbook_loop_that_resends_the_whole_array(serve, fake, run_node):
    """The loop every cookbook shows: `messages.push(completion.choices[0].message)` (the SDK's own object, its
    `refusal: null` and all) and the whole array sent each turn, then a tool round trip on the same array."""
    session = serve.new_session("node-loop")
    turns = 8
    call_id = "call_" + uuid.uuid4().hex[:12]
    fake.script(*[{"reply": "Answer %d." % k} for k in range(turns)],
                {"tool_calls": [{"id": call_id, "name": "get_weather", "arguments": {"city": "Paris"}}]},
                {"reply": "Sunny in Paris."})
    out = run_node("manualLoop", session=session, turns=turns)

    assert out["replies"] == ["Answer %d." % k for k in range(turns)]
    assert out["toolCalls"] == [{"id": call_id, "name": "get_weather", "arguments": {"city": "Paris"}}]
    assert out["final"] == "Sunny in Paris."
    assert out["sent"] == 1 + 2 * turns + 4

    requests = fake.requests()
    assert len(requests) == turns + 2
    for k in range(turns):
        expected = [("system", "You are terse.")]
        for j in range(k):
            expected += [("user", "Question %d?" % j), ("assistant", "Answer %d." % j)]
        assert chat_turns(requests[k]["json"]) == expected + [("user", "Question %d?" % k)], k
    for r in requests:
        assert_each_message_once(r["json"])
    assert chat_roles(requests[-1]["json"])[-3:] == ["user", "assistant", "tool"]
    assert len(requests[-1]["json"]["messages"]) == 1 + 2 * turns + 3

    state = serve.session(session)
    assert state["counts"]["messages"] == 2 * turns + 4, state["counts"]
    assert [m["role"] for m in state["messages"]] == ["user", "assistant"] * turns + ["user", "assistant", "tool",
                                                                                      "assistant"]
    assert state["counts"]["receipts"] == turns + 2


def test_a_loop_retrying_a_failed_turn_records_its_question_once(serve, fake, run_node):
    """Issue 12, defect 3: after a 500 the user sends the same array again; the question the failed turn recorded is
    recognised, and the upstream gets it once."""
    session = serve.new_session("node-retry")
    fake.script({"reply": "Hi."}, {"status": 500, "repeat": MAX_RETRIES + 1}, {"reply": "Now is fine."})
    out = run_node("retryAfterFailure", session=session)
    assert (out["failed"]["class"], out["failed"]["status"]) == ("InternalServerError", 500), out["failed"]
    assert out["retried"] == "Now is fine."
    assert stored_turns(serve.session(session)) == [("user", "Hello"), ("assistant", "Hi."), ("user", "And now?"),
                                                    ("assistant", "Now is fine.")]
    last = fake.requests()[-1]["json"]
    assert chat_turns(last) == [("user", "Hello"), ("assistant", "Hi."), ("user", "And now?")]
    assert [r["status"] for r in serve.receipts(session)] == [200, 500, 200]


def test_a_diverging_history_is_a_409(serve, fake, run_node):
    session = serve.new_session("node-diverged")
    fake.script({"reply": "Madrid? No: Paris."})
    out = run_node("diverged", session=session)
    assert out["first"] == "Madrid? No: Paris."
    for refused in (out["edited"], out["prompt"]):
        assert (refused["class"], refused["status"], refused["code"]) == ("ConflictError", 409, "history_diverged"), \
            refused
        assert refused["shouldRetry"] == "false"
        assert "fork" in refused["message"], refused["message"]
    assert len(fake.requests()) == 1
    state = serve.session(session)
    assert (state["system_prompt"], state["counts"]["messages"]) == ("You are terse.", 2)


# ------------------------------------------------------------------------------------------------ retries

def test_idempotency_key_replays_the_stored_answer(serve, fake, run_node):
    """Issue 12, defect 4: the same Idempotency-Key again answers from the log (no upstream call), streamed or not,
    with x-statefold-idempotent-replay: true; on Responses the same response id."""
    session = serve.new_session("node-idem")
    fake.script({"reply": "The first and only answer.", "usage": {"prompt_tokens": 10, "completion_tokens": 5}},
                {"reply": "Responses once.", "usage": {"prompt_tokens": 20, "completion_tokens": 2}})
    out = run_node("idempotency", session=session, chatKey="chat-" + uuid.uuid4().hex,
                   responsesKey="resp-" + uuid.uuid4().hex)
    one, two = out["chat"]
    assert one["content"] == two["content"] == out["streamed"] == "The first and only answer."
    assert one["usage"] == two["usage"] == {"prompt": 10, "completion": 5, "total": 15}
    assert "x-statefold-idempotent-replay" not in one["headers"]
    assert two["headers"]["x-statefold-idempotent-replay"] == "true"
    r1, r2 = out["responses"]
    assert r1["id"] == r2["id"] and r1["text"] == r2["text"] == "Responses once."
    assert r1["usage"]["input_tokens"] == r2["usage"]["input_tokens"] == 20
    assert r2["headers"]["x-statefold-idempotent-replay"] == "true"
    assert out["attempts"] == 5
    assert len(fake.requests()) == 2, "the upstream was called again"
    state = serve.session(session)
    assert (state["counts"]["messages"], state["counts"]["receipts"]) == (4, 2), state["counts"]


def test_an_idempotency_key_reused_on_another_request_is_refused(serve, fake, run_node):
    session = serve.new_session("node-idem-reused")
    fake.script({"reply": "Paris."}, {"reply": "Lima."})
    out = run_node("idempotencyKeyReused", session=session, key="turn-" + uuid.uuid4().hex)
    assert out["first"] == "Paris."
    assert len(fake.requests()) == 1
    assert stored_turns(serve.session(session)) == [("user", "What is the capital of France?"),
                                                    ("assistant", "Paris.")]
    assert out["second"].get("status") == 422, out["second"]
    assert len(fake.requests()) == 1, "the other request reached the upstream"
    assert len(serve.session(session)["messages"]) == 2, "the other request was recorded"


def test_the_sdks_own_retry_after_a_timeout_is_the_same_turn(serve, fake, run_node):
    """Issue 12, defect 4: the SDK times out (1.5 s) while the upstream takes 2.5 s and retries by itself with the
    request's Idempotency-Key: the retry waits for the first attempt (or replays it), one upstream call, one turn."""
    session = serve.new_session("node-timeout")
    key = "turn-" + uuid.uuid4().hex
    fake.script({"reply": "Worth the wait.", "delay_ms": 2500}, {"reply": "a second, paid call"})
    out = run_node("timeoutRetry", session=session, key=key, timeoutMs=1500)
    assert out["content"] == "Worth the wait."
    attempts = out["attempts"]
    assert len(attempts) >= 2, "the SDK did not time out and retry: %s" % attempts
    assert [a["idempotencyKey"] for a in attempts] == [key] * len(attempts)
    assert attempts[1]["retryCount"] == "1"
    assert out["headers"]["x-statefold-idempotent-replay"] == "true"
    assert len(fake.requests()) == 1, "the retry called the upstream again"
    state = serve.session(session)
    assert stored_turns(state) == [("user", "Slow question."), ("assistant", "Worth the wait.")]
    assert state["counts"]["receipts"] == 1


# ------------------------------------------------------------------------------------------------ limits, errors

def test_output_limits_above_4096_and_unknown_parameters_reach_the_upstream(serve, fake, run_node):
    """Issue 12, defect 2: max_completion_tokens 16000, max_tokens 8192 and max_output_tokens 50000 were sent as
    4096. Defect 11: `verbosity` and `top_k` were refused with 400; to an OpenAI-compatible endpoint they go as
    given."""
    session = serve.new_session("node-limits")
    fake.script({"reply": "l1"}, {"reply": "l2"}, {"reply": "l3"})
    out = run_node("outputLimits", session=session)
    assert out["responsesMaxOutputTokens"] == 50000
    bodies = [r["json"] for r in fake.requests()]
    assert bodies[0]["max_completion_tokens"] == 16000, bodies[0]
    assert (bodies[0]["verbosity"], bodies[0]["top_k"]) == ("low", 5), bodies[0]
    assert bodies[1]["max_completion_tokens"] == 8192 and "max_tokens" not in bodies[1], bodies[1]
    assert bodies[2]["max_output_tokens"] == 50000, bodies[2]
    renders = [json.loads(r["render"]) for r in serve.receipts(session)]
    assert [(r["max_output_tokens"], r["output_limit"]) for r in renders] == \
        [(16000, 16000), (8192, 8192), (50000, 50000)], renders


def test_upstream_errors_surface_as_the_sdks_error_classes(serve, fake, run_node):
    """A client with the SDK's default retries (2): the gateway has retried the upstream already and says
    x-should-retry: false, so the SDK sends each request once and raises RateLimitError / InternalServerError;
    each failed turn's question is in the session once, with a failed receipt."""
    session = serve.new_session("node-errors")
    fake.script({"status": 429, "repeat": MAX_RETRIES + 1}, {"status": 500, "repeat": 3 * (MAX_RETRIES + 1)})
    out = run_node("errors", session=session)
    expected = {"rateLimited": ("RateLimitError", 429, 1), "serverError": ("InternalServerError", 500, 2),
                "streamed": ("InternalServerError", 500, 3), "responses": ("InternalServerError", 500, 4)}
    for name, (cls, status, attempts) in expected.items():
        error = out[name]
        assert (error["class"], error["status"]) == (cls, status), (name, error)
        assert error["shouldRetry"] == "false" and error["type"] and str(status) in error["message"], (name, error)
        assert out[name + "Attempts"] == attempts, "the SDK retried %s: %s" % (name, out)
    assert out["rateLimited"]["type"] == "rate_limit_error"
    # Issue 12, defect 7: errors outside the turn routes have OpenAI's shape too, so the SDK keeps their message.
    assert (out["noSession"]["class"], out["noSession"]["status"]) == ("NotFoundError", 404), out["noSession"]
    assert "no session %s-nobody" % session in out["noSession"]["error"]["message"], out["noSession"]
    assert out["noSession"]["type"] and out["noSession"]["message"].startswith("404 "), out["noSession"]
    assert (out["noRoute"]["class"], out["noRoute"]["status"]) == ("NotFoundError", 404), out["noRoute"]
    assert "POST /v1/embeddings" in out["noRoute"]["error"]["message"], out["noRoute"]
    assert len(fake.requests()) == 4 * (MAX_RETRIES + 1)
    state = serve.session(session)
    assert stored_turns(state) == [("user", "Busy?"), ("user", "Will this work?"), ("user", "Stream please."),
                                   ("user", "Respond?")]
    assert [r["status"] for r in serve.receipts(session)] == [429, 500, 500, 500]


# ------------------------------------------------------------------------------------------------ Responses

def test_responses_chain_by_previous_response_id(serve, fake, run_node):
    call_id = "call_" + uuid.uuid4().hex[:12]
    fake.script({"reply": "Seven is prime.", "usage": {"prompt_tokens": 9, "completion_tokens": 3}},
                {"reply": "Eleven is prime too."}, {"reply": "one two three four", "chunk_delay_ms": 10},
                {"tool_calls": [{"id": call_id, "name": "get_weather", "arguments": {"city": "Lima"}}]},
                {"reply": "Mild in Lima."}, {"reply": "Two."})
    out = run_node("responses")
    session = out["session"]
    assert session
    serve.sessions.append(session)

    first, second = out["first"], out["second"]
    assert (first["text"], first["status"]) == ("Seven is prime.", "completed")
    assert (first["usage"]["input_tokens"], first["usage"]["output_tokens"]) == (9, 3)
    assert second["text"] == "Eleven is prime too." and second["previous"] == first["id"]
    assert out["retrieved"] == {"id": first["id"], "text": "Seven is prime."}
    streamed = out["streamed"]
    assert streamed["text"] == streamed["deltas"] == "one two three four"
    assert streamed["types"][0] == "response.created" and streamed["types"][-1] == "response.completed"
    assert out["call"] == {"call_id": call_id, "name": "get_weather", "arguments": {"city": "Lima"}}
    assert out["answered"]["text"] == "Mild in Lima."
    ids = [first["id"], second["id"], streamed["id"], out["answered"]["id"], out["branch"]["id"]]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == len(ids), ids
    assert (out["missing"]["class"], out["missing"]["status"]) == ("NotFoundError", 404), out["missing"]

    # Issue 12, defect 9: previous_response_id of an older response branches there (OpenAI does).
    assert out["branch"]["text"] == out["branch"]["retrieved"] == "Two."

    requests = fake.requests()
    assert len(requests) == 6 and all(r["path"].endswith("/v1/responses") for r in requests)
    for r in requests:
        assert r["json"].get("previous_response_id") is None, "the upstream is called statelessly"
    assert "Answer in one short sentence." in json.dumps(requests[0]["json"])
    assert [t for t in responses_turns(requests[2]["json"]) if t[0] in ("user", "assistant")] == [
        ("user", "Name a prime number."), ("assistant", "Seven is prime."), ("user", "And another one?"),
        ("assistant", "Eleven is prime too."), ("user", "Count to four.")]
    items = requests[4]["json"]["input"]
    assert [i.get("type", "message") for i in items][-3:] == ["message", "function_call", "function_call_output"]
    assert (items[-1]["call_id"], items[-1]["output"]) == (call_id, "19 C")
    assert [t for t in responses_turns(requests[5]["json"]) if t[0] in ("user", "assistant")] == [
        ("user", "Name a prime number."), ("assistant", "Seven is prime."), ("user", "Name an even one.")]

    # The branch is a session of its own; this one is as the chain left it.
    state = serve.session(session)
    assert state["system_prompt"] == "Answer in one short sentence."
    assert [m["role"] for m in state["messages"]] == ["user", "assistant"] * 4 + ["tool", "assistant"]
    assert state["counts"]["receipts"] == 5


def test_responses_stream_failing_midway_ends_with_response_failed(serve, fake, run_node):
    """Issue 12, defect 5: the stream ended with a chat-style error frame; now with response.failed, which the SDK
    delivers as an event (it does not throw), for the id announced in response.created."""
    session = serve.new_session("node-resp-fail")
    fake.script({"reply": "one two three four five six", "cut_after": 7})
    out = run_node("responsesStreamFailure", session=session)
    assert out["thrown"] is None, out["thrown"]
    assert out["types"][0] == "response.created" and out["types"][-1] == "response.failed", out["types"]
    assert out["sequence"] == list(range(len(out["types"])))
    failed = out["failed"]
    assert failed["id"] == out["createdId"] and failed["status"] == "failed"
    assert failed["error"]["code"] == "server_error" and failed["error"]["message"], failed
    # The receipt records the failure (its status is the upstream's HTTP status, 200: the break came after it).
    receipts = serve.receipts(session)
    assert len(receipts) == 1 and "closed in the middle" in receipts[0]["error"], receipts
    assert [m["role"] for m in serve.session(session)["messages"]] == ["user"]


def test_the_id_a_failed_responses_stream_announced_can_be_retrieved(serve, fake, run_node):
    session = serve.new_session("node-resp-fail-get")
    fake.script({"reply": "one two three four five six", "cut_after": 7})
    out = run_node("responsesStreamFailure", session=session)
    assert out["failed"] and out["failed"]["id"] == out["createdId"], out
    retrieved = out["retrieved"]
    assert retrieved.get("unexpectedSuccess"), retrieved
    assert (retrieved["value"]["id"], retrieved["value"]["status"]) == (out["createdId"], "failed"), retrieved


def test_a_stream_the_client_stops_reading_is_the_clients_499(serve, fake, run_node):
    """Issue 12, defect 5: `break` out of `for await` aborts the request; the receipt says the client left (499, not
    an upstream failure) and the session takes the next turn."""
    session = serve.new_session("node-abort")
    fake.script({"reply": "a b c d e f g h i j k l", "chunk_delay_ms": 150}, {"reply": "after the abort"})
    out = run_node("streamAbort", session=session)
    assert len(out["pieces"]) == 2
    assert out["next"] == "after the abort", out
    assert set(out["refused"]) <= {"turn_in_progress"}, out["refused"]
    receipts = serve.receipts(session)
    assert [r["status"] for r in receipts] == [499, 200], receipts
    assert "the client closed the stream" in receipts[0]["error"]
    assert len(fake.requests()) == 2


def test_openais_stateless_responses_loop_into_a_session_is_recorded_once(serve, fake, run_node):
    session = serve.new_session("node-resp-loop")
    turns = 3
    fake.script(*[{"reply": "Answer %d." % k} for k in range(turns)])
    out = run_node("responsesManualLoop", session=session, turns=turns)
    assert out["texts"] == ["Answer %d." % k for k in range(turns)]
    state = serve.session(session)
    assert state["counts"]["messages"] == 2 * turns, stored_turns(state)
    last = fake.requests()[-1]["json"]
    expected = []
    for k in range(turns):
        expected += [("user", "Question %d?" % k)] + ([("assistant", "Answer %d." % k)] if k < turns - 1 else [])
    assert [t for t in responses_turns(last) if t[0] in ("user", "assistant")] == expected


def test_audit_rechecks_every_receipt_of_these_turns(serve, sessions_of_this_file):
    # Last in this file: every session its tests opened, audited (statefold audit re-renders each receipt's request
    # from its state version and compares hashes).
    sessions = sessions_of_this_file()
    assert sessions, "no session to audit"
    assert assert_audited(serve, sessions) > 0
