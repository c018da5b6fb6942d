"""Kafka security (spec section 9, docs/security.md): every Kafka client statefold makes speaks SASL_SSL with the
[kafka] table of its --config, secrets from the environment.

The broker is the project's own (tools/kafka.sh start --sasl-ssl): a SASL user and a TLS listener with a generated
CA, started for this module on ports of its own. statefold logs in with SASL/PLAIN over TLS: Debian 12's librdkafka
(2.0.2) cannot do SCRAM with Kafka 4.x (librdkafka#4895), which the last test pins down with the warning serve and
the tools give. Through it: `statefold append` writes events, `serve`
folds them, takes an HTTP append (its transactional producer) and answers reads, `replay` rebuilds the store,
`verify` and `audit` check it. The password never shows in any output or log; a wrong password fails with a clear
error and without printing it; a secret written into the file itself, or an unset variable, is refused naming the
line.

Run by run_sdk_tests.sh (ctest: gateway_sdk_test).
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import uuid

import pytest

from test_auth import binary
from gateway_harness import SOURCE_DIR, http, tail, wait_until

PASSWORD_ENV = "SF_TEST_KAFKA_PASSWORD"


def consecutive_free_ports(count):
    """`count` consecutive bindable ports below the ephemeral range (the broker takes P, P+1, P+2)."""
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    for _ in range(200):
        base = 20000 + secrets.randbelow(max(1000, low - 20000 - count))
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                sockets.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise AssertionError("no %d consecutive free ports" % count)


def kafka_sh(*args, env=None, timeout=240):
    return subprocess.run(["bash", str(SOURCE_DIR / "tools" / "kafka.sh"), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def sasl(tmp_path_factory):
    directory = tmp_path_factory.mktemp("kafka-sasl")
    broker_dir = directory / "broker"
    password = "pw-" + secrets.token_hex(16)
    env = dict(os.environ, STATEFOLD_KAFKA_SASL_PASSWORD=password)
    port = consecutive_free_ports(3)
    started = kafka_sh("start", "--port", str(port), "--dir", str(broker_dir), "--sasl-ssl", env=env)
    assert started.returncode == 0, started.stderr
    try:
        info = kafka_sh("sasl-info", "--dir", str(broker_dir))
        assert info.returncode == 0, info.stderr
        fields = dict(line.split("=", 1) for line in info.stdout.splitlines() if "=" in line)
        broker = type("Sasl", (), {})()
        broker.bootstrap = fields["bootstrap"]
        broker.plaintext = "127.0.0.1:%d" % port
        broker.ca = fields["ca"]
        broker.username = fields["username"]
        broker.password = password
        broker.dir = directory
        broker.config = directory / "statefold.toml"
        broker.config.write_text(kafka_table(broker, "PLAIN"))
        broker.env = {k: v for k, v in os.environ.items() if not k.startswith("STATEFOLD_")}
        broker.env[PASSWORD_ENV] = password
        yield broker
    finally:
        kafka_sh("stop", "--dir", str(broker_dir), timeout=120)


def kafka_table(broker, mechanism):
    return ('[kafka]\n"security.protocol" = "SASL_SSL"\n"sasl.mechanism" = "%s"\n"sasl.username" = "%s"\n'
            '"ssl.ca.location" = "%s"\n[kafka.from_env]\n"sasl.password" = "%s"\n'
            % (mechanism, broker.username, broker.ca, PASSWORD_ENV))


def statefold(sasl, *args, env=None, timeout=180):
    run = subprocess.run([binary(), *args], capture_output=True, text=True, timeout=timeout,
                         env=env if env is not None else sasl.env)
    assert sasl.password not in run.stdout and sasl.password not in run.stderr, "the Kafka password was printed"
    return run


def events(session, count):
    return "".join(json.dumps({"event_id": uuid.uuid4().hex, "session_id": session, "payload_type": "Message",
                               "payload": {"role": "user", "content": [{"text": "over SASL_SSL %d" % i}]}}) + "\n"
                   for i in range(count))


def test_append_serve_replay_verify_and_audit_over_sasl_ssl(sasl, tmp_path):
    topic = "secure-" + uuid.uuid4().hex[:8]
    session = "secure-session"
    lines = tmp_path / "events.jsonl"
    lines.write_text(events(session, 3))
    kafka = ["--config", str(sasl.config), "--brokers", sasl.bootstrap, "--topic", topic]
    appended = statefold(sasl, "append", *kafka, str(lines))
    assert appended.returncode == 0, appended.stderr

    store = tmp_path / "store"
    port = consecutive_free_ports(1)
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as err:
        serve = subprocess.Popen([binary(), "serve", *kafka, "--dead-letter-topic", topic + ".dlq", "--group", topic,
                                  "--data-dir", str(store), "--http-address", "127.0.0.1:%d" % port],
                                 stdout=subprocess.DEVNULL, stderr=err, env=sasl.env)
    url = "http://127.0.0.1:%d" % port
    try:
        def caught_up():
            assert serve.poll() is None, tail(log_path)
            try:
                status, _, body = http("GET", url + "/v1/sessions/" + session)
            except OSError:
                return False
            return status == 200 and body["version"] == 3
        assert wait_until(caught_up, 120), tail(log_path)
        # An HTTP append goes out on serve's transactional producer, through the same SASL_SSL listener.
        status, _, body = http("POST", url + "/v1/sessions/%s/events" % session,
                               [{"payload_type": "Message", "payload": {"role": "assistant",
                                                                        "content": [{"text": "folded"}]}}])
        assert status == 200 and body["version"] == 4, body
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(60) == 0, tail(log_path)
    assert sasl.password not in log_path.read_text(errors="replace"), "the Kafka password reached serve's log"

    replayed = statefold(sasl, "replay", *kafka, "--data-dir", str(tmp_path / "rebuilt"), "--format", "json")
    assert replayed.returncode == 0, replayed.stderr
    verified = statefold(sasl, "verify", *kafka, "--data-dir", str(store), "--work-dir", str(tmp_path))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    audited = statefold(sasl, "audit", *kafka, "--data-dir", str(store), "--session", session)
    assert audited.returncode == 0, audited.stdout + audited.stderr


def test_a_wrong_password_fails_clearly_without_printing_it(sasl, tmp_path):
    lines = tmp_path / "events.jsonl"
    lines.write_text(events("wrong-password", 1))
    wrong = "wrong-" + secrets.token_hex(8)
    env = dict(sasl.env, **{PASSWORD_ENV: wrong})
    run = statefold(sasl, "append", "--config", str(sasl.config), "--brokers", sasl.bootstrap, "--topic",
                    "wrong-" + uuid.uuid4().hex[:6], str(lines), env=env, timeout=240)
    assert run.returncode != 0, run.stdout
    assert wrong not in run.stdout + run.stderr
    assert "uthenticat" in run.stderr or "SASL" in run.stderr, run.stderr[-2000:]


def test_secrets_in_the_file_and_unset_variables_are_refused_naming_the_line(sasl, tmp_path):
    lines = tmp_path / "events.jsonl"
    lines.write_text(events("refused", 1))
    in_file = tmp_path / "secret.toml"
    in_file.write_text('[kafka]\n"security.protocol" = "SASL_SSL"\n"sasl.password" = "%s"\n' % sasl.password)
    run = statefold(sasl, "append", "--config", str(in_file), "--brokers", sasl.bootstrap, str(lines))
    assert run.returncode == 2, run.stderr
    assert "secret.toml:3: kafka.sasl.password: secrets do not go in the file" in run.stderr, run.stderr
    unset = tmp_path / "unset.toml"
    unset.write_text('[kafka]\n[kafka.from_env]\n"sasl.password" = "SF_TEST_NOT_SET_ANYWHERE"\n')
    run = statefold(sasl, "append", "--config", str(unset), "--brokers", sasl.bootstrap, str(lines))
    assert run.returncode == 2, run.stderr
    assert "unset.toml:3: kafka.from_env.sasl.password: the environment variable SF_TEST_NOT_SET_ANYWHERE is not set" \
        in run.stderr, run.stderr
    # serve reads the same table from its --config, and refuses the same way before it starts anything.
    run = statefold(sasl, "serve", "--config", str(in_file), "--brokers", sasl.bootstrap, "--data-dir",
                    str(tmp_path / "never"), "--http-address", "off")
    assert run.returncode == 2 and "secrets do not go in the file" in run.stderr, run.stderr
    assert not (tmp_path / "never").exists()


def test_scram_with_this_librdkafka_is_refused_by_kafka_4_and_the_tools_say_why(sasl, tmp_path):
    lines = tmp_path / "events.jsonl"
    lines.write_text(events("scram", 1))
    scram = tmp_path / "scram.toml"
    scram.write_text(kafka_table(sasl, "SCRAM-SHA-512"))
    run = statefold(sasl, "append", "--config", str(scram), "--brokers", sasl.bootstrap, "--topic",
                    "scram-" + uuid.uuid4().hex[:6], str(lines), timeout=240)
    assert run.returncode != 0, run.stdout
    assert "librdkafka#4895" in run.stderr and "PLAIN" in run.stderr, run.stderr[-2000:]
