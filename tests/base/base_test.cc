// Unit tests for base: hex, SHA-256 (known vectors), RFC 3339 parsing, the JSON writer (exact bytes: request bodies
// written with it are hashed into receipts) and the log line formats.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "engine/base/hex.h"
#include "engine/base/json_read.h"
#include "engine/base/json_writer.h"
#include "engine/base/logging.h"
#include "engine/base/sha256.h"
#include "engine/base/time.h"

namespace statefold::base {
namespace {

// --- hex ---

TEST(Hex, EncodesLowerCase) {
  EXPECT_EQ(to_hex(std::string_view("\x00\x01\xab\xff", 4)), "0001abff");
  EXPECT_EQ(to_hex(std::string_view()), "");
  const std::vector<std::uint8_t> bytes{0xde, 0xad, 0xbe, 0xef};
  EXPECT_EQ(to_hex(bytes), "deadbeef");
}

TEST(Hex, DecodesEitherCaseAndRoundTrips) {
  auto lower = from_hex("deadbeef");
  ASSERT_TRUE(lower);
  EXPECT_EQ(*lower, (std::vector<std::uint8_t>{0xde, 0xad, 0xbe, 0xef}));
  auto upper = from_hex("DEADBEEF");
  ASSERT_TRUE(upper);
  EXPECT_EQ(*upper, *lower);
  EXPECT_EQ(to_hex(*from_hex("00ff10")), "00ff10");
  auto empty = from_hex("");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(Hex, RefusesOddLengthAndOtherCharacters) {
  EXPECT_FALSE(from_hex("abc"));
  EXPECT_FALSE(from_hex("zz"));
  EXPECT_FALSE(from_hex("0x12"));
  EXPECT_FALSE(from_hex("12 4"));
}

// --- SHA-256 ---

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(to_hex(sha256(std::string_view())), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(to_hex(sha256(std::string_view("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, HmacMatchesRfc4231) {
  // RFC 4231 test cases 2 (a short key) and 6 (a key longer than the block, hashed first).
  EXPECT_EQ(to_hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(to_hex(hmac_sha256(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(Sha256, ConstantTimeEqualityComparesLengthAndBytes) {
  const Digest a = sha256(std::string_view("a"));
  Digest b = a;
  EXPECT_TRUE(equal_in_constant_time(a, b));
  b[31] ^= 1;
  EXPECT_FALSE(equal_in_constant_time(a, b));
  EXPECT_FALSE(equal_in_constant_time(std::span<const std::uint8_t>(a).first(31), a));
}

TEST(Sha256, IncrementalEqualsOneShot) {
  Sha256 h;
  h.update(std::string_view("a")).update(std::string_view("bc"));
  EXPECT_EQ(h.finish(), sha256(std::string_view("abc")));
}

TEST(Sha256, FramingSeparatesSplits) {
  Sha256 a;
  a.update_framed("ab").update_framed("c");
  Sha256 b;
  b.update_framed("a").update_framed("bc");
  EXPECT_NE(a.finish(), b.finish());
}

TEST(Sha256, U64IsBigEndianFixedWidth) {
  Sha256 h;
  h.update_u64(0x0102030405060708ULL);
  const std::vector<std::uint8_t> bytes{1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(h.finish(), sha256(bytes));
}

// --- time ---

TEST(Time, ParsesMillisecondsSinceTheEpoch) {
  auto t = parse_time_ms("1764237600250");
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, 1764237600250);
}

TEST(Time, ParsesRfc3339WithFractionAndZone) {
  auto utc = parse_time_ms("2025-11-27T10:00:00.250Z");
  ASSERT_TRUE(utc);
  EXPECT_EQ(*utc, 1764237600250);
  auto plus_one = parse_time_ms("2025-11-27T11:00:00.250+01:00");
  ASSERT_TRUE(plus_one);
  EXPECT_EQ(*plus_one, *utc);
  auto minus = parse_time_ms("2025-11-27T05:30:00-04:30");
  ASSERT_TRUE(minus);
  EXPECT_EQ(*minus, 1764237600000);
  auto epoch = parse_time_ms("1970-01-01T00:00:00Z");
  ASSERT_TRUE(epoch);
  EXPECT_EQ(*epoch, 0);
}

TEST(Time, FractionKeepsMillisecondsOnly) {
  auto short_fraction = parse_time_ms("1970-01-01T00:00:01.5Z");
  ASSERT_TRUE(short_fraction);
  EXPECT_EQ(*short_fraction, 1500);
  auto long_fraction = parse_time_ms("1970-01-01T00:00:01.123999Z");
  ASSERT_TRUE(long_fraction);
  EXPECT_EQ(*long_fraction, 1123);
}

TEST(Time, ErrorsSayWhatIsWrong) {
  auto no_zone = parse_time_ms("2025-11-27T10:00:00");
  ASSERT_FALSE(no_zone);
  EXPECT_NE(no_zone.error().message.find("needs a zone"), std::string::npos);
  auto garbage = parse_time_ms("yesterday");
  ASSERT_FALSE(garbage);
  EXPECT_NE(garbage.error().message.find("RFC 3339"), std::string::npos);
  auto trailing = parse_time_ms("2025-11-27T10:00:00Zjunk");
  ASSERT_FALSE(trailing);
  EXPECT_NE(trailing.error().message.find("junk"), std::string::npos);
}

// --- JSON writer: exact bytes ---

std::string quoted(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

TEST(JsonWriter, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(quoted(""), R"("")");
  EXPECT_EQ(quoted("plain"), R"("plain")");
  EXPECT_EQ(quoted("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(quoted("\n\r\t\b\f"), R"("\n\r\t\b\f")");
  EXPECT_EQ(quoted(std::string_view("\x00\x01\x1f", 3)), R"("\u0000\u0001\u001f")");
  EXPECT_EQ(quoted("/\x7f"), "\"/\x7f\"");  // neither / nor DEL is escaped
}

TEST(JsonWriter, PassesUtf8Through) {
  EXPECT_EQ(quoted("café 你好 🙂"), "\"café 你好 🙂\"");
  EXPECT_EQ(quoted("\xff"), "\"\xff\"");  // not validated: callers hold UTF-8
}

TEST(JsonWriter, KeysAndNumbers) {
  std::string out = "{";
  json::key(out, "n");
  json::num(out, std::numeric_limits<std::uint64_t>::max());
  out += ',';
  json::key(out, "i");
  json::inum(out, std::numeric_limits<std::int64_t>::min());
  out += ',';
  json::key(out, "d");
  json::dbl(out, 0.1);
  out += ',';
  json::key(out, "s");
  json::str(out, "x");
  out += '}';
  EXPECT_EQ(out, R"({"n":18446744073709551615,"i":-9223372036854775808,"d":0.1,"s":"x"})");
}

TEST(JsonWriter, DoublesAreShortestRoundTripAndNonFiniteIsNull) {
  const auto dbl = [](double d) {
    std::string out;
    json::dbl(out, d);
    return out;
  };
  EXPECT_EQ(dbl(1.0), "1");
  EXPECT_EQ(dbl(0.7), "0.7");
  EXPECT_EQ(dbl(-2.5), "-2.5");
  EXPECT_EQ(dbl(1e100), "1e+100");
  EXPECT_EQ(dbl(std::nan("")), "null");
  EXPECT_EQ(dbl(std::numeric_limits<double>::infinity()), "null");
}

TEST(JsonWriter, CommaSeparatesAllButTheFirst) {
  std::string out = "[";
  json::Comma comma;
  EXPECT_TRUE(comma.first());
  for (int i = 0; i < 3; ++i) {
    comma(out);
    json::inum(out, i);
  }
  out += ']';
  EXPECT_EQ(out, "[0,1,2]");
  EXPECT_FALSE(comma.first());
}

std::string canonical_of(std::string_view text, bool sort_keys = true) {
  std::string out;
  auto r = json::canonical(out, boost::json::parse(text), sort_keys);
  EXPECT_TRUE(r) << r.error().message;
  return out;
}

TEST(JsonWriter, CanonicalSortsKeysByBytesAndDropsWhitespace) {
  EXPECT_EQ(canonical_of(R"( { "b" : [1, 2.5, -3, true, null], "a": {"z": "\u00e9", "Z": ""}, "_": 1e2 } )"),
            R"({"_":100,"a":{"Z":"","z":"é"},"b":[1,2.5,-3,true,null]})");
}

TEST(JsonWriter, CanonicalCanKeepTheKeyOrder) {
  EXPECT_EQ(canonical_of(R"({"type":"object","properties":{"b":{},"a":{}}})", false),
            R"({"type":"object","properties":{"b":{},"a":{}}})");
}

TEST(JsonWriter, CanonicalRefusesNonFiniteNumbers) {
  boost::json::value v = {{"x", std::numeric_limits<double>::infinity()}};
  std::string out;
  auto r = json::canonical(out, v);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "not a finite number");
}

// --- logging ---

TEST(Logging, JsonLinesEscapeMessageAndFields) {
  set_log_format(LogFormat::json);
  set_log_level(LogLevel::info);
  testing::internal::CaptureStderr();
  log_info("hello \"you\"", {{"k", "v\n"}});
  log(LogLevel::debug, "hidden");
  const std::string line = testing::internal::GetCapturedStderr();
  set_log_format(LogFormat::text);
  ASSERT_EQ(line.find('\n'), line.size() - 1) << line;  // one line: debug is below the level
  const auto v = boost::json::parse(line).as_object();
  EXPECT_EQ(v.at("level").as_string(), "INFO");
  EXPECT_EQ(v.at("msg").as_string(), "hello \"you\"");
  EXPECT_EQ(v.at("k").as_string(), "v\n");
  auto t = parse_time_ms(std::string(v.at("time").as_string()));  // RFC 3339, readable by our own parser
  EXPECT_TRUE(t) << v.at("time");
}

TEST(Logging, TextLines) {
  set_log_format(LogFormat::text);
  set_log_level(LogLevel::warn);
  testing::internal::CaptureStderr();
  log_info("not shown");
  log_warn("disk low", {{"free", "3%"}});
  const std::string line = testing::internal::GetCapturedStderr();
  set_log_level(LogLevel::info);
  EXPECT_NE(line.find("Z WARN disk low free=3%\n"), std::string::npos) << line;
  EXPECT_EQ(line.find("not shown"), std::string::npos);
}

}  // namespace
}  // namespace statefold::base

TEST(JsonRead, ParseNamesWhatFailed) {
  auto bad = statefold::base::json::parse("{\"a\":", "request body");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("request body is not valid JSON"), std::string::npos) << bad.error().message;
  ASSERT_TRUE(statefold::base::json::parse("[1]", "x"));
}

TEST(JsonRead, NullMembersReadAsAbsent) {
  namespace bj = boost::json;
  const bj::object o = bj::parse(R"({"s":"x","n":null,"o":{},"a":[],"neg":-3,"f":2.9,"big":18446744073709551615})")
                           .as_object();
  using namespace statefold::base::json;
  EXPECT_EQ(member(o, "n"), nullptr);
  EXPECT_EQ(member(o, "missing"), nullptr);
  EXPECT_NE(object_member(o, "o"), nullptr);
  EXPECT_EQ(object_member(o, "a"), nullptr);
  EXPECT_NE(array_member(o, "a"), nullptr);
  EXPECT_EQ(string_or(o, "s"), "x");
  EXPECT_EQ(string_or(o, "n", "fallback"), "fallback");
  EXPECT_EQ(string_or(o, "neg", "fallback"), "fallback");
  EXPECT_EQ(uint_or(o, "neg", 7), 0u);
  EXPECT_EQ(uint_or(o, "f"), 2u);
  EXPECT_EQ(uint_or(o, "big"), 18446744073709551615ull);
  EXPECT_EQ(uint_or(o, "s", 5), 5u);
}
