"""statefold's gateway with the official OpenAI Python SDK as its client (spec section 6, docs/api.md).

`statefold serve` runs as a child process on the real Kafka broker of STATEFOLD_BROKERS, a fresh topic and data dir,
with its [upstream] endpoints on the scripted fake model provider (tests/support/fake_upstream.py). The SDK sends only
its new messages; the tests check what the fake received (the materialised context, hashes, the API key), what the
SDK got back, and what the session recorded (messages, receipts), then that `statefold audit` re-checks every receipt.

Sections: 1. chat completions (context materialised from the log, request hash = SHA-256 of the bytes the upstream
got, usage, session state, refused requests); 2. streaming (chunks as the upstream produces them, usage chunk, cuts,
client gone); 3. tool calls; 4. the Responses API (previous_response_id, conversation, retrieve, streaming, function
calls); 5. upstream failures (429 + Retry-After, 500, timeout, garbage, dropped keep-alive, SDK retries); 6. one turn
per session, sessions in parallel, SIGTERM during a turn; 7. the Anthropic endpoint; 8. `statefold audit` re-renders
every receipt, and the API key only ever travels in the upstream's auth header.

Run by run_sdk_tests.sh (ctest: gateway_sdk_test), which sets STATEFOLD_BIN, STATEFOLD_BROKERS, STATEFOLD_SOURCE_DIR.
One serve and one fake for the whole run (the fake's queue and records are reset before each test; each test has its
own sessions). Every serve and fake log is kept under pytest's basetemp (BUILD_DIR/gateway-sdk-tmp).
"""

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid

import openai
import pytest

# The machinery every gateway client suite shares; its fixtures (fake_upstream, fake, serve) are in conftest.py.
from gateway_harness import (CLIENT_KEY, KEY_ENV, MAX_RETRIES, READ_TIMEOUT_MS, UPSTREAM_KEY, Serve, assert_audited,
                             chat_turns, contains_key, http, responses_turns, session_header, sha256_hex, tail, text_of,
                             upstream_config, wait_until)


@pytest.fixture
def client(serve):
    # max_retries=0: the SDK would otherwise retry 409, 429 and 5xx itself, and the tests see every answer as is.
    with openai.OpenAI(base_url=serve.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=60) as c:
        yield c


def assert_receipt_matches(serve, session, receipt, request, state_version):
    """A receipt names the request the fake received (hash of its exact bytes) and the version it was rendered at."""
    assert receipt["request_hash"] == sha256_hex(request["body"].encode("utf-8"))
    assert receipt["state_version"] == state_version
    rendered_from = serve.event_at(session, state_version)
    assert rendered_from["payload_type"] == "Message"


# ------------------------------------------------------------------------------------------------ 1. chat completions

def test_chat_two_turns_send_only_the_new_message(serve, fake, client):
    session = serve.new_session("chat")
    reply1, reply2 = "Paris is the capital of France.", "About two million people live there."
    fake.script({"reply": reply1, "usage": {"prompt_tokens": 17, "completion_tokens": 7}},
                {"reply": reply2, "usage": {"prompt_tokens": 41, "completion_tokens": 8}})

    raw1 = client.chat.completions.with_raw_response.create(
        model="gpt-4o", extra_headers=session_header(session),
        messages=[{"role": "system", "content": "You are a terse geography tutor."},
                  {"role": "user", "content": "What is the capital of France?"}])
    first = raw1.parse()
    assert first.object == "chat.completion"
    assert first.choices[0].message.role == "assistant"
    assert first.choices[0].message.content == reply1
    assert first.choices[0].finish_reason == "stop"
    assert (first.usage.prompt_tokens, first.usage.completion_tokens, first.usage.total_tokens) == (17, 7, 24)
    assert raw1.headers["x-session-id"] == session

    raw2 = client.chat.completions.with_raw_response.create(
        model="gpt-4o", extra_headers=session_header(session),
        messages=[{"role": "user", "content": "And its population?"}])
    second = raw2.parse()
    assert second.choices[0].message.content == reply2
    assert (second.usage.prompt_tokens, second.usage.completion_tokens, second.usage.total_tokens) == (41, 8, 49)

    requests = fake.requests()
    assert len(requests) == 2, [r["path"] for r in requests]
    for r in requests:
        assert r["path"].endswith("/v1/chat/completions") and r["method"] == "POST"
        assert r["json"]["model"] == "gpt-4o"
    # The first call: the system prompt and the one user message.
    assert chat_turns(requests[0]["json"]) == [("system", "You are a terse geography tutor."),
                                               ("user", "What is the capital of France?")]
    # The second: the client sent one message, the upstream got the whole conversation.
    assert chat_turns(requests[1]["json"]) == [("system", "You are a terse geography tutor."),
                                               ("user", "What is the capital of France?"),
                                               ("assistant", reply1),
                                               ("user", "And its population?")]
    # The request hash header is the SHA-256 of the exact bytes the upstream received.
    for raw, request in ((raw1, requests[0]), (raw2, requests[1])):
        assert raw.headers["x-statefold-request-hash"] == sha256_hex(request["body"].encode("utf-8"))
    v1, v2 = int(raw1.headers["x-statefold-state-version"]), int(raw2.headers["x-statefold-state-version"])
    assert v2 > v1 > 0

    state = serve.session(session)
    assert state["counts"]["messages"] == 4
    assert state["counts"]["receipts"] == 2
    assert state["system_prompt"] == "You are a terse geography tutor."
    assert [(m["role"], m["content"]) for m in state["messages"]] == [
        ("user", "What is the capital of France?"), ("assistant", reply1),
        ("user", "And its population?"), ("assistant", reply2)]
    assert state["usage"]["input_tokens"] == 17 + 41
    assert state["usage"]["output_tokens"] == 7 + 8

    receipts = serve.receipts(session)
    assert len(receipts) == 2
    for receipt, request, version, usage in zip(receipts, requests, (v1, v2), ((17, 7), (41, 8))):
        assert_receipt_matches(serve, session, receipt, request, version)
        assert receipt["status"] == 200
        assert receipt["provider"] == "openai_chat"
        assert receipt["endpoint"] == "fake"
        assert receipt["model"] == "gpt-4o"
        assert (receipt["usage"]["input_tokens"], receipt["usage"]["output_tokens"]) == usage
        assert not receipt.get("error")
        assert receipt["render"]

    # What the next call would send: the whole conversation, as overview sections and the body itself.
    status, _, overview = serve.get("/v1/sessions/%s/context?provider=openai_chat" % session)
    assert status == 200, overview
    assert overview["sections"]
    assert re.fullmatch(r"[0-9a-f]{64}", overview["request_hash"])
    assert chat_turns(overview["body"]) == chat_turns(requests[1]["json"]) + [("assistant", reply2)]


def test_a_client_that_resends_the_conversation_gets_it_recorded_once(serve, fake, client):
    """Issue 12, defect 1: LangChain, the SDKs' tool loops and the cookbooks append to `messages` and send the whole
    list each turn. A 21-message conversation became 119 stored messages and 119 went upstream; now what the session
    has is recognised and only the new tail is recorded and sent."""
    session = serve.new_session("resend")
    messages = [{"role": "system", "content": "You are terse."}]
    for turn in range(10):
        messages.append({"role": "user", "content": "Question %d?" % turn})
        answer = client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                                messages=messages)
        messages.append({"role": "assistant", "content": answer.choices[0].message.content})
    assert len(messages) == 21

    state = serve.session(session)
    assert state["counts"]["messages"] == 20, state["counts"]
    assert [m["role"] for m in state["messages"]] == ["user", "assistant"] * 10
    # The upstream got each message once, the system prompt as the session's prompt.
    last = fake.requests()[-1]["json"]
    assert chat_turns(last) == [("system", "You are terse.")] + [
        (m["role"], m["content"]) for m in messages[1:-1]]

    # A tool loop, resent the same way, arguments re-serialised as LangChain does.
    call_id = "call_" + uuid.uuid4().hex[:16]
    fake.script({"tool_calls": [{"id": call_id, "name": "get_weather", "arguments": {"city": "Paris"}}]},
                {"reply": "Sunny."})
    messages.append({"role": "user", "content": "Weather in Paris?"})
    first = client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                           tools=[WEATHER_TOOL], messages=messages)
    call = first.choices[0].message.tool_calls[0]
    messages.append({"role": "assistant", "content": "", "tool_calls": [
        {"id": call.id, "type": "function",
         "function": {"name": call.function.name, "arguments": json.dumps(json.loads(call.function.arguments),
                                                                          indent=1)}}]})
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny"})
    second = client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                            tools=[WEATHER_TOOL], messages=messages)
    assert second.choices[0].message.content == "Sunny."
    state = serve.session(session)
    assert state["counts"]["messages"] == 24, state["counts"]
    assert [m["role"] for m in state["messages"]][-4:] == ["user", "assistant", "tool", "assistant"]


def test_a_resent_conversation_that_differs_from_the_session_is_a_409(serve, fake, client):
    session = serve.new_session("resend-diverged")
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    answer = client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session), messages=messages)
    edited = [{"role": "user", "content": "What is the capital of Spain?"},
              {"role": "assistant", "content": answer.choices[0].message.content},
              {"role": "user", "content": "And its population?"}]
    with pytest.raises(openai.ConflictError) as refused:
        client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session), messages=edited)
    assert refused.value.code == "history_diverged"
    assert "fork the session" in refused.value.message
    assert serve.session(session)["counts"]["messages"] == 2


def test_a_retried_turn_whose_reply_failed_does_not_record_its_question_twice(serve, fake, client):
    """Issue 12, defect 3: a turn that failed after its question was recorded, retried with the same question."""
    session = serve.new_session("retry")
    client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                   messages=[{"role": "user", "content": "Hello"}])
    fake.script({"status": 500, "repeat": MAX_RETRIES + 1}, {"reply": "Now is fine."})
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                       messages=[{"role": "user", "content": "And now?"}])
    assert failed.value.status_code >= 500
    retried = client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                             messages=[{"role": "user", "content": "And now?"}])
    assert retried.choices[0].message.content == "Now is fine."
    state = serve.session(session)
    assert [(m["role"]) for m in state["messages"]] == ["user", "assistant", "user", "assistant"], state["messages"]
    assert chat_turns(fake.requests()[-1]["json"])[-1] == ("user", "And now?")
    assert [t for t in chat_turns(fake.requests()[-1]["json"]) if t == ("user", "And now?")] == [("user", "And now?")]


def test_idempotency_key_answers_a_retried_turn_from_the_log(serve, fake, client):
    """Issue 12, defect 4: the same Idempotency-Key again gets the stored answer of that turn, with no second upstream
    call, on chat and Responses, streamed or not; a retry that arrives while the first attempt is still running
    waits for it instead of getting 409 turn_in_progress."""
    session = serve.new_session("idem")
    fake.script({"reply": "The first and only answer.", "delay_ms": 1500})
    key = {"Idempotency-Key": "turn-" + uuid.uuid4().hex, **session_header(session)}
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Answer once."}]}
    answers = {}

    def first():
        answers["first"] = client.chat.completions.create(extra_headers=key, **body)

    thread = threading.Thread(target=first)
    thread.start()
    assert wait_until(lambda: len(fake.requests()) == 1, 30)
    raw = client.chat.completions.with_raw_response.create(extra_headers=key, **body)  # while the first runs
    thread.join(60)
    retried = raw.parse()
    assert raw.headers["x-statefold-idempotent-replay"] == "true"
    assert retried.choices[0].message.content == answers["first"].choices[0].message.content == \
        "The first and only answer."
    again = client.chat.completions.create(extra_headers=key, **body)
    assert again.choices[0].message.content == "The first and only answer."
    assert retried.id == again.id == answers["first"].id, "a replay answers with the turn's own completion id"
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        extra_headers=key, stream=True, **body) if c.choices)
    assert streamed == "The first and only answer."
    assert len(fake.requests()) == 1, "the upstream was called again"
    state = serve.session(session)
    assert state["counts"]["messages"] == 2 and state["counts"]["receipts"] == 1, state["counts"]

    # Responses: the same response (id included) again.
    fake.script({"reply": "Responses once."})
    rkey = {"Idempotency-Key": "resp-" + uuid.uuid4().hex, **session_header(session)}
    one = client.responses.create(model="gpt-4.1", input="Once?", extra_headers=rkey)
    two = client.responses.create(model="gpt-4.1", input="Once?", extra_headers=rkey)
    assert (two.id, two.output_text) == (one.id, one.output_text) == (one.id, "Responses once.")
    assert len(fake.requests()) == 2


def test_idempotency_key_after_a_failed_attempt_calls_again_without_recording_the_input_twice(serve, fake, client):
    session = serve.new_session("idem-failed")
    key = {"Idempotency-Key": "turn-" + uuid.uuid4().hex, **session_header(session)}
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Second time lucky?"}]}
    fake.script({"status": 500, "repeat": MAX_RETRIES + 1}, {"reply": "Yes."})
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(extra_headers=key, **body)
    answer = client.chat.completions.create(extra_headers=key, **body)
    assert answer.choices[0].message.content == "Yes."
    state = serve.session(session)
    assert [m["role"] for m in state["messages"]] == ["user", "assistant"], state["messages"]
    # Each attempt has its receipt: the failed one and the one that answered.
    assert [r["status"] for r in serve.receipts(session)] == [500, 200]


def test_chat_session_from_metadata(serve, fake, client):
    session = serve.new_session("meta")
    fake.script({"reply": "first"}, {"reply": "second"})
    client.chat.completions.create(model="gpt-4o", metadata={"session_id": session},
                                   messages=[{"role": "user", "content": "one"}])
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", metadata={"session_id": session},
                                                           messages=[{"role": "user", "content": "two"}])
    assert raw.parse().choices[0].message.content == "second"
    assert raw.headers["x-session-id"] == session
    requests = fake.requests()
    assert chat_turns(requests[1]["json"]) == [("user", "one"), ("assistant", "first"), ("user", "two")]
    assert "metadata" not in requests[1]["json"], "the client's metadata (session id) must not go upstream"
    # No session at all: a 400 that says how to name one.
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "who am I?"}])
    assert refused.value.status_code == 400
    assert len(fake.requests()) == 2


def test_unicode_round_trip(serve, fake, client):
    session = serve.new_session("unicode")
    question, reply = "Grüße aus Köln — was heißt 猫? 😀", "猫 heißt Katze. ✓ 😺"
    fake.script({"reply": reply}, {"reply": reply, "chunk_delay_ms": 5})
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", extra_headers=session_header(session),
                                                           messages=[{"role": "user", "content": question}])
    assert raw.parse().choices[0].message.content == reply
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="gpt-4o", extra_headers=session_header(session), stream=True,
        messages=[{"role": "user", "content": "Nochmal, ½ so schnell."}]) if c.choices)
    assert streamed == reply
    requests = fake.requests()
    assert raw.headers["x-statefold-request-hash"] == sha256_hex(requests[0]["body"].encode("utf-8"))
    assert chat_turns(requests[1]["json"]) == [("user", question), ("assistant", reply),
                                               ("user", "Nochmal, ½ so schnell.")]
    assert [m["content"] for m in serve.session(session)["messages"]] == [question, reply, "Nochmal, ½ so schnell.",
                                                                          reply]


def test_session_id_with_slash_and_space(serve, fake, client):
    session = "sdk team/" + uuid.uuid4().hex[:8] + " chat"
    serve.sessions.append(session)
    fake.script({"reply": "ok 1"}, {"reply": "ok 2"})
    for text in ("one", "two"):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", extra_headers=session_header(session),
                                                               messages=[{"role": "user", "content": text}])
        assert raw.headers["x-session-id"] == session
    assert chat_turns(fake.requests()[1]["json"]) == [("user", "one"), ("assistant", "ok 1"), ("user", "two")]
    assert serve.session(session)["counts"]["messages"] == 4
    # Responses ids carry the session in hex, whatever its characters.
    first = client.responses.create(model="gpt-4o", input="three", extra_headers=session_header(session))
    assert session_of_response(serve, first.id) == session


def test_generation_parameters_pass_through(serve, fake, client):
    session = serve.new_session("params")
    fake.script({"reply": "p1"}, {"reply": "p2"})
    client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session), temperature=0.25,
                                   top_p=0.5, seed=7, max_completion_tokens=77, stop=["END"],
                                   messages=[{"role": "user", "content": "params"}])
    body = fake.requests()[0]["json"]
    assert (body.get("temperature"), body.get("top_p"), body.get("seed"), body.get("stop")) == (0.25, 0.5, 7, ["END"])
    assert 77 in (body.get("max_completion_tokens"), body.get("max_tokens")), body
    client.chat.completions.create(model="claude-sonnet-4", extra_headers=session_header(session), temperature=0.25,
                                   max_completion_tokens=55, messages=[{"role": "user", "content": "params 2"}])
    body = fake.requests()[1]["json"]
    assert body["max_tokens"] == 55 and body.get("temperature") == 0.25, body
    assert "seed" not in body and "max_completion_tokens" not in body


def test_provider_specific_parameters_pass_through_by_a_documented_rule(serve, fake, client):
    """Issue 12, defect 11: `top_k` and `verbosity` were refused with 400. Parameters statefold does not know go as
    given to OpenAI-compatible endpoints; Anthropic's takes the one it documents (top_k) and refuses the rest,
    naming them, before anything is recorded."""
    session = serve.new_session("passthrough")
    fake.script({"reply": "x1"}, {"reply": "x2"})
    client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                   extra_body={"top_k": 5, "verbosity": "low", "repetition_penalty": 1.1},
                                   messages=[{"role": "user", "content": "passthrough"}])
    body = fake.requests()[0]["json"]
    assert (body.get("top_k"), body.get("verbosity"), body.get("repetition_penalty")) == (5, "low", 1.1), body
    client.responses.create(model="gpt-4.1", input="again", extra_headers=session_header(session),
                            extra_body={"top_k": 3})
    assert fake.requests()[1]["json"].get("top_k") == 3
    fake.script({"reply": "x3"})
    client.chat.completions.create(model="claude-sonnet-4", extra_headers=session_header(session),
                                   extra_body={"top_k": 7}, messages=[{"role": "user", "content": "anthropic"}])
    assert fake.requests()[2]["json"].get("top_k") == 7
    messages_before = serve.session(session)["counts"]["messages"]
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="claude-sonnet-4", extra_headers=session_header(session),
                                       extra_body={"verbosity": "low"},
                                       messages=[{"role": "user", "content": "refused"}])
    assert "verbosity" in refused.value.message and "anthropic" in refused.value.message
    assert serve.session(session)["counts"]["messages"] == messages_before
    # The receipts record what was sent, so audit renders the same bytes.
    assert all(r["status"] == 200 for r in serve.receipts(session))


def test_output_limits_above_the_default_reserve_reach_the_upstream(serve, fake, client):
    # The client's limit is the limit (issue 12, defect 2): not cut to the 4096 default reserve. Within the model's
    # maximum when its endpoint has one (fake-anthropic: max_output_tokens = 32000).
    session = serve.new_session("limits")
    fake.script({"reply": "long 1"}, {"reply": "long 2"}, {"reply": "long 3"}, {"reply": "long 4"})
    client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                   max_completion_tokens=16000, messages=[{"role": "user", "content": "essay"}])
    client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session), max_tokens=20000,
                                   messages=[{"role": "user", "content": "longer"}])
    answer = client.responses.create(model="gpt-4.1", max_output_tokens=50000, input="a book",
                                     extra_headers=session_header(session))
    assert answer.max_output_tokens == 50000
    client.chat.completions.create(model="claude-sonnet-4", extra_headers=session_header(session),
                                   max_completion_tokens=50000, messages=[{"role": "user", "content": "clamped"}])
    bodies = [r["json"] for r in fake.requests()]
    assert bodies[0]["max_completion_tokens"] == 16000, bodies[0]
    assert bodies[1]["max_completion_tokens"] == 20000, bodies[1]
    assert bodies[2]["max_output_tokens"] == 50000, bodies[2]
    assert bodies[3]["max_tokens"] == 32000, bodies[3]
    # The receipts say what was asked and what was sent; audit re-renders them all.
    renders = [json.loads(r["render"]) for r in serve.receipts(session)]
    assert [(r["max_output_tokens"], r["output_limit"]) for r in renders] == \
        [(16000, 16000), (20000, 20000), (50000, 50000), (50000, 32000)], renders


def chat_body(text, usage):
    return {"id": "chatcmpl-raw", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                         "logprobs": None}],
            "usage": usage}


def test_image_parts_reach_the_upstream(serve, fake, client):
    session = serve.new_session("image")
    url = "https://example.com/cat-%s.png" % uuid.uuid4().hex[:6]
    fake.script({"reply": "A cat."}, {"reply": "A cat, again."})
    client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session), messages=[
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": url}}]}])
    content = fake.requests()[0]["json"]["messages"][0]["content"]
    assert isinstance(content, list), content
    assert [p.get("type") for p in content] == ["text", "image_url"], content
    assert content[1]["image_url"]["url"] == url
    # Still there on the next turn, from the log, and for Anthropic as an image block.
    client.chat.completions.create(model="claude-sonnet-4", extra_headers=session_header(session),
                                   messages=[{"role": "user", "content": "And now?"}])
    blocks = fake.requests()[1]["json"]["messages"][0]["content"]
    images = [b for b in blocks if b.get("type") == "image"]
    assert len(images) == 1 and images[0]["source"].get("url") == url, blocks


def test_cached_tokens_flow_through(serve, fake, client):
    session = serve.new_session("cached")
    fake.script({"body": chat_body("cached answer", {
        "prompt_tokens": 1500, "completion_tokens": 9, "total_tokens": 1509,
        "prompt_tokens_details": {"cached_tokens": 1024}})})
    answer = client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                            messages=[{"role": "user", "content": "again"}])
    assert answer.choices[0].message.content == "cached answer"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (1500, 9)
    assert answer.usage.prompt_tokens_details.cached_tokens == 1024
    receipt = serve.receipts(session)[0]
    assert receipt["usage"] == {**receipt["usage"], "input_tokens": 1500, "output_tokens": 9, "cached_tokens": 1024}
    assert serve.session(session)["usage"] == {"input_tokens": 1500, "output_tokens": 9, "cached_tokens": 1024}


def test_unsupported_n_is_refused(serve, fake, client):
    session = serve.new_session("n2")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session), n=2,
                                       messages=[{"role": "user", "content": "two answers"}])
    assert fake.requests() == []
    assert serve.get("/v1/sessions/%s" % session)[0] == 404


def test_a_refused_request_records_nothing(serve, fake, client):
    # A parameter the endpoint cannot honour is a 400; the turn must not leave its message behind.
    session = serve.new_session("refused")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="claude-sonnet-4", extra_headers=session_header(session),
                                       response_format={"type": "json_object"},
                                       messages=[{"role": "user", "content": "JSON please"}])
    assert fake.requests() == []
    status, _, state = serve.get("/v1/sessions/%s" % session)
    assert status == 404 or state["counts"]["messages"] == 0, state


# ------------------------------------------------------------------------------------------------ 2. streaming

def test_chat_streaming_with_usage(serve, fake, client):
    session = serve.new_session("stream")
    reply = "alpha beta gamma delta epsilon zeta"
    delay_ms = 200
    fake.script({"reply": reply, "chunk_delay_ms": delay_ms, "usage": {"prompt_tokens": 12, "completion_tokens": 6}})

    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", extra_headers=session_header(session), stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Count in Greek letters."}])
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.headers["x-session-id"] == session
    stream = raw.parse()
    arrivals = []  # (seconds since the call, chunk)
    for chunk in stream:
        arrivals.append((time.monotonic() - started, chunk))
    ended = time.monotonic() - started

    assert arrivals, "no chunks"
    assert all(c.object == "chat.completion.chunk" for _, c in arrivals)
    content = [(t, c.choices[0].delta.content) for t, c in arrivals if c.choices and c.choices[0].delta.content]
    assert "".join(text for _, text in content) == reply
    assert len(content) >= 4, "the reply came in %d pieces" % len(content)
    # The pieces arrive as the upstream produces them (one every 200 ms), not all at the end.
    span = content[-1][0] - content[0][0]
    assert span >= 0.6, "first and last content chunk only %.3f s apart: %s" % (span, [round(t, 3) for t, _ in content])
    assert ended - content[0][0] >= 0.6, "the first piece came %.3f s before the end" % (ended - content[0][0])
    finishes = [c.choices[0].finish_reason for _, c in arrivals if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    last = arrivals[-1][1]
    assert last.choices == [] and last.usage is not None, "the last chunk is not the usage chunk: %s" % last
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (12, 6, 18)
    assert len({c.id for _, c in arrivals}) == 1

    requests = fake.requests()
    assert len(requests) == 1
    assert requests[0]["json"].get("stream") is True
    assert (requests[0]["json"].get("stream_options") or {}).get("include_usage") is True

    state = serve.session(session)
    assert [(m["role"], m["content"]) for m in state["messages"]] == [("user", "Count in Greek letters."),
                                                                      ("assistant", reply)]
    receipts = serve.receipts(session)
    assert len(receipts) == 1 and receipts[0]["status"] == 200
    assert (receipts[0]["usage"]["input_tokens"], receipts[0]["usage"]["output_tokens"]) == (12, 6)
    assert receipts[0]["request_hash"] == sha256_hex(requests[0]["body"])
    assert raw.headers["x-statefold-request-hash"] == receipts[0]["request_hash"]
    assert int(raw.headers["x-statefold-state-version"]) == receipts[0]["state_version"]


def test_chat_streaming_without_usage_has_no_usage_chunk(serve, fake, client):
    session = serve.new_session("stream-nousage")
    fake.script({"reply": "short answer"})
    chunks = list(client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session), stream=True,
                                                 messages=[{"role": "user", "content": "hi"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "short answer"
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_stream_cut_mid_reply(serve, fake, client):
    session = serve.new_session("stream-cut")
    fake.script({"reply": "this reply will never be finished by the upstream", "cut_after": 4})
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                                    stream=True, messages=[{"role": "user", "content": "go"}]):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert received, "the pieces before the cut were not passed on"
    assert len(fake.requests()) == 1, "a stream that started is not retried"
    state = serve.session(session)
    assert [m["role"] for m in state["messages"]] == ["user"], "a cut reply must not be recorded as the answer"
    receipts = serve.receipts(session)
    assert len(receipts) == 1 and receipts[0].get("error"), receipts


def test_streaming_500_before_the_first_event(serve, fake, client):
    session = serve.new_session("stream-500")
    fake.script({"status": 500, "repeat": MAX_RETRIES + 1})
    with pytest.raises(openai.InternalServerError) as failed:
        for _ in client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session), stream=True,
                                                messages=[{"role": "user", "content": "stream please"}]):
            pass
    assert failed.value.status_code == 500
    assert len(fake.requests()) == MAX_RETRIES + 1
    receipts = serve.receipts(session)
    assert len(receipts) == 1 and receipts[0]["status"] == 500 and receipts[0].get("error")


def test_client_disconnects_mid_stream(serve, fake, client):
    session = serve.new_session("disconnect")
    fake.script({"reply": "a b c d e f g h i j k l", "chunk_delay_ms": 150}, {"reply": "after the disconnect"})
    stream = client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session), stream=True,
                                            messages=[{"role": "user", "content": "long story"}])
    pieces = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if len(pieces) == 2:
            break
    stream.close()
    # The turn ends (recorded one way or the other) and the session takes the next one.
    assert wait_until(lambda: serve.session(session)["counts"]["receipts"] == 1, 15), \
        "no receipt within 15 s of the client going away"
    answer = None
    for _ in range(50):
        try:
            answer = client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                                    messages=[{"role": "user", "content": "still there?"}])
            break
        except openai.ConflictError:
            time.sleep(0.2)
    assert answer is not None, "the session stayed busy after the client went away"
    assert answer.choices[0].message.content == "after the disconnect"
    # Issue 12, defect 5: the receipt says the client left; it is not the upstream's failure.
    receipt = serve.receipts(session)[0]
    assert receipt["status"] == 499, receipt
    assert "the client closed the stream" in receipt["error"], receipt


# ------------------------------------------------------------------------------------------------ 3. tool calls

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def test_tool_call_turn(serve, fake, client):
    session = serve.new_session("tools")
    call_id = "call_" + uuid.uuid4().hex[:16]
    final = "It is 21 C and sunny in Paris."
    fake.script({"tool_calls": [{"id": call_id, "name": "get_weather", "arguments": {"city": "Paris"}}]},
                {"reply": final})

    first = client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                           tools=[WEATHER_TOOL],
                                           messages=[{"role": "user", "content": "Weather in Paris?"}])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert not choice.message.content
    assert len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.id == call_id and call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    result = json.dumps({"temp_c": 21, "sky": "sunny"})
    second = client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                            tools=[WEATHER_TOOL],
                                            messages=[{"role": "tool", "tool_call_id": call_id, "content": result}])
    assert second.choices[0].message.content == final
    assert second.choices[0].finish_reason == "stop"

    requests = fake.requests()
    assert len(requests) == 2
    tools = requests[0]["json"].get("tools")
    assert tools and tools[0]["function"]["name"] == "get_weather", tools
    assert tools[0]["function"]["parameters"] == WEATHER_TOOL["function"]["parameters"]
    messages = requests[1]["json"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"], messages
    assert text_of(messages[0]["content"]) == "Weather in Paris?"
    assistant, tool = messages[1], messages[2]
    assert len(assistant["tool_calls"]) == 1
    assert assistant["tool_calls"][0]["id"] == call_id
    assert assistant["tool_calls"][0]["type"] == "function"
    assert assistant["tool_calls"][0]["function"]["name"] == "get_weather"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert tool["tool_call_id"] == call_id
    assert text_of(tool["content"]) == result

    state = serve.session(session)
    assert state["counts"]["messages"] == 4
    assert state["counts"]["tool_calls"] == 1
    assert state["counts"]["receipts"] == 2
    assert [m["role"] for m in state["messages"]] == ["user", "assistant", "tool", "assistant"]


def test_tool_call_streamed(serve, fake, client):
    session = serve.new_session("tools-stream")
    call_id = "call_" + uuid.uuid4().hex[:16]
    fake.script({"tool_calls": [{"id": call_id, "name": "get_weather", "arguments": {"city": "Oslo"}}]},
                {"reply": "Cold."})
    chunks = list(client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session), stream=True,
                                                 tools=[WEATHER_TOOL],
                                                 messages=[{"role": "user", "content": "Weather in Oslo?"}]))
    pieces = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert pieces and pieces[0].id == call_id and pieces[0].function.name == "get_weather"
    assert json.loads("".join(p.function.arguments or "" for p in pieces)) == {"city": "Oslo"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    answer = client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                            tools=[WEATHER_TOOL],
                                            messages=[{"role": "tool", "tool_call_id": call_id, "content": "-5 C"}])
    assert answer.choices[0].message.content == "Cold."
    messages = fake.requests()[1]["json"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == call_id
    assert json.loads(messages[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Oslo"}


def test_parallel_tool_calls(serve, fake, client):
    session = serve.new_session("parallel-tools")
    ids = ["call_" + uuid.uuid4().hex[:12] for _ in range(2)]
    fake.script({"tool_calls": [{"id": ids[0], "name": "get_weather", "arguments": {"city": "Paris"}},
                                {"id": ids[1], "name": "get_weather", "arguments": {"city": "Oslo"}}]},
                {"reply": "Paris is warm, Oslo is cold."})
    first = client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session), tools=[WEATHER_TOOL],
                                           messages=[{"role": "user", "content": "Paris and Oslo?"}])
    assert [c.id for c in first.choices[0].message.tool_calls] == ids
    second = client.chat.completions.create(
        model="gpt-4o", extra_headers=session_header(session), tools=[WEATHER_TOOL],
        messages=[{"role": "tool", "tool_call_id": ids[0], "content": "25 C"},
                  {"role": "tool", "tool_call_id": ids[1], "content": "-3 C"}])
    assert second.choices[0].message.content == "Paris is warm, Oslo is cold."
    messages = fake.requests()[1]["json"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in messages[1]["tool_calls"]] == ids
    assert [(m["tool_call_id"], text_of(m["content"])) for m in messages[2:]] == [(ids[0], "25 C"), (ids[1], "-3 C")]


def test_orphan_tool_result_is_refused(serve, fake, client):
    session = serve.new_session("orphan")
    fake.script({"reply": "plain answer"}, {"reply": "should not be asked"})
    client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                   messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                       messages=[{"role": "tool", "tool_call_id": "call_nobody", "content": "42"}])
    assert len(fake.requests()) == 1
    assert serve.session(session)["counts"]["messages"] == 2


# ------------------------------------------------------------------------------------------------ 4. Responses API

def session_of_response(serve, response_id):
    """The session a response belongs to. Response ids are opaque (sealed: issue 12, defect 10); GET names the
    session in X-Session-Id, as every answer of a turn does."""
    status, headers, _ = serve.get("/v1/responses/" + response_id)
    assert status == 200, "GET /v1/responses/%s: %s" % (response_id, status)
    return headers["x-session-id"]


def test_responses_previous_response_id(serve, fake, client):
    reply1, reply2 = "Seven is prime.", "Eleven is prime too."
    fake.script({"reply": reply1, "usage": {"prompt_tokens": 9, "completion_tokens": 3}}, {"reply": reply2})

    raw = client.responses.with_raw_response.create(model="gpt-4.1", input="Name a prime number.",
                                                    instructions="Answer in one short sentence.")
    first = raw.parse()
    assert first.object == "response" and first.status == "completed"
    assert first.output_text == reply1
    assert first.usage.input_tokens == 9 and first.usage.output_tokens == 3
    session = raw.headers["x-session-id"]
    serve.sessions.append(session)
    assert session_of_response(serve, first.id) == session
    assert session not in first.id and session.encode().hex() not in first.id, "response ids are opaque"

    second = client.responses.create(model="gpt-4.1", input="And another one?", previous_response_id=first.id)
    assert second.output_text == reply2
    assert second.previous_response_id == first.id
    assert session_of_response(serve, second.id) == session
    assert second.id != first.id

    requests = fake.requests()
    assert len(requests) == 2
    assert all(r["path"].endswith("/v1/responses") for r in requests), [r["path"] for r in requests]
    assert requests[0]["json"]["model"] == "gpt-4.1"
    assert "Answer in one short sentence." in json.dumps(requests[0]["json"])
    turns = [t for t in responses_turns(requests[1]["json"]) if t[0] in ("user", "assistant")]
    assert turns == [("user", "Name a prime number."), ("assistant", reply1), ("user", "And another one?")]
    assert requests[1]["json"].get("previous_response_id") is None, "the upstream is called statelessly"
    assert requests[1]["json"].get("store") in (None, False)
    assert raw.headers["x-statefold-request-hash"] == sha256_hex(requests[0]["body"])

    # The reply is stored in the session: retrieve reads it back.
    again = client.responses.retrieve(first.id)
    assert again.id == first.id and again.output_text == reply1
    assert client.responses.retrieve(second.id).output_text == reply2
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_%s_%d" % (session.encode().hex(), 9999))
    # Continuing from a response that is not the latest branches on a fork (see the test below): this session is
    # left as it was.
    client.responses.create(model="gpt-4.1", input="branch", previous_response_id=first.id)

    state = serve.session(session)
    assert state["system_prompt"] == "Answer in one short sentence."
    assert state["counts"]["messages"] == 4 and state["counts"]["receipts"] == 2
    receipts = serve.receipts(session)
    assert [r["provider"] for r in receipts] == ["openai_responses"] * 2
    assert [r["endpoint"] for r in receipts] == ["fake-responses"] * 2
    for receipt, request in zip(receipts, requests):
        assert receipt["request_hash"] == sha256_hex(request["body"])


def test_responses_over_a_chat_endpoint(serve, fake, client):
    session = serve.new_session("resp-chat")
    fake.script({"reply": "Blue."}, {"reply": "Because of Rayleigh scattering."})
    first = client.responses.create(model="gpt-4o", input="What colour is the sky?",
                                    extra_headers=session_header(session))
    assert first.output_text == "Blue."
    assert session_of_response(serve, first.id) == session
    second = client.responses.create(model="gpt-4o", input="Why?", previous_response_id=first.id)
    assert second.output_text == "Because of Rayleigh scattering."
    requests = fake.requests()
    assert [r["path"].endswith("/v1/chat/completions") for r in requests] == [True, True]
    assert chat_turns(requests[1]["json"]) == [("user", "What colour is the sky?"), ("assistant", "Blue."),
                                               ("user", "Why?")]


def test_responses_conversation(serve, fake, client):
    raw = client.conversations.with_raw_response.create()
    conversation, session = raw.parse().id, raw.headers["x-session-id"]
    serve.sessions.append(session)
    fake.script({"reply": "Noted: your name is Ada."}, {"reply": "Your name is Ada."})
    first = client.responses.create(model="gpt-4.1", input="My name is Ada.", conversation=conversation)
    assert first.output_text == "Noted: your name is Ada."
    second = client.responses.create(model="gpt-4.1", input="What is my name?", conversation={"id": conversation})
    assert second.output_text == "Your name is Ada."
    requests = fake.requests()
    turns = [t for t in responses_turns(requests[1]["json"]) if t[0] in ("user", "assistant")]
    assert turns == [("user", "My name is Ada."), ("assistant", "Noted: your name is Ada."),
                     ("user", "What is my name?")]
    assert "conversation" not in requests[1]["json"]
    state = serve.session(session)
    assert state["counts"]["messages"] == 4 and state["counts"]["receipts"] == 2


def test_responses_streaming(serve, fake, client):
    session = serve.new_session("resp-stream")
    reply = "one two three four"
    fake.script({"reply": reply, "chunk_delay_ms": 50})
    events = list(client.responses.create(model="gpt-4.1", input="Count to four.", stream=True,
                                          extra_headers=session_header(session)))
    types = [e.type for e in events]
    assert types[0] == "response.created", types
    assert types[-1] == "response.completed", types
    assert "response.output_text.delta" in types
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == reply
    done = [e.text for e in events if e.type == "response.output_text.done"]
    assert done == [reply]
    completed = events[-1].response
    assert completed.status == "completed" and completed.output_text == reply
    assert session_of_response(serve, completed.id) == session
    assert events[0].response.id == completed.id
    assert client.responses.retrieve(completed.id).output_text == reply
    requests = fake.requests()
    assert len(requests) == 1 and requests[0]["json"].get("stream") is True
    state = serve.session(session)
    assert [(m["role"], m["content"]) for m in state["messages"]] == [("user", "Count to four."), ("assistant", reply)]
    assert state["counts"]["receipts"] == 1


def test_responses_input_items_open_a_session(serve, fake, client):
    fake.script({"reply": "Aye."})
    first = client.responses.create(model="gpt-4.1", input=[
        {"role": "developer", "content": "Talk like a pirate."},
        {"role": "user", "content": [{"type": "input_text", "text": "Hello there."}]}])
    assert first.output_text == "Aye."
    session = session_of_response(serve, first.id)
    serve.sessions.append(session)
    state = serve.session(session)
    assert state["system_prompt"] == "Talk like a pirate."
    assert [(m["role"], m["content"]) for m in state["messages"]] == [("user", "Hello there."), ("assistant", "Aye.")]
    body = fake.requests()[0]["body"]
    assert "Talk like a pirate." in body and "Hello there." in body
    # Ids cannot be made up: the readable form of earlier builds, or an id with one character changed, is no response.
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_%s_%d" % (session.encode().hex(), state["version"]))
    forged = first.id[:-1] + ("A" if first.id[-1] != "A" else "B")
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(forged)


def test_responses_function_call_turn(serve, fake, client):
    call_id = "call_" + uuid.uuid4().hex[:16]
    tool = {"type": "function", "name": "get_weather", "description": "The current weather in a city.",
            "parameters": WEATHER_TOOL["function"]["parameters"]}
    fake.script({"tool_calls": [{"id": call_id, "name": "get_weather", "arguments": {"city": "Lima"}}]},
                {"reply": "Mild in Lima."})
    first = client.responses.create(model="gpt-4.1", input="Weather in Lima?", tools=[tool])
    serve.sessions.append(session_of_response(serve, first.id))
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].call_id == call_id and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Lima"}
    second = client.responses.create(model="gpt-4.1", previous_response_id=first.id, tools=[tool],
                                     input=[{"type": "function_call_output", "call_id": call_id, "output": "19 C"}])
    assert second.output_text == "Mild in Lima."
    requests = fake.requests()
    assert requests[0]["json"]["tools"][0]["name"] == "get_weather"
    items = requests[1]["json"]["input"]
    kinds = [(i.get("type", "message"), i.get("role")) for i in items]
    assert kinds[-3:] == [("message", "user"), ("function_call", None), ("function_call_output", None)], kinds
    assert (items[-2]["call_id"], items[-2]["name"], json.loads(items[-2]["arguments"])) == \
        (call_id, "get_weather", {"city": "Lima"})
    assert (items[-1]["call_id"], items[-1]["output"]) == (call_id, "19 C")


def test_a_responses_stream_that_fails_midway_ends_with_response_failed(serve, fake, client):
    """Issue 12, defect 5: a Responses stream whose upstream breaks after it started ends as the API ends a failed
    response (response.failed with the error), not with a chat-style error frame, and counts as a failure."""
    session = serve.new_session("resp-stream-cut")
    before = turns_counted(serve, "fake-responses")
    fake.script({"reply": "one two three four five six", "cut_after": 7})
    events, failure = [], None
    try:
        for e in client.responses.create(model="gpt-4.1", input="Count.", stream=True,
                                         extra_headers=session_header(session)):
            events.append(e)
    except openai.APIError as e:
        failure = e
    assert failure is None, "the SDK raised instead of delivering response.failed: %s" % failure
    types = [e.type for e in events]
    assert types[0] == "response.created", types
    assert types[-1] == "response.failed", types
    failed = events[-1].response
    assert failed.status == "failed"
    assert failed.error.code == "server_error" and "failed" in failed.error.message, failed.error
    assert failed.id == events[0].response.id
    assert [e.sequence_number for e in events] == list(range(len(events)))
    after = turns_counted(serve, "fake-responses")
    assert after.get("502", 0) == before.get("502", 0) + 1, (before, after)
    assert after.get("200", 0) == before.get("200", 0), "the failed stream was counted as answered: %s" % after


def turns_counted(serve, endpoint):
    """{code: count} of statefold_gateway_turns_total for the endpoint."""
    status, _, metrics = serve.get("/metrics")
    assert status == 200, metrics
    counts = {}
    for line in metrics.splitlines():
        match = re.match(r'statefold_gateway_turns_total\{(.*)\} ([0-9.e+]+)$', line)
        if match and 'endpoint="%s"' % endpoint in match.group(1):
            code = re.search(r'code="([0-9]+)"', match.group(1)).group(1)
            counts[code] = counts.get(code, 0) + int(float(match.group(2)))
    return counts


def test_responses_previous_response_id_of_an_older_response_branches(serve, fake, client):
    """Issue 12, defect 9: OpenAI branches from any stored response. The turn runs on a fork of the session at that
    response: the upstream sees the conversation up to it, not the replies that followed."""
    session = serve.new_session("resp-branch")
    fake.script({"reply": "Paris."}, {"reply": "About 2.1 million."}, {"reply": "About 105 km2."})
    first = client.responses.create(model="gpt-4.1", input="Capital of France?",
                                    extra_headers=session_header(session))
    second = client.responses.create(model="gpt-4.1", input="Its population?", previous_response_id=first.id)
    branch = client.responses.create(model="gpt-4.1", input="Its area?", previous_response_id=first.id)
    assert branch.output_text == "About 105 km2."
    turns = [t for t in responses_turns(fake.requests()[-1]["json"]) if t[0] in ("user", "assistant")]
    assert turns == [("user", "Capital of France?"), ("assistant", "Paris."), ("user", "Its area?")], turns
    assert branch.id not in (first.id, second.id)
    assert client.responses.retrieve(branch.id).output_text == "About 105 km2."
    # The original conversation is untouched and still goes on from its own latest response.
    assert serve.session(session)["counts"]["messages"] == 4
    fake.script({"reply": "Yes."})
    assert client.responses.create(model="gpt-4.1", input="Big?", previous_response_id=second.id).output_text == "Yes."


def test_responses_function_call_streamed_and_retrieved(serve, fake, client):
    call_id = "call_" + uuid.uuid4().hex[:12]
    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER_TOOL["function"]["parameters"]}
    fake.script({"tool_calls": [{"id": call_id, "name": "get_weather", "arguments": {"city": "Kyiv"}}]})
    events = list(client.responses.create(model="gpt-4.1", input="Weather in Kyiv?", tools=[tool], stream=True))
    assert events[-1].type == "response.completed"
    done = events[-1].response
    serve.sessions.append(session_of_response(serve, done.id))
    calls = [i for i in done.output if i.type == "function_call"]
    assert [(c.call_id, c.name, json.loads(c.arguments)) for c in calls] == [(call_id, "get_weather", {"city": "Kyiv"})]
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == {"city": "Kyiv"}
    again = client.responses.retrieve(done.id)
    assert [(i.type, getattr(i, "call_id", None)) for i in again.output] == [("function_call", call_id)]


def test_responses_store_false_is_not_retrievable(serve, fake, client):
    # Issue 12, defect 6: `store: false` (OpenAI: the response is not stored for later retrieval). The turn is still
    # on the log (the audit trail keeps every call); only retrieval by id, and continuing from it, are refused.
    session = serve.new_session("unstored")
    fake.script({"reply": "kept"}, {"reply": "not kept"}, {"reply": "after"}, {"reply": "streamed, not kept"})
    kept = client.responses.create(model="gpt-4.1", input="one", extra_headers=session_header(session))
    unstored = client.responses.create(model="gpt-4.1", input="two", store=False, previous_response_id=kept.id)
    assert unstored.output_text == "not kept" and unstored.store is False
    with pytest.raises(openai.NotFoundError) as raised:
        client.responses.retrieve(unstored.id)
    assert_openai_error(raised, 404, unstored.id)
    with pytest.raises(openai.NotFoundError) as raised:
        client.responses.create(model="gpt-4.1", input="three", previous_response_id=unstored.id)
    assert_openai_error(raised, 404, unstored.id)
    assert client.responses.retrieve(kept.id).output_text == "kept"
    # The session goes on (by its id), and its context still holds the unstored turn: only retrieval is refused.
    after = client.responses.create(model="gpt-4.1", input="three", extra_headers=session_header(session))
    assert after.output_text == "after"
    assert client.responses.retrieve(after.id).output_text == "after"
    turns = [t for t in responses_turns(fake.requests()[-1]["json"]) if t[0] in ("user", "assistant")]
    assert turns == [("user", "one"), ("assistant", "kept"), ("user", "two"), ("assistant", "not kept"),
                     ("user", "three")]
    events = list(client.responses.create(model="gpt-4.1", input="four", store=False, stream=True,
                                          extra_headers=session_header(session)))
    assert events[-1].type == "response.completed"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(events[-1].response.id)
    # Every call is still recorded: 4 user messages, 4 replies, 4 receipts.
    state = serve.session(session)
    assert state["counts"]["messages"] == 8 and state["counts"]["receipts"] == 4, state["counts"]
    assert len(fake.requests()) == 4


def test_unknown_previous_response_id(serve, fake, client):
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4.1", input="x", previous_response_id="resp_nothing_here")
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4.1", input="x",
                                previous_response_id="resp_%s_3" % ("sdk-nobody-" + uuid.uuid4().hex).encode().hex())
    assert fake.requests() == []


def test_responses_without_model_keeps_the_sessions_model(serve, fake, client):
    # The Responses API makes model optional: the gateway then uses the session's (protocol.h, ResponsesRequest).
    fake.script({"reply": "r1"}, {"reply": "r2"})
    first = client.responses.create(model="gpt-4.1", input="first")
    serve.sessions.append(session_of_response(serve, first.id))
    second = client.responses.create(input="second", previous_response_id=first.id)
    assert second.output_text == "r2"
    requests = fake.requests()
    assert requests[1]["path"].endswith("/v1/responses"), \
        "turn 2 without a model went to %s, not the session's endpoint" % requests[1]["path"]
    assert requests[1]["json"]["model"] == "gpt-4.1"
    assert second.model == "gpt-4.1"


def test_responses_instructions_apply_to_their_turn(serve, fake, client):
    # OpenAI: with previous_response_id, instructions apply to this response (they are not carried over), so a later
    # turn's instructions must reach the upstream.
    fake.script({"reply": "Hello."}, {"reply": "Bonjour."})
    first = client.responses.create(model="gpt-4.1", input="Greet me.", instructions="Be brief.")
    serve.sessions.append(session_of_response(serve, first.id))
    client.responses.create(model="gpt-4.1", input="Again.", previous_response_id=first.id,
                            instructions="Reply in French.")
    assert "Reply in French." in fake.requests()[1]["body"], fake.requests()[1]["body"]


def test_responses_retry_after_a_failed_turn(serve, fake, client):
    # The natural retry of a failed Responses turn repeats its previous_response_id; the failed turn left no
    # response, so that id is still the conversation's latest answer and the retry must be taken.
    fake.script({"reply": "first answer"}, {"status": 500, "repeat": MAX_RETRIES + 1}, {"reply": "second answer"})
    first = client.responses.create(model="gpt-4.1", input="question one")
    serve.sessions.append(session_of_response(serve, first.id))
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="gpt-4.1", input="question two", previous_response_id=first.id)
    retried = client.responses.create(model="gpt-4.1", input="question two", previous_response_id=first.id)
    assert retried.output_text == "second answer"
    turns = [t for t in responses_turns(fake.requests()[-1]["json"]) if t[0] in ("user", "assistant")]
    assert turns[:2] == [("user", "question one"), ("assistant", "first answer")]
    assert turns[-1] == ("user", "question two")


# ------------------------------------------------------------------------------------------------ 5. upstream failures

def test_rate_limited_then_success(serve, fake, client):
    session = serve.new_session("429")
    fake.script({"status": 429, "headers": {"Retry-After": "1"}}, {"reply": "Made it after the rate limit."})
    started = time.monotonic()
    answer = client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                            messages=[{"role": "user", "content": "Are you busy?"}])
    elapsed = time.monotonic() - started
    assert answer.choices[0].message.content == "Made it after the rate limit."
    requests = fake.requests()
    assert len(requests) == 2, "429 then the retry"
    assert requests[0]["body"] == requests[1]["body"], "a retry sends the same bytes"
    assert elapsed >= 0.9, "Retry-After: 1 was not waited for (%.3f s)" % elapsed
    receipts = serve.receipts(session)
    assert len(receipts) == 1, receipts
    assert receipts[0]["status"] == 200 and not receipts[0].get("error")


def test_rate_limited_beyond_the_retries(serve, fake, client):
    session = serve.new_session("429-exhausted")
    fake.script({"status": 429, "repeat": MAX_RETRIES + 1})
    with pytest.raises(openai.RateLimitError) as failed:
        client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                       messages=[{"role": "user", "content": "Busy?"}])
    assert failed.value.status_code == 429
    assert len(fake.requests()) == MAX_RETRIES + 1
    receipts = serve.receipts(session)
    assert len(receipts) == 1 and receipts[0]["status"] == 429 and receipts[0].get("error"), receipts
    # A Retry-After beyond max_retry_after_ms (default 60 s) is not waited for: the 429 comes back at once.
    fake.reset()
    fake.script({"status": 429, "headers": {"Retry-After": "3600"}})
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                       messages=[{"role": "user", "content": "Busy now?"}])
    assert time.monotonic() - started < 5
    assert len(fake.requests()) == 1


def test_persistent_500(serve, fake, client):
    session = serve.new_session("500")
    fake.script({"status": 500, "repeat": MAX_RETRIES + 1})
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                       messages=[{"role": "user", "content": "Will this work?"}])
    error = failed.value
    assert error.status_code == 500
    body = error.response.json()
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"]), body
    assert body["error"]["message"]
    assert len(fake.requests()) == MAX_RETRIES + 1, "the first attempt and max_retries retries"

    state = serve.session(session)
    assert [(m["role"], m["content"]) for m in state["messages"]] == [("user", "Will this work?")]
    receipts = serve.receipts(session)
    assert len(receipts) == 1
    assert receipts[0]["status"] == 500
    assert receipts[0].get("error")
    assert receipts[0]["request_hash"] == sha256_hex(fake.requests()[-1]["body"])

    # The failed turn's message stays: the next turn carries it to the upstream.
    fake.script({"reply": "Now it does."})
    answer = client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                            messages=[{"role": "user", "content": "Try again?"}])
    assert answer.choices[0].message.content == "Now it does."
    assert chat_turns(fake.requests()[-1]["json"]) == [("user", "Will this work?"), ("user", "Try again?")]
    assert [r["status"] for r in serve.receipts(session)] == [500, 200]


def test_upstream_timeout(serve, fake, client):
    session = serve.new_session("timeout")
    fake.script({"delay_ms": READ_TIMEOUT_MS + 2500, "reply": "too late"})
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                       messages=[{"role": "user", "content": "Take your time."}])
    elapsed = time.monotonic() - started
    # 504 Gateway Timeout: the upstream did not answer in time (502 is for an upstream that answered badly).
    assert failed.value.status_code == 504, failed.value
    assert isinstance(failed.value, openai.InternalServerError)
    assert READ_TIMEOUT_MS / 1000 - 0.5 <= elapsed < READ_TIMEOUT_MS / 1000 + 2.0, "answered after %.3f s" % elapsed
    assert len(fake.requests()) == 1, "a read timeout is not retried (the model may have run)"
    state = serve.session(session)
    assert [(m["role"], m["content"]) for m in state["messages"]] == [("user", "Take your time.")]
    receipts = serve.receipts(session)
    assert len(receipts) == 1 and receipts[0]["status"] != 200 and receipts[0].get("error"), receipts


def test_non_retryable_400_goes_back_once(serve, fake, client):
    session = serve.new_session("400")
    fake.script({"status": 400, "repeat": 3})
    with pytest.raises(openai.BadRequestError) as failed:
        client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                       messages=[{"role": "user", "content": "bad"}])
    assert failed.value.status_code == 400
    assert len(fake.requests()) == 1, "a 400 is not retried"
    receipts = serve.receipts(session)
    assert len(receipts) == 1 and receipts[0]["status"] == 400 and receipts[0].get("error")


def test_upstream_answers_garbage(serve, fake, client):
    session = serve.new_session("garbage")
    fake.script({"body": "this is not JSON"})
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                       messages=[{"role": "user", "content": "hello?"}])
    assert failed.value.status_code == 502
    assert len(fake.requests()) == 1
    receipts = serve.receipts(session)
    assert len(receipts) == 1 and receipts[0].get("error"), receipts
    assert [m["role"] for m in serve.session(session)["messages"]] == ["user"]


def test_upstream_drops_an_idle_keep_alive_connection(serve, fake, client):
    session = serve.new_session("dropped")
    fake.script({"reply": "before the drop", "drop_after": True}, {"reply": "after the drop"})
    client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                   messages=[{"role": "user", "content": "one"}])
    time.sleep(0.3)  # the upstream has closed the connection statefold keeps for the next call
    answer = client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                            messages=[{"role": "user", "content": "two"}])
    assert answer.choices[0].message.content == "after the drop"
    assert [r["status"] for r in serve.receipts(session)] == [200, 200]


def test_default_sdk_retries_do_not_duplicate_the_input(serve, fake):
    # A client as people use it: the SDK's default max_retries (2) retries 5xx. The user message the failed turn
    # recorded must not be recorded again by each retry (the gateway can say `x-should-retry: false`, or dedupe).
    session = serve.new_session("sdk-retry")
    fake.script({"status": 500, "repeat": 3 * (MAX_RETRIES + 1)}, {"reply": "finally"})
    with openai.OpenAI(base_url=serve.url + "/v1", api_key=CLIENT_KEY, timeout=60) as default_client:
        with pytest.raises(openai.InternalServerError):
            default_client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                                   messages=[{"role": "user", "content": "only once, please"}])
    state = serve.session(session)
    assert [(m["role"], m["content"]) for m in state["messages"]] == [("user", "only once, please")], \
        "%d upstream calls; the session holds %s" % (len(fake.requests()), [m["content"] for m in state["messages"]])


# --------------------------------------------------------------------------------------- 6. concurrency, shutdown

def test_concurrent_turns_on_one_session(serve, fake, client):
    session = serve.new_session("busy")
    fake.script({"reply": "Slow answer.", "delay_ms": 2500}, {"reply": "Next turn."})
    outcome = {}

    def first_turn():
        try:
            outcome["reply"] = client.chat.completions.create(
                model="gpt-4o", extra_headers=session_header(session),
                messages=[{"role": "user", "content": "Think slowly."}])
        except Exception as e:  # reported below
            outcome["error"] = e

    thread = threading.Thread(target=first_turn)
    thread.start()
    try:
        assert wait_until(lambda: len(fake.requests()) >= 1, 30), "the first turn never reached the upstream"
        started = time.monotonic()
        with pytest.raises(openai.ConflictError) as refused:
            client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                           messages=[{"role": "user", "content": "Me too!"}])
        waited = time.monotonic() - started
    finally:
        thread.join(60)
    assert refused.value.status_code == 409
    assert refused.value.code == "turn_in_progress", refused.value.body
    assert waited < 1.5, "the 409 took %.3f s: it must not wait for the running turn" % waited
    assert "error" not in outcome, outcome.get("error")
    assert outcome["reply"].choices[0].message.content == "Slow answer."
    assert len(fake.requests()) == 1
    state = serve.session(session)
    assert [(m["role"], m["content"]) for m in state["messages"]] == [("user", "Think slowly."),
                                                                      ("assistant", "Slow answer.")]
    # The turn is over: the session takes the next one.
    answer = client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                            messages=[{"role": "user", "content": "Done?"}])
    assert answer.choices[0].message.content == "Next turn."


def test_turns_on_different_sessions_run_in_parallel(serve, fake, client):
    sessions = [serve.new_session("parallel-%d" % i) for i in range(3)]
    fake.script({"reply": "slow", "delay_ms": 2000, "repeat": 3})
    answers, errors = {}, []

    def turn(session):
        try:
            answers[session] = client.chat.completions.create(
                model="gpt-4o", extra_headers=session_header(session),
                messages=[{"role": "user", "content": "in parallel"}]).choices[0].message.content
        except Exception as e:  # reported below
            errors.append(e)
    started = time.monotonic()
    threads = [threading.Thread(target=turn, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - started
    assert not errors, errors
    assert answers == {s: "slow" for s in sessions}
    assert elapsed < 5.0, "3 turns of 2 s on 3 sessions took %.3f s: not run concurrently" % elapsed


def test_sigterm_during_a_turn(serve, fake, tmp_path):
    # A serve of its own (the shared one must live on). SIGTERM while the upstream is answering: whatever the client
    # is told, a restart on the same store and topic must agree with it. A 200 means the reply was recorded.
    config_path = tmp_path / "serve.toml"
    config_path.write_text(upstream_config(fake.port))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEFOLD_")}
    env[KEY_ENV] = UPSTREAM_KEY
    own = Serve(serve.binary, serve.brokers, "gateway-sdk-term-" + uuid.uuid4().hex[:12], tmp_path / "store", tmp_path)
    session = "sdk-sigterm-" + uuid.uuid4().hex[:8]
    fake.script({"reply": "answered while stopping", "delay_ms": 1500}, {"reply": "after the restart"})
    outcome = {}
    try:
        own.start(config_path, env)
        with openai.OpenAI(base_url=own.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=60) as c:
            def turn():
                try:
                    outcome["reply"] = c.chat.completions.create(
                        model="gpt-4o", extra_headers=session_header(session),
                        messages=[{"role": "user", "content": "before the stop"}]).choices[0].message.content
                except Exception as e:  # reported below
                    outcome["error"] = e
            thread = threading.Thread(target=turn)
            thread.start()
            assert wait_until(lambda: len(fake.requests()) >= 1, 30), "the turn never reached the upstream"
            own.process.send_signal(signal.SIGTERM)
            thread.join(60)
            status = own.process.wait(120)
        assert status == 0, "serve exited %s after SIGTERM during a turn:\n%s" % (status, tail(own.log_path))
        first_log = own.log_path

        own.start(config_path, env)
        answered = outcome.get("reply") == "answered while stopping"
        if answered:
            # The client was told the turn is done: after the restart the session has its reply and receipt.
            assert wait_until(lambda: own.get("/v1/sessions/" + session)[0] == 200
                              and own.session(session)["counts"]["receipts"] == 1, 30), \
                "the client got 200 but the restarted serve has %s\nlog of the first run:\n%s" % (
                    own.get("/v1/sessions/" + session), tail(first_log))
            state = own.session(session)
            assert [(m["role"], m["content"]) for m in state["messages"]] == [
                ("user", "before the stop"), ("assistant", "answered while stopping")]
        else:
            assert "error" in outcome, outcome
        with openai.OpenAI(base_url=own.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=60) as c:
            after = c.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                              messages=[{"role": "user", "content": "still there?"}])
        assert after.choices[0].message.content == "after the restart"
        turns = chat_turns(fake.requests()[-1]["json"])
        assert turns[0] == ("user", "before the stop") and turns[-1] == ("user", "still there?")
        if answered:
            assert ("assistant", "answered while stopping") in turns
    finally:
        assert own.stop() in (0, None)


# ------------------------------------------------------------------------------------------------ 7. Anthropic

def test_anthropic_endpoint(serve, fake, client):
    session = serve.new_session("claude")
    fake.script({"reply": "Rome.", "usage": {"prompt_tokens": 21, "completion_tokens": 2}},
                {"reply": "About 2.8 million."})
    first = client.chat.completions.create(
        model="claude-sonnet-4", extra_headers=session_header(session),
        messages=[{"role": "system", "content": "You are a geography tutor."},
                  {"role": "user", "content": "Capital of Italy?"}])
    assert first.object == "chat.completion"
    assert first.choices[0].message.content == "Rome."
    assert first.choices[0].finish_reason == "stop"
    assert (first.usage.prompt_tokens, first.usage.completion_tokens) == (21, 2)
    second = client.chat.completions.create(model="claude-sonnet-4", extra_headers=session_header(session),
                                            messages=[{"role": "user", "content": "Population?"}])
    assert second.choices[0].message.content == "About 2.8 million."

    requests = fake.requests()
    assert len(requests) == 2
    for r in requests:
        assert r["path"].endswith("/v1/messages"), r["path"]
        body = r["json"]
        assert body["model"] == "claude-sonnet-4"
        assert "You are a geography tutor." in text_of(body["system"]), body.get("system")
        assert isinstance(body.get("max_tokens"), int) and body["max_tokens"] > 0
        assert contains_key(body, "cache_control"), "no cache_control breakpoint in %s" % r["body"]
        assert all(m["role"] in ("user", "assistant") for m in body["messages"])
        assert r["auth"]["header"] == "x-api-key"
        assert "anthropic-version" in r["headers"]
        assert "authorization" not in r["headers"]
    assert [(m["role"], text_of(m["content"])) for m in requests[1]["json"]["messages"]] == [
        ("user", "Capital of Italy?"), ("assistant", "Rome."), ("user", "Population?")]
    status, _, overview = serve.get("/v1/sessions/%s/context?provider=anthropic" % session)
    assert status == 200, overview
    assert "You are a geography tutor." in text_of(overview["body"]["system"])
    assert contains_key(overview["body"], "cache_control")
    receipts = serve.receipts(session)
    assert [(r["provider"], r["endpoint"], r["status"]) for r in receipts] == [("anthropic", "fake-anthropic", 200)] * 2
    assert receipts[0]["usage"]["input_tokens"] == 21
    for receipt, request in zip(receipts, requests):
        assert receipt["request_hash"] == sha256_hex(request["body"])


def test_anthropic_streaming(serve, fake, client):
    session = serve.new_session("claude-stream")
    fake.script({"reply": "Bonjour tout le monde", "chunk_delay_ms": 20})
    chunks = list(client.chat.completions.create(model="claude-sonnet-4", extra_headers=session_header(session),
                                                 stream=True, stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "Say hello in French."}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Bonjour tout le monde"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    request = fake.requests()[0]
    assert request["path"].endswith("/v1/messages") and request["json"].get("stream") is True
    assert "stream_options" not in request["json"]


def test_anthropic_tool_call_turn(serve, fake, client):
    session = serve.new_session("claude-tools")
    call_id = "toolu_" + uuid.uuid4().hex[:16]
    fake.script({"tool_calls": [{"id": call_id, "name": "get_weather", "arguments": {"city": "Rome"}}]},
                {"reply": "Warm in Rome."})
    first = client.chat.completions.create(model="claude-sonnet-4", extra_headers=session_header(session),
                                           tools=[WEATHER_TOOL],
                                           messages=[{"role": "user", "content": "Weather in Rome?"}])
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert call.id == call_id and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Rome"}
    second = client.chat.completions.create(model="claude-sonnet-4", extra_headers=session_header(session),
                                            tools=[WEATHER_TOOL],
                                            messages=[{"role": "tool", "tool_call_id": call_id, "content": "28 C"}])
    assert second.choices[0].message.content == "Warm in Rome."
    requests = fake.requests()
    tools = requests[0]["json"]["tools"]
    assert tools[0]["name"] == "get_weather", tools
    assert tools[0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]
    messages = requests[1]["json"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"], messages
    uses = [b for b in messages[1]["content"] if b.get("type") == "tool_use"]
    assert [(b["id"], b["name"], b["input"]) for b in uses] == [(call_id, "get_weather", {"city": "Rome"})]
    results = [b for b in messages[2]["content"] if b.get("type") == "tool_result"]
    assert len(results) == 1 and results[0]["tool_use_id"] == call_id
    assert text_of(results[0]["content"]) == "28 C"


def test_anthropic_cache_usage(serve, fake, client):
    # Anthropic counts cache reads and writes apart from input_tokens; OpenAI's prompt_tokens includes them.
    session = serve.new_session("claude-cache")
    fake.script({"body": {"id": "msg_raw", "type": "message", "role": "assistant", "model": "claude-sonnet-4",
                          "content": [{"type": "text", "text": "from the cache"}], "stop_reason": "end_turn",
                          "stop_sequence": None,
                          "usage": {"input_tokens": 10, "cache_read_input_tokens": 1000,
                                    "cache_creation_input_tokens": 50, "output_tokens": 5}}})
    answer = client.chat.completions.create(model="claude-sonnet-4", extra_headers=session_header(session),
                                            messages=[{"role": "user", "content": "cache me"}])
    assert answer.choices[0].message.content == "from the cache"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (1060, 5)
    assert answer.usage.prompt_tokens_details.cached_tokens == 1000
    receipt = serve.receipts(session)[0]
    assert (receipt["usage"]["input_tokens"], receipt["usage"]["cached_tokens"]) == (1060, 1000)


def test_responses_stream_over_anthropic(serve, fake, client):
    session = serve.new_session("resp-claude")
    fake.script({"reply": "Ciao a tutti", "chunk_delay_ms": 10})
    events = list(client.responses.create(model="claude-sonnet-4", input="Say hi in Italian.", stream=True,
                                          extra_headers=session_header(session)))
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == "Ciao a tutti"
    assert fake.requests()[0]["path"].endswith("/v1/messages")


# ------------------------------------------------------------------------------------------------ 8. audit, API key

def test_audit_rechecks_every_receipt(serve, fake, client):
    # A conversation of its own, so this test means something when run alone; then every session of the run so far,
    # whichever file opened it.
    session = serve.new_session("audit")
    fake.script({"reply": "a"}, {"reply": "b"})
    for text in ("first question", "second question"):
        client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                       messages=[{"role": "user", "content": text}])
    assert assert_audited(serve, serve.sessions) >= 1


def test_models_lists_what_the_routes_reach(client):
    # The SDK's own model listing and retrieval, against the three endpoints of upstream_config.
    ids = {m.id: m.owned_by for m in client.models.list()}
    assert ids == {"gpt-4.1": "fake-responses", "claude-sonnet-4": "fake-anthropic", "gpt-4o": "fake"}, ids
    model = client.models.retrieve("claude-sonnet-4")
    assert (model.id, model.object, model.owned_by) == ("claude-sonnet-4", "model", "fake-anthropic")
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("no-such-model")
    assert missing.value.code == "model_not_found"


def assert_openai_error(raised, status, message_part):
    """An SDK error whose body had OpenAI's shape: the SDK then keeps the message, type and code."""
    error = raised.value
    assert error.status_code == status
    body = error.response.json()
    assert set(body) >= {"error"} and isinstance(body["error"], dict), body
    assert {"message", "type", "param", "code"} <= set(body["error"]), body
    assert message_part in body["error"]["message"], body
    assert isinstance(error.body, dict) and error.body["message"] == body["error"]["message"]
    assert error.type == body["error"]["type"] and error.type


def test_errors_outside_the_turn_routes_have_openais_shape(serve, fake, client):
    # Issue 12, defect 7: the session API, unknown /v1 routes and wrong methods answer as OpenAI does, so an SDK
    # keeps the message (a bare {"error": "string"} becomes error.body == "string" with no type or code).
    nobody = "sdk-nobody-" + uuid.uuid4().hex[:8]
    with pytest.raises(openai.NotFoundError) as raised:
        client.get("/sessions/" + nobody, cast_to=object)
    assert_openai_error(raised, 404, "no session " + nobody)
    with pytest.raises(openai.NotFoundError) as raised:
        client.get("/sessions/%s/events" % nobody, cast_to=object)
    assert_openai_error(raised, 404, "no session " + nobody)
    with pytest.raises(openai.NotFoundError) as raised:
        client.get("/sessions/%s/context" % nobody, cast_to=object)
    assert_openai_error(raised, 404, "no session " + nobody)
    with pytest.raises(openai.BadRequestError) as raised:
        client.get("/sessions", cast_to=object, options={"params": {"limit": 0}})
    assert_openai_error(raised, 400, "limit")
    with pytest.raises(openai.BadRequestError) as raised:
        client.post("/sessions/%s/events" % nobody, cast_to=object, body={"payload": {"nonsense": 1}})
    assert_openai_error(raised, 400, "")
    with pytest.raises(openai.NotFoundError) as raised:
        client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert_openai_error(raised, 404, "POST /v1/embeddings")
    with pytest.raises(openai.APIStatusError) as raised:
        client.delete("/sessions/" + nobody, cast_to=object)
    assert_openai_error(raised, 405, "use GET")
    assert fake.requests() == []


def test_rerender_shows_what_another_policy_and_provider_would_have_sent(serve, fake, client, tmp_path):
    # `statefold rerender` on a real store: every turn as sent matches its receipt, and the counterfactual (a policy
    # file with a small budget, the Anthropic renderer) renders without calling anything.
    session = serve.new_session("rerender")
    fake.script({"reply": "a" * 400}, {"reply": "b" * 400}, {"reply": "c"})
    for text in ("first question " * 40, "second question " * 40, "third"):
        client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                       messages=[{"role": "user", "content": text}])
    calls = len(fake.requests())
    policy = tmp_path / "policy.toml"
    policy.write_text('token-budget = 360\noutput-reserve = 60\n')
    run = subprocess.run([serve.binary, "rerender", "--data-dir", str(serve.data_dir), "--session", session,
                          "--policy", str(policy), "--provider", "anthropic", "--format", "json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["counterfactual"] == {"token_budget": 360, "output_reserve": 60, "provider": "anthropic"}
    turns = report["turns"]
    assert [t["recorded_hash"] for t in turns] == [r["request_hash"] for r in serve.receipts(session)]
    assert all(t["sent_matches_receipt"] for t in turns), turns
    assert all("problem" not in t for t in turns), turns
    assert turns[-1]["counterfactual"]["cut"]["messages"] > 0, turns[-1]
    assert turns[-1]["counterfactual"]["tokens"] < turns[-1]["sent"]["tokens"]
    assert len(fake.requests()) == calls  # no model was called
    text = subprocess.run([serve.binary, "rerender", "--data-dir", str(serve.data_dir), "--session", session],
                          capture_output=True, text=True, timeout=120)
    assert text.returncode == 0 and "nothing changed" in text.stdout, text.stdout + text.stderr


def test_audit_catches_a_forged_receipt(serve, fake, client):
    # The control for the test above: a receipt whose hash is not what its state version renders to fails audit.
    session = "sdk-forged-" + uuid.uuid4().hex[:10]  # not in serve.sessions: the audit above must not see it
    fake.script({"reply": "genuine"})
    client.chat.completions.create(model="gpt-4o", extra_headers=session_header(session),
                                   messages=[{"role": "user", "content": "hello"}])
    genuine = serve.receipts(session)[0]
    forged = dict(genuine, request_hash="0" * 64)
    status, _, body = http("POST", serve.url + "/v1/sessions/%s/events" % session,
                           {"payload_type": "InferenceReceipt", "payload": forged})
    assert status == 200, body
    run = subprocess.run([serve.binary, "audit", "--brokers", serve.brokers, "--topic", serve.topic,
                          "--data-dir", str(serve.data_dir), "--session", session, "--format", "json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 5, "audit of a forged receipt exited %d:\n%s\n%s" % (run.returncode, run.stdout,
                                                                                  run.stderr)
    report = json.loads(run.stdout)
    assert report["ok"] is False
    verdicts = [r["verdict"] for r in report["receipts"]]
    assert verdicts[0] == "ok" and verdicts[1].startswith("mismatch"), verdicts


def test_api_key_only_in_the_auth_header(serve, fake, client):
    # At least one call of each provider, whatever ran before.
    fake.script({"reply": "x"}, {"reply": "y"}, {"reply": "z"})
    client.chat.completions.create(model="gpt-4o", extra_headers=session_header(serve.new_session("key-chat")),
                                   messages=[{"role": "user", "content": "k1"}])
    client.chat.completions.create(model="claude-sonnet-4",
                                   extra_headers=session_header(serve.new_session("key-claude")),
                                   messages=[{"role": "user", "content": "k2"}])
    client.responses.create(model="gpt-4.1", input="k3", extra_headers=session_header(serve.new_session("key-resp")))

    requests = fake.all_requests()
    paths = {r["path"].rsplit("/", 1)[-1] for r in requests}
    assert {"completions", "messages", "responses"} <= paths, paths
    expected = sha256_hex(UPSTREAM_KEY)
    for r in requests:
        assert UPSTREAM_KEY not in r["body"] and CLIENT_KEY not in r["body"], "a key in the body of %s" % r["path"]
        assert not any(UPSTREAM_KEY in v or CLIENT_KEY in v for v in r["headers"].values())
        assert r["auth"]["present"], r["headers"]
        assert r["auth"]["sha256"] == expected, "the upstream got another key than %s's" % KEY_ENV
        assert r["auth"]["sha256"] != sha256_hex(CLIENT_KEY)
        assert r["auth"]["header"] == ("x-api-key" if r["path"].endswith("/messages") else "authorization")
    assert UPSTREAM_KEY not in serve.log()
    # Metrics label routes by template: no session id (nor response id) becomes a label.
    status, _, metrics = serve.get("/metrics")
    assert status == 200
    assert 'route="POST /v1/chat/completions"' in metrics
    assert not any(session in metrics for session in serve.sessions)
    for session in serve.sessions[-3:]:
        assert UPSTREAM_KEY not in json.dumps(serve.events(session))


def test_a_key_the_upstream_quotes_back_is_stored_and_shown_nowhere(serve, fake, client):
    # A careless upstream quotes the Authorization header it got: in a 401's body and header, and in a streamed
    # reply's text. The key must reach neither the client, nor the events, receipts, state, log or metrics.
    fake.script({"status": 401, "echo_auth": True}, {"echo_auth": True})
    failed = serve.new_session("echo-key-401")
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="gpt-4o", extra_headers=session_header(failed),
                                       messages=[{"role": "user", "content": "who am I?"}])
    seen = str(refused.value) + json.dumps(refused.value.body) + json.dumps(dict(refused.value.response.headers))
    assert UPSTREAM_KEY not in seen and "invalid credentials" in seen, seen
    streamed = serve.new_session("echo-key-stream")
    text = "".join(chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
        model="gpt-4o", stream=True, extra_headers=session_header(streamed),
        messages=[{"role": "user", "content": "and now?"}]) if chunk.choices)
    assert "invalid credentials" in text and "[redacted]" in text and UPSTREAM_KEY not in text, text
    for session in (failed, streamed):
        stored = json.dumps(serve.events(session)) + json.dumps(serve.session(session))
        assert UPSTREAM_KEY not in stored, session
        assert serve.receipts(session), session
    assert "[redacted]" in json.dumps(serve.receipts(failed)) + json.dumps(serve.events(streamed))
    assert UPSTREAM_KEY not in serve.log()
    assert UPSTREAM_KEY not in serve.get("/metrics")[2]


def test_truncation_is_never_silent(serve, fake, client):
    # Issue 12, defect 8: a session whose context must leave history out says so on every turn (a header on chat
    # and Responses, truncation "auto" on Responses), and truncation "disabled" refuses the turn instead of cutting.
    session = serve.new_session("truncation")
    opened = {"payload_type": "SessionOpened",
              "payload": {"model": "gpt-4o", "policy": {"token_budget": 700, "output_reserve": 100}}}
    status, _, body = http("POST", serve.url + "/v1/sessions/%s/events" % session, [opened])
    assert status == 200, body
    fake.script(*[{"reply": "noted " * 30} for _ in range(6)])
    cut = None
    for k in range(6):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o", extra_headers=session_header(session),
            messages=[{"role": "user", "content": ("question %d " % k) * 40}])
        cut = raw.headers.get("x-statefold-context-cut")
        if cut:
            break
    assert cut and cut.startswith("messages=") and "tokens=" in cut and "versions=" in cut, cut
    assert int(cut.split(";")[0].split("=")[1]) > 0
    # Responses on the same session: cut, and it says "auto".
    fake.script({"reply": "fine"})
    response = client.responses.with_raw_response.create(model="gpt-4o", input="and now? " * 40,
                                                          extra_headers=session_header(session))
    assert response.headers.get("x-statefold-context-cut"), dict(response.headers)
    assert response.parse().truncation == "auto"
    # "disabled": refused before any upstream call, the input recorded with a failed receipt that says why.
    calls = len(fake.requests())
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="gpt-4o", input="one more " * 40, truncation="disabled",
                                extra_headers=session_header(session))
    assert refused.value.code == "context_length_exceeded" and "truncation" in str(refused.value)
    assert len(fake.requests()) == calls
    assert "truncation" in (serve.receipts(session)[-1].get("error") or "")
    # A short session is not cut: no header, and "disabled" is honoured as asked.
    short = serve.new_session("truncation-short")
    fake.script({"reply": "ok"})
    raw = client.responses.with_raw_response.create(model="gpt-4o", input="hi", truncation="disabled",
                                                     extra_headers=session_header(short))
    assert "x-statefold-context-cut" not in raw.headers and raw.parse().truncation == "disabled"
