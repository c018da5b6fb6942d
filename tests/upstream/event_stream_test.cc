// The AWS event-stream decoder: known frames from AWS's own libraries, every header type, any split of the bytes,
// and the broken streams (a bad prelude or message CRC, lengths out of range, headers running past their section,
// a stream cut inside a message) as clear errors, never a crash.
#include "connectors/upstream/event_stream.h"

#include <zlib.h>

#include <gtest/gtest.h>

#include "engine/base/hex.h"

namespace statefold::upstream {
namespace {

std::string bytes_of_hex(std::string_view hex) {
  auto raw = base::from_hex(hex);
  return raw ? std::string(raw->begin(), raw->end()) : std::string();
}

void put32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

std::uint32_t crc(std::string_view bytes) {
  return static_cast<std::uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

// One string header as the format writes it (type 7, u16 length).
std::string string_header(std::string_view name, std::string_view value) {
  std::string out;
  out += static_cast<char>(name.size());
  out += name;
  out += static_cast<char>(7);
  out += static_cast<char>(value.size() >> 8);
  out += static_cast<char>(value.size() & 0xff);
  out += value;
  return out;
}

std::string frame(std::string_view headers, std::string_view payload) {
  std::string out;
  put32(out, static_cast<std::uint32_t>(16 + headers.size() + payload.size()));
  put32(out, static_cast<std::uint32_t>(headers.size()));
  put32(out, crc(out));
  out += headers;
  out += payload;
  put32(out, crc(out));
  return out;
}

std::string event(std::string_view type, std::string_view payload) {
  return frame(string_header(":event-type", type) + string_header(":content-type", "application/json") +
                   string_header(":message-type", "event"),
               payload);
}

std::vector<EventStreamMessage> decode_all(std::string_view bytes, std::size_t piece = 0) {
  EventStreamDecoder d;
  std::vector<EventStreamMessage> out;
  const auto keep = [&](const EventStreamMessage& m) {
    out.push_back(m);
    return true;
  };
  if (piece == 0) piece = bytes.size() + 1;
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    auto ok = d.feed(bytes.substr(at, piece), keep);
    EXPECT_TRUE(ok.ok()) << ok.error().message;
    if (!ok.ok()) return out;
  }
  EXPECT_TRUE(d.clean_end());
  return out;
}

std::string error_of(std::string_view bytes) {
  EventStreamDecoder d;
  auto r = d.feed(bytes, [](const EventStreamMessage&) { return true; });
  if (r.ok()) return "no error";
  // Once broken, nothing more is taken.
  EXPECT_FALSE(d.feed("x", [](const EventStreamMessage&) { return true; }).ok());
  EXPECT_FALSE(d.clean_end());
  return r.error().message;
}

TEST(EventStream, KnownFramesOfAwsLibraries) {
  // aws-c-event-stream: the empty message (no headers, no payload).
  const auto empty = decode_all(bytes_of_hex("000000100000000005c248eb7d98c8ff"));
  ASSERT_EQ(empty.size(), 1u);
  EXPECT_TRUE(empty[0].headers.empty());
  EXPECT_EQ(empty[0].payload, "");
  // content-type: application/json, payload {'foo':'bar'}.
  const auto one =
      decode_all(bytes_of_hex("0000003d0000002007fd83960c636f6e74656e742d747970650700106170706c69636174"
                              "696f6e2f6a736f6e7b27666f6f273a27626172277d8d9c08b1"));
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].header("content-type"), "application/json");
  EXPECT_EQ(one[0].payload, "{'foo':'bar'}");
  // Our own frames are the same bytes.
  EXPECT_EQ(frame(string_header("content-type", "application/json"), "{'foo':'bar'}"),
            bytes_of_hex("0000003d0000002007fd83960c636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e7b2"
                         "7666f6f273a27626172277d8d9c08b1"));
}

TEST(EventStream, EverySplitGivesTheSameMessages) {
  const std::string stream = event("messageStart", R"({"role":"assistant"})") +
                             event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"Hi"}})") +
                             event("messageStop", R"({"stopReason":"end_turn"})");
  for (std::size_t piece : {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{12}, std::size_t{50}}) {
    const auto messages = decode_all(stream, piece);
    ASSERT_EQ(messages.size(), 3u) << piece;
    EXPECT_EQ(messages[1].header(":event-type"), "contentBlockDelta");
    EXPECT_EQ(messages[1].payload, R"({"contentBlockIndex":0,"delta":{"text":"Hi"}})");
    const SseEvent e = as_event(messages[2]);
    EXPECT_EQ(e.event, "messageStop");
    EXPECT_EQ(e.data, R"({"stopReason":"end_turn"})");
  }
}

TEST(EventStream, EveryHeaderType) {
  std::string headers;
  const auto named = [&](std::string_view name, int type) {
    headers += static_cast<char>(name.size());
    headers += name;
    headers += static_cast<char>(type);
  };
  named("t", 0);
  named("f", 1);
  named("b", 2);
  headers += '\xff';  // -1
  named("s", 3);
  headers += std::string("\x01\x00", 2);  // 256
  named("i", 4);
  headers += std::string("\xff\xff\xff\xfe", 4);  // -2
  named("l", 5);
  headers += std::string("\x00\x00\x00\x01\x00\x00\x00\x00", 8);
  named("bytes", 6);
  headers += std::string("\x00\x03\x00\x01\x02", 5);
  named("ts", 8);
  headers += std::string("\x00\x00\x01\x8b\xcf\xe5\x68\x00", 8);
  named("u", 9);
  headers += bytes_of_hex("00112233445566778899aabbccddeeff");
  headers += string_header("str", "text");
  const auto m = decode_all(frame(headers, "p"));
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].header("t"), "true");
  EXPECT_EQ(m[0].header("f"), "false");
  EXPECT_EQ(m[0].header("b"), "-1");
  EXPECT_EQ(m[0].header("s"), "256");
  EXPECT_EQ(m[0].header("i"), "-2");
  EXPECT_EQ(m[0].header("l"), "4294967296");
  EXPECT_EQ(m[0].header("bytes"), std::string("\x00\x01\x02", 3));
  EXPECT_EQ(m[0].header("ts"), "1700000000000");
  EXPECT_EQ(m[0].header("u"), "00112233445566778899aabbccddeeff");
  EXPECT_EQ(m[0].header("str"), "text");
  EXPECT_EQ(m[0].payload, "p");
}

TEST(EventStream, ExceptionsAndErrorsAsEvents) {
  const auto exception = as_event(decode_all(
      frame(string_header(":exception-type", "throttlingException") + string_header(":message-type", "exception"),
            R"({"message":"Too many requests"})"))[0]);
  EXPECT_EQ(exception.event, "throttlingException");
  EXPECT_EQ(exception.data, R"({"message":"Too many requests"})");
  const auto error = as_event(
      decode_all(frame(string_header(":message-type", "error") + string_header(":error-code", "InternalFailure") +
                           string_header(":error-message", "boom"),
                       ""))[0]);
  EXPECT_EQ(error.event, "error");
  EXPECT_EQ(error.data, "InternalFailure: boom");
}

TEST(EventStream, CorruptCrcsAreErrors) {
  std::string good = event("messageStop", R"({"stopReason":"end_turn"})");
  std::string bad_prelude = good;
  bad_prelude[8] = static_cast<char>(bad_prelude[8] ^ 1);
  EXPECT_EQ(error_of(bad_prelude),
            "event stream: the message at byte 0: prelude CRC mismatch (not an event stream, or a corrupt length)");
  std::string bad_payload = good;
  bad_payload[bad_payload.size() - 6] = static_cast<char>(bad_payload[bad_payload.size() - 6] ^ 0x20);
  EXPECT_NE(error_of(bad_payload).find("event stream: the message at byte 0: message CRC mismatch"), std::string::npos);
  // The second message is the corrupt one: its offset is named, the first was delivered.
  EventStreamDecoder d;
  int delivered = 0;
  auto r = d.feed(good + bad_payload, [&](const EventStreamMessage&) { return ++delivered, true; });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(delivered, 1);
  EXPECT_NE(r.error().message.find("at byte " + std::to_string(good.size()) + ":"), std::string::npos);
  // Text that is no event stream at all (an HTML error page).
  EXPECT_NE(error_of("<html><body>Bad Gateway</body></html>").find("prelude CRC mismatch"), std::string::npos);
}

TEST(EventStream, LengthsOutOfRangeAreErrors) {
  const auto prelude = [](std::uint32_t total, std::uint32_t headers) {
    std::string out;
    put32(out, total);
    put32(out, headers);
    put32(out, crc(out));
    return out;
  };
  EXPECT_NE(error_of(prelude(15, 0)).find("total length 15 is outside 16.."), std::string::npos);
  EXPECT_NE(error_of(prelude(0xffffffff, 0)).find("total length 4294967295 is outside"), std::string::npos);
  EXPECT_NE(error_of(prelude(20, 5)).find("headers length 5 does not fit its message of 20 bytes"), std::string::npos);
  // A header whose value runs past the headers section, with CRCs that match.
  std::string header = string_header("name", "value");
  header.resize(header.size() - 2);
  EXPECT_NE(error_of(frame(header, "")).find("a header's value runs past the headers section"), std::string::npos);
  std::string unknown;
  unknown += '\x01';
  unknown += 'x';
  unknown += '\x0a';
  EXPECT_NE(error_of(frame(unknown, "")).find("header 'x' has unknown value type 10"), std::string::npos);
}

TEST(EventStream, TruncatedStreamsEndUnclean) {
  const std::string stream = event("one", "{}") + event("two", "{}");
  for (std::size_t cut = 1; cut < stream.size(); ++cut) {
    EventStreamDecoder d;
    std::size_t seen = 0;
    auto r = d.feed(stream.substr(0, cut), [&](const EventStreamMessage&) { return ++seen, true; });
    ASSERT_TRUE(r.ok()) << cut;
    EXPECT_EQ(d.clean_end(), cut == stream.size() / 2) << cut;
    EXPECT_EQ(seen, cut >= stream.size() / 2 ? 1u : 0u);
  }
}

TEST(EventStream, StopsWhenTheCallbackSaysSo) {
  const std::string stream = event("a", "{}") + event("b", "{}") + event("c", "{}");
  EventStreamDecoder d;
  std::vector<std::string> seen;
  auto r = d.feed(stream, [&](const EventStreamMessage& m) {
    seen.emplace_back(m.header(":event-type").value_or(""));
    return seen.size() < 2;
  });
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace statefold::upstream
