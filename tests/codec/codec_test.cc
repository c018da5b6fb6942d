// codec: decoding of both encodings, every validation rule, hostile bytes, the JSON round trip and the docs.
#include "engine/codec/codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "statefold/schema/events_generated.h"

namespace statefold::codec {
namespace {

namespace fb = flatbuffers;
namespace sch = statefold::schema;

constexpr const char* kId = "00112233445566778899aabbccddeeff";

std::span<const std::uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

base::Result<Event> decode_json(std::string_view json, std::optional<std::string_view> key = std::nullopt) {
  return decode(as_bytes(json), Encoding::json, key);
}

base::Result<Event> decode_fb(std::span<const std::uint8_t> bytes,
                              std::optional<std::string_view> key = std::nullopt) {
  return decode(bytes, Encoding::flatbuffers, key);
}

std::vector<std::uint8_t> to_vector(std::span<const std::uint8_t> s) { return {s.begin(), s.end()}; }

// One valid event of every payload type, fields in schema order (see RoundTripGivesTheSameBytes).
struct Sample {
  sch::Payload type;
  std::string json;
};

std::vector<Sample> samples() {
  return {
      {sch::Payload::SessionOpened,
       R"({"event_id":"0f8fad5b-d9cb-469f-a165-70867728950e","session_id":"chat-42","occurred_at_us":1718000000000000,)"
       R"("source":"gateway","payload_type":"SessionOpened","payload":{"model":"gpt-4o","system_prompt":"You are )"
       R"(terse.","policy":{"token_budget":128000,"output_reserve":4096,"tokenizer":"o200k_base","provider":"openai"},)"
       R"("metadata":[{"key":"tenant","value":"acme"},{"key":"empty"}]}})"},
      {sch::Payload::SessionOpened,
       R"({"event_id":"10112233445566778899aabbccddeeff","session_id":"chat-43","payload_type":"SessionOpened",)"
       R"("payload":{"model":"gpt-4o","parent_session_id":"chat-42","parent_version":7}})"},
      {sch::Payload::Message,
       R"({"event_id":"20112233445566778899AABBCCDDEEFF","session_id":"chat-42","expected_version":1,)"
       R"("occurred_at_us":1718000000000001,"source":"cli","correlation_id":"req-1","causation_id":"evt-0",)"
       R"("payload_type":"Message","payload":{"role":"user","content":[{"kind":"text","text":"Weather in Paris? )"
       R"(☀ é"},{"kind":"image_url","text":"https://example.com/a.png","media_type":"image/png"}]}})"},
      {sch::Payload::Message,
       R"({"event_id":"30112233445566778899aabbccddeeff","session_id":"chat-42","payload_type":"Message",)"
       R"("payload":{"role":"assistant","content":[],"tool_calls":[{"id":"call_1","name":"get_weather",)"
       R"("arguments":"{\"city\":\"Paris\"}"}]}})"},
      {sch::Payload::Message,
       R"({"event_id":"40112233445566778899aabbccddeeff","session_id":"chat-42","payload_type":"Message",)"
       R"("payload":{"role":"tool","content":[{"kind":"json","text":"{\"temp_c\":21}"}],"tool_call_id":"call_1",)"
       R"("name":"get_weather"}})"},
      {sch::Payload::MemorySet,
       R"({"event_id":"50112233445566778899aabbccddeeff","session_id":"chat-42","payload_type":"MemorySet",)"
       R"("payload":{"label":"user.name","value":"Ada","pinned":true}})"},
      {sch::Payload::MemoryDelete,
       R"({"event_id":"60112233445566778899aabbccddeeff","session_id":"chat-42","payload_type":"MemoryDelete",)"
       R"("payload":{"label":"user.name"}})"},
      {sch::Payload::Summary,
       R"({"event_id":"70112233445566778899aabbccddeeff","session_id":"chat-42","payload_type":"Summary",)"
       R"("payload":{"text":"Asked about the weather.","through_version":12}})"},
      {sch::Payload::InferenceReceipt,
       R"({"event_id":"80112233445566778899aabbccddeeff","session_id":"chat-42","payload_type":"InferenceReceipt",)"
       R"("payload":{"request_hash":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",)"
       R"("state_version":3,"provider":"openai","endpoint":"chat.completions","model":"gpt-4o","usage":)"
       R"({"input_tokens":1200,"output_tokens":80,"cached_tokens":1024},"latency_ms":640,"status":200}})"},
      {sch::Payload::SessionClosed,
       R"({"event_id":"90112233445566778899aabbccddeeff","session_id":"chat-42","payload_type":"SessionClosed",)"
       R"("payload":{"reason":"done"}})"},
      {sch::Payload::ErasureRequest,
       R"({"event_id":"a0112233445566778899aabbccddeeff","session_id":"chat-42","payload_type":"ErasureRequest",)"
       R"("payload":{"reason":"GDPR art. 17","requested_by":"dpo@example.com"}})"},
      {sch::Payload::Custom,
       R"({"event_id":"b0112233445566778899aabbccddeeff","session_id":"chat-42","payload_type":"Custom",)"
       R"("payload":{"type_name":"acme.rating","data":[5,0,255]}})"},
      {sch::Payload::SessionAmended,
       R"({"event_id":"b1112233445566778899aabbccddeeff","session_id":"chat-42","payload_type":"SessionAmended",)"
       R"("payload":{"metadata":[{"key":"topic","value":"billing"}],"withdraw_versions":[3,4],)"
       R"("reason":"conversation item deleted"}})"},
      // Escapes, every control character and characters outside the BMP survive the round trip.
      {sch::Payload::Message,
       R"({"event_id":"c0112233445566778899aabbccddeeff","session_id":"chat-42😀","expected_version":18446744073709551615,)"
       R"("occurred_at_us":-5,"payload_type":"Message","payload":{"role":"user","content":[{"text":"a\"b\\c\n\t)"
       R"(\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\u000b\f\r\u000e\u000f\u0010\u0011\u0012\u0013\u0014)"
       R"(\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f\u007f\u0080\u2028)"
       R"(\u00e9\ud83d\ude00/\/"}],"name":""}})"},
  };
}

// A JSON event around `payload`: `{"event_id":...,"session_id":"s-1","payload_type":<type>,"payload":<payload>}`.
std::string event_json(std::string_view type, std::string_view payload, std::string_view session = "s-1") {
  return std::string(R"({"event_id":")") + kId + R"(","session_id":")" + std::string(session) +
         R"(","payload_type":")" + std::string(type) + R"(","payload":)" + std::string(payload) + "}";
}

// Binary events through the generated builders, as a producer in another language would make them.
using PayloadFn = std::function<fb::Offset<void>(fb::FlatBufferBuilder&)>;

std::vector<std::uint8_t> build_event(std::uint8_t type, const PayloadFn& payload, const char* session = "s-1",
                                      const char* event_id = kId,
                                      fb::Optional<std::uint64_t> expected = fb::nullopt) {
  fb::FlatBufferBuilder b;
  const auto body = payload(b);
  const auto ev = sch::CreateEventDirect(b, event_id, session, expected, 1718000000000000, "test", nullptr, nullptr,
                                         static_cast<sch::Payload>(type), body);
  sch::FinishEventBuffer(b, ev);
  return {b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize()};
}

std::vector<std::uint8_t> build_event(sch::Payload type, const PayloadFn& payload, const char* session = "s-1") {
  return build_event(static_cast<std::uint8_t>(type), payload, session);
}

PayloadFn message(sch::Role role, const char* text, const char* tool_call_id = nullptr) {
  return [=](fb::FlatBufferBuilder& b) {
    std::vector<fb::Offset<sch::ContentPart>> parts{sch::CreateContentPartDirect(b, sch::ContentKind::text, text)};
    return sch::CreateMessageDirect(b, role, &parts, nullptr, tool_call_id).Union();
  };
}

std::string error_of(const base::Result<Event>& r) { return r ? std::string("<decoded>") : r.error().message; }

#define EXPECT_ERROR_HAS(result, needle)                                                      \
  do {                                                                                        \
    const auto& r_ = (result);                                                                \
    ASSERT_FALSE(r_.ok()) << "expected an error containing: " << (needle);                    \
    EXPECT_NE(r_.error().message.find(needle), std::string::npos) << r_.error().message;      \
  } while (false)

// ---------------------------------------------------------------------------------------------------------------
// Valid events

TEST(CodecDecode, EveryPayloadTypeFromJson) {
  std::set<sch::Payload> seen;
  for (const auto& s : samples()) {
    SCOPED_TRACE(s.json);
    auto ev = decode_json(s.json);
    ASSERT_TRUE(ev.ok()) << ev.error().message;
    EXPECT_EQ(ev->payload_type(), static_cast<std::uint8_t>(s.type));
    EXPECT_TRUE(ev->payload_known());
    EXPECT_EQ(ev->root().payload_type(), s.type);
    EXPECT_EQ(ev->session_id().substr(0, 5), "chat-");
    // The canonical bytes are a FlatBuffer with the identifier, and decode as such.
    ASSERT_GE(ev->canonical().size(), 8u);
    EXPECT_EQ(std::memcmp(ev->canonical().data() + 4, "SFE1", 4), 0);
    auto again = decode_fb(ev->canonical());
    ASSERT_TRUE(again.ok()) << again.error().message;
    EXPECT_EQ(to_vector(again->canonical()), to_vector(ev->canonical()));
    EXPECT_EQ(again->id(), ev->id());
    seen.insert(s.type);
  }
  for (std::uint8_t t = 1; t <= static_cast<std::uint8_t>(sch::Payload::MAX); ++t) {
    EXPECT_TRUE(seen.count(static_cast<sch::Payload>(t))) << payload_type_name(t);
  }
}

TEST(CodecDecode, EnvelopeAccessors) {
  auto ev = decode_json(samples()[2].json, "chat-42");
  ASSERT_TRUE(ev.ok()) << ev.error().message;
  EXPECT_EQ(event_id_to_string(ev->id()), "20112233445566778899aabbccddeeff");
  EXPECT_EQ(ev->session_id(), "chat-42");
  EXPECT_EQ(ev->expected_version(), std::optional<std::uint64_t>(1));
  EXPECT_EQ(ev->root().occurred_at_us(), 1718000000000001);
  const auto* msg = ev->root().payload_as_Message();
  ASSERT_NE(msg, nullptr);
  EXPECT_EQ(msg->role(), sch::Role::user);
  ASSERT_NE(msg->content(), nullptr);
  ASSERT_EQ(msg->content()->size(), 2u);
  EXPECT_EQ(msg->content()->Get(1)->kind(), sch::ContentKind::image_url);

  auto no_version = decode_json(samples()[3].json);
  ASSERT_TRUE(no_version.ok());
  EXPECT_EQ(no_version->expected_version(), std::nullopt);

  // expected_version 0 is a value (the session must not exist yet), not absence.
  auto zero = decode_json(R"({"event_id":")" + std::string(kId) +
                          R"(","session_id":"s-1","expected_version":0,"payload_type":"SessionClosed","payload":{}})");
  ASSERT_TRUE(zero.ok()) << zero.error().message;
  EXPECT_EQ(zero->expected_version(), std::optional<std::uint64_t>(0));
  auto null_version = decode_json(R"({"event_id":")" + std::string(kId) +
                                  R"(","session_id":"s-1","expected_version":null,"payload_type":"SessionClosed",)"
                                  R"("payload":{}})");
  ASSERT_TRUE(null_version.ok()) << null_version.error().message;
  EXPECT_EQ(null_version->expected_version(), std::nullopt);
}

TEST(CodecDecode, EveryPayloadTypeFromFlatBuffers) {
  const std::vector<std::pair<sch::Payload, PayloadFn>> builders = {
      {sch::Payload::SessionOpened,
       [](fb::FlatBufferBuilder& b) {
         auto policy = sch::CreateContextPolicyDirect(b, 8000, 500, "cl100k_base", "echo");
         std::vector<fb::Offset<sch::KeyValue>> md{sch::CreateKeyValueDirect(b, "k", "v")};
         return sch::CreateSessionOpenedDirect(b, "echo-1", "Be brief.", policy, &md, "parent", 3).Union();
       }},
      {sch::Payload::Message, message(sch::Role::user, "hello")},
      {sch::Payload::Message,
       [](fb::FlatBufferBuilder& b) {
         std::vector<fb::Offset<sch::ToolCall>> calls{sch::CreateToolCallDirect(b, "c1", "search", "{}")};
         return sch::CreateMessageDirect(b, sch::Role::assistant, nullptr, &calls).Union();
       }},
      {sch::Payload::Message, message(sch::Role::tool, "result", "c1")},
      {sch::Payload::MemorySet,
       [](fb::FlatBufferBuilder& b) { return sch::CreateMemorySetDirect(b, "goal", "ship", true).Union(); }},
      {sch::Payload::MemoryDelete,
       [](fb::FlatBufferBuilder& b) { return sch::CreateMemoryDeleteDirect(b, "goal").Union(); }},
      {sch::Payload::Summary,
       [](fb::FlatBufferBuilder& b) { return sch::CreateSummaryDirect(b, "so far", 4).Union(); }},
      {sch::Payload::InferenceReceipt,
       [](fb::FlatBufferBuilder& b) {
         auto usage = sch::CreateUsage(b, 10, 2, 8);
         return sch::CreateInferenceReceiptDirect(b, "ab", 2, "echo", "chat", "echo-1", usage, 3, 200).Union();
       }},
      {sch::Payload::SessionClosed,
       [](fb::FlatBufferBuilder& b) { return sch::CreateSessionClosedDirect(b, "bye").Union(); }},
      {sch::Payload::ErasureRequest,
       [](fb::FlatBufferBuilder& b) { return sch::CreateErasureRequestDirect(b, "asked", "ops").Union(); }},
      {sch::Payload::Custom,
       [](fb::FlatBufferBuilder& b) {
         std::vector<std::uint8_t> data{1, 2, 3};
         return sch::CreateCustomDirect(b, "acme.x", &data).Union();
       }},
      {sch::Payload::SessionAmended,
       [](fb::FlatBufferBuilder& b) {
         std::vector<std::uint64_t> versions{2};
         return sch::CreateSessionAmendedDirect(b, nullptr, &versions, "response deleted").Union();
       }},
  };
  std::set<sch::Payload> seen;
  for (const auto& [type, fn] : builders) {
    SCOPED_TRACE(payload_type_name(static_cast<std::uint8_t>(type)));
    const auto bytes = build_event(type, fn);
    auto ev = decode_fb(bytes, "s-1");
    ASSERT_TRUE(ev.ok()) << ev.error().message;
    EXPECT_EQ(ev->payload_type(), static_cast<std::uint8_t>(type));
    EXPECT_TRUE(ev->payload_known());
    EXPECT_EQ(to_vector(ev->canonical()), bytes) << "FlatBuffers records are kept byte for byte";
    EXPECT_EQ(event_id_to_string(ev->id()), kId);
    // Its JSON form converts back to an event with the same JSON form.
    const std::string json = to_json(ev.value());
    auto back = json_to_flatbuffers(json);
    ASSERT_TRUE(back.ok()) << back.error().message << "\n" << json;
    EXPECT_EQ(flatbuffers_to_json(back.value()), json);
    seen.insert(type);
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(sch::Payload::MAX));
}

// ---------------------------------------------------------------------------------------------------------------
// JSON form: round trip and determinism

TEST(CodecJson, OutputIsOneDeterministicLine) {
  auto ev = decode_json(samples()[2].json);
  ASSERT_TRUE(ev.ok());
  const std::string json = to_json(ev.value());
  EXPECT_EQ(json.find('\n'), std::string::npos);
  EXPECT_EQ(json, to_json(ev.value()));
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
  // Scalars always show, with their defaults; an absent optional shows as null; strings show as UTF-8.
  EXPECT_NE(json.find(R"("expected_version": 1)"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("role": "user")"), std::string::npos) << json;
  EXPECT_NE(json.find("☀ é"), std::string::npos) << json;
  // Valid JSON: no raw control characters, whatever the strings hold.
  const std::string controls = to_json(decode_json(samples().back().json).value());
  for (char c : controls) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << controls;
  EXPECT_NE(controls.find(R"(\n\t\u0001\u0002)"), std::string::npos) << controls;
  EXPECT_NE(controls.find(R"(\u0007\b\u000b\f\r\u000e)"), std::string::npos) << controls;
  auto closed = decode_json(samples()[9].json);
  ASSERT_TRUE(closed.ok());
  const std::string closed_json = to_json(closed.value());
  EXPECT_EQ(closed_json,
            R"({"event_id": "90112233445566778899aabbccddeeff","session_id": "chat-42","expected_version": null,)"
            R"("occurred_at_us": 0,"payload_type": "SessionClosed","payload": {"reason": "done"}})");
}

TEST(CodecJson, RoundTripGivesTheSameBytes) {
  for (const auto& s : samples()) {
    SCOPED_TRACE(s.json);
    auto ev = decode_json(s.json);
    ASSERT_TRUE(ev.ok()) << ev.error().message;
    const std::string json = to_json(ev.value());
    auto bytes = json_to_flatbuffers(json);
    ASSERT_TRUE(bytes.ok()) << bytes.error().message << "\n" << json;
    // The samples list fields in schema order, as to_json does: the canonical bytes come back exactly.
    EXPECT_EQ(bytes.value(), to_vector(ev->canonical())) << json;
    EXPECT_EQ(flatbuffers_to_json(bytes.value()), json);
  }
}

TEST(CodecJson, CanonicalBytesAreThoseOfTheJsonAsSent) {
  const std::string a = samples()[5].json;
  auto first = json_to_flatbuffers(a);
  auto second = json_to_flatbuffers(a);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first.value(), second.value()) << "same JSON, same bytes";

  // Whitespace and explicit default values do not change the bytes.
  const std::string spaced =
      "{\n  \"event_id\": \"50112233445566778899aabbccddeeff\",\n  \"session_id\": \"chat-42\",\n"
      "  \"expected_version\": null, \"occurred_at_us\": 0,\n  \"payload_type\": \"MemorySet\",\n"
      "  \"payload\": {\"label\": \"user.name\", \"value\": \"Ada\", \"pinned\": true}\n}\n";
  auto spaced_bytes = json_to_flatbuffers(spaced);
  ASSERT_TRUE(spaced_bytes.ok()) << spaced_bytes.error().message;
  EXPECT_EQ(spaced_bytes.value(), first.value());

  // Field order does change them: FlatBuffers lays objects out in the order the parser meets them. Same event,
  // same JSON form, different canonical bytes (docs/events.md says so).
  const std::string reordered =
      R"({"session_id":"chat-42","payload":{"pinned":true,"value":"Ada","label":"user.name"},)"
      R"("payload_type":"MemorySet","event_id":"50112233445566778899aabbccddeeff"})";
  auto reordered_bytes = json_to_flatbuffers(reordered);
  ASSERT_TRUE(reordered_bytes.ok()) << reordered_bytes.error().message;
  EXPECT_NE(reordered_bytes.value(), first.value());
  EXPECT_EQ(flatbuffers_to_json(reordered_bytes.value()), flatbuffers_to_json(first.value()));
  // ... and to_json puts any event into schema order, which is a fixpoint.
  auto normal = json_to_flatbuffers(flatbuffers_to_json(reordered_bytes.value()));
  ASSERT_TRUE(normal.ok());
  EXPECT_EQ(normal.value(), first.value());

  // Only payload_type's position relative to payload does not matter.
  const std::string type_after =
      R"({"event_id":"50112233445566778899aabbccddeeff","session_id":"chat-42","payload":{"label":"user.name",)"
      R"("value":"Ada","pinned":true},"payload_type":"MemorySet"})";
  auto type_after_bytes = json_to_flatbuffers(type_after);
  ASSERT_TRUE(type_after_bytes.ok()) << type_after_bytes.error().message;
  EXPECT_EQ(type_after_bytes.value(), first.value());
}

TEST(CodecJson, ParserIsFreshAfterAnError) {
  const std::string good = samples()[3].json;
  auto before = json_to_flatbuffers(good);
  ASSERT_TRUE(before.ok());
  for (int i = 0; i < 50; ++i) {
    auto bad = decode_json(event_json("Message", R"({"role":"user","content":[{"text":"a","bogus":1}]})"));
    ASSERT_FALSE(bad.ok());
    auto bad2 = decode_json(R"({"event_id":"x","session_id":)");
    ASSERT_FALSE(bad2.ok());
  }
  auto after = json_to_flatbuffers(good);
  ASSERT_TRUE(after.ok()) << after.error().message;
  EXPECT_EQ(after.value(), before.value());
}

// Issue 9, defect 8: FlatBuffers' JSON parser took "expected_version":"3" as 3. Numbers and booleans written as
// strings are refused, naming the field; enum names (role "user") stay strings, as the form defines them. A NUL in
// text is text (CodecBuild.Unicode round-trips it).
TEST(CodecJson, NumbersAsStringsAreRefused) {
  const std::string message = R"({"role":"user","content":[{"text":"hi"}]})";
  std::string quoted_version = event_json("Message", message);
  quoted_version.insert(1, R"("expected_version":"3",)");
  auto r = json_to_flatbuffers(quoted_version);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "expected_version: must be a number, not a string");

  std::string quoted_number = event_json("Message", message);
  quoted_number.insert(1, R"("occurred_at_us":"1767225600000000",)");
  r = json_to_flatbuffers(quoted_number);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "occurred_at_us: must be a number, not a string");

  r = json_to_flatbuffers(event_json("MemorySet", R"({"label":"a","value":"b","pinned":"true"})"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "payload.pinned: must be true or false, not a string");

  r = json_to_flatbuffers(event_json("Message", R"({"role":"user","content":[{"text":"a\u0000b"}]})"));
  EXPECT_TRUE(r.ok()) << r.error().message;

  auto fine = json_to_flatbuffers(event_json("Message", message));
  EXPECT_TRUE(fine.ok()) << fine.error().message;
}

TEST(CodecJson, ThreadsDecodeIndependently) {
  const auto all = samples();
  std::vector<std::vector<std::uint8_t>> expected;
  for (const auto& s : all) {
    auto b = json_to_flatbuffers(s.json);
    ASSERT_TRUE(b.ok());
    expected.push_back(b.value());
  }
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 200; ++round) {
        for (std::size_t i = 0; i < all.size(); ++i) {
          auto ev = decode_json(all[i].json);
          if (!ev.ok() || to_vector(ev->canonical()) != expected[i]) ++failures[t];
          if (round % 10 == 0 && decode_json("{\"bogus\":1}").ok()) ++failures[t];
          if (ev.ok() && to_json(ev.value()).empty()) ++failures[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int f : failures) EXPECT_EQ(f, 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Validation rules: every failure names the field.

TEST(CodecRules, EventId) {
  EXPECT_ERROR_HAS(decode_json(R"({"event_id":"xyz","session_id":"s","payload_type":"SessionClosed","payload":{}})"),
                   R"(event_id: expected 32 hex digits or a UUID, got "xyz")");
  for (const char* bad : {"0011223344556677889aabbccddeeff", "00112233445566778899aabbccddeefg",
                          "0f8fad5bd-9cb-469f-a165-70867728950e", "0f8fad5b-d9cb-469f-a165-70867728950", ""}) {
    SCOPED_TRACE(bad);
    EXPECT_ERROR_HAS(decode_json(std::string(R"({"event_id":")") + bad +
                                 R"(","session_id":"s","payload_type":"SessionClosed","payload":{}})"),
                     "event_id: expected 32 hex digits or a UUID");
  }
  EXPECT_ERROR_HAS(decode_json(R"({"session_id":"s","payload_type":"SessionClosed","payload":{}})"),
                   "event_id: required field is missing");
}

TEST(CodecRules, SessionIdAndKey) {
  EXPECT_ERROR_HAS(decode_json(event_json("SessionClosed", "{}", "")), "session_id: must be 1..256 bytes of UTF-8");
  EXPECT_ERROR_HAS(decode_json(event_json("SessionClosed", "{}", std::string(257, 'a'))),
                   "session_id: must be 1..256 bytes of UTF-8, got 257 bytes");
  EXPECT_TRUE(decode_json(event_json("SessionClosed", "{}", std::string(256, 'a'))).ok());
  // 256 bytes of multi-byte UTF-8 is fine; the limit is in bytes.
  std::string snowmen;
  for (int i = 0; i < 85; ++i) snowmen += "☃";  // 255 bytes
  EXPECT_TRUE(decode_json(event_json("SessionClosed", "{}", snowmen)).ok());
  EXPECT_ERROR_HAS(decode_json(event_json("SessionClosed", "{}", snowmen + "é")),
                   "session_id: must be 1..256 bytes of UTF-8, got 257 bytes");

  // The binary path checks UTF-8 itself.
  const auto closed = [](fb::FlatBufferBuilder& b) { return sch::CreateSessionClosedDirect(b, "x").Union(); };
  EXPECT_ERROR_HAS(decode_fb(build_event(sch::Payload::SessionClosed, closed, "bad\xff")),
                   "session_id: must be 1..256 bytes of UTF-8");
  EXPECT_ERROR_HAS(decode_fb(build_event(sch::Payload::SessionClosed, closed, "\xed\xa0\x80")),  // a surrogate
                   "session_id: must be 1..256 bytes of UTF-8");
  EXPECT_ERROR_HAS(decode_fb(build_event(sch::Payload::SessionClosed, closed, "\xc0\xaf")),  // overlong
                   "session_id: must be 1..256 bytes of UTF-8");
  EXPECT_TRUE(decode_fb(build_event(sch::Payload::SessionClosed, closed, "s-\xf0\x9f\x98\x80")).ok());
  // NUL separates the session id from the rest of a store key.
  EXPECT_ERROR_HAS(decode_json(event_json("SessionClosed", "{}", "a\\u0000b")), "session_id: must not contain NUL");
  // The JSON parser refuses bytes that are not UTF-8, raw or escaped.
  EXPECT_ERROR_HAS(decode_json(event_json("SessionClosed", "{}", "bad\xff")), "session_id: illegal UTF-8");
  EXPECT_ERROR_HAS(decode_json(event_json("SessionClosed", "{}", "bad\\xff")), "session_id: illegal UTF-8");

  EXPECT_ERROR_HAS(decode_json(event_json("SessionClosed", "{}", "s-1"), "s-2"), "key: does not match session_id");
  EXPECT_ERROR_HAS(decode_fb(build_event(sch::Payload::SessionClosed, closed, "s-1"), "S-1"),
                   "key: does not match session_id");
  EXPECT_TRUE(decode_json(event_json("SessionClosed", "{}", "s-1"), "s-1").ok());
  EXPECT_TRUE(decode_json(event_json("SessionClosed", "{}", "s-1"), std::nullopt).ok());
}

TEST(CodecRules, PayloadPresent) {
  EXPECT_ERROR_HAS(decode_json(R"({"event_id":")" + std::string(kId) + R"(","session_id":"s","payload_type":"NONE"})"),
                   "payload: required field is missing");
  EXPECT_ERROR_HAS(decode_json(R"({"event_id":")" + std::string(kId) + R"(","session_id":"s"})"),
                   "payload: required field is missing");
  // Binary: a payload table with type NONE, and no payload at all.
  const auto closed = [](fb::FlatBufferBuilder& b) { return sch::CreateSessionClosedDirect(b, "x").Union(); };
  EXPECT_ERROR_HAS(decode_fb(build_event(sch::Payload::NONE, closed)), "payload: missing (payload_type is NONE)");
  fb::FlatBufferBuilder b;
  auto id = b.CreateString(kId);
  auto sid = b.CreateString("s-1");
  sch::EventBuilder eb(b);
  eb.add_event_id(id);
  eb.add_session_id(sid);
  auto root = fb::Offset<sch::Event>(eb.fbb_.EndTable(eb.start_));  // skips the builder's required-field assert
  sch::FinishEventBuffer(b, root);
  EXPECT_ERROR_HAS(decode_fb(std::span<const std::uint8_t>(b.GetBufferPointer(), b.GetSize())),
                   "payload: missing (required)");
}

TEST(CodecRules, Message) {
  EXPECT_ERROR_HAS(decode_json(event_json("Message", R"({"role":7})")), "payload.role: unknown role 7");
  EXPECT_ERROR_HAS(decode_json(event_json("Message", R"({"role":-1})")), "payload.role: unknown role -1");
  EXPECT_ERROR_HAS(decode_json(event_json("Message", R"({"role":"wizard"})")), "payload.role: unknown enum value");
  EXPECT_ERROR_HAS(decode_json(event_json("Message", R"({"role":"tool","content":[{"text":"21C"}]})")),
                   "payload.tool_call_id: required when role is tool");
  EXPECT_ERROR_HAS(decode_json(event_json("Message", R"({"role":"tool","tool_call_id":""})")),
                   "payload.tool_call_id: required when role is tool");
  EXPECT_ERROR_HAS(decode_fb(build_event(sch::Payload::Message, message(sch::Role::tool, "21C"))),
                   "payload.tool_call_id: required when role is tool");
  EXPECT_ERROR_HAS(decode_json(event_json("Message", R"({"role":"user","tool_call_id":"c1"})")),
                   "payload.tool_call_id: only allowed when role is tool");
  EXPECT_ERROR_HAS(decode_json(event_json("Message", R"({"role":"user","tool_calls":[{"id":"c","name":"n"}]})")),
                   "payload.tool_calls: only allowed when role is assistant");
  EXPECT_TRUE(decode_json(event_json("Message", R"({"role":"user","tool_calls":[]})")).ok());
  EXPECT_ERROR_HAS(
      decode_json(event_json("Message",
                             R"({"role":"assistant","tool_calls":[{"id":"c","name":"n"},{"id":"","name":"n"}]})")),
      "payload.tool_calls[1].id: must not be empty");
  EXPECT_ERROR_HAS(decode_json(event_json("Message", R"({"role":"assistant","tool_calls":[{"id":"c","name":""}]})")),
                   "payload.tool_calls[0].name: must not be empty");
  EXPECT_ERROR_HAS(decode_json(event_json("Message", R"({"role":"assistant","tool_calls":[{"name":"n"}]})")),
                   "payload.tool_calls[0].id: required field is missing");
  // Every string must be UTF-8 on the binary path too, named by its path.
  EXPECT_ERROR_HAS(decode_fb(build_event(sch::Payload::Message, message(sch::Role::user, "ok\xff"))),
                   "payload.content[0].text: not valid UTF-8");
  // An unknown content kind is carried, not refused: ContentKind may gain members.
  auto kind9 = decode_json(event_json("Message", R"({"role":"user","content":[{"kind":9,"text":"x"}]})"));
  ASSERT_TRUE(kind9.ok()) << kind9.error().message;
  EXPECT_NE(to_json(kind9.value()).find(R"("kind": 9)"), std::string::npos);
}

TEST(CodecRules, MemoryCustomSummary) {
  EXPECT_ERROR_HAS(decode_json(event_json("MemorySet", R"({"label":""})")), "payload.label: must not be empty");
  EXPECT_ERROR_HAS(decode_json(event_json("MemorySet", R"({"pinned":true})")),
                   "payload.label: required field is missing");
  EXPECT_ERROR_HAS(decode_json(event_json("MemoryDelete", R"({"label":""})")), "payload.label: must not be empty");
  EXPECT_ERROR_HAS(decode_json(event_json("Custom", R"({"type_name":"","data":[1]})")),
                   "payload.type_name: must not be empty");
  EXPECT_ERROR_HAS(decode_json(event_json("Custom", R"({"data":[1]})")),
                   "payload.type_name: required field is missing");
  EXPECT_ERROR_HAS(decode_json(event_json("Summary", R"({"text":"s","through_version":0})")),
                   "payload.through_version: must be >= 1");
  EXPECT_ERROR_HAS(decode_json(event_json("Summary", R"({"text":"s"})")), "payload.through_version: must be >= 1");
  EXPECT_TRUE(decode_json(event_json("Summary", R"({"text":"s","through_version":1})")).ok());
}

TEST(CodecRules, SessionOpened) {
  EXPECT_ERROR_HAS(decode_json(event_json("SessionOpened", R"({"model":"m","parent_version":3})")),
                   "payload.parent_version: only allowed with parent_session_id");
  EXPECT_ERROR_HAS(decode_json(event_json("SessionOpened", R"({"parent_session_id":"","parent_version":3})")),
                   "payload.parent_session_id: must be 1..256 bytes of UTF-8");
  EXPECT_TRUE(decode_json(event_json("SessionOpened", R"({"parent_session_id":"p","parent_version":3})")).ok());
  EXPECT_TRUE(decode_json(event_json("SessionOpened", R"({"parent_session_id":"p"})")).ok());
  EXPECT_ERROR_HAS(decode_json(event_json("SessionOpened", R"({"metadata":[{"key":"a"},{"value":"b"}]})")),
                   "payload.metadata[1].key: required field is missing");
  const auto bad_meta = [](fb::FlatBufferBuilder& b) {
    std::vector<fb::Offset<sch::KeyValue>> md{sch::CreateKeyValueDirect(b, "k", "v"),
                                              sch::CreateKeyValueDirect(b, "k2", "\x80")};
    return sch::CreateSessionOpenedDirect(b, "m", nullptr, 0, &md).Union();
  };
  EXPECT_ERROR_HAS(decode_fb(build_event(sch::Payload::SessionOpened, bad_meta)),
                   "payload.metadata[1].value: not valid UTF-8");
}

TEST(CodecRules, JsonParseErrorsNameTheFieldAndPosition) {
  // Unknown fields, at any depth.
  EXPECT_ERROR_HAS(decode_json(R"({"event_id":")" + std::string(kId) + R"(","bogus":1,"session_id":"s"})"),
                   "bogus: unknown field (at 1:");
  EXPECT_ERROR_HAS(decode_json(event_json("Message", R"({"role":"user","bogus":{"a":[1]}})")),
                   "payload.bogus: unknown field");
  EXPECT_ERROR_HAS(decode_json(event_json("Message", R"({"content":[{"text":"a"},{"text":"b","Text":"c"}]})")),
                   "payload.content[1].Text: unknown field");
  EXPECT_ERROR_HAS(decode_json(event_json("SessionOpened", R"({"policy":{"token_budget":1,"budget":2}})")),
                   "payload.policy.budget: unknown field");
  EXPECT_ERROR_HAS(decode_json(R"({"event_id":")" + std::string(kId) + R"(","session_id":"a","session_id":"b"})"),
                   "session_id: set more than once");
  EXPECT_ERROR_HAS(decode_json(event_json("Nope", "{}")), "payload_type: unknown enum value: Nope");
  // The parser converts a table's numbers when the table ends: the table is named, and the number.
  EXPECT_ERROR_HAS(decode_json(event_json("Custom", R"({"type_name":"t","data":[1,256]})")),
                   R"(payload: invalid number: "256")");
  EXPECT_ERROR_HAS(decode_json(event_json("Summary", R"({"through_version":"many"})")),
                   "payload.through_version:");
  // Required fields: the table that lacks one is named, also when its parent closes right after it.
  EXPECT_ERROR_HAS(decode_json(event_json("MemoryDelete", "{}")), "payload.label: required field is missing");
  EXPECT_ERROR_HAS(decode_json(event_json("MemoryDelete", "{}") + "\n"), "payload.label: required field is missing");
  EXPECT_ERROR_HAS(decode_json(event_json("MemoryDelete", "{}").substr(0, 108)),  // cut after the payload's '}'
                   "payload.label: required field is missing");
  EXPECT_ERROR_HAS(decode_json(event_json("Message", R"({"role":"assistant","tool_calls":[{"id":"c"}, {"id":"d"}]})")),
                   "payload.tool_calls[0].name: required field is missing");
  EXPECT_ERROR_HAS(decode_json(R"({"event_id":")" + std::string(kId) + R"(","payload_type":"SessionClosed",)"
                               R"("payload":{}})"),
                   "session_id: required field is missing (at 1:");
  // Syntax: the line and column of a multi-line record.
  const auto multi = decode_json("{\n  \"event_id\": \"" + std::string(kId) +
                                 "\",\n  \"session_id\": \"s\",\n  \"payload_type\": \"SessionClosed\"\n"
                                 "  \"payload\": {}\n}");
  EXPECT_ERROR_HAS(multi, "(at 5:");
  EXPECT_ERROR_HAS(decode_json(event_json("SessionClosed", R"({"reason":"x",})")), "(at 1:");  // trailing comma
  EXPECT_ERROR_HAS(decode_json(R"({event_id:"x"})"), "(at 1:");  // unquoted name
  EXPECT_ERROR_HAS(decode_json(event_json("SessionClosed", "{}") + " {}"), "json: ");
  EXPECT_ERROR_HAS(decode_json("[1,2]"), "json: ");
  EXPECT_ERROR_HAS(decode_json(""), "json: empty record");
  EXPECT_ERROR_HAS(decode_json("  \n"), "json: empty record");
  EXPECT_ERROR_HAS(decode_json(std::string("{\"event_id\"\0:1}", 15)), "json: NUL byte at offset 11");
  EXPECT_ERROR_HAS(decode_json(event_json("SessionClosed", R"({"reason":"\ud800"})")),
                   "payload.reason: illegal Unicode sequence");
  // A payload type number this build does not know cannot be written as JSON.
  EXPECT_ERROR_HAS(decode_json(R"({"event_id":")" + std::string(kId) +
                               R"(","session_id":"s","payload_type":12,"payload":{}})"),
                   "payload");
}

// ---------------------------------------------------------------------------------------------------------------
// Hostile bytes

TEST(CodecHostile, GarbageIsRejected) {
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) {
    std::vector<std::uint8_t> bytes(rng() % 200);
    for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
    // Half of them wear the right identifier, so they get as far as the Verifier.
    if (i % 2 == 0 && bytes.size() >= 8) std::memcpy(bytes.data() + 4, "SFE1", 4);
    EXPECT_FALSE(decode_fb(bytes).ok());
    EXPECT_FALSE(decode(bytes, Encoding::json).ok());
  }
  EXPECT_ERROR_HAS(decode_fb({}), "flatbuffers: record too short (0 bytes)");
  EXPECT_ERROR_HAS(decode_fb(as_bytes("SFE1")), "flatbuffers: record too short");
  EXPECT_ERROR_HAS(decode_fb(as_bytes(samples()[0].json)), "flatbuffers: file identifier is ");
}

TEST(CodecHostile, MutatedEventsNeverCrash) {
  std::mt19937 rng(11);
  for (const auto& s : samples()) {
    auto good = json_to_flatbuffers(s.json);
    ASSERT_TRUE(good.ok());
    for (int i = 0; i < 2000; ++i) {
      auto bytes = good.value();
      for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) {
        bytes[rng() % bytes.size()] = static_cast<std::uint8_t>(rng());
      }
      auto ev = decode_fb(bytes);
      if (ev.ok()) (void)to_json(ev.value());  // whatever verifies also renders
    }
  }
}

TEST(CodecHostile, TruncatedBuffersAreRejected) {
  for (const auto& s : samples()) {
    SCOPED_TRACE(s.json);
    auto good = json_to_flatbuffers(s.json);
    ASSERT_TRUE(good.ok());
    const auto& full = good.value();
    int rejected = 0;
    for (std::size_t len = 0; len < full.size(); ++len) {
      std::vector<std::uint8_t> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
      auto ev = decode_fb(cut);
      if (!ev.ok()) {
        ++rejected;
        continue;
      }
      // Only a cut through the builder's trailing zero padding (after the last string's terminator) leaves the
      // event whole: then it must be the same event.
      EXPECT_GE(len + 4, full.size()) << "cut at " << len << " of " << full.size() << " verified";
      for (std::size_t i = len; i < full.size(); ++i) EXPECT_EQ(full[i], 0) << "cut at " << len;
      EXPECT_EQ(to_json(ev.value()), flatbuffers_to_json(full));
    }
    EXPECT_GE(rejected + 4, static_cast<int>(full.size()));
  }
}

TEST(CodecHostile, VerifierFailuresNameTheField) {
  // Required envelope strings missing from a binary record (the JSON parser would have refused it first).
  fb::FlatBufferBuilder b;
  auto sid = b.CreateString("s-1");
  auto payload = sch::CreateSessionClosedDirect(b, "x").Union();
  const auto start = b.StartTable();
  b.AddOffset(sch::Event::VT_SESSION_ID, sid);
  b.AddElement<std::uint8_t>(sch::Event::VT_PAYLOAD_TYPE, static_cast<std::uint8_t>(sch::Payload::SessionClosed), 0);
  b.AddOffset(sch::Event::VT_PAYLOAD, payload);
  sch::FinishEventBuffer(b, fb::Offset<sch::Event>(b.EndTable(start)));
  EXPECT_ERROR_HAS(decode_fb(std::span<const std::uint8_t>(b.GetBufferPointer(), b.GetSize())),
                   "event_id: missing (required)");

  // A cut through the last object built (here the event_id string) is caught there.
  auto good = json_to_flatbuffers(samples()[9].json);
  ASSERT_TRUE(good.ok());
  std::vector<std::uint8_t> cut(good.value().begin(), good.value().end() - 10);
  EXPECT_ERROR_HAS(decode_fb(cut), "event_id: string out of bounds or not terminated");
  cut.resize(10);
  EXPECT_ERROR_HAS(decode_fb(cut), "flatbuffers: root offset out of bounds");
}

TEST(CodecHostile, WrongIdentifier) {
  auto good = json_to_flatbuffers(samples()[1].json);
  ASSERT_TRUE(good.ok());
  auto bytes = good.value();
  std::memcpy(bytes.data() + 4, "SFE2", 4);
  EXPECT_ERROR_HAS(decode_fb(bytes), R"(flatbuffers: file identifier is "SFE2", expected "SFE1")");
  std::memcpy(bytes.data() + 4, "\0\0\0\0", 4);
  EXPECT_ERROR_HAS(decode_fb(bytes), "flatbuffers: file identifier is");
  // A size-prefixed buffer is not the canonical encoding.
  fb::FlatBufferBuilder b;
  auto ev = sch::CreateEventDirect(b, kId, "s", fb::nullopt, 0, nullptr, nullptr, nullptr,
                                   sch::Payload::SessionClosed, sch::CreateSessionClosedDirect(b, "x").Union());
  sch::FinishSizePrefixedEventBuffer(b, ev);
  EXPECT_ERROR_HAS(decode_fb(std::span<const std::uint8_t>(b.GetBufferPointer(), b.GetSize())),
                   "flatbuffers: file identifier is");
}

TEST(CodecHostile, SharedStringsCannotAmplify) {
  // 2,000 content parts all pointing at one 10 KB string: 20 MB of text in a 30 KB record.
  const auto amplified = [](fb::FlatBufferBuilder& b) {
    auto text = b.CreateString(std::string(10000, 'a'));
    std::vector<fb::Offset<sch::ContentPart>> parts;
    for (int i = 0; i < 2000; ++i) parts.push_back(sch::CreateContentPart(b, sch::ContentKind::text, text));
    return sch::CreateMessageDirect(b, sch::Role::user, &parts).Union();
  };
  EXPECT_ERROR_HAS(decode_fb(build_event(sch::Payload::Message, amplified)), "shared data expands");
  // Sharing small strings, as CreateSharedString does for repeated names, is fine.
  const auto shared = [](fb::FlatBufferBuilder& b) {
    std::vector<fb::Offset<sch::ToolCall>> calls;
    for (int i = 0; i < 50; ++i) {
      std::string id = "c";
      id += std::to_string(i);  // not "c" + std::to_string(i): GCC 12 -O3 false -Wrestrict (GCC bug 105651)
      calls.push_back(sch::CreateToolCall(b, b.CreateSharedString(id),
                                          b.CreateSharedString("search"), b.CreateSharedString("{}")));
    }
    return sch::CreateMessageDirect(b, sch::Role::assistant, nullptr, &calls).Union();
  };
  auto ok = decode_fb(build_event(sch::Payload::Message, shared));
  EXPECT_TRUE(ok.ok()) << error_of(ok);
}

TEST(CodecHostile, TooManyTables) {
  const auto many = [](fb::FlatBufferBuilder& b) {
    std::vector<fb::Offset<sch::ContentPart>> parts;
    for (int i = 0; i < 210000; ++i) parts.push_back(sch::CreateContentPart(b, sch::ContentKind::text));
    return sch::CreateMessageDirect(b, sch::Role::user, &parts).Union();
  };
  EXPECT_ERROR_HAS(decode_fb(build_event(sch::Payload::Message, many)), "payload: Message table malformed");
}

// ---------------------------------------------------------------------------------------------------------------
// Schema evolution

TEST(CodecEvolution, UnknownPayloadTypeIsKept) {
  // What a newer producer sends: payload type 12, a table this build has never heard of.
  const auto future = [](fb::FlatBufferBuilder& b) {
    auto s = b.CreateString("from the future");
    const auto start = b.StartTable();
    b.AddOffset(4, s);
    b.AddElement<std::uint32_t>(6, 42, 0);
    return fb::Offset<void>(b.EndTable(start));
  };
  const auto bytes = build_event(12, future, "s-9");
  auto ev = decode_fb(bytes, "s-9");
  ASSERT_TRUE(ev.ok()) << ev.error().message;
  EXPECT_EQ(ev->payload_type(), 12);
  EXPECT_FALSE(ev->payload_known());
  EXPECT_EQ(ev->session_id(), "s-9");
  EXPECT_EQ(to_vector(ev->canonical()), bytes);
  EXPECT_EQ(payload_type_name(ev->payload_type()), "unknown(12)");

  const std::string json = to_json(ev.value());
  EXPECT_EQ(json, R"({"event_id": "00112233445566778899aabbccddeeff","session_id": "s-9","expected_version": null,)"
                  R"("occurred_at_us": 1718000000000000,"source": "test","payload_type": 12})");
  EXPECT_EQ(flatbuffers_to_json(bytes), json);
  // That form cannot be converted back: this build has no schema for the payload.
  EXPECT_FALSE(json_to_flatbuffers(json).ok());
  // The rendering worked on a copy: the event's own bytes are untouched.
  EXPECT_EQ(to_vector(ev->canonical()), bytes);

  // The largest type number is no different.
  auto top = decode_fb(build_event(255, future));
  ASSERT_TRUE(top.ok()) << top.error().message;
  EXPECT_FALSE(top->payload_known());
}

TEST(CodecEvolution, UnknownFieldsInKnownTablesAreKept) {
  // A newer Event with a field appended after the last one this build knows (vtable slot 24): kept byte for byte,
  // not shown.
  fb::FlatBufferBuilder b;
  auto id = b.CreateString(kId);
  auto sid = b.CreateString("s-1");
  auto extra = b.CreateString("new field");
  auto payload = sch::CreateSessionClosedDirect(b, "x").Union();
  const auto start = b.StartTable();
  b.AddOffset(sch::Event::VT_EVENT_ID, id);
  b.AddOffset(sch::Event::VT_SESSION_ID, sid);
  b.AddElement<std::uint8_t>(sch::Event::VT_PAYLOAD_TYPE, static_cast<std::uint8_t>(sch::Payload::SessionClosed), 0);
  b.AddOffset(sch::Event::VT_PAYLOAD, payload);
  b.AddOffset(24, extra);
  sch::FinishEventBuffer(b, fb::Offset<sch::Event>(b.EndTable(start)));
  auto ev = decode_fb(std::span<const std::uint8_t>(b.GetBufferPointer(), b.GetSize()));
  ASSERT_TRUE(ev.ok()) << ev.error().message;
  EXPECT_TRUE(ev->payload_known());
  EXPECT_EQ(to_json(ev.value()).find("new field"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------------------------
// Small functions

TEST(CodecIds, ParseAndPrint) {
  const auto hex = parse_event_id("00112233445566778899AABBCCDDEEFF");
  ASSERT_TRUE(hex.has_value());
  EXPECT_EQ((*hex)[0], 0x00);
  EXPECT_EQ((*hex)[15], 0xff);
  EXPECT_EQ(event_id_to_string(*hex), "00112233445566778899aabbccddeeff");
  const auto uuid = parse_event_id("0f8fad5b-d9cb-469f-a165-70867728950e");
  ASSERT_TRUE(uuid.has_value());
  EXPECT_EQ(event_id_to_string(*uuid), "0f8fad5bd9cb469fa16570867728950e");
  EXPECT_EQ(parse_event_id("0f8fad5bd9cb469fa16570867728950e"), uuid);
  for (const char* bad : {"", "0f8fad5b-d9cb-469f-a165-70867728950", "0f8fad5b_d9cb_469f_a165_70867728950e",
                          "0f8fad5bd-9cb-469f-a165-70867728950e", "0f8fad5b-d9cb-469f-a165-70867728950g",
                          "+f8fad5bd9cb469fa16570867728950e", "0f8fad5bd9cb469fa16570867728950e0"}) {
    EXPECT_FALSE(parse_event_id(bad).has_value()) << bad;
  }
}

TEST(CodecNames, PayloadTypeNames) {
  EXPECT_EQ(payload_type_name(0), "NONE");
  EXPECT_EQ(payload_type_name(static_cast<std::uint8_t>(sch::Payload::Message)), "Message");
  EXPECT_EQ(payload_type_name(static_cast<std::uint8_t>(sch::Payload::Custom)), "Custom");
  EXPECT_EQ(payload_type_name(static_cast<std::uint8_t>(sch::Payload::SessionAmended)), "SessionAmended");
  EXPECT_EQ(payload_type_name(static_cast<std::uint8_t>(sch::Payload::MAX) + 1),
            "unknown(" + std::to_string(static_cast<int>(sch::Payload::MAX) + 1) + ")");
}

TEST(CodecNames, ContentType) {
  EXPECT_EQ(encoding_for_content_type(std::nullopt), Encoding::flatbuffers);
  EXPECT_EQ(encoding_for_content_type(""), Encoding::flatbuffers);
  EXPECT_EQ(encoding_for_content_type("application/json"), Encoding::json);
  EXPECT_EQ(encoding_for_content_type("Application/JSON; charset=utf-8"), Encoding::json);
  EXPECT_EQ(encoding_for_content_type(" application/json "), Encoding::json);
  EXPECT_EQ(encoding_for_content_type("application/x-flatbuffers"), Encoding::flatbuffers);
  EXPECT_EQ(encoding_for_content_type("application/jsonl"), Encoding::flatbuffers);
  EXPECT_EQ(encoding_for_content_type("text/json"), Encoding::flatbuffers);
}

TEST(CodecJson, RendersFromUnalignedAndRefusesGarbage) {
  auto good = json_to_flatbuffers(samples()[0].json);
  ASSERT_TRUE(good.ok());
  std::vector<std::uint8_t> shifted(good.value().size() + 1);
  std::memcpy(shifted.data() + 1, good.value().data(), good.value().size());
  EXPECT_EQ(flatbuffers_to_json(std::span<const std::uint8_t>(shifted).subspan(1)),
            flatbuffers_to_json(good.value()));
  // Unaligned input to decode too (a Kafka payload pointer promises nothing).
  auto ev = decode_fb(std::span<const std::uint8_t>(shifted).subspan(1));
  ASSERT_TRUE(ev.ok()) << ev.error().message;
  const std::vector<std::uint8_t> junk{1, 2, 3, 4, 5, 6, 7, 8, 9};
  EXPECT_THROW((void)flatbuffers_to_json(junk), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------------------------
// docs/events.md: every ```json block decodes, and together they show every payload type.

std::vector<std::string> json_blocks(const std::string& markdown) {
  std::vector<std::string> blocks;
  std::istringstream in(markdown);
  std::string line, block;
  bool inside = false;
  while (std::getline(in, line)) {
    if (!inside && line.rfind("```json", 0) == 0) {
      inside = true;
      block.clear();
    } else if (inside && line.rfind("```", 0) == 0) {
      inside = false;
      blocks.push_back(block);
    } else if (inside) {
      block += line + "\n";
    }
  }
  return blocks;
}

TEST(CodecDocs, EveryJsonExampleDecodes) {
  std::ifstream file(STATEFOLD_EVENTS_MD);
  ASSERT_TRUE(file) << "cannot open " << STATEFOLD_EVENTS_MD;
  std::stringstream text;
  text << file.rdbuf();
  const auto blocks = json_blocks(text.str());
  ASSERT_GE(blocks.size(), static_cast<std::size_t>(sch::Payload::MAX));
  std::set<std::uint8_t> types;
  for (const auto& block : blocks) {
    SCOPED_TRACE(block);
    auto ev = decode_json(block);
    ASSERT_TRUE(ev.ok()) << ev.error().message;
    types.insert(ev->payload_type());
    // Each example's JSON form converts back to the same event.
    auto back = json_to_flatbuffers(to_json(ev.value()));
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(flatbuffers_to_json(back.value()), to_json(ev.value()));
  }
  for (std::uint8_t t = 1; t <= static_cast<std::uint8_t>(sch::Payload::MAX); ++t) {
    EXPECT_TRUE(types.count(t)) << "docs/events.md has no example of " << payload_type_name(t);
  }
}

}  // namespace
}  // namespace statefold::codec
