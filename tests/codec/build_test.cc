// codec::build: byte-identical to the JSON path for the same event in schema order, the same validation, and the
// JSON path with envelope defaults the HTTP API uses.
#include "engine/codec/build.h"

#include <gtest/gtest.h>

#include <random>

#include "engine/codec/codec.h"
#include "statefold/schema/events_generated.h"

namespace statefold::codec {
namespace {

constexpr const char* kId = "00112233445566778899aabbccddeeff";
constexpr const char* kId2 = "0f8fad5b-d9cb-469f-a165-70867728950e";

// The JSON form of a typed event, written here independently of codec: keys in schema order, a field only when it is
// set, every scalar with its value (explicit defaults do not change the bytes). This is "the equivalent JSON".
class Json {
 public:
  std::string str() const { return _out; }

  Json& key(std::string_view k) {
    if (!_first) _out += ',';
    _first = false;
    _out += '"';
    _out += k;
    _out += "\":";
    return *this;
  }
  Json& s(std::string_view k, const std::string& v) {
    key(k);
    quote(v);
    return *this;
  }
  Json& s(std::string_view k, const std::optional<std::string>& v) { return v ? s(k, *v) : *this; }
  template <typename N>
  Json& n(std::string_view k, N v) {
    key(k);
    _out += std::to_string(v);
    return *this;
  }
  Json& raw(std::string_view k, std::string_view v) {
    key(k);
    _out += v;
    return *this;
  }
  Json& open(char c) {
    _out += c;
    _first = true;
    return *this;
  }
  Json& close(char c) {
    _out += c;
    _first = false;
    return *this;
  }
  Json& number(std::uint64_t v) {
    element();
    _out += std::to_string(v);
    _first = false;
    return *this;
  }
  // An element of an array.
  Json& element() {
    if (!_first) _out += ',';
    _first = true;
    return *this;
  }

 private:
  void quote(std::string_view v) {
    static constexpr char kHex[] = "0123456789abcdef";
    _out += '"';
    for (char c : v) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        _out += '\\';
        _out += c;
      } else if (u < 0x20) {
        _out += "\\u00";
        _out += kHex[u >> 4];
        _out += kHex[u & 0xf];
      } else {
        _out += c;
      }
    }
    _out += '"';
  }

  std::string _out;
  bool _first = true;
};

const char* role_name(Role r) {
  static const char* names[] = {"system", "developer", "user", "assistant", "tool"};
  return names[static_cast<int>(r)];
}
const char* kind_name(ContentKind k) {
  static const char* names[] = {"text", "image_url", "file_ref", "json"};
  return names[static_cast<int>(k)];
}

void payload_json(Json& j, const SessionOpened& p) {
  j.s("model", p.model).s("system_prompt", p.system_prompt);
  if (p.policy) {
    j.key("policy").open('{');
    j.n("token_budget", p.policy->token_budget).n("output_reserve", p.policy->output_reserve);
    j.s("tokenizer", p.policy->tokenizer).s("provider", p.policy->provider).close('}');
  }
  if (p.metadata) {
    j.key("metadata").open('[');
    for (const auto& kv : *p.metadata) j.element().open('{').s("key", kv.key).s("value", kv.value).close('}');
    j.close(']');
  }
  j.s("parent_session_id", p.parent_session_id).n("parent_version", p.parent_version);
}

void payload_json(Json& j, const Message& p) {
  j.raw("role", std::string("\"") + role_name(p.role) + "\"");
  if (p.content) {
    j.key("content").open('[');
    for (const auto& part : *p.content) {
      j.element().open('{').raw("kind", std::string("\"") + kind_name(part.kind) + "\"");
      j.s("text", part.text).s("media_type", part.media_type).close('}');
    }
    j.close(']');
  }
  if (p.tool_calls) {
    j.key("tool_calls").open('[');
    for (const auto& c : *p.tool_calls) {
      j.element().open('{').s("id", c.id).s("name", c.name).s("arguments", c.arguments).close('}');
    }
    j.close(']');
  }
  j.s("tool_call_id", p.tool_call_id).s("name", p.name);
}

void payload_json(Json& j, const MemorySet& p) {
  j.s("label", p.label).s("value", p.value).raw("pinned", p.pinned ? "true" : "false");
}
void payload_json(Json& j, const MemoryDelete& p) { j.s("label", p.label); }
void payload_json(Json& j, const Summary& p) { j.s("text", p.text).n("through_version", p.through_version); }

void payload_json(Json& j, const InferenceReceipt& p) {
  j.s("request_hash", p.request_hash).n("state_version", p.state_version);
  j.s("provider", p.provider).s("endpoint", p.endpoint).s("model", p.model);
  if (p.usage) {
    j.key("usage").open('{').n("input_tokens", p.usage->input_tokens).n("output_tokens", p.usage->output_tokens);
    j.n("cached_tokens", p.usage->cached_tokens).close('}');
  }
  j.n("latency_ms", p.latency_ms).n("status", p.status).s("error", p.error).s("render", p.render);
}

void payload_json(Json& j, const SessionClosed& p) { j.s("reason", p.reason); }
void payload_json(Json& j, const ErasureRequest& p) { j.s("reason", p.reason).s("requested_by", p.requested_by); }

void payload_json(Json& j, const Custom& p) {
  j.s("type_name", p.type_name);
  if (p.data) {
    j.key("data").open('[');
    for (auto b : *p.data) j.number(b);
    j.close(']');
  }
}

void payload_json(Json& j, const SessionAmended& p) {
  if (p.metadata) {
    j.key("metadata").open('[');
    for (const auto& kv : *p.metadata) j.element().open('{').s("key", kv.key).s("value", kv.value).close('}');
    j.close(']');
  }
  if (p.withdraw_versions) {
    j.key("withdraw_versions").open('[');
    for (auto v : *p.withdraw_versions) j.number(v);
    j.close(']');
  }
  j.s("reason", p.reason);
}

const char* type_name(const Payload& p) {
  static const char* names[] = {"SessionOpened",  "Message",       "MemorySet",      "MemoryDelete",
                                "Summary",        "InferenceReceipt", "SessionClosed", "ErasureRequest",
                                "Custom",         "SessionAmended"};
  return names[p.index()];
}

std::string schema_order_json(const Envelope& e, const Payload& p) {
  Json j;
  j.open('{').s("event_id", e.event_id).s("session_id", e.session_id);
  if (e.expected_version) j.n("expected_version", *e.expected_version);
  j.n("occurred_at_us", e.occurred_at_us);
  j.s("source", e.source).s("correlation_id", e.correlation_id).s("causation_id", e.causation_id);
  j.raw("payload_type", std::string("\"") + type_name(p) + "\"");
  j.key("payload").open('{');
  std::visit([&j](const auto& v) { payload_json(j, v); }, p);
  j.close('}');
  j.s("expected_previous_event_id", e.expected_previous_event_id);
  j.close('}');
  return j.str();
}

Envelope envelope(std::string session = "chat-42") {
  return Envelope{.event_id = kId, .session_id = std::move(session), .occurred_at_us = 1718000000000000};
}

// build(), the JSON path on the equivalent JSON, and the JSON path on to_json of the result give the same bytes.
void expect_same_bytes(const Envelope& e, const Payload& p) {
  const std::string json = schema_order_json(e, p);
  SCOPED_TRACE(json);
  auto built = build(e, p);
  ASSERT_TRUE(built.ok()) << built.error().message;
  auto parsed = json_to_flatbuffers(json);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(built.value(), parsed.value());
  auto again = json_to_flatbuffers(flatbuffers_to_json(built.value()));
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again.value(), built.value()) << "build() gives the normal form to_json round-trips to";
  auto ev = decode(built.value(), Encoding::flatbuffers, e.session_id);
  ASSERT_TRUE(ev.ok()) << ev.error().message;
  EXPECT_EQ(ev->payload_type(), p.index() + 1);
}

TEST(CodecBuild, MessagesOfEveryRole) {
  for (Role role : {Role::system, Role::developer, Role::user, Role::assistant}) {
    Message m{.role = role, .content = std::vector<ContentPart>{{.text = "Hello"}}};
    expect_same_bytes(envelope(), m);
  }
  expect_same_bytes(envelope(), Message{.role = Role::tool,
                                        .content = std::vector<ContentPart>{{.kind = ContentKind::json,
                                                                             .text = R"({"temp_c":21})"}},
                                        .tool_call_id = "call_1",
                                        .name = "get_weather"});
}

TEST(CodecBuild, MessageOptionalFields) {
  expect_same_bytes(envelope(), Message{});  // nothing but the (default) role
  expect_same_bytes(envelope(), Message{.content = std::vector<ContentPart>{}});
  expect_same_bytes(envelope(), Message{.content = std::vector<ContentPart>{{}}});  // a part with no text
  expect_same_bytes(envelope(), Message{.content = std::vector<ContentPart>{{.text = ""}}, .name = ""});
  expect_same_bytes(envelope(), Message{.content = std::vector<ContentPart>{
                                            {.kind = ContentKind::text, .text = "Weather in Paris?"},
                                            {.kind = ContentKind::image_url, .text = "https://e.com/a.png",
                                             .media_type = "image/png"},
                                            {.kind = ContentKind::file_ref, .text = "file-1", .media_type = ""},
                                            {.kind = ContentKind::json, .text = "[1,2]"}},
                                        .name = "ada"});
}

TEST(CodecBuild, ToolCalls) {
  Message m{.role = Role::assistant, .content = std::vector<ContentPart>{}};
  m.tool_calls = std::vector<ToolCall>{{.id = "call_1", .name = "get_weather", .arguments = R"({"city":"Paris"})"},
                                       {.id = "call_2", .name = "now"},
                                       {.id = "call_3", .name = "noop", .arguments = ""}};
  expect_same_bytes(envelope(), m);
  m.tool_calls = std::vector<ToolCall>{};
  expect_same_bytes(envelope(), m);
  m.content = std::vector<ContentPart>{{.text = "Let me check."}};
  m.tool_calls = std::vector<ToolCall>{{.id = "c", .name = "n", .arguments = "{}"}};
  expect_same_bytes(envelope(), m);
}

TEST(CodecBuild, Unicode) {
  const std::string hard = "a\"b\\c\n\t\x01\x1f\x7f é ☀ 😀 \u2028 /";
  expect_same_bytes(envelope("chat-😀-é"),
                    Message{.content = std::vector<ContentPart>{{.text = hard}, {.text = std::string("nul\0in", 6)}},
                            .name = "Zoë"});
  Envelope e = envelope();
  e.source = "ünïcode";
  e.correlation_id = "😀";
  expect_same_bytes(e, MemorySet{.label = "user.名前", .value = hard, .pinned = true});
}

TEST(CodecBuild, Envelopes) {
  const Message m{.content = std::vector<ContentPart>{{.text = "x"}}};
  Envelope e = envelope();
  expect_same_bytes(e, m);
  for (std::uint64_t v : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{18446744073709551615u}}) {
    e.expected_version = v;
    expect_same_bytes(e, m);
  }
  e.expected_version.reset();
  e.expected_previous_event_id = kId2;
  expect_same_bytes(e, m);
  e.event_id = kId2;
  e.occurred_at_us = 0;
  expect_same_bytes(e, m);
  e.occurred_at_us = -5;
  e.source = "";
  e.correlation_id = "req-1";
  e.causation_id = "evt-0";
  e.expected_version = 7;
  expect_same_bytes(e, m);
  e.session_id = std::string(256, 's');
  expect_same_bytes(e, m);

  // 0 is a condition, not "absent": the bytes differ.
  Envelope zero = envelope(), none = envelope();
  zero.expected_version = 0;
  EXPECT_NE(build(zero, m).value(), build(none, m).value());
  EXPECT_EQ(decode(build(zero, m).value(), Encoding::flatbuffers)->expected_version(), std::optional<std::uint64_t>(0));
}

TEST(CodecBuild, Receipts) {
  InferenceReceipt r{.request_hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                     .state_version = 3,
                     .provider = "openai",
                     .endpoint = "chat.completions",
                     .model = "gpt-4o",
                     .usage = Usage{1200, 80, 1024},
                     .latency_ms = 640,
                     .status = 200,
                     .render = R"({"context":1,"extra":{},"margin":0,"model":"gpt-4o"})"};
  expect_same_bytes(envelope(), r);
  r.error = "upstream timed out";
  r.status = 504;
  expect_same_bytes(envelope(), r);
  r.usage = Usage{};
  r.render = "";
  r.latency_ms = 0xffffffff;
  r.status = 0xffff;
  expect_same_bytes(envelope(), r);
  r.usage.reset();
  r.render.reset();
  r.error = "";
  expect_same_bytes(envelope(), r);
  expect_same_bytes(envelope(), InferenceReceipt{});
}

TEST(CodecBuild, SessionOpened) {
  expect_same_bytes(envelope(), SessionOpened{.model = "gpt-4o", .system_prompt = "Be brief."});
  expect_same_bytes(envelope(), SessionOpened{.model = "gpt-4o", .system_prompt = ""});
  expect_same_bytes(envelope(), SessionOpened{});
  // As fork writes it: the parent's configuration, its metadata, and the parent named.
  SessionOpened fork{.model = "gpt-4o",
                     .system_prompt = "You are terse.",
                     .policy = ContextPolicy{128000, 4096, "o200k_base", "openai"},
                     .metadata = std::vector<KeyValue>{{"tenant", "acme"}, {"empty", std::nullopt}, {"e2", ""}},
                     .parent_session_id = "chat-42",
                     .parent_version = 7};
  Envelope e = envelope("chat-42-fork");
  e.expected_version = 0;
  e.source = "fork";
  expect_same_bytes(e, fork);
  fork.policy = ContextPolicy{};
  fork.metadata = std::vector<KeyValue>{};
  fork.parent_version = 0;
  expect_same_bytes(e, fork);
}

TEST(CodecBuild, OtherPayloads) {
  expect_same_bytes(envelope(), MemorySet{.label = "user.name", .value = "Ada", .pinned = true});
  expect_same_bytes(envelope(), MemorySet{.label = "x"});
  expect_same_bytes(envelope(), MemoryDelete{.label = "user.name"});
  expect_same_bytes(envelope(), Summary{.text = "Asked about the weather.", .through_version = 12});
  expect_same_bytes(envelope(), Summary{.through_version = 1});
  expect_same_bytes(envelope(), SessionClosed{.reason = "done"});
  expect_same_bytes(envelope(), SessionClosed{});
  expect_same_bytes(envelope(), ErasureRequest{.reason = "GDPR art. 17", .requested_by = "dpo@example.com"});
  expect_same_bytes(envelope(), Custom{.type_name = "acme.rating", .data = std::vector<std::uint8_t>{5, 0, 255}});
  expect_same_bytes(envelope(), Custom{.type_name = "acme.empty", .data = std::vector<std::uint8_t>{}});
  expect_same_bytes(envelope(), Custom{.type_name = "acme.none"});
  expect_same_bytes(envelope(), SessionAmended{.metadata = std::vector<KeyValue>{{"topic", "billing"}, {"k", {}}},
                                               .withdraw_versions = std::vector<std::uint64_t>{3, 4},
                                               .reason = "conversation item deleted"});
  expect_same_bytes(envelope(), SessionAmended{.metadata = std::vector<KeyValue>{}});
}

// Many random events, every optional field set or not: the two paths never disagree.
TEST(CodecBuild, RandomEventsMatchTheJsonPath) {
  std::mt19937_64 rng(20261203);
  auto coin = [&] { return rng() % 2 == 0; };
  auto text = [&]() -> std::string {
    static const char* pieces[] = {"", "a", "hello world", "é", "😀", "\"", "\\", "\n", "\x01", "ünï", "{\"k\":1}"};
    std::string s;
    for (auto n = rng() % 4; n > 0; --n) s += pieces[rng() % std::size(pieces)];
    return s;
  };
  auto opt = [&]() -> std::optional<std::string> { return coin() ? std::optional(text()) : std::nullopt; };
  auto num = [&]() -> std::uint64_t { return coin() ? 0 : rng() >> (rng() % 64); };
  for (int i = 0; i < 1500; ++i) {
    Envelope e{.event_id = coin() ? kId : kId2, .session_id = "s-" + std::to_string(rng() % 1000) + text()};
    if (coin()) e.expected_version = num();
    e.occurred_at_us = static_cast<std::int64_t>(num());
    e.source = opt();
    e.correlation_id = opt();
    e.causation_id = opt();
    if (coin()) e.expected_previous_event_id = coin() ? kId : kId2;
    Payload p;
    switch (rng() % 4) {
      case 0: {
        Message m{.role = static_cast<Role>(rng() % 4)};
        if (coin()) {
          m.content.emplace();
          for (auto n = rng() % 4; n > 0; --n) m.content->push_back({static_cast<ContentKind>(rng() % 4), opt(), opt()});
        }
        if (m.role == Role::assistant && coin()) {
          m.tool_calls.emplace();
          for (auto n = rng() % 3; n > 0; --n) m.tool_calls->push_back({"id" + text(), "n" + text(), opt()});
        }
        m.name = opt();
        p = m;
        break;
      }
      case 1: {
        InferenceReceipt r{opt(), num(), opt(), opt(), opt()};
        if (coin()) r.usage = Usage{num(), num(), num()};
        r.latency_ms = static_cast<std::uint32_t>(num());
        r.status = static_cast<std::uint16_t>(num());
        r.error = opt();
        r.render = opt();
        p = r;
        break;
      }
      case 2: {
        SessionOpened o{opt(), opt()};
        if (coin()) o.policy = ContextPolicy{static_cast<std::uint32_t>(num()), static_cast<std::uint32_t>(num()), opt(), opt()};
        if (coin()) {
          o.metadata.emplace();
          for (auto n = rng() % 3; n > 0; --n) o.metadata->push_back({text(), opt()});
        }
        if (coin()) {
          o.parent_session_id = "parent" + text();
          o.parent_version = num();
        }
        p = o;
        break;
      }
      default:
        p = MemorySet{"l" + text(), opt(), coin()};
    }
    expect_same_bytes(e, p);
    if (testing::Test::HasFailure()) break;
  }
}

// The gateway's JSON today puts payload_type and payload first and the envelope after: the same event, other bytes.
// A producer moving from that JSON to build() changes the layout of the events it writes from then on (events
// already written keep their bytes; nothing re-encodes them), never their meaning.
TEST(CodecBuild, OnlySchemaOrderIsTheNormalForm) {
  const Message m{.content = std::vector<ContentPart>{{.text = "Hi"}}};
  const std::string gateway_order = std::string(R"({"payload_type":"Message","payload":{"role":"user","content":)") +
                                    R"([{"kind":"text","text":"Hi"}]},"event_id":")" + kId +
                                    R"(","session_id":"chat-42","occurred_at_us":1718000000000000})";
  auto built = build(envelope(), m);
  auto gateway = json_to_flatbuffers(gateway_order);
  ASSERT_TRUE(built.ok() && gateway.ok());
  EXPECT_NE(built.value(), gateway.value());
  EXPECT_EQ(flatbuffers_to_json(built.value()), flatbuffers_to_json(gateway.value()));
}

#define EXPECT_ERROR(result, text)                                             \
  do {                                                                         \
    auto r_ = (result);                                                        \
    ASSERT_FALSE(r_.ok());                                                     \
    EXPECT_EQ(r_.error().message, (text));                                     \
  } while (false)

// The same rule, the same message, whichever path the event comes by.
void expect_same_error(const Envelope& e, const Payload& p, const std::string& message) {
  EXPECT_ERROR(build(e, p), message);
  EXPECT_ERROR(json_to_flatbuffers(schema_order_json(e, p)), message);
}

TEST(CodecBuild, ValidatesAsDecodeDoes) {
  expect_same_error(envelope(std::string(300, 's')), SessionClosed{},
                    "session_id: must be 1..256 bytes of UTF-8, got 300 bytes");
  expect_same_error(envelope(""), SessionClosed{}, "session_id: must be 1..256 bytes of UTF-8, got 0 bytes");
  Envelope bad_id = envelope();
  bad_id.event_id = "42";
  expect_same_error(bad_id, SessionClosed{}, "event_id: expected 32 hex digits or a UUID, got \"42\"");
  Envelope bad_previous = envelope();
  bad_previous.expected_previous_event_id = "";
  expect_same_error(bad_previous, SessionClosed{},
                    "expected_previous_event_id: expected 32 hex digits or a UUID, got \"\"");
  expect_same_error(envelope(), Message{.role = Role::user, .tool_calls = std::vector<ToolCall>{{"c", "n", {}}}},
                    "payload.tool_calls: only allowed when role is assistant");
  expect_same_error(envelope(), Message{.role = Role::assistant, .tool_calls = std::vector<ToolCall>{{"c", "", {}}}},
                    "payload.tool_calls[0].name: must not be empty");
  expect_same_error(envelope(), Message{.role = Role::tool}, "payload.tool_call_id: required when role is tool");
  expect_same_error(envelope(), Message{.tool_call_id = "c"}, "payload.tool_call_id: only allowed when role is tool");
  expect_same_error(envelope(), MemorySet{}, "payload.label: must not be empty");
  expect_same_error(envelope(), Summary{.text = "s"}, "payload.through_version: must be >= 1, got 0");
  expect_same_error(envelope(), SessionOpened{.parent_version = 3},
                    "payload.parent_version: only allowed with parent_session_id");
  expect_same_error(envelope(), SessionOpened{.parent_session_id = ""},
                    "payload.parent_session_id: must be 1..256 bytes of UTF-8, got 0 bytes");
  expect_same_error(envelope(), Custom{}, "payload.type_name: must not be empty");
  expect_same_error(envelope(), SessionAmended{.withdraw_versions = std::vector<std::uint64_t>{2, 0}},
                    "payload.withdraw_versions[1]: must be >= 1, got 0");
}

TEST(CodecBuild, RefusesInvalidUtf8) {
  // The JSON path cannot carry these bytes (its parser refuses them); build() names the field.
  const std::string bad = "caf\xc3";
  EXPECT_ERROR(build(envelope(), Message{.content = std::vector<ContentPart>{{.text = "ok"}, {.text = bad}}}),
               "payload.content[1].text: not valid UTF-8");
  EXPECT_ERROR(build(envelope("s\xff"), SessionClosed{}),
               "session_id: must be 1..256 bytes of UTF-8, got invalid UTF-8 \"s\\xff\"");
  Envelope e = envelope();
  e.source = "\xed\xa0\x80";  // a surrogate
  EXPECT_ERROR(build(e, SessionClosed{}), "source: not valid UTF-8");
  EXPECT_ERROR(build(envelope(), InferenceReceipt{.render = bad}), "payload.render: not valid UTF-8");
  EXPECT_ERROR(build(envelope(), InferenceReceipt{.error = bad}), "payload.error: not valid UTF-8");
  EXPECT_ERROR(build(envelope(), SessionOpened{.metadata = std::vector<KeyValue>{{"k", "v"}, {"k2", bad}}}),
               "payload.metadata[1].value: not valid UTF-8");
  EXPECT_ERROR(build(envelope(), MemorySet{.label = "l", .value = bad}), "payload.value: not valid UTF-8");
  EXPECT_ERROR(build(envelope(std::string("a\0b", 3)), SessionClosed{}), "session_id: must not contain NUL");
}

// --- json_to_flatbuffers with envelope defaults, as the HTTP API uses it ---

EnvelopeDefaults defaults() {
  return EnvelopeDefaults{.session_id = "chat-42", .event_id = kId, .occurred_at_us = 1718000000000000,
                          .source = "http"};
}

// What Api::append sent to json_to_flatbuffers before: the client's object with the missing fields appended.
std::vector<std::uint8_t> bytes_of(const std::string& json) {
  auto b = json_to_flatbuffers(json);
  EXPECT_TRUE(b.ok()) << b.error().message << "\n" << json;
  return b.ok() ? b.value() : std::vector<std::uint8_t>{};
}

constexpr const char* kBody = R"({"payload_type":"Message","payload":{"role":"user","content":[{"text":"Hi"}]}})";
constexpr const char* kBodyFields = R"("payload_type":"Message","payload":{"role":"user","content":[{"text":"Hi"}]})";

TEST(CodecJsonDefaults, AbsentFieldsAreFilledAsTheApiDid) {
  auto got = json_to_flatbuffers(kBody, defaults());
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->event_id, kId);
  EXPECT_EQ(got->canonical,
            bytes_of(std::string("{") + kBodyFields +
                     R"(,"session_id":"chat-42","event_id":")" + kId +
                     R"(","occurred_at_us":1718000000000000,"source":"http"})"));

  auto d = defaults();
  d.expected_version = 0;
  got = json_to_flatbuffers(kBody, d);
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->canonical,
            bytes_of(std::string("{") + kBodyFields + R"(,"session_id":"chat-42","event_id":")" + kId +
                     R"(","expected_version":0,"occurred_at_us":1718000000000000,"source":"http"})"));
  EXPECT_EQ(decode(got->canonical, Encoding::flatbuffers)->expected_version(), std::optional<std::uint64_t>(0));

  d = defaults();
  d.expected_previous_event_id = kId2;
  d.session_id = "quote\"and\\slash é";
  got = json_to_flatbuffers("  {" + std::string(kBodyFields) + "}\n ", d);
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->canonical, bytes_of(std::string("{") + kBodyFields +
                                     R"(,"session_id":"quote\"and\\slash é","event_id":")" + kId +
                                     R"(","expected_previous_event_id":")" + kId2 +
                                     R"(","occurred_at_us":1718000000000000,"source":"http"})"));
}

TEST(CodecJsonDefaults, PresentFieldsAreKept) {
  const std::string json = std::string(R"({"event_id":")") + kId2 +
                           R"(","occurred_at_us":5,"source":"cli","expected_version":null,)" + kBodyFields +
                           R"(,"session_id":"chat-42"})";
  auto d = defaults();
  d.expected_version = 9;
  auto got = json_to_flatbuffers(json, d);
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->event_id, kId2);
  EXPECT_EQ(got->canonical, bytes_of(json)) << "nothing to add: the client's bytes exactly";
  auto ev = decode(got->canonical, Encoding::flatbuffers);
  EXPECT_FALSE(ev->expected_version().has_value()) << "an explicit null is the client's choice";
  EXPECT_EQ(ev->root().source()->string_view(), "cli");

  // expected_previous_event_id given by the client wins over the batch's chaining.
  d = defaults();
  d.expected_previous_event_id = kId2;
  const std::string chained = std::string("{") + kBodyFields + R"(,"expected_previous_event_id":")" + kId + "\"}";
  got = json_to_flatbuffers(chained, d);
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(decode(got->canonical, Encoding::flatbuffers)->root().expected_previous_event_id()->string_view(), kId);
}

TEST(CodecJsonDefaults, AContradictingSessionIsRefused) {
  const std::string message = "session_id: does not match the session in the path (chat-42)";
  EXPECT_ERROR(json_to_flatbuffers(std::string("{") + kBodyFields + R"(,"session_id":"chat-43"})", defaults()),
               message);
  EXPECT_ERROR(json_to_flatbuffers(R"({"session_id":42,)" + std::string(kBodyFields) + "}", defaults()), message);
  EXPECT_ERROR(json_to_flatbuffers(R"({"session_id":null,)" + std::string(kBodyFields) + "}", defaults()), message);
  // A key written with escapes is the same key to the parser.
  EXPECT_ERROR(json_to_flatbuffers(R"({"session\u005fid":"chat-43",)" + std::string(kBodyFields) + "}", defaults()),
               message);
  // ... and the same session written with escapes is the same session.
  auto ok = json_to_flatbuffers(R"({"session_id":"chat\u002d42",)" + std::string(kBodyFields) + "}", defaults());
  EXPECT_TRUE(ok.ok()) << ok.error().message;
  // Nested session_id keys are not the envelope's.
  ok = json_to_flatbuffers(
      R"({"payload_type":"Custom","payload":{"type_name":"x","data":[]},"correlation_id":"session_id"})", defaults());
  EXPECT_TRUE(ok.ok()) << ok.error().message;
}

TEST(CodecJsonDefaults, OtherErrorsAreTheJsonPaths) {
  auto d = defaults();
  d.session_id = std::string(300, 's');
  EXPECT_ERROR(json_to_flatbuffers(kBody, d), "session_id: must be 1..256 bytes of UTF-8, got 300 bytes");
  EXPECT_ERROR(json_to_flatbuffers(R"({"payload_type":"Message","payload":{"role":"tool"}})", defaults()),
               "payload.tool_call_id: required when role is tool");
  auto bad = json_to_flatbuffers(R"({"payload_type":"Message","payload":{"bogus":1}})", defaults());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("payload.bogus: unknown field"), std::string::npos) << bad.error().message;
  EXPECT_FALSE(json_to_flatbuffers("{}", defaults()).ok());
  EXPECT_FALSE(json_to_flatbuffers("[]", defaults()).ok());
  EXPECT_FALSE(json_to_flatbuffers("", defaults()).ok());
  EXPECT_FALSE(json_to_flatbuffers(R"({"payload_type":"Message","payload":{)", defaults()).ok());
}

}  // namespace
}  // namespace statefold::codec
