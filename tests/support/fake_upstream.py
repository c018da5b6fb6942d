#!/usr/bin/env python3
"""A scripted fake model endpoint for tests (Python 3 standard library only).

Speaks just enough of three provider APIs, non-streamed and streamed (Server-Sent Events):
  POST /v1/chat/completions   OpenAI Chat Completions (chat.completion / chat.completion.chunk, [DONE],
                              a final usage chunk when stream_options.include_usage is true)
  POST /v1/responses          OpenAI Responses (response / response.created, response.output_text.delta, ...,
                              response.completed)
  POST /v1/messages           Anthropic Messages (message / message_start, content_block_delta, message_delta,
                              message_stop)
A path prefix before /v1 is accepted (/openai/v1/chat/completions), so base URLs with a prefix work.

Behaviour is scripted: a queue of actions, each consumed by the next model request (see ACTIONS below), given with
--script FILE (a JSON list, or {"actions": [...]}) or at run time:
  POST /__script     {"actions": [...], "replace": false}  append (or replace) actions; answers {"queued": n}
  POST /__reset      clear the queue and the recorded requests
  GET  /__requests   {"requests": [...]}: every model request received, in order, with
                       seq, connection (a per-TCP-connection number: equal numbers = a reused connection),
                       method, path, headers (auth header values replaced by "REDACTED"),
                       auth {"present", "header", "sha256" of the key}, body (text), json (parsed or null), action
  GET  /__health     {"ok": true}
With no action queued the reply is deterministic: "echo: <the last user message text>".

ACTIONS (every field optional):
  reply           the assistant text (default: the echo)
  chunks          the streamed text pieces (default: the reply split after each space)
  tool_calls      [{"name": ..., "arguments": {...} or "json text", "id": ...}]: a tool call reply instead of text
  status          an error status (429, 500, 400...) with a provider-shaped error body (or `body`)
  headers         extra response headers, e.g. {"Retry-After": "1"}
  body            a raw response body (string, or JSON value) instead of the generated one
  delay_ms        sleep before sending the response head (a read timeout on the client side)
  chunk_delay_ms  sleep before each streamed event (a slow stream)
  cut_after       close the connection after this many streamed events, without ending the chunked body
  echo_auth       quote the credentials received: in an error body and an x-echo header, or, for a streamed
                  200, as the streamed reply text
  close           close the connection without answering
  drop_after      close the connection right after answering (without "Connection: close"): a keep-alive
                  connection the server dropped while the client kept it idle
  usage           {"prompt_tokens": .., "completion_tokens": ..} instead of word counts
  repeat          apply the action to this many requests (default 1)

Start: python3 fake_upstream.py --port 0 --port-file F [--script S] [--tls-cert C --tls-key K]
The chosen port is printed ("listening on 127.0.0.1:PORT") and written to F (atomically).
"""

import argparse
import hashlib
import http.server
import itertools
import json
import os
import socket
import ssl
import sys
import threading
import time

AUTH_HEADERS = ("authorization", "x-api-key", "api-key")
CREATED = 1700000000


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.actions = []  # [action, remaining uses]
        self.requests = []
        self.connections = itertools.count(1)
        self.ids = itertools.count(1)

    def queue(self, actions, replace=False):
        with self.lock:
            if replace:
                self.actions = []
            for action in actions:
                if not isinstance(action, dict):
                    raise ValueError("an action must be a JSON object")
                self.actions.append([action, int(action.get("repeat", 1))])
            return len(self.actions)

    def next_action(self):
        with self.lock:
            if not self.actions:
                return {}
            entry = self.actions[0]
            entry[1] -= 1
            if entry[1] <= 0:
                self.actions.pop(0)
            return entry[0]

    def record(self, entry):
        with self.lock:
            entry["seq"] = len(self.requests) + 1
            self.requests.append(entry)

    def reset(self):
        with self.lock:
            self.actions = []
            self.requests = []


STATE = State()


def words(text):
    return len(text.split()) if text else 0


def split_chunks(text):
    if not text:
        return [""]
    out, current = [], ""
    for ch in text:
        current += ch
        if ch == " ":
            out.append(current)
            current = ""
    if current:
        out.append(current)
    return out


def text_of(content):
    """The text of an OpenAI / Anthropic content value: a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    return ""


def last_user_text(kind, body):
    if kind == "responses":
        items = body.get("input")
        if isinstance(items, str):
            return items
        items = items if isinstance(items, list) else []
    else:
        items = body.get("messages") if isinstance(body.get("messages"), list) else []
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user":
            return text_of(item.get("content"))
    return ""


def input_words(kind, body):
    total = 0
    items = body.get("input") if kind == "responses" else body.get("messages")
    if isinstance(items, str):
        return words(items)
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            total += words(text_of(item.get("content")))
    if kind == "anthropic":
        total += words(text_of(body.get("system")))
    if kind == "responses":
        total += words(text_of(body.get("instructions")))
    return max(total, 1)


def tool_calls_of(action, n):
    calls = []
    for i, call in enumerate(action.get("tool_calls") or []):
        arguments = call.get("arguments", {})
        calls.append({
            "id": call.get("id") or "call_fake_%d_%d" % (n, i),
            "name": call.get("name", "tool"),
            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments, separators=(",", ":")),
        })
    return calls


def error_body(kind, status, message):
    types = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
             429: "rate_limit_error", 500: "api_error", 503: "overloaded_error"}
    if kind == "anthropic":
        return {"type": "error", "error": {"type": types.get(status, "api_error"), "message": message}}
    return {"error": {"message": message, "type": types.get(status, "server_error"), "param": None,
                      "code": "rate_limit_exceeded" if status == 429 else None}}


# -- Replies ----------------------------------------------------------------------------------------------------------

class Reply:
    """What the fake answers one model request with: a body, or a list of (event name, data) for a stream."""

    def __init__(self, kind, body, action, n):
        self.kind = kind
        self.model = body.get("model") or "fake-model"
        self.n = n
        self.text = action.get("reply")
        if self.text is None:
            self.text = "echo: " + last_user_text(kind, body)
        self.chunks = action.get("chunks") or split_chunks(self.text)
        if "chunks" in action and "reply" not in action:
            self.text = "".join(self.chunks)
        self.calls = tool_calls_of(action, n)
        usage = action.get("usage") or {}
        self.prompt_tokens = int(usage.get("prompt_tokens", input_words(kind, body)))
        self.completion_tokens = int(usage.get("completion_tokens", max(words(self.text), 1)))
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    # Chat Completions.
    def chat(self):
        message = {"role": "assistant", "content": None if self.calls else self.text, "refusal": None}
        if self.calls:
            message["tool_calls"] = [{"id": c["id"], "type": "function",
                                      "function": {"name": c["name"], "arguments": c["arguments"]}}
                                     for c in self.calls]
        return {"id": "chatcmpl-fake-%d" % self.n, "object": "chat.completion", "created": CREATED,
                "model": self.model, "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": "tool_calls" if self.calls else "stop"}],
                "usage": self.chat_usage()}

    def chat_usage(self):
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}

    def chat_events(self):
        def chunk(delta, finish=None):
            out = {"id": "chatcmpl-fake-%d" % self.n, "object": "chat.completion.chunk", "created": CREATED,
                   "model": self.model, "system_fingerprint": "fp_fake",
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if self.include_usage:
                out["usage"] = None
            return out
        events = [chunk({"role": "assistant", "content": "" if not self.calls else None, "refusal": None})]
        if self.calls:
            for i, c in enumerate(self.calls):
                events.append(chunk({"tool_calls": [{"index": i, "id": c["id"], "type": "function",
                                                     "function": {"name": c["name"], "arguments": ""}}]}))
                for piece in split_json(c["arguments"]):
                    events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
            events.append(chunk({}, "tool_calls"))
        else:
            for piece in self.chunks:
                events.append(chunk({"content": piece}))
            events.append(chunk({}, "stop"))
        if self.include_usage:
            last = {"id": "chatcmpl-fake-%d" % self.n, "object": "chat.completion.chunk", "created": CREATED,
                    "model": self.model, "system_fingerprint": "fp_fake", "choices": [], "usage": self.chat_usage()}
            events.append(last)
        return [(None, json.dumps(e)) for e in events] + [(None, "[DONE]")]

    # Responses.
    def responses_output(self, done=True):
        if self.calls:
            return [{"type": "function_call", "id": "fc_fake_%d_%d" % (self.n, i), "call_id": c["id"],
                     "name": c["name"], "arguments": c["arguments"] if done else "",
                     "status": "completed" if done else "in_progress"} for i, c in enumerate(self.calls)]
        return [{"type": "message", "id": "msg_fake_%d" % self.n, "status": "completed" if done else "in_progress",
                 "role": "assistant",
                 "content": [{"type": "output_text", "text": self.text, "annotations": []}] if done else []}]

    def response(self, status="completed"):
        done = status == "completed"
        return {"id": "resp_fake_%d" % self.n, "object": "response", "created_at": CREATED, "status": status,
                "model": self.model, "output": self.responses_output() if done else [],
                "error": None, "incomplete_details": None, "instructions": None, "metadata": {},
                "parallel_tool_calls": True, "temperature": 1.0, "top_p": 1.0, "tool_choice": "auto", "tools": [],
                "text": {"format": {"type": "text"}}, "truncation": "disabled", "previous_response_id": None,
                "usage": {"input_tokens": self.prompt_tokens, "output_tokens": self.completion_tokens,
                          "total_tokens": self.prompt_tokens + self.completion_tokens,
                          "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens_details": {"reasoning_tokens": 0}} if done else None}

    def responses_events(self):
        seq = itertools.count(0)
        events = []

        def add(kind, **fields):
            data = {"type": kind, "sequence_number": next(seq)}
            data.update(fields)
            events.append((kind, json.dumps(data)))
        add("response.created", response=self.response("in_progress"))
        add("response.in_progress", response=self.response("in_progress"))
        if self.calls:
            for i, (c, item) in enumerate(zip(self.calls, self.responses_output(done=False))):
                add("response.output_item.added", output_index=i, item=item)
                for piece in split_json(c["arguments"]):
                    add("response.function_call_arguments.delta", item_id=item["id"], output_index=i, delta=piece)
                add("response.function_call_arguments.done", item_id=item["id"], output_index=i,
                    arguments=c["arguments"])
                add("response.output_item.done", output_index=i, item=self.responses_output()[i])
        else:
            item = self.responses_output(done=False)[0]
            add("response.output_item.added", output_index=0, item=item)
            add("response.content_part.added", item_id=item["id"], output_index=0, content_index=0,
                part={"type": "output_text", "text": "", "annotations": []})
            for piece in self.chunks:
                add("response.output_text.delta", item_id=item["id"], output_index=0, content_index=0, delta=piece)
            add("response.output_text.done", item_id=item["id"], output_index=0, content_index=0, text=self.text)
            add("response.content_part.done", item_id=item["id"], output_index=0, content_index=0,
                part={"type": "output_text", "text": self.text, "annotations": []})
            add("response.output_item.done", output_index=0, item=self.responses_output()[0])
        add("response.completed", response=self.response())
        return events

    # Anthropic Messages.
    def message(self, done=True):
        content = []
        if done:
            if self.calls:
                content = [{"type": "tool_use", "id": c["id"], "name": c["name"], "input": json.loads(c["arguments"])}
                           for c in self.calls]
            else:
                content = [{"type": "text", "text": self.text}]
        return {"id": "msg_fake_%d" % self.n, "type": "message", "role": "assistant", "model": self.model,
                "content": content, "stop_reason": ("tool_use" if self.calls else "end_turn") if done else None,
                "stop_sequence": None,
                "usage": {"input_tokens": self.prompt_tokens, "output_tokens": self.completion_tokens if done else 1}}

    def anthropic_events(self):
        events = []

        def add(kind, **fields):
            data = {"type": kind}
            data.update(fields)
            events.append((kind, json.dumps(data)))
        add("message_start", message=self.message(done=False))
        if self.calls:
            for i, c in enumerate(self.calls):
                add("content_block_start", index=i,
                    content_block={"type": "tool_use", "id": c["id"], "name": c["name"], "input": {}})
                for piece in split_json(c["arguments"]):
                    add("content_block_delta", index=i, delta={"type": "input_json_delta", "partial_json": piece})
                add("content_block_stop", index=i)
        else:
            add("content_block_start", index=0, content_block={"type": "text", "text": ""})
            add("ping")
            for piece in self.chunks:
                add("content_block_delta", index=0, delta={"type": "text_delta", "text": piece})
            add("content_block_stop", index=0)
        add("message_delta", delta={"stop_reason": "tool_use" if self.calls else "end_turn", "stop_sequence": None},
            usage={"output_tokens": self.completion_tokens})
        add("message_stop")
        return events

    def body(self):
        return {"chat": self.chat, "responses": self.response, "anthropic": self.message}[self.kind]()

    def events(self):
        return {"chat": self.chat_events, "responses": self.responses_events,
                "anthropic": self.anthropic_events}[self.kind]()


def split_json(text):
    if len(text) <= 8:
        return [text]
    middle = len(text) // 2
    return [text[:middle], text[middle:]]


# -- HTTP -------------------------------------------------------------------------------------------------------------

class CloseConnection(Exception):
    pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-upstream/1"

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        self.connection_id = next(STATE.connections)

    def log_message(self, format, *args):  # quiet; tests read /__requests
        if os.environ.get("FAKE_UPSTREAM_VERBOSE"):
            sys.stderr.write("fake_upstream: %s\n" % (format % args))

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send_json(self, status, value, headers=None):
        data = (value if isinstance(value, str) else json.dumps(value)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, v in (headers or {}).items():
            self.send_header(name, str(v))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def handle_any(self, method):
        try:
            raw = self.read_body()
            path = self.path.split("?", 1)[0]
            if path == "/__health":
                return self.send_json(200, {"ok": True})
            if path == "/__requests":
                with STATE.lock:
                    return self.send_json(200, {"requests": list(STATE.requests)})
            if path == "/__reset":
                STATE.reset()
                return self.send_json(200, {"ok": True})
            if path == "/__script":
                try:
                    value = json.loads(raw or b"{}")
                    actions = value if isinstance(value, list) else value.get("actions", [])
                    replace = False if isinstance(value, list) else bool(value.get("replace"))
                    return self.send_json(200, {"queued": STATE.queue(actions, replace)})
                except (ValueError, AttributeError) as e:
                    return self.send_json(400, {"error": str(e)})
            self.model_request(method, path, raw)
        except CloseConnection:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            self.close_connection = True

    def model_request(self, method, path, raw):
        kind = None
        for suffix, name in (("/v1/chat/completions", "chat"), ("/v1/responses", "responses"),
                             ("/v1/messages", "anthropic")):
            if path.endswith(suffix):
                kind = name
        try:
            body = json.loads(raw) if raw else {}
            if not isinstance(body, dict):
                body = {}
            parsed = json.loads(raw) if raw else None
        except ValueError:
            body, parsed = {}, None
        headers, auth = {}, {"present": False, "header": None, "sha256": None}
        for name, value in self.headers.items():
            lname = name.lower()
            if lname in AUTH_HEADERS:
                key = value[7:] if lname == "authorization" and value.startswith("Bearer ") else value
                auth = {"present": bool(key), "header": lname, "sha256": hashlib.sha256(key.encode()).hexdigest()}
                value = "REDACTED"
            headers[lname] = value
        action = STATE.next_action() if kind else {}
        n = next(STATE.ids)
        STATE.record({"connection": self.connection_id, "method": method, "path": self.path, "headers": headers,
                      "auth": auth, "body": raw.decode("utf-8", "replace"), "json": parsed, "action": action})

        if action.get("close"):
            raise CloseConnection()
        if action.get("delay_ms"):
            time.sleep(action["delay_ms"] / 1000.0)
        extra = action.get("headers") or {}
        if kind is None or method != "POST":
            return self.send_json(404, error_body("openai", 404, "no route for %s %s" % (method, path)))
        status = int(action.get("status", 200))
        if action.get("echo_auth"):
            # A careless server quoting the credentials it got, as some proxies' 401 pages do; streamed, in the
            # reply's text.
            raw_auth = next((v for n, v in self.headers.items() if n.lower() in AUTH_HEADERS), "")
            message = "invalid credentials: %s" % raw_auth
            if status < 300 and body.get("stream"):
                action = dict(action, reply=message)
            else:
                return self.send_json(status, error_body(kind, status, message), {"x-echo": raw_auth, **extra})
        if status >= 300:
            body_value = action.get("body", error_body(kind, status, "scripted status %d" % status))
            return self.send_json(status, body_value, extra)
        if "body" in action:
            self.send_json(status, action["body"], extra)
            if action.get("drop_after"):
                raise CloseConnection()
            return
        reply = Reply(kind, body, action, n)
        if not body.get("stream"):
            self.send_json(200, reply.body(), extra)
        else:
            self.send_stream(reply.events(), action, extra)
        if action.get("drop_after"):
            raise CloseConnection()

    def send_stream(self, events, action, extra):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, v in extra.items():
            self.send_header(name, str(v))
        self.end_headers()
        self.wfile.flush()
        delay = action.get("chunk_delay_ms", 0) / 1000.0
        cut_after = action.get("cut_after")
        for i, (name, data) in enumerate(events):
            if cut_after is not None and i >= int(cut_after):
                raise CloseConnection()
            if delay:
                time.sleep(delay)
            text = ("event: %s\n" % name if name else "") + "".join("data: %s\n" % line for line in data.split("\n"))
            self.write_chunk((text + "\n").encode())
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    tls_context = None

    def finish_request(self, request, client_address):
        # The TLS handshake happens here, on the connection's own thread, so a slow client cannot stall accept().
        if self.tls_context is not None:
            try:
                request.settimeout(10)
                request = self.tls_context.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--script", help="a JSON file with the initial action queue")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    if args.script:
        with open(args.script) as f:
            value = json.load(f)
        STATE.queue(value if isinstance(value, list) else value.get("actions", []))
    server = Server((args.host, args.port), Handler)
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.tls_context = context
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
