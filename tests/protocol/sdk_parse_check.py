#!/usr/bin/env python3
"""Validates the gateway's client-facing output with the official openai Python SDK.

Runs protocol_samples (the C++ writers over the test fixtures) into a temporary directory, then:
  completion_*.json  -> openai.types.chat.ChatCompletion
  response_*.json    -> openai.types.responses.Response
  chunks_*.sse       -> each frame a ChatCompletionChunk, ends with [DONE]; the SDK's own stream accumulator
                        (ChatCompletionStreamState) must rebuild the same message as completion_*.json
  events_*.sse       -> each frame a ResponseStreamEvent whose type is the SSE event name, sequence_number 0, 1, ..;
                        the SDK's ResponseStreamState must accept the sequence and end with the final response
Exit 0 when all pass, 1 on a validation failure, 77 (ctest: skipped) when the openai package is missing.

  python3 tests/protocol/sdk_parse_check.py build/dev/tests/protocol/protocol_samples
"""

import glob
import json
import os
import subprocess
import sys
import tempfile

try:
    import openai
    import pydantic
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from openai.types.responses import Response, ResponseStreamEvent
    from openai.lib.streaming.chat import ChatCompletionStreamState
    from openai.lib.streaming.responses import ResponseStreamState
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"SKIP: the openai Python package is not installed ({e}); "
          "install it with: python3 -m pip install --user openai")
    sys.exit(77)

OMIT = getattr(openai, "omit", None) or getattr(openai, "NOT_GIVEN")
EVENT_ADAPTER = pydantic.TypeAdapter(ResponseStreamEvent)
failures = []


def fail(path, message):
    failures.append(f"{os.path.basename(path)}: {message}")


def frames(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not text.endswith("\n\n"):
        fail(path, "does not end with a blank line")
    return [frame for frame in text.split("\n\n") if frame]


def check_completion(path):
    try:
        return ChatCompletion.model_validate_json(open(path, encoding="utf-8").read())
    except pydantic.ValidationError as e:
        fail(path, f"ChatCompletion: {e}")
        return None


def check_response(path):
    try:
        return Response.model_validate_json(open(path, encoding="utf-8").read())
    except pydantic.ValidationError as e:
        fail(path, f"Response: {e}")
        return None


def tool_calls_of(message):
    return [(c.id, c.function.name, json.loads(c.function.arguments)) for c in (message.tool_calls or [])]


def check_chunks(path, completions):
    state = ChatCompletionStreamState()
    payloads = []
    for frame in frames(path):
        if not frame.startswith("data: ") or "\n" in frame:
            fail(path, f"not a single data line: {frame[:80]!r}")
            return
        payloads.append(frame[len("data: "):])
    if not payloads or payloads[-1] != "[DONE]":
        fail(path, "does not end with data: [DONE]")
        return
    for payload in payloads[:-1]:
        try:
            chunk = ChatCompletionChunk.model_validate_json(payload)
        except pydantic.ValidationError as e:
            fail(path, f"ChatCompletionChunk: {e}")
            return
        state.handle_chunk(chunk)
    final = state.get_final_completion()
    name = os.path.basename(path)[len("chunks_"):-len(".sse")]
    expected = completions.get(name)
    if expected is None:
        return
    got, want = final.choices[0], expected.choices[0]
    if (got.message.content or "") != (want.message.content or ""):
        fail(path, f"accumulated content {got.message.content!r} != {want.message.content!r}")
    if tool_calls_of(got.message) != tool_calls_of(want.message):
        fail(path, f"accumulated tool calls {tool_calls_of(got.message)} != {tool_calls_of(want.message)}")
    if got.finish_reason != want.finish_reason:
        fail(path, f"finish_reason {got.finish_reason} != {want.finish_reason}")
    if final.usage is None or final.usage.total_tokens != expected.usage.total_tokens:
        fail(path, "usage missing or different from the completion's")


def check_events(path):
    state = ResponseStreamState(input_tools=OMIT, text_format=OMIT)
    streamed = {}
    last = None
    for n, frame in enumerate(frames(path)):
        lines = frame.split("\n")
        if len(lines) != 2 or not lines[0].startswith("event: ") or not lines[1].startswith("data: "):
            fail(path, f"frame {n} is not 'event: X' + 'data: Y': {frame[:80]!r}")
            return
        name = lines[0][len("event: "):]
        try:
            event = EVENT_ADAPTER.validate_json(lines[1][len("data: "):])
        except pydantic.ValidationError as e:
            fail(path, f"frame {n} ({name}): {e}")
            return
        if event.type != name:
            fail(path, f"frame {n}: event name {name} but type {event.type}")
        if event.sequence_number != n:
            fail(path, f"frame {n}: sequence_number {event.sequence_number}")
        try:
            state.handle_event(event)
        except Exception as e:  # the SDK's accumulator asserts on out-of-order events
            fail(path, f"frame {n} ({name}): the SDK's stream accumulator refused it: {e!r}")
            return
        if event.type in ("response.output_text.delta", "response.function_call_arguments.delta"):
            streamed[event.output_index] = streamed.get(event.output_index, "") + event.delta
        last = event
    if last is None or last.type not in ("response.completed", "response.incomplete", "response.failed"):
        fail(path, "does not end with response.completed / incomplete / failed")
        return
    # The deltas, put together by output_index, are what the final object holds.
    final = last.response
    for index, item in enumerate(final.output):
        if item.type == "message":
            want = "".join(c.text for c in item.content if c.type == "output_text")
        elif item.type == "function_call":
            want = item.arguments
        else:
            continue
        if streamed.get(index, "") != want:
            fail(path, f"output[{index}]: deltas gave {streamed.get(index, '')!r}, final object has {want!r}")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    if not os.access(sys.argv[1], os.X_OK):
        print(f"FAIL: {sys.argv[1]} is not built (cmake --build ... --target protocol_samples)")
        return 1
    print(f"openai {openai.__version__}, pydantic {pydantic.VERSION}")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.argv[1], tmp], check=True)
        completions = {}
        for path in sorted(glob.glob(os.path.join(tmp, "completion_*.json"))):
            c = check_completion(path)
            if c is not None:
                completions[os.path.basename(path)[len("completion_"):-len(".json")]] = c
        responses = 0
        for path in sorted(glob.glob(os.path.join(tmp, "response_*.json"))):
            r = check_response(path)
            responses += 1
            name = os.path.basename(path)[len("response_"):-len(".json")]
            if r is not None and name in completions:
                want = completions[name].choices[0].message.content or ""
                if r.output_text != want:
                    fail(path, f"output_text {r.output_text!r} != the completion's content {want!r}")
        chunks = sorted(glob.glob(os.path.join(tmp, "chunks_*.sse")))
        for path in chunks:
            check_chunks(path, completions)
        events = sorted(glob.glob(os.path.join(tmp, "events_*.sse")))
        for path in events:
            check_events(path)
        error = json.load(open(os.path.join(tmp, "error.json"), encoding="utf-8"))
        if set(error.get("error", {})) != {"message", "type", "param", "code"}:
            fail("error.json", f"unexpected shape {error}")
        print(f"checked {len(completions)} completions, {responses} responses, {len(chunks)} chunk streams, "
              f"{len(events)} event streams")
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
