"""A key's token budget in a group of instances (spec 9, docs/scaling.md "Token budgets in a group"): every instance
folds only its partitions, so each counts only the receipts of the sessions homed there; the budget must hold over
all of them. Two `statefold serve` instances on one topic of the real broker, sharing an id secret, and a key with a
budget spending through both: the turn that would go past the budget is refused on either instance although neither
holds enough receipts on its own, /v1/usage shows the group's figures (budget and rows) from either, and instances
that do not share the secret do not believe each other (and say so in their logs and answers).

Run by run_sdk_tests.sh (ctest: gateway_sdk_test).
"""

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import openai
import pytest

from gateway_harness import ServeProcess, tail, wait_until
from test_auth import binary, new_key

BUDGET = 400  # tokens a day: several echo turns, far fewer than two instances' worth


def get(url, key, headers=None):
    """(status, parsed JSON or text) of a GET with `key` as the bearer."""
    request = urllib.request.Request(url, headers={"Authorization": "Bearer " + key, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def usage(instance, key):
    status, body = get(instance.url + "/v1/usage", key)
    assert status == 200, body
    return body


def report_tokens(instance, key_name, key):
    """Tokens of `key_name` in the usage rows GET /v1/usage gives through `instance` (the whole group's)."""
    return sum(r["input_tokens"] + r["output_tokens"] for r in usage(instance, key)["data"] if r["key"] == key_name)


def session_tokens(instance, session, key):
    """Tokens the receipts of `session` recorded (its state's usage): what the instance that folds it holds."""
    status, body = get(instance.url + "/v1/sessions/" + urllib.parse.quote(session, safe=""), key)
    if status != 200:
        return 0
    return body["usage"]["input_tokens"] + body["usage"]["output_tokens"]


def home_of(session, instances, key):
    """The instance that folds `session` (not opened yet): the one that answers 404 rather than 421 (folded
    elsewhere) when told not to forward; None while its partition is still moving (503)."""
    path = "/v1/sessions/" + urllib.parse.quote(session, safe="")
    statuses = [get(instance.url + path, key, {"X-Statefold-No-Forward": "1"})[0] for instance in instances]
    if sorted(statuses) != [404, 421]:
        return None
    return instances[statuses.index(404)]


@pytest.fixture
def group(tmp_path):
    if not os.environ.get("STATEFOLD_BROKERS"):
        pytest.fail("STATEFOLD_BROKERS is not set: these tests need a real Kafka broker")
    started = []

    def start(name, key_config, secret_file, topic, ready):
        instance = ServeProcess(binary(), tmp_path / name, ["--id-secret-file", str(secret_file)], key_config,
                                topic=topic, ready=ready)
        started.append(instance)
        return instance

    yield start
    statuses = [instance.stop() for instance in started]
    assert statuses == [0] * len(started), "".join(tail(i.log_path) for i in started)


def two_instances(group, tmp_path, key_config, secrets=("a shared group secret, 32 bytes!",) * 2):
    topic = "budget-" + uuid.uuid4().hex[:8]
    files = []
    for n, secret in enumerate(secrets):
        path = tmp_path / ("id-%d.secret" % n)
        path.write_text(secret + "\n")
        files.append(path)
    a = group("a", key_config, files[0], topic, ready=4)
    b = group("b", key_config, files[1], topic, ready=1)  # then a gives up some of its partitions to b
    return a, b


def sessions_on(a, b, key):
    """A session homed on a and one homed on b (of tenant acme), once both agree where each partition is."""
    homes = {}
    for i in range(64):
        session = "acme/budget-%02d-%s" % (i, uuid.uuid4().hex[:6])
        home = wait_until(lambda: home_of(session, (a, b), key), 60)
        assert home is not None, session + "\n" + tail(a.log_path) + tail(b.log_path)
        homes.setdefault(home.url, session)
        if len(homes) == 2:
            return homes[a.url], homes[b.url]
    pytest.fail("64 sessions all landed on one instance")


def test_a_keys_budget_holds_over_the_receipts_every_instance_folds(group, tmp_path):
    key, config = new_key("grouped", ["read", "chat"], tenant="acme", budget=BUDGET)
    a, b = two_instances(group, tmp_path, config)
    on_a, on_b = sessions_on(a, b, key)
    # No retries: the SDK would retry the 429 it must see.
    clients = {i.url: openai.OpenAI(base_url=i.url + "/v1", api_key=key, max_retries=0, timeout=30) for i in (a, b)}
    refused = None
    for turn in range(40):
        instance, session = (a, on_a) if turn % 2 == 0 else (b, on_b)
        try:
            clients[instance.url].chat.completions.create(
                model="echo", messages=[{"role": "user", "content": "turn %d of a budgeted conversation" % turn}],
                extra_headers={"X-Session-Id": session})
        except openai.RateLimitError as e:
            refused = (instance, e)
            break
        # Members' figures are asked for at most once a second: the next turn sees this one's tokens everywhere.
        time.sleep(1.2)
    assert refused is not None, "the key spent %d tokens without a refusal" % usage(a, key)["budget"]["used"]
    instance, error = refused
    assert error.code == "insufficient_quota" and "of its %d tokens this day" % BUDGET in str(error), str(error)
    # The turns' answers come once their events are on the log; their receipts' usage once they are folded. Each
    # session was spent on only through the instance that folds it.
    assert wait_until(lambda: session_tokens(a, on_a, key) > 0 and session_tokens(b, on_b, key) > 0, 30)
    on_a_only, on_b_only = session_tokens(a, on_a, key), session_tokens(b, on_b, key)
    # The refusing instance held fewer receipts than the budget: the other instance's made up the rest.
    assert (on_a_only if instance is a else on_b_only) < BUDGET, (on_a_only, on_b_only)
    assert on_a_only > 0 and on_b_only > 0 and on_a_only + on_b_only >= BUDGET, (on_a_only, on_b_only)
    # Either instance reports the group's figure, in the budget and in the rows, and the other refuses too.
    for reporter in (a, b):
        assert wait_until(lambda: usage(reporter, key)["budget"]["used"] == on_a_only + on_b_only, 10), \
            (on_a_only, on_b_only, usage(reporter, key))
        assert report_tokens(reporter, "grouped", key) == on_a_only + on_b_only, (on_a_only, on_b_only,
                                                                                usage(reporter, key))
    other, other_session = (b, on_b) if instance is a else (a, on_a)
    with pytest.raises(openai.RateLimitError):
        clients[other.url].chat.completions.create(model="echo", messages=[{"role": "user", "content": "more"}],
                                                   extra_headers={"X-Session-Id": other_session})
    assert "did not give its usage" not in a.log() + b.log()
    assert key not in a.log() + b.log()


def test_instances_that_do_not_share_the_id_secret_do_not_believe_each_other(group, tmp_path):
    key, config = new_key("split", ["read", "chat"], tenant="acme", budget=1000000)
    a, b = two_instances(group, tmp_path, config,
                         secrets=("the secret of instance a, 32 b..", "the secret of instance b, 32 b.."))
    on_a, on_b = sessions_on(a, b, key)
    openai.OpenAI(base_url=b.url + "/v1", api_key=key, max_retries=0).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "spent on b"}], extra_headers={"X-Session-Id": on_b})
    # The answer comes once the turn's events are on the log; its receipt's usage once it is folded.
    on_b_only = wait_until(lambda: session_tokens(b, on_b, key), 30)
    assert on_b_only > 0, tail(b.log_path)
    # a cannot check b's answers: its budget counts its own receipts (none), and it says why in its log; it will not
    # give a usage report that lacks b's rows, and says why in the answer.
    status, body = get(a.url + "/v1/usage", key)
    assert status == 503 and "did not give their usage rows" in body["error"]["message"], body
    assert "--id-secret-file" in body["error"]["message"], body
    assert wait_until(lambda: "did not give its usage" in a.log() and "--id-secret-file" in a.log(), 10), \
        tail(a.log_path)
