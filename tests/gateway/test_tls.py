"""TLS on `statefold serve`'s listener (spec section 9, docs/security.md): HTTPS, mutual TLS, reload on SIGHUP.

Certificates are made for each run by the `openssl` command (a CA, a server certificate for 127.0.0.1, client
certificates from that CA and from another). serve runs on the real broker of STATEFOLD_BROKERS with an API key, and
the official OpenAI Python SDK talks to it over https with the test CA, as an application with a private CA would.
Checked: a turn and a read over https; plain HTTP and TLS 1.1 are refused; with --tls-client-ca a client without a
certificate, or with one from another CA, cannot connect and one with a certificate from the CA can; SIGHUP serves a
renewed certificate to new connections, and a broken one leaves the old in use; neither keys nor TLS key files reach
the log.

Run by run_sdk_tests.sh (ctest: gateway_sdk_test).
"""

import os
import re
import signal
import socket
import ssl
import subprocess
import uuid
import warnings

import openai
import pytest

from test_auth import binary, new_key
from gateway_harness import ServeProcess, free_port, tail, wait_until


def openssl(*args, cwd):
    run = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, "openssl %s: %s" % (" ".join(args), run.stderr)


def make_ca(directory, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            name + ".key", "-out", name + ".pem", "-days", "2", "-subj", "/CN=statefold test " + name, cwd=directory)
    return directory / (name + ".pem")


def make_cert(directory, ca, name, san=None, days=2):
    """A certificate `name`.pem / `name`.key signed by CA `ca` (a name given to make_ca)."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", name + ".key", "-out",
            name + ".csr", "-subj", "/CN=" + name, cwd=directory)
    extensions = directory / (name + ".ext")
    extensions.write_text("subjectAltName=%s\n" % san if san else "extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key", "-set_serial",
            str(int(uuid.uuid4().int % 10**12)), "-out", name + ".pem", "-days", str(days), "-extfile", str(extensions),
            cwd=directory)
    return directory / (name + ".pem"), directory / (name + ".key")


def der_of(pem_path):
    return ssl.PEM_cert_to_DER_cert(pem_path.read_text())


def TlsServe(directory, extra, key_config, topic=None, ready=4):
    return ServeProcess(binary(), directory, extra, key_config, topic=topic or "tls-" + uuid.uuid4().hex[:10],
                        ready=ready, https=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    pki = type("Pki", (), {})()
    pki.dir = directory
    pki.ca = make_ca(directory, "ca")
    pki.other_ca = make_ca(directory, "other-ca")
    pki.server = make_cert(directory, "ca", "server", san="IP:127.0.0.1,DNS:localhost")
    pki.client = make_cert(directory, "ca", "client")
    pki.stranger = make_cert(directory, "other-ca", "stranger")
    return pki


@pytest.fixture(scope="module")
def key():
    if not os.environ.get("STATEFOLD_BROKERS"):
        pytest.fail("STATEFOLD_BROKERS is not set: these tests need a real Kafka broker")
    return new_key("tls-app", ["read", "chat"])


def handshake(port, context):
    """The server's certificate (DER) after a handshake with `context`; raises ssl.SSLError or OSError if refused."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = tls.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            return tls.getpeercert(binary_form=True)


def test_the_sdk_talks_https_with_a_private_ca_and_nothing_else_gets_in(tmp_path, pki, key):
    cert, private = pki.server
    serve = TlsServe(tmp_path, ["--tls-cert", str(cert), "--tls-key", str(private)], key[1])
    try:
        with openai.DefaultHttpxClient(verify=ssl.create_default_context(cafile=str(pki.ca))) as transport:
            client = openai.OpenAI(base_url=serve.url + "/v1", api_key=key[0], http_client=transport, max_retries=0)
            session = "tls-" + uuid.uuid4().hex[:8]
            reply = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "over TLS"}],
                                                   extra_headers={"X-Session-Id": session})
            assert reply.choices[0].message.content
            state = transport.get(serve.url + "/v1/sessions/" + session,
                                  headers={"Authorization": "Bearer " + key[0]})
            assert state.status_code == 200 and state.json()["version"] >= 2, state.text
        # A client that does not trust the CA refuses the server; plain HTTP gets no answer.
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(serve.port, ssl.create_default_context())
        with socket.create_connection(("127.0.0.1", serve.port), timeout=10) as raw:
            raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            raw.settimeout(10)
            try:
                answer = raw.recv(4096)
            except ConnectionResetError:
                answer = b""
            assert not answer.startswith(b"HTTP/"), answer
        # TLS 1.1 is refused by the server (the client here is willing to use it).
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(str(pki.ca))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            old.set_ciphers("DEFAULT:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        with pytest.raises((ssl.SSLError, OSError)):
            handshake(serve.port, old)
        modern = ssl.create_default_context(cafile=str(pki.ca))
        modern.maximum_version = ssl.TLSVersion.TLSv1_2
        assert handshake(serve.port, modern) == der_of(cert)
    finally:
        status = serve.stop()
    assert status == 0, tail(serve.log_path)
    log = serve.log()
    assert "tls=on" in log or '"tls":"on"' in log, log[-2000:]
    assert key[0] not in log and private.read_text() not in log


def test_mutual_tls_needs_a_client_certificate_from_the_ca(tmp_path, pki, key):
    cert, private = pki.server
    serve = TlsServe(tmp_path, ["--tls-cert", str(cert), "--tls-key", str(private), "--tls-client-ca", str(pki.ca)],
                     key[1])
    try:
        anonymous = ssl.create_default_context(cafile=str(pki.ca))
        with pytest.raises((ssl.SSLError, OSError)):
            handshake(serve.port, anonymous)
        stranger = ssl.create_default_context(cafile=str(pki.ca))
        stranger.load_cert_chain(str(pki.stranger[0]), str(pki.stranger[1]))
        with pytest.raises((ssl.SSLError, OSError)):
            handshake(serve.port, stranger)
        holder = ssl.create_default_context(cafile=str(pki.ca))
        holder.load_cert_chain(str(pki.client[0]), str(pki.client[1]))
        with openai.DefaultHttpxClient(verify=holder) as transport:
            client = openai.OpenAI(base_url=serve.url + "/v1", api_key=key[0], http_client=transport, max_retries=0)
            reply = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "mutual"}],
                                                   extra_headers={"X-Session-Id": "mtls-" + uuid.uuid4().hex[:8]})
            assert reply.choices[0].message.content
            # The certificate is the transport's check; the API key is still needed.
            assert transport.get(serve.url + "/v1/sessions").status_code == 401
    finally:
        status = serve.stop()
    assert status == 0, tail(serve.log_path)
    assert "tls=mutual" in serve.log() or '"tls":"mutual"' in serve.log()


def test_sighup_serves_a_renewed_certificate_and_keeps_the_old_one_when_the_new_is_broken(tmp_path, pki, key):
    # serve reads the files by path: give it its own copies to replace.
    first_cert, first_key = make_cert(pki.dir, "ca", "renewable", san="IP:127.0.0.1")
    cert, private = tmp_path / "live.pem", tmp_path / "live.key"
    cert.write_bytes(first_cert.read_bytes())
    private.write_bytes(first_key.read_bytes())
    serve = TlsServe(tmp_path, ["--tls-cert", str(cert), "--tls-key", str(private)], key[1])
    trusting = ssl.create_default_context(cafile=str(pki.ca))
    try:
        assert handshake(serve.port, trusting) == der_of(first_cert)
        # A connection opened before the reload keeps working across it.
        early = openai.DefaultHttpxClient(verify=ssl.create_default_context(cafile=str(pki.ca)))
        assert early.get(serve.url + "/healthz").status_code == 200

        renewed_cert, renewed_key = make_cert(pki.dir, "ca", "renewed", san="IP:127.0.0.1")
        cert.write_bytes(renewed_cert.read_bytes())
        private.write_bytes(renewed_key.read_bytes())
        serve.process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "TLS certificate reloaded" in serve.log(), 10), tail(serve.log_path)
        assert handshake(serve.port, trusting) == der_of(renewed_cert)
        assert early.get(serve.url + "/healthz").status_code == 200
        early.close()

        # A key that does not match the certificate: the reload fails, says why, and the renewed one stays.
        private.write_bytes(first_key.read_bytes())
        serve.process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "TLS reload failed" in serve.log(), 10), tail(serve.log_path)
        assert "does not match" in serve.log()
        assert handshake(serve.port, trusting) == der_of(renewed_cert)
        assert serve.process.poll() is None
    finally:
        status = serve.stop()
    assert status == 0, tail(serve.log_path)


def test_tls_settings_that_cannot_work_stop_serve_with_a_clear_error(tmp_path, pki, key):
    cert, private = pki.server
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEFOLD_")}
    base = [binary(), "serve", "--brokers", os.environ["STATEFOLD_BROKERS"], "--topic", "tls-bad",
            "--data-dir", str(tmp_path / "store"), "--http-address", "127.0.0.1:%d" % free_port()]
    cases = [
        (["--tls-cert", str(cert)], "--tls-cert and --tls-key go together"),
        (["--tls-client-ca", str(pki.ca)], "--tls-client-ca needs --tls-cert"),
        (["--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(private)], "missing.pem"),
        (["--tls-cert", str(cert), "--tls-key", str(pki.client[1])], "does not match the certificate"),
        (["--tls-cert", str(cert), "--tls-key", str(private), "--peer-ca", str(tmp_path / "no-ca.pem")], "no-ca.pem"),
    ]
    for extra, wanted in cases:
        run = subprocess.run(base + extra, capture_output=True, text=True, timeout=120, env=env)
        assert run.returncode != 0, (extra, run.stderr)
        assert wanted in run.stderr, (extra, run.stderr)


def test_instances_serving_https_forward_to_each_other_over_mutual_tls(tmp_path, pki, key):
    """Two instances on one topic, both HTTPS with mutual TLS: a client of either reaches every session, and what the
    receiving instance does not fold is forwarded to its owner over TLS, showing the instance's own certificate."""
    cert, private = pki.server  # for 127.0.0.1, from the CA; no extendedKeyUsage, so it also serves as a client's
    flags = ["--tls-cert", str(cert), "--tls-key", str(private), "--tls-client-ca", str(pki.ca)]
    topic = "tls-fwd-" + uuid.uuid4().hex[:8]
    a = TlsServe(tmp_path / "a", flags, key[1], topic=topic)
    b = None
    holder = ssl.create_default_context(cafile=str(pki.ca))
    holder.load_cert_chain(str(pki.client[0]), str(pki.client[1]))
    try:
        b = TlsServe(tmp_path / "b", flags, key[1], topic=topic, ready=1)
        with openai.DefaultHttpxClient(verify=holder) as transport:
            auth = {"Authorization": "Bearer " + key[0]}
            # b announced its partitions at its https address (a reads announcements within a fraction of a second).
            assert wait_until(lambda: re.search(r"cluster: announced .*url=https://127\.0\.0\.1:%d .*partitions=[0-9]"
                                                % b.port, b.log()), 60), tail(b.log_path)
            # The SDK retries the 503 of a partition still moving, as told (Retry-After, x-should-retry).
            client = openai.OpenAI(base_url=a.url + "/v1", api_key=key[0], http_client=transport, max_retries=8)
            sessions = ["fwd-%02d-%s" % (i, uuid.uuid4().hex[:6]) for i in range(16)]
            for session in sessions:
                reply = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": session}],
                                                       extra_headers={"X-Session-Id": session})
                assert reply.choices[0].message.content
            elsewhere = []
            for session in sessions:
                path = "/v1/sessions/" + session
                direct = transport.get(a.url + path, headers={**auth, "X-Statefold-No-Forward": "1"})
                if direct.status_code == 421:
                    assert direct.headers["x-statefold-owner"] == b.url, direct.headers
                    elsewhere.append(session)
                else:
                    assert direct.status_code == 200, direct.text
                forwarded = transport.get(a.url + path, headers=auth)
                assert forwarded.status_code == 200, forwarded.text
                assert forwarded.json()["version"] >= 2, forwarded.text
            # Some sessions live on b (16 sessions over 4 partitions, 2 of them b's): their turns and reads went over
            # TLS from a to b.
            assert elsewhere, "every session landed on a's partitions"
    finally:
        statuses = [server.stop() for server in (a, b) if server is not None]
    assert statuses == [0, 0], tail(a.log_path) + (tail(b.log_path) if b else "")
    assert "verify failed" not in a.log() + b.log()
