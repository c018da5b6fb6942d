"""statefold's gateway with LangChain's ChatOpenAI (langchain-openai, pinned in requirements.txt) as its client.

LangChain keeps the conversation on the client: a list of messages that grows by each reply (and each ToolMessage of a
`bind_tools` loop) and is sent whole every turn. The gateway recognises what the session already has and records only
the new tail (issue 12, defect 1: a 21-message conversation had become 119 stored messages). Checked here with
LangChain's own loops: plain invoke, `stream` with `stream_usage`, `bind_tools` rounds (arguments re-serialised by
LangChain), the Responses API with `use_previous_response_id`, a diverging history (409), `Idempotency-Key` and
LangChain's own retries, output limits, and upstream errors as the openai exceptions LangChain raises.

Run by run_sdk_tests.sh (ctest: gateway_sdk_test); serve and the fake are the shared fixtures of conftest.py.
"""

import json
import uuid

import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from gateway_harness import (CLIENT_KEY, MAX_RETRIES, STREAMED_QUESTIONS, STREAMED_REPLIES, assert_audited,
                             assert_each_message_once, assert_streamed_twice_recorded_once, chat_roles, chat_turns,
                             responses_turns, script_streamed_twice, session_header, stored_turns, text_of)


@pytest.fixture
def chat_model(serve):
    """ChatOpenAI on the gateway, as a user configures it for another base URL: the session in default_headers,
    max_retries 0 unless a test is about LangChain's retries (then it passes its own)."""
    def make(session=None, model="gpt-4o", headers=None, **options):
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 60)
        return ChatOpenAI(model=model, base_url=serve.url + "/v1", api_key=CLIENT_KEY,
                          default_headers={**(session_header(session) if session else {}), **(headers or {})},
                          **options)
    return make


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return json.dumps({"city": city, "temp_c": {"Paris": 21, "Oslo": -3}.get(city, 15)})


@pytest.fixture(scope="module", autouse=True)
def sessions_of_this_file(serve):
    """The sessions this file's tests open (serve.sessions from here on), for the audit at its end."""
    start = len(serve.sessions)
    return lambda: serve.sessions[start:]


# ------------------------------------------------------------------------------------------------ chat

def test_a_growing_message_list_is_recorded_once(serve, fake, chat_model):
    session = serve.new_session("lc-list")
    llm = chat_model(session, include_response_headers=True)
    turns = 10
    fake.script(*[{"reply": "Answer %d." % k, "usage": {"prompt_tokens": 10 + k, "completion_tokens": 2}}
                  for k in range(turns)])
    messages = [SystemMessage("You are terse.")]
    for k in range(turns):
        messages.append(HumanMessage("Question %d?" % k))
        ai = llm.invoke(messages)
        assert isinstance(ai, AIMessage) and ai.content == "Answer %d." % k
        assert ai.usage_metadata["input_tokens"] == 10 + k and ai.usage_metadata["output_tokens"] == 2
        assert ai.response_metadata["headers"]["x-session-id"] == session
        messages.append(ai)
    assert len(messages) == 1 + 2 * turns

    requests = fake.requests()
    assert len(requests) == turns
    for k, request in enumerate(requests):
        assert len(request["json"]["messages"]) == 2 + 2 * k, "request %d: %s" % (k, chat_turns(request["json"]))
        assert_each_message_once(request["json"])
    assert chat_turns(requests[-1]["json"]) == [("system", "You are terse.")] + [
        ({"human": "user", "ai": "assistant"}[m.type], m.content) for m in messages[1:-1]]
    state = serve.session(session)
    assert state["system_prompt"] == "You are terse."
    assert state["counts"]["messages"] == 2 * turns, state["counts"]
    assert [m["role"] for m in state["messages"]] == ["user", "assistant"] * turns
    assert state["counts"]["receipts"] == turns
    assert state["usage"]["input_tokens"] == sum(10 + k for k in range(turns))


def test_session_from_metadata(serve, fake, chat_model):
    session = serve.new_session("lc-meta")
    llm = chat_model(extra_body={"metadata": {"session_id": session}})
    fake.script({"reply": "first"}, {"reply": "second"})
    messages = [HumanMessage("one")]
    messages.append(llm.invoke(messages))
    messages.append(HumanMessage("two"))
    assert llm.invoke(messages).content == "second"
    last = fake.requests()[-1]["json"]
    assert chat_turns(last) == [("user", "one"), ("assistant", "first"), ("user", "two")]
    assert "metadata" not in last
    assert serve.session(session)["counts"]["messages"] == 4


def test_streaming_with_usage(serve, fake, chat_model):
    session = serve.new_session("lc-stream")
    llm = chat_model(session, stream_usage=True)
    in_greek, in_latin = STREAMED_QUESTIONS
    reply, latin = STREAMED_REPLIES
    script_streamed_twice(fake)
    messages = [HumanMessage(in_greek)]
    chunks = list(llm.stream(messages))
    assert len([c for c in chunks if c.content]) >= 4
    full = sum(chunks[1:], chunks[0])
    assert full.content == reply
    assert (full.usage_metadata["input_tokens"], full.usage_metadata["output_tokens"],
            full.usage_metadata["total_tokens"]) == (12, 5, 17)
    # The aggregated chunk goes back into the list as the reply, and the whole list is streamed again.
    messages += [full, HumanMessage(in_latin)]
    chunks = list(llm.stream(messages))
    again = sum(chunks[1:], chunks[0])
    assert again.content == latin and again.usage_metadata["total_tokens"] == 33

    assert_streamed_twice_recorded_once(serve, fake, session)


def test_a_bind_tools_loop_is_recorded_once(serve, fake, chat_model):
    """LangChain's agent loop by hand: invoke, append the AIMessage, append each tool's ToolMessage
    (`tool.invoke(tool_call)`), invoke again with the whole list, until the model answers in text; LangChain writes
    the tool calls' arguments back as json.dumps of what it parsed (`{"city": "Paris"}`, not the upstream's
    `{"city":"Paris"}`), which the gateway compares as values. Then a streamed round on the same list."""
    session = serve.new_session("lc-tools")
    llm = chat_model(session, stream_usage=True).bind_tools([get_weather])
    ids = ["call_" + uuid.uuid4().hex[:12] for _ in range(4)]
    fake.script({"tool_calls": [{"id": ids[0], "name": "get_weather", "arguments": {"city": "Paris"}},
                                {"id": ids[1], "name": "get_weather", "arguments": {"city": "Oslo"}}]},
                {"tool_calls": [{"id": ids[2], "name": "get_weather", "arguments": {"city": "Bergen"}}]},
                {"reply": "Paris 21 C, Oslo -3 C, Bergen 15 C."},
                {"tool_calls": [{"id": ids[3], "name": "get_weather", "arguments": {"city": "Rome"}}]},
                {"reply": "Rome 15 C.", "chunk_delay_ms": 5})
    messages = [SystemMessage("You use tools."), HumanMessage("Weather in Paris and Oslo, then Bergen?")]

    def loop(step):
        rounds = 0
        while True:
            ai = step(messages)
            messages.append(ai)
            rounds += 1
            if not ai.tool_calls:
                return ai, rounds
            for call in ai.tool_calls:
                messages.append(get_weather.invoke(call))

    answer, rounds = loop(llm.invoke)
    assert (answer.content, rounds) == ("Paris 21 C, Oslo -3 C, Bergen 15 C.", 3)
    messages.append(HumanMessage("And Rome?"))

    def streamed(msgs):
        chunks = list(llm.stream(msgs))
        return sum(chunks[1:], chunks[0])
    answer, rounds = loop(streamed)
    assert (answer.content, rounds) == ("Rome 15 C.", 2)
    assert [type(m).__name__ for m in messages].count("ToolMessage") == 4

    requests = fake.requests()
    assert [chat_roles(r["json"]) for r in requests] == [
        ["system", "user"],
        ["system", "user", "assistant", "tool", "tool"],
        ["system", "user", "assistant", "tool", "tool", "assistant", "tool"],
        ["system", "user", "assistant", "tool", "tool", "assistant", "tool", "assistant", "user"],
        ["system", "user", "assistant", "tool", "tool", "assistant", "tool", "assistant", "user", "assistant",
         "tool"]]
    for r in requests:
        assert_each_message_once(r["json"])
        assert r["json"]["tools"][0]["function"]["name"] == "get_weather"
    last = requests[-1]["json"]["messages"]
    assert [c["id"] for c in last[2]["tool_calls"]] == ids[:2]
    assert [json.loads(c["function"]["arguments"]) for c in last[2]["tool_calls"]] == [{"city": "Paris"},
                                                                                        {"city": "Oslo"}]
    assert [(m["tool_call_id"], json.loads(text_of(m["content"]))["city"]) for m in last if m["role"] == "tool"] == [
        (ids[0], "Paris"), (ids[1], "Oslo"), (ids[2], "Bergen"), (ids[3], "Rome")]

    state = serve.session(session)
    assert [m["role"] for m in state["messages"]] == ["user", "assistant", "tool", "tool", "assistant", "tool",
                                                      "assistant", "user", "assistant", "tool", "assistant"]
    assert (state["counts"]["messages"], state["counts"]["tool_calls"], state["counts"]["receipts"]) == (11, 4, 5)


def test_structured_output(serve, fake, chat_model):
    """`with_structured_output` (a json_schema response_format): the schema reaches the upstream, LangChain parses
    the reply, and the list goes on with it."""
    session = serve.new_session("lc-structured")

    class Weather(BaseModel):
        city: str
        temp_c: int

    fake.script({"reply": '{"city":"Paris","temp_c":21}'}, {"reply": "Warm."})
    llm = chat_model(session)
    weather = llm.with_structured_output(Weather).invoke([HumanMessage("Weather in Paris, as JSON.")])
    assert weather == Weather(city="Paris", temp_c=21)
    body = fake.requests()[0]["json"]
    assert body["response_format"]["type"] == "json_schema", body
    assert body["response_format"]["json_schema"]["name"] == "Weather"
    assert set(body["response_format"]["json_schema"]["schema"]["properties"]) == {"city", "temp_c"}
    answer = llm.invoke([HumanMessage("Weather in Paris, as JSON."), AIMessage('{"city":"Paris","temp_c":21}'),
                         HumanMessage("Warm?")])
    assert answer.content == "Warm."
    assert stored_turns(serve.session(session)) == [
        ("user", "Weather in Paris, as JSON."), ("assistant", '{"city":"Paris","temp_c":21}'), ("user", "Warm?"),
        ("assistant", "Warm.")]


def test_a_list_retried_after_a_failed_turn_records_its_question_once(serve, fake, chat_model):
    session = serve.new_session("lc-retry")
    llm = chat_model(session)
    fake.script({"reply": "Hi."}, {"status": 500, "repeat": MAX_RETRIES + 1}, {"reply": "Now is fine."})
    messages = [HumanMessage("Hello")]
    messages.append(llm.invoke(messages))
    messages.append(HumanMessage("And now?"))
    with pytest.raises(openai.InternalServerError):
        llm.invoke(messages)
    assert llm.invoke(messages).content == "Now is fine."
    assert stored_turns(serve.session(session)) == [("user", "Hello"), ("assistant", "Hi."), ("user", "And now?"),
                                                    ("assistant", "Now is fine.")]
    assert chat_turns(fake.requests()[-1]["json"]) == [("user", "Hello"), ("assistant", "Hi."), ("user", "And now?")]


def test_a_diverging_history_is_a_409(serve, fake, chat_model):
    session = serve.new_session("lc-diverged")
    llm = chat_model(session)
    fake.script({"reply": "Paris."})
    messages = [SystemMessage("You are terse."), HumanMessage("What is the capital of France?")]
    messages.append(llm.invoke(messages))
    edited = [messages[0], HumanMessage("What is the capital of Spain?"), messages[2], HumanMessage("Population?")]
    with pytest.raises(openai.ConflictError) as refused:
        llm.invoke(edited)
    assert refused.value.status_code == 409 and refused.value.code == "history_diverged", refused.value.body
    assert "fork" in refused.value.message
    with pytest.raises(openai.ConflictError) as refused:
        llm.invoke([SystemMessage("You are verbose.")] + messages[1:] + [HumanMessage("Population?")])
    assert refused.value.code == "history_diverged"
    assert len(fake.requests()) == 1
    assert serve.session(session)["counts"]["messages"] == 2


# ------------------------------------------------------------------------------------------------ retries

def test_idempotency_key_replays_the_stored_answer(serve, fake, chat_model):
    session = serve.new_session("lc-idem")
    key = "turn-" + uuid.uuid4().hex
    llm = chat_model(session, headers={"Idempotency-Key": key}, include_response_headers=True)
    fake.script({"reply": "The first and only answer.", "usage": {"prompt_tokens": 10, "completion_tokens": 5}},
                {"reply": "a second, paid call"})
    messages = [HumanMessage("Answer once.")]
    one, two = llm.invoke(messages), llm.invoke(messages)
    assert one.content == two.content == "The first and only answer."
    assert one.usage_metadata["total_tokens"] == two.usage_metadata["total_tokens"] == 15
    assert "x-statefold-idempotent-replay" not in one.response_metadata["headers"]
    assert two.response_metadata["headers"]["x-statefold-idempotent-replay"] == "true"
    assert len(fake.requests()) == 1
    state = serve.session(session)
    assert (state["counts"]["messages"], state["counts"]["receipts"]) == (2, 1)


def test_langchains_own_retry_after_a_timeout_is_the_same_turn(serve, fake, chat_model):
    """Issue 12, defect 4: ChatOpenAI(timeout=1.5, max_retries=2) and an upstream that takes 2.5 s; the openai client
    under LangChain retries with the same headers, Idempotency-Key included, so the retry is the same turn."""
    session = serve.new_session("lc-timeout")
    llm = chat_model(session, headers={"Idempotency-Key": "turn-" + uuid.uuid4().hex}, timeout=1.5, max_retries=2,
                     include_response_headers=True)
    fake.script({"reply": "Worth the wait.", "delay_ms": 2500}, {"reply": "a second, paid call"})
    answer = llm.invoke([HumanMessage("Slow question.")])
    assert answer.content == "Worth the wait."
    assert answer.response_metadata["headers"]["x-statefold-idempotent-replay"] == "true"
    assert len(fake.requests()) == 1, "the retry called the upstream again"
    state = serve.session(session)
    assert stored_turns(state) == [("user", "Slow question."), ("assistant", "Worth the wait.")]


# ------------------------------------------------------------------------------------------------ limits, errors

def test_output_limits_above_4096_reach_the_upstream(serve, fake, chat_model):
    session = serve.new_session("lc-limits")
    fake.script({"reply": "l1"}, {"reply": "l2"})
    chat_model(session, max_completion_tokens=16000).invoke([HumanMessage("essay")])
    responses = chat_model(session, model="gpt-4.1", use_responses_api=True, max_tokens=50000)
    assert responses.invoke([HumanMessage("a book")]).text == "l2"
    bodies = [r["json"] for r in fake.requests()]
    assert bodies[0]["max_completion_tokens"] == 16000, bodies[0]
    assert bodies[1]["max_output_tokens"] == 50000, bodies[1]
    renders = [json.loads(r["render"]) for r in serve.receipts(session)]
    assert [(r["max_output_tokens"], r["output_limit"]) for r in renders] == [(16000, 16000), (50000, 50000)]


def test_upstream_errors_surface_as_openais_exceptions(serve, fake, chat_model):
    """ChatOpenAI with its default retries: the gateway's x-should-retry: false keeps the openai client under it
    from sending a failed turn again."""
    session = serve.new_session("lc-errors")
    llm = chat_model(session, max_retries=2)
    fake.script({"status": 429, "repeat": MAX_RETRIES + 1}, {"status": 500, "repeat": 2 * (MAX_RETRIES + 1)})
    with pytest.raises(openai.RateLimitError) as limited:
        llm.invoke([HumanMessage("Busy?")])
    assert limited.value.status_code == 429 and "429" in limited.value.message
    with pytest.raises(openai.InternalServerError) as failed:
        llm.invoke([HumanMessage("Busy?"), HumanMessage("Will this work?")])
    assert failed.value.status_code == 500
    with pytest.raises(openai.InternalServerError):
        list(chat_model(session, max_retries=2, stream_usage=True).stream(
            [HumanMessage("Busy?"), HumanMessage("Will this work?"), HumanMessage("Stream please.")]))
    assert len(fake.requests()) == 3 * (MAX_RETRIES + 1), "LangChain's client retried a turn"
    assert stored_turns(serve.session(session)) == [("user", "Busy?"), ("user", "Will this work?"),
                                                    ("user", "Stream please.")]
    assert [r["status"] for r in serve.receipts(session)] == [429, 500, 500]


# ------------------------------------------------------------------------------------------------ Responses

def test_responses_with_previous_response_id(serve, fake, chat_model):
    """ChatOpenAI(use_responses_api=True, use_previous_response_id=True): LangChain sends only the messages after its
    last AIMessage and that reply's id as previous_response_id (it does so only for ids that start with "resp_", as
    OpenAI's do); a streamed turn and a tool round follow on the same list."""
    llm = chat_model(model="gpt-4.1", use_responses_api=True, use_previous_response_id=True,
                     include_response_headers=True)
    call_id = "call_" + uuid.uuid4().hex[:12]
    fake.script({"reply": "Seven is prime.", "usage": {"prompt_tokens": 9, "completion_tokens": 3}},
                {"reply": "Eleven is prime too."}, {"reply": "one two three four", "chunk_delay_ms": 5},
                {"tool_calls": [{"id": call_id, "name": "get_weather", "arguments": {"city": "Lima"}}]},
                {"reply": "Mild in Lima."})
    messages = [SystemMessage("Answer in one short sentence."), HumanMessage("Name a prime number.")]
    first = llm.invoke(messages)
    assert first.text == "Seven is prime."
    assert (first.usage_metadata["input_tokens"], first.usage_metadata["output_tokens"]) == (9, 3)
    session = first.response_metadata["headers"]["x-session-id"]
    serve.sessions.append(session)
    messages += [first, HumanMessage("And another one?")]
    second = llm.invoke(messages)
    assert second.text == "Eleven is prime too."
    assert second.response_metadata["headers"]["x-session-id"] == session
    messages += [second, HumanMessage("Count to four.")]
    chunks = list(llm.stream(messages))
    streamed = sum(chunks[1:], chunks[0])
    assert streamed.text == "one two three four"
    messages += [streamed, HumanMessage("Weather in Lima?")]
    tools = llm.bind_tools([get_weather])
    asked = tools.invoke(messages)
    assert [(c["id"], c["name"], c["args"]) for c in asked.tool_calls] == [(call_id, "get_weather", {"city": "Lima"})]
    messages += [asked, ToolMessage("19 C", tool_call_id=call_id)]
    answered = tools.invoke(messages)
    assert answered.text == "Mild in Lima."
    ids = [m.response_metadata["id"] for m in (first, second, streamed, asked, answered)]
    assert all(ids) and len(set(ids)) == len(ids), ids

    requests = fake.requests()
    assert len(requests) == 5 and all(r["path"].endswith("/v1/responses") for r in requests)
    for r in requests:
        assert r["json"].get("previous_response_id") is None, "the upstream is called statelessly"
    assert [t for t in responses_turns(requests[2]["json"]) if t[0] in ("user", "assistant")] == [
        ("user", "Name a prime number."), ("assistant", "Seven is prime."), ("user", "And another one?"),
        ("assistant", "Eleven is prime too."), ("user", "Count to four.")]
    items = requests[4]["json"]["input"]
    assert [i.get("type", "message") for i in items][-3:] == ["message", "function_call", "function_call_output"]
    assert (items[-1]["call_id"], items[-1]["output"]) == (call_id, "19 C")
    state = serve.session(session)
    assert state["system_prompt"] == "Answer in one short sentence."
    assert [m["role"] for m in state["messages"]] == ["user", "assistant"] * 4 + ["tool", "assistant"]
    assert state["counts"]["receipts"] == 5


def test_responses_api_resending_the_list_into_a_session_is_recorded_once(serve, fake, chat_model):
    session = serve.new_session("lc-resp-resend")
    llm = chat_model(session, model="gpt-4.1", use_responses_api=True)
    fake.script({"reply": "A1"}, {"reply": "A2"}, {"reply": "A3"})
    messages = [SystemMessage("You are terse."), HumanMessage("Q1")]
    for question in ("Q2", "Q3", None):
        ai = llm.invoke(messages)
        messages.append(ai)
        if question:
            messages.append(HumanMessage(question))
    assert [m.text for m in messages[2::2]] == ["A1", "A2", "A3"]
    state = serve.session(session)
    assert state["system_prompt"] == "You are terse."
    assert stored_turns(state) == [("user", "Q1"), ("assistant", "A1"), ("user", "Q2"), ("assistant", "A2"),
                                   ("user", "Q3"), ("assistant", "A3")], stored_turns(state)
    last = fake.requests()[-1]["json"]
    assert [t for t in responses_turns(last) if t[0] != "system"] == [
        ("user", "Q1"), ("assistant", "A1"), ("user", "Q2"), ("assistant", "A2"), ("user", "Q3")]


def test_audit_rechecks_every_receipt_of_these_turns(serve, sessions_of_this_file):
    # Last in this file: every session its tests opened, audited (statefold audit re-renders each receipt's request
    # from its state version and compares hashes).
    sessions = sessions_of_this_file()
    assert sessions, "no session to audit"
    assert assert_audited(serve, sessions) > 0
