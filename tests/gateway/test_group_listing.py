"""Listing sessions in a group of instances (spec 7: any instance answers; docs/scaling.md "What a client sees"):
each instance folds only its partitions, so GET /v1/sessions must gather every owner's page, and GET /v1/usage every
owner's rows. Two `statefold serve` instances on one topic of the real broker, sharing an id secret: sessions homed
on both are listed, page by page, and their calls counted, from either instance; instances that do not share the
secret answer 503 (retry) rather than a listing that lacks the other's sessions.

Run by run_sdk_tests.sh (ctest: gateway_sdk_test).
"""

import urllib.error
import urllib.request
import uuid

import openai
import pytest

from gateway_harness import tail, wait_until
from test_auth import new_key
from test_group_budget import get, group, home_of, two_instances  # noqa: F401 (group is a fixture)


def listing(instance, key, limit=100, cursor=None):
    """Every session id GET /v1/sessions gives through `instance`, a page of `limit` at a time, and the pages."""
    ids, pages = [], 0
    while True:
        path = "/v1/sessions?prefix=acme/&limit=%d" % limit + ("&cursor=" + cursor if cursor else "")
        status, body = get(instance.url + path, key)
        assert status == 200, body
        ids += [s["session_id"] for s in body["sessions"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return ids, pages


def echo_calls(instance, key):
    """The calls of the key "lister" to the model echo in GET /v1/usage through `instance`."""
    status, body = get(instance.url + "/v1/usage", key)
    assert status == 200, body
    return sum(r["calls"] for r in body["data"] if r["key"] == "lister" and r["model"] == "echo")


def open_sessions(a, b, key, count):
    """`count` sessions of tenant acme, one echo turn each through a (forwarded to b for those b folds), with
    sessions homed on both instances among them."""
    client = openai.OpenAI(base_url=a.url + "/v1", api_key=key, max_retries=3, timeout=30)
    sessions, homes = [], set()
    for i in range(64):
        session = "acme/listed-%02d-%s" % (i, uuid.uuid4().hex[:6])
        home = wait_until(lambda: home_of(session, (a, b), key), 60)
        assert home is not None, session + "\n" + tail(a.log_path) + tail(b.log_path)
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hello"}],
                                       extra_headers={"X-Session-Id": session})
        sessions.append(session)
        homes.add(home.url)
        if len(sessions) >= count and len(homes) == 2:
            return sorted(sessions)
    raise AssertionError("64 sessions all landed on one instance")


def test_either_instance_lists_the_sessions_of_both(group, tmp_path):  # noqa: F811
    key, config = new_key("lister", ["read", "chat"], tenant="acme")
    a, b = two_instances(group, tmp_path, config)
    sessions = open_sessions(a, b, key, 6)
    # A turn is answered once its events are on the log; its session is listed once they are folded.
    for instance in (a, b):
        assert wait_until(lambda: listing(instance, key)[0] == sessions, 30), \
            (sessions, listing(instance, key), tail(instance.log_path))
        # Page by page: each page merges both instances' pages, and the cursor walks both without a gap or a repeat.
        ids, pages = listing(instance, key, limit=2)
        assert ids == sessions and pages >= 3, (ids, pages)
        # The usage report too: one echo call per session, whichever instance folded its receipt.
        assert wait_until(lambda: echo_calls(instance, key) == len(sessions), 30), \
            (len(sessions), get(instance.url + "/v1/usage", key))
    assert "peer sessions query" not in a.log() + b.log()
    assert "peer usage rows query" not in a.log() + b.log()


def test_a_listing_that_cannot_reach_every_owner_is_refused_not_partial(group, tmp_path):  # noqa: F811
    key, config = new_key("lister", ["read", "chat"], tenant="acme")
    a, b = two_instances(group, tmp_path, config,
                         secrets=("the secret of instance a, 32 b..", "the secret of instance b, 32 b.."))
    assert wait_until(lambda: home_of("acme/probe-" + uuid.uuid4().hex[:6], (a, b), key), 60)
    for asker, owner in ((a, b), (b, a)):
        status, body = get(asker.url + "/v1/sessions", key)
        assert status == 503, body
        error = body["error"]
        assert error["code"] == "partition_moving", error
        assert "did not list them" in error["message"] and "--id-secret-file" in error["message"], error
    # The client is told to retry, as while a partition moves.
    request = urllib.request.Request(a.url + "/v1/sessions", headers={"Authorization": "Bearer " + key})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 503 and refused.value.headers["Retry-After"] == "1"
