#!/usr/bin/env python3
"""A scripted local AWS Bedrock runtime for tests: Converse and ConverseStream, every request's SigV4 signature
verified with botocore's own signer.

  POST /model/{modelId}/converse          a Converse response (JSON)
  POST /model/{modelId}/converse-stream   ConverseStream events in AWS event-stream frames
                                          (application/vnd.amazon.eventstream)

Signatures: the Authorization header is recomputed with botocore.auth.SigV4Auth over the headers it names, for the
access key it names, and compared byte for byte; x-amz-content-sha256 must be the body's SHA-256, x-amz-date within
5 minutes of now, x-amz-security-token the one of those credentials. A request that fails any of it gets AWS's 403
(InvalidSignatureException / UnrecognizedClientException), is recorded with "signature": {"ok": false, "error"}, and
consumes no action. Credentials: --credentials AKID:SECRET[:SESSION_TOKEN] (repeatable); region: --region (service
"bedrock").

Control endpoints and actions are those of fake_upstream.py (/__script, /__reset, /__requests, /__health; reply,
chunks, tool_calls, status, headers, body, delay_ms, chunk_delay_ms, cut_after, close, usage, repeat), plus:
  exception      {"type": "throttlingException", "message": "...", "after": N}: an exception frame after N events
  corrupt_crc    the message CRC of the event with this index is wrong
Errors (`status`) have Bedrock's shape: {"message": "..."} and an x-amzn-ErrorType header. Each recorded request
also has "model" (the path's model id, decoded), "stream", "signature" and "access_key" (the one it was signed with).

Start: python3 fake_bedrock.py --port 0 --port-file F --region us-east-1 --credentials AKID:SECRET
Needs botocore (tests/gateway/requirements.txt installs it in the SDK tests' venv).
"""

import argparse
import binascii
import datetime
import hashlib
import json
import os
import struct
import sys
import time
import urllib.parse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_upstream as base  # noqa: E402  (the scripted queue, the HTTP plumbing)

SERVICE = "bedrock"
CREDENTIALS = {}  # access key id -> Credentials
REGION = "us-east-1"
MAX_SKEW = datetime.timedelta(minutes=5)


# -- event-stream frames ----------------------------------------------------------------------------------------------

def _string_header(name, value):
    name, value = name.encode(), value.encode()
    return struct.pack(">B", len(name)) + name + b"\x07" + struct.pack(">H", len(value)) + value


def frame(headers, payload, corrupt=False):
    """One event-stream message: prelude, string headers, payload, CRCs (the message CRC off by one if `corrupt`)."""
    encoded = b"".join(_string_header(n, v) for n, v in headers)
    total = 16 + len(encoded) + len(payload)
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + encoded + payload
    crc = binascii.crc32(message) & 0xFFFFFFFF
    return message + struct.pack(">I", (crc + 1) & 0xFFFFFFFF if corrupt else crc)


def event_frame(event_type, value, corrupt=False):
    return frame([(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")],
                 json.dumps(value, separators=(",", ":")).encode(), corrupt)


def exception_frame(exception_type, message):
    return frame([(":exception-type", exception_type), (":content-type", "application/json"),
                  (":message-type", "exception")], json.dumps({"message": message}).encode())


# -- SigV4 ------------------------------------------------------------------------------------------------------------

def verify_signature(method, path, headers, body):
    """None when the request is signed right, else why not (botocore recomputes the Authorization header)."""
    authorization = headers.get("authorization", "")
    if not authorization.startswith("AWS4-HMAC-SHA256 "):
        return "no AWS4-HMAC-SHA256 Authorization header"
    fields = dict(part.strip().split("=", 1) for part in authorization[len("AWS4-HMAC-SHA256 "):].split(","))
    credential = fields.get("Credential", "").split("/")
    if len(credential) != 5:
        return "malformed Credential"
    key = credential[0]
    if key not in CREDENTIALS:
        return "unknown access key %s" % key
    if credential[2:] != [REGION, SERVICE, "aws4_request"]:
        return "scope %s is not %s/%s/aws4_request" % ("/".join(credential[1:]), REGION, SERVICE)
    creds = CREDENTIALS[key]
    signed = fields.get("SignedHeaders", "").split(";")
    for required in ("host", "x-amz-date", "x-amz-content-sha256"):
        if required not in signed:
            return "%s is not signed" % required
    if creds.token and "x-amz-security-token" not in signed:
        return "x-amz-security-token is not signed"
    if creds.token and headers.get("x-amz-security-token") != creds.token:
        return "x-amz-security-token is not the session token of %s" % key
    if headers.get("x-amz-content-sha256") != hashlib.sha256(body).hexdigest():
        return "x-amz-content-sha256 is not the body's SHA-256"
    stamp = headers.get("x-amz-date", "")
    try:
        at = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return "bad x-amz-date %r" % stamp
    if abs(datetime.datetime.now(datetime.timezone.utc) - at) > MAX_SKEW:
        return "x-amz-date %s is more than 5 minutes away" % stamp
    if credential[1] != stamp[:8]:
        return "the credential's date is not x-amz-date's"
    request = AWSRequest(method=method, url="http://%s%s" % (headers["host"], path), data=body,
                         headers={name: headers[name] for name in signed if name in headers})
    request.context["timestamp"] = stamp
    signer = SigV4Auth(creds, SERVICE, REGION)
    canonical = signer.canonical_request(request)
    expected = "AWS4-HMAC-SHA256 Credential=%s, SignedHeaders=%s, Signature=%s" % (
        signer.scope(request), signer.signed_headers(signer.headers_to_sign(request)),
        signer.signature(signer.string_to_sign(request, canonical), request))
    if expected != authorization:
        return "signature mismatch: botocore computes %r over the canonical request %r" % (expected, canonical)
    return None


# -- replies ----------------------------------------------------------------------------------------------------------

def last_user_text(body):
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            texts = [b["text"] for b in message.get("content") or [] if isinstance(b, dict) and "text" in b]
            if texts:
                return "".join(texts)
    return ""


def input_words(body):
    total = sum(len(b.get("text", "").split()) for m in body.get("messages") or [] for b in m.get("content") or []
                if isinstance(b, dict))
    total += sum(len(b.get("text", "").split()) for b in body.get("system") or [] if isinstance(b, dict))
    return max(total, 1)


class Converse:
    def __init__(self, body, action, n):
        self.text = action.get("reply")
        if self.text is None:
            self.text = "echo: " + last_user_text(body)
        self.chunks = action.get("chunks") or base.split_chunks(self.text)
        if "chunks" in action and "reply" not in action:
            self.text = "".join(self.chunks)
        self.calls = []
        for i, call in enumerate(action.get("tool_calls") or []):
            arguments = call.get("arguments", {})
            self.calls.append({"toolUseId": call.get("id") or "tooluse_fake_%d_%d" % (n, i),
                               "name": call.get("name", "tool"),
                               "input": json.loads(arguments) if isinstance(arguments, str) else arguments})
        usage = action.get("usage") or {}
        self.input_tokens = usage.get("prompt_tokens", input_words(body))
        self.output_tokens = usage.get("completion_tokens", len(self.text.split()) if self.text else 1)
        self.stop = "tool_use" if self.calls else "end_turn"

    def usage(self):
        return {"inputTokens": self.input_tokens, "outputTokens": self.output_tokens,
                "totalTokens": self.input_tokens + self.output_tokens}

    def body(self):
        content = ([{"text": self.text}] if self.text and not self.calls else []) + \
                  [{"toolUse": call} for call in self.calls]
        return {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": self.stop,
                "usage": self.usage(), "metrics": {"latencyMs": 5}}

    def events(self):
        events = [("messageStart", {"role": "assistant", "p": "abcdefgh"})]
        if self.calls:
            for i, call in enumerate(self.calls):
                events.append(("contentBlockStart", {"contentBlockIndex": i, "start": {"toolUse": {
                    "toolUseId": call["toolUseId"], "name": call["name"]}}}))
                for piece in base.split_json(json.dumps(call["input"])):
                    events.append(("contentBlockDelta", {"contentBlockIndex": i, "delta": {"toolUse": {"input": piece}}}))
                events.append(("contentBlockStop", {"contentBlockIndex": i}))
        else:
            for piece in self.chunks:
                events.append(("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}, "p": "ab"}))
            events.append(("contentBlockStop", {"contentBlockIndex": 0}))
        events.append(("messageStop", {"stopReason": self.stop}))
        events.append(("metadata", {"usage": self.usage(), "metrics": {"latencyMs": 5}}))
        return events


ERROR_TYPES = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
               424: "ModelErrorException", 429: "ThrottlingException", 500: "InternalServerException",
               503: "ServiceUnavailableException"}


class Handler(base.Handler):
    server_version = "fake-bedrock/1"

    def send_error_json(self, status, message, error_type, extra=None):
        headers = {"x-amzn-ErrorType": "%s:http://internal.amazon.com/coral/com.amazon.bedrock/" % error_type,
                   "x-amzn-RequestId": "req-%d" % next(base.STATE.ids)}
        headers.update(extra or {})
        return self.send_json(status, {"message": message}, headers)

    def model_request(self, method, path, raw):
        headers = {name.lower(): value for name, value in self.headers.items()}
        parts = path.split("/")
        routed = len(parts) == 4 and parts[0] == "" and parts[1] == "model" and parts[3] in ("converse",
                                                                                               "converse-stream")
        problem = verify_signature(method, self.path, headers, raw)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        body = parsed if isinstance(parsed, dict) else {}
        action = base.STATE.next_action() if routed and problem is None else {}
        recorded = {k: ("REDACTED" if k == "authorization" else v) for k, v in headers.items()}
        credential = headers.get("authorization", "").partition("Credential=")[2]
        base.STATE.record({"connection": self.connection_id, "method": method, "path": self.path,
                           "headers": recorded, "body": raw.decode("utf-8", "replace"), "json": parsed,
                           "model": urllib.parse.unquote(parts[2]) if routed else None,
                           "stream": routed and parts[3] == "converse-stream",
                           "signature": {"ok": problem is None, "error": problem},
                           "access_key": credential.split("/", 1)[0] or None, "action": action})
        if problem is not None:
            kind = "UnrecognizedClientException" if problem.startswith("unknown access key") else \
                "InvalidSignatureException"
            return self.send_error_json(403, "The request signature we calculated does not match the signature "
                                             "you provided (%s)" % problem, kind)
        if not routed or method != "POST":
            return self.send_error_json(404, "no route for %s %s" % (method, path), "UnknownOperationException")
        if action.get("close"):
            raise base.CloseConnection()
        if action.get("delay_ms"):
            time.sleep(action["delay_ms"] / 1000.0)
        extra = action.get("headers") or {}
        status = int(action.get("status", 200))
        if status >= 300:
            if "body" in action:
                return self.send_json(status, action["body"], extra)
            return self.send_error_json(status, action.get("message", "scripted status %d" % status),
                                        ERROR_TYPES.get(status, "InternalServerException"), extra)
        if "body" in action:
            return self.send_json(status, action["body"], extra)
        reply = Converse(body, action, next(base.STATE.ids))
        if parts[3] == "converse":
            return self.send_json(200, reply.body(), extra)
        self.send_event_stream(reply.events(), action, extra)

    def send_event_stream(self, events, action, extra):
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-amzn-RequestId", "req-stream")
        for name, v in extra.items():
            self.send_header(name, str(v))
        self.end_headers()
        self.wfile.flush()
        delay = action.get("chunk_delay_ms", 0) / 1000.0
        exception = action.get("exception")
        for i, (name, value) in enumerate(events):
            if exception is not None and i == int(exception.get("after", 1)):
                self.write_chunk(exception_frame(exception.get("type", "modelStreamErrorException"),
                                                 exception.get("message", "scripted exception")))
                break
            if action.get("cut_after") is not None and i >= int(action["cut_after"]):
                raise base.CloseConnection()
            if delay:
                time.sleep(delay)
            data = event_frame(name, value, corrupt=action.get("corrupt_crc") == i)
            # Frames split across chunks, as a real stream may deliver them.
            middle = len(data) // 2
            self.write_chunk(data[:middle])
            self.write_chunk(data[middle:])
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main():
    global REGION
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--credentials", action="append", default=[],
                        help="AKID:SECRET[:SESSION_TOKEN] the server accepts (repeatable)")
    args = parser.parse_args()
    REGION = args.region
    for text in args.credentials:
        key, secret, *token = text.split(":", 2)
        CREDENTIALS[key] = Credentials(key, secret, token[0] if token else None)
    if not CREDENTIALS:
        parser.error("give at least one --credentials AKID:SECRET")
    server = base.Server((args.host, args.port), Handler)
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    print("listening on %s:%d" % (args.host, port), flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
