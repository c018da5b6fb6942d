// The event-stream decoder of event_stream.h. zlib stays in this file.
#include "connectors/upstream/event_stream.h"

#include <zlib.h>

namespace statefold::upstream {

namespace {

constexpr std::size_t kPreludeBytes = 12;  // total length, headers length, prelude CRC
constexpr std::size_t kCrcBytes = 4;

std::uint32_t be32(std::string_view bytes, std::size_t at) {
  return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at])) << 24 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at + 1])) << 16 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at + 2])) << 8 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at + 3]));
}

std::uint64_t be(std::string_view bytes, std::size_t at, std::size_t width) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < width; ++i) v = v << 8 | static_cast<unsigned char>(bytes[at + i]);
  return v;
}

std::uint32_t crc(std::string_view bytes) {
  return static_cast<std::uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

std::string hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::string at_byte(std::size_t offset) {
  std::string out = "event stream: the message at byte ";
  out += std::to_string(offset);
  out += ": ";
  return out;
}

}  // namespace

std::optional<std::string_view> EventStreamMessage::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n == name) return std::string_view(v);
  }
  return std::nullopt;
}

SseEvent as_event(const EventStreamMessage& message) {
  SseEvent out;
  const std::string_view type = message.header(":message-type").value_or("event");
  if (type == "exception") {
    out.event = std::string(message.header(":exception-type").value_or("exception"));
    out.data = message.payload;
  } else if (type == "error") {
    out.event = "error";
    out.data = std::string(message.header(":error-code").value_or("error"));
    out.data += ": ";
    out.data += message.header(":error-message").value_or("(no message)");
  } else {
    out.event = std::string(message.header(":event-type").value_or(""));
    out.data = message.payload;
  }
  return out;
}

base::Result<EventStreamMessage> EventStreamDecoder::decode(std::string_view frame) const {
  const std::string where = at_byte(_offset);
  const std::uint32_t headers_length = be32(frame, 4);
  const std::uint32_t expected = be32(frame, frame.size() - kCrcBytes);
  const std::uint32_t actual = crc(frame.substr(0, frame.size() - kCrcBytes));
  if (expected != actual) {
    return base::make_error(where + "message CRC mismatch (the frame says " + std::to_string(expected) +
                            ", its bytes give " + std::to_string(actual) + ")");
  }
  EventStreamMessage out;
  std::string_view headers = frame.substr(kPreludeBytes, headers_length);
  const auto truncated = [&](std::string_view what) {
    return base::make_error(where + "a header's " + std::string(what) + " runs past the headers section");
  };
  while (!headers.empty()) {
    const std::size_t name_length = static_cast<unsigned char>(headers[0]);
    if (name_length == 0) return base::make_error(where + "a header with an empty name");
    if (headers.size() < 1 + name_length + 1) return truncated("name");
    std::string name(headers.substr(1, name_length));
    const int type = static_cast<unsigned char>(headers[1 + name_length]);
    headers.remove_prefix(2 + name_length);
    std::string value;
    std::size_t width = 0;
    switch (type) {
      case 0: value = "true"; break;
      case 1: value = "false"; break;
      case 2: width = 1; break;
      case 3: width = 2; break;
      case 4: width = 4; break;
      case 5:
      case 8: width = 8; break;  // long, timestamp (ms)
      case 6:
      case 7: {  // byte array, string: u16 length
        if (headers.size() < 2) return truncated("value length");
        const std::size_t length = be(headers, 0, 2);
        if (headers.size() < 2 + length) return truncated("value");
        value = std::string(headers.substr(2, length));
        headers.remove_prefix(2 + length);
        break;
      }
      case 9:  // uuid
        if (headers.size() < 16) return truncated("value");
        value = hex(headers.substr(0, 16));
        headers.remove_prefix(16);
        break;
      default: return base::make_error(where + "header '" + name + "' has unknown value type " + std::to_string(type));
    }
    if (width > 0) {
      if (headers.size() < width) return truncated("value");
      const std::uint64_t raw = be(headers, 0, width);
      // Signed integers of their width.
      const std::int64_t v = width == 8 ? static_cast<std::int64_t>(raw)
                                        : static_cast<std::int64_t>(raw) -
                                              ((raw >> (width * 8 - 1)) != 0 ? (std::int64_t{1} << (width * 8)) : 0);
      value = std::to_string(v);
      headers.remove_prefix(width);
    }
    out.headers.emplace_back(std::move(name), std::move(value));
  }
  out.payload = std::string(
      frame.substr(kPreludeBytes + headers_length, frame.size() - kPreludeBytes - headers_length - kCrcBytes));
  return out;
}

base::Result<bool> EventStreamDecoder::feed(std::string_view bytes, const OnMessage& on_message) {
  if (_broken) return base::make_error("event stream: a malformed message came earlier");
  _pending.append(bytes);
  std::size_t used = 0;
  const auto finish = [&](bool going_on) {
    _pending.erase(0, used);
    return going_on;
  };
  while (_pending.size() - used >= kPreludeBytes) {
    const std::string_view rest = std::string_view(_pending).substr(used);
    const std::uint32_t total = be32(rest, 0);
    const std::uint32_t headers_length = be32(rest, 4);
    const std::uint32_t prelude_crc = be32(rest, 8);
    const auto broken = [&](std::string message) {
      _broken = true;
      return base::make_error(at_byte(_offset) + std::move(message));
    };
    if (crc(rest.substr(0, 8)) != prelude_crc) {
      return broken("prelude CRC mismatch (not an event stream, or a corrupt length)");
    }
    if (total < kMinMessageBytes || total > kMaxMessageBytes) {
      return broken("total length " + std::to_string(total) + " is outside " + std::to_string(kMinMessageBytes) + ".." +
                    std::to_string(kMaxMessageBytes));
    }
    if (headers_length > kMaxHeaderBytes || headers_length > total - kMinMessageBytes) {
      return broken("headers length " + std::to_string(headers_length) + " does not fit its message of " +
                    std::to_string(total) + " bytes");
    }
    if (rest.size() < total) break;
    auto message = decode(rest.substr(0, total));
    if (!message) {
      _broken = true;
      return message.error();
    }
    used += total;
    _offset += total;
    ++_messages;
    if (!on_message(*message)) return finish(false);
  }
  return finish(true);
}

}  // namespace statefold::upstream
