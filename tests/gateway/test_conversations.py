"""The Conversations API and the Responses lifecycle through the official OpenAI Python SDK (issue 12): a
conversation is a session; its items are the session's messages; deleting an item or a response withdraws it from
the context of later turns (a SessionAmended on the log) without taking it out of the audit trail.

Shares serve and the scripted fake upstream with the other suites (conftest.py); run by run_sdk_tests.sh.
"""

import openai
import pytest

from gateway_harness import CLIENT_KEY, assert_audited, responses_turns


@pytest.fixture
def client(serve):
    with openai.OpenAI(base_url=serve.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=60) as c:
        yield c


def create_conversation(serve, client, **kwargs):
    raw = client.conversations.with_raw_response.create(**kwargs)
    session = raw.headers["x-session-id"]
    serve.sessions.append(session)
    return raw.parse(), session


def texts(items):
    out = []
    for item in items:
        if item.type == "message":
            out.append((item.role, "".join(part.text for part in item.content)))
        else:
            out.append((item.type, getattr(item, "output", None) or getattr(item, "arguments", "")))
    return out


def test_a_conversation_is_a_session_the_sdk_can_manage(serve, fake, client):
    conversation, session = create_conversation(
        serve, client, metadata={"topic": "trip"},
        items=[{"type": "message", "role": "system", "content": "You plan trips."},
               {"type": "message", "role": "user", "content": "I am going to Lisbon."}])
    assert conversation.id.startswith("conv_") and session not in conversation.id
    assert conversation.metadata == {"topic": "trip"}
    assert client.conversations.retrieve(conversation.id).created_at == conversation.created_at

    fake.script({"reply": "Go in May."}, {"reply": "Pack light."})
    first = client.responses.create(model="gpt-4.1", input="When should I go?", conversation=conversation.id)
    assert first.output_text == "Go in May."
    assert first.conversation.id == conversation.id
    # The upstream got the conversation's system prompt and item, then the turn's input.
    request = fake.requests()[0]["json"]
    assert request["instructions"] == "You plan trips." or ("system", "You plan trips.") in responses_turns(request)
    assert [t for t in responses_turns(request) if t[0] == "user"] == [("user", "I am going to Lisbon."),
                                                                       ("user", "When should I go?")]

    # Items: every message, oldest first with order="asc"; the SDK pages through them with limit and after.
    items = list(client.conversations.items.list(conversation.id, order="asc", limit=1))
    assert texts(items) == [("user", "I am going to Lisbon."), ("user", "When should I go?"),
                            ("assistant", "Go in May.")]
    newest = client.conversations.items.list(conversation.id, limit=1)
    assert texts(newest.data) == [("assistant", "Go in May.")] and newest.has_more
    assert client.conversations.items.retrieve(items[0].id, conversation_id=conversation.id).id == items[0].id

    # Items added between turns are part of the next turn's context; one deleted is not, and is no longer listed.
    added = client.conversations.items.create(conversation.id, items=[
        {"type": "message", "role": "user", "content": "I hate heavy bags."},
        {"type": "message", "role": "user", "content": "I love heavy bags."}])
    assert texts(added.data) == [("user", "I hate heavy bags."), ("user", "I love heavy bags.")]
    after_delete = client.conversations.items.delete(added.data[1].id, conversation_id=conversation.id)
    assert after_delete.id == conversation.id
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(added.data[1].id, conversation_id=conversation.id)
    second = client.responses.create(model="gpt-4.1", input="What should I pack?", conversation=conversation.id)
    assert second.output_text == "Pack light."
    users = [t for t in responses_turns(fake.requests()[1]["json"]) if t[0] == "user"]
    assert users == [("user", "I am going to Lisbon."), ("user", "When should I go?"),
                     ("user", "I hate heavy bags."), ("user", "What should I pack?")]

    # Metadata replaced.
    updated = client.conversations.update(conversation.id, metadata={"topic": "trip", "city": "Lisbon"})
    assert updated.metadata == {"topic": "trip", "city": "Lisbon"}
    assert client.conversations.retrieve(conversation.id).metadata == updated.metadata

    # Every receipt still audits: the withdrawn item is out of later contexts, not out of the ones before.
    assert assert_audited(serve, [session]) == 1

    # Deleted: the SDK's NotFoundError for the conversation, its items and a turn on it.
    deleted = client.conversations.delete(conversation.id)
    assert deleted.deleted is True and deleted.id == conversation.id
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conversation.id)
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.list(conversation.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4.1", input="Still there?", conversation=conversation.id)
    assert len(fake.requests()) == 2
    assert serve.events(session)[-1]["payload_type"] == "SessionClosed", "deleted: closed on the log, kept for audit"


def test_conversation_must_exist(serve, fake, client):
    with pytest.raises(openai.NotFoundError) as error:
        client.responses.create(model="gpt-4.1", input="hello", conversation="conv_never_made")
    assert "conversation" in str(error.value)
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve("conv_never_made")
    assert fake.requests() == []


def test_responses_delete_and_input_items(serve, fake, client):
    session = serve.new_session("resp-lifecycle")
    fake.script({"reply": "First."}, {"reply": "Second."}, {"reply": "Third."})
    first = client.responses.create(model="gpt-4.1", extra_headers={"X-Session-Id": session},
                                    input=[{"role": "user", "content": "one"}, {"role": "user", "content": "two"}])
    second = client.responses.create(model="gpt-4.1", input="three", previous_response_id=first.id)
    assert session not in first.id and session not in second.id

    listed = client.responses.input_items.list(first.id, order="asc")
    assert texts(listed.data) == [("user", "one"), ("user", "two")]
    assert texts(client.responses.input_items.list(second.id).data) == [("user", "three")]

    # Deleting the first response withdraws its turn: later turns do not see it, its id is gone.
    assert client.responses.delete(first.id) is None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4.1", input="again", previous_response_id=first.id)
    third = client.responses.create(model="gpt-4.1", input="four", previous_response_id=second.id)
    assert third.output_text == "Third."
    assert [t for t in responses_turns(fake.requests()[2]["json"]) if t[0] in ("user", "assistant")] == [
        ("user", "three"), ("assistant", "Second."), ("user", "four")]
    assert client.responses.retrieve(second.id).output_text == "Second."
    # The withdrawn turn is still on the log, and every receipt audits.
    state = serve.session(session)
    assert [m["content"] for m in state["messages"] if m["role"] == "user"][:2] == ["one", "two"]
    assert assert_audited(serve, [session]) == 1
