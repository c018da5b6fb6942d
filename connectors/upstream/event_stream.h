// The AWS event-stream framing (application/vnd.amazon.eventstream) that Bedrock's ConverseStream answers with,
// decoded incrementally: bytes go in as they arrive, whole messages come out. Pure, no I/O (zlib's crc32 inside).
//
//   EventStreamDecoder decoder;
//   auto ok = decoder.feed(chunk, [&](const EventStreamMessage& m) { handle(as_event(m)); return true; });
//   if (!ok) ...;                                   // a bad frame: ok.error() says what and at which byte
//   ... at the end of the body: if (!decoder.clean_end()) the stream broke off inside a message.
//
// A frame: total length (u32), headers length (u32), CRC32 of those 8 bytes; headers (name length u8, name, type u8,
// value); payload; CRC32 of everything before it. All integers big-endian.
//
// Thread-safety: a decoder is used from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "connectors/upstream/sse.h"
#include "engine/base/result.h"

namespace statefold::upstream {

struct EventStreamMessage {
  // Header values as text: strings and byte arrays as they are, booleans "true"/"false", integers and timestamps
  // (milliseconds) in decimal, UUIDs in hex.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string payload;

  std::optional<std::string_view> header(std::string_view name) const;
};

// A message as the client's callbacks take it (the shape of an SSE event):
//  - :message-type "event": event = :event-type ("contentBlockDelta"), data = the payload;
//  - "exception": event = :exception-type ("throttlingException"), data = the payload ({"message":"..."});
//  - "error": event = "error", data = ":error-code: :error-message".
SseEvent as_event(const EventStreamMessage& message);

class EventStreamDecoder {
 public:
  using OnMessage = std::function<bool(const EventStreamMessage&)>;

  // Decodes every message `bytes` completes (any split) and calls `on_message` for each, in order. Returns false
  // once `on_message` returned false (the rest is dropped); an error for a malformed frame (a length out of range,
  // a CRC that does not match, a header that runs past its section), after which the decoder takes nothing more.
  base::Result<bool> feed(std::string_view bytes, const OnMessage& on_message);

  // True when nothing is pending: the stream ended on a message boundary.
  bool clean_end() const { return _pending.empty() && !_broken; }
  std::size_t messages() const { return _messages; }

  static constexpr std::size_t kMinMessageBytes = 16;                // prelude + message CRC, nothing else
  static constexpr std::size_t kMaxMessageBytes = 24 * 1024 * 1024;  // AWS's limit is 16 MiB of payload
  static constexpr std::size_t kMaxHeaderBytes = 128 * 1024;

 private:
  base::Result<EventStreamMessage> decode(std::string_view frame) const;

  std::string _pending;     // bytes of a message not yet whole
  std::size_t _offset = 0;  // stream offset of _pending's first byte, for messages
  std::size_t _messages = 0;
  bool _broken = false;
};

}  // namespace statefold::upstream
