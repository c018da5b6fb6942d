// Server-Sent Events (the WHATWG event-stream format), parsed incrementally: bytes go in as they arrive, whole events
// come out. Pure, no I/O.
//
//   SseParser parser;
//   parser.feed(chunk, [&](const SseEvent& event) { handle(event); return true; });
//   ... at the end of the body: if (!parser.clean_end()) the stream broke off inside an event.
//
// Thread-safety: a parser is used from one thread.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace statefold::upstream {

struct SseEvent {
  std::string event;  // the `event:` field; "" when the event has none (OpenAI Chat Completions)
  std::string data;   // the `data:` lines joined with '\n'
  std::string id;     // the last `id:` seen in the stream so far (it carries over, as the format says)
  std::optional<int> retry_ms;  // a `retry:` field in this event

  bool done() const { return data == "[DONE]"; }  // OpenAI's end-of-stream sentinel
};

class SseParser {
 public:
  using OnEvent = std::function<bool(const SseEvent&)>;

  // Parses `bytes` (any split, even inside a CR LF pair) and calls `on_event` for each event completed, in order.
  // Returns false once `on_event` returned false (the rest of `bytes` is dropped) or a line grew past the limit.
  bool feed(std::string_view bytes, const OnEvent& on_event);

  // True when nothing is pending: the stream ended on an event boundary (a blank line), as a whole stream does.
  bool clean_end() const;
  bool overflowed() const { return _overflow; }
  std::size_t events() const { return _events; }
  std::size_t comments() const { return _comments; }  // ": keep-alive" lines and the like

  static constexpr std::size_t kMaxLineBytes = 16 << 20;

 private:
  bool line(std::string_view text, const OnEvent& on_event);

  std::string _line;         // a line not yet ended
  std::string _data;         // data lines of the event being built, each followed by '\n'
  std::string _event;
  std::string _id;
  std::optional<int> _retry;
  bool _has_data = false;
  bool _pending = false;     // some field line seen since the last blank line
  bool _after_cr = false;    // the last byte was CR: a following LF belongs to it
  bool _started = false;     // past a possible byte order mark
  bool _overflow = false;
  std::size_t _events = 0;
  std::size_t _comments = 0;
};

}  // namespace statefold::upstream
