"""The fixtures every gateway client suite shares (gateway_harness.py has the machinery):

  fake_upstream  the scripted fake model provider, one for the whole run
  fake           the same, its queue and recorded requests emptied before the test
  serve          one `statefold serve` for the whole run, on the real broker of STATEFOLD_BROKERS and a fresh topic,
                 its [upstream] endpoints on the fake (gateway_harness.upstream_config); gateway_harness.running_serve
                 stops it at the end and checks its logs with tools/kafka.sh check-logs when STATEFOLD_KAFKA_DIR is set

Each test opens sessions of its own (serve.new_session), so tests of different files share them without meeting.
"""

import os
import subprocess
import sys
import uuid

import pytest

from gateway_harness import (FAKE_UPSTREAM, KEY_ENV, SOURCE_DIR, UPSTREAM_KEY, FakeUpstream, http, running_serve, tail,
                             upstream_config, wait_until)


@pytest.fixture(scope="session")
def fake_upstream(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fake")
    port_file = directory / "port"
    log_path = directory / "fake_upstream.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, str(FAKE_UPSTREAM), "--port", "0", "--port-file", str(port_file)],
                                   stdout=log, stderr=subprocess.STDOUT,
                                   env=dict(os.environ, FAKE_UPSTREAM_VERBOSE="1"))
    try:
        assert wait_until(lambda: port_file.exists() or process.poll() is not None, 30), "fake upstream did not start"
        assert process.poll() is None, "fake upstream exited: " + tail(log_path)
        fake = FakeUpstream(process, int(port_file.read_text().strip()), log_path)
        assert http("GET", fake.url + "/__health")[0] == 200
        yield fake
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def fake(fake_upstream):
    """The fake upstream with an empty queue and no recorded requests."""
    fake_upstream.reset()
    return fake_upstream


@pytest.fixture(scope="session")
def serve(fake_upstream, tmp_path_factory):
    brokers = os.environ.get("STATEFOLD_BROKERS")
    if not brokers:
        pytest.fail("STATEFOLD_BROKERS is not set: these tests need a real Kafka broker (tools/kafka.sh start, see "
                    "tests/gateway/run_sdk_tests.sh)")
    binary = os.environ.get("STATEFOLD_BIN") or str(SOURCE_DIR / "build" / "dev" / "tools" / "statefold" / "statefold")
    assert os.access(binary, os.X_OK), "no statefold binary at %s (set STATEFOLD_BIN)" % binary
    directory = tmp_path_factory.mktemp("serve")
    config_path = directory / "serve.toml"
    config_path.write_text(upstream_config(fake_upstream.port))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEFOLD_")}
    env[KEY_ENV] = UPSTREAM_KEY
    with running_serve(binary, brokers, "gateway-sdk-" + uuid.uuid4().hex[:12], directory / "store", directory,
                       config_path, env) as instance:
        yield instance
