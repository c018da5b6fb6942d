#include "engine/codec/internal/validate.h"

#include <cstring>
#include <utility>

#include <flatbuffers/flatbuffers.h>

#include "statefold/schema/events_generated.h"

namespace statefold::codec::internal {

namespace {

namespace fb = flatbuffers;
namespace sch = statefold::schema;

using Problem = std::optional<std::string>;

#define SF_TRY(expr)                       \
  do {                                     \
    if (Problem sf_p_ = (expr)) return sf_p_; \
  } while (false)

std::string join(std::string_view path, std::string_view field) {
  std::string out(path);
  if (!out.empty()) out += '.';
  out += field;
  return out;
}

std::string indexed(std::string_view path, std::size_t i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

fb::Verifier::Options verifier_options() {
  fb::Verifier::Options opts;
  opts.max_depth = kMaxVerifyDepth;
  opts.max_tables = kMaxVerifyTables;
  return opts;
}

// Walks a verified event. Every string is checked for UTF-8 (so that every accepted event has a JSON form) and
// counted against a budget: a FlatBuffer may point many offsets at one large string, and without the budget a small
// record could make validation, the fold and to_json walk gigabytes.
class Validator {
 public:
  explicit Validator(std::size_t record_size) : _budget(4 * record_size + 64 * 1024) {}

  Problem event(const sch::Event& e, std::optional<std::string_view> kafka_key, EventId& id) {
    // The Verifier has checked the required fields are there; the null checks are for the compiler's benefit.
    if (e.event_id() == nullptr) return std::string("event_id: missing (required)");
    if (e.session_id() == nullptr) return std::string("session_id: missing (required)");
    std::string_view event_id = e.event_id()->string_view();
    auto parsed = parse_event_id(event_id);
    if (!parsed) return "event_id: expected 32 hex digits or a UUID, got " + quoted(event_id);
    id = *parsed;

    std::string_view session_id = e.session_id()->string_view();
    SF_TRY(session("session_id", session_id));
    if (kafka_key && *kafka_key != session_id) {
      return "key: does not match session_id (key " + quoted(*kafka_key) + ", session_id " + quoted(session_id) +
             ")";
    }
    SF_TRY(text(e.source(), "source"));
    SF_TRY(text(e.correlation_id(), "correlation_id"));
    SF_TRY(text(e.causation_id(), "causation_id"));
    if (const auto* previous = e.expected_previous_event_id()) {
      if (!parse_event_id(previous->string_view())) {
        return "expected_previous_event_id: expected 32 hex digits or a UUID, got " + quoted(previous->string_view());
      }
    }
    return payload(e);
  }

 private:
  Problem spend(std::size_t bytes) {
    if (bytes > _budget) return std::string("flatbuffers: shared data expands beyond 4x the record size");
    _budget -= bytes;
    return std::nullopt;
  }

  // An optional string field. `path` is a string or a callable building it, so it costs nothing when all is well.
  template <typename Path>
  Problem text(const fb::String* s, Path&& path) {
    if (s == nullptr) return std::nullopt;
    SF_TRY(spend(s->size()));
    if (!is_utf8(s->string_view())) return name(path) + ": not valid UTF-8";
    return std::nullopt;
  }

  template <typename Path>
  Problem non_empty(const fb::String* s, Path&& path) {
    if (s == nullptr || s->size() == 0) return name(path) + ": must not be empty";
    return text(s, path);
  }

  Problem session(std::string_view path, std::string_view id) {
    SF_TRY(spend(id.size()));
    if (id.empty()) return std::string(path) + ": must be 1..256 bytes of UTF-8, got 0 bytes";
    if (id.size() > kMaxSessionIdBytes) {
      return std::string(path) + ": must be 1..256 bytes of UTF-8, got " + std::to_string(id.size()) + " bytes";
    }
    if (!is_utf8(id)) return std::string(path) + ": must be 1..256 bytes of UTF-8, got invalid UTF-8 " + quoted(id);
    // The store separates a session id from the rest of a key with NUL (engine/fold/layout.h).
    if (id.find('\0') != std::string_view::npos) return std::string(path) + ": must not contain NUL";
    return std::nullopt;
  }

  template <typename Path>
  static std::string name(Path&& path) {
    if constexpr (std::is_invocable_v<Path>) {
      return path();
    } else {
      return std::string(path);
    }
  }

  Problem payload(const sch::Event& e) {
    const void* raw = e.payload();
    if (raw == nullptr) return std::string("payload: missing (required)");
    switch (e.payload_type()) {
      case sch::Payload::NONE:
        return std::string("payload: missing (payload_type is NONE)");
      case sch::Payload::SessionOpened:
        return session_opened(static_cast<const sch::SessionOpened*>(raw));
      case sch::Payload::Message:
        return message(static_cast<const sch::Message*>(raw));
      case sch::Payload::MemorySet: {
        const auto* p = static_cast<const sch::MemorySet*>(raw);
        SF_TRY(non_empty(p->label(), "payload.label"));
        return text(p->value(), "payload.value");
      }
      case sch::Payload::MemoryDelete:
        return non_empty(static_cast<const sch::MemoryDelete*>(raw)->label(), "payload.label");
      case sch::Payload::Summary: {
        const auto* p = static_cast<const sch::Summary*>(raw);
        SF_TRY(text(p->text(), "payload.text"));
        if (p->through_version() < 1) return std::string("payload.through_version: must be >= 1, got 0");
        return std::nullopt;
      }
      case sch::Payload::InferenceReceipt: {
        const auto* p = static_cast<const sch::InferenceReceipt*>(raw);
        SF_TRY(text(p->request_hash(), "payload.request_hash"));
        SF_TRY(text(p->provider(), "payload.provider"));
        SF_TRY(text(p->endpoint(), "payload.endpoint"));
        SF_TRY(text(p->model(), "payload.model"));
        SF_TRY(text(p->caller(), "payload.caller"));
        return text(p->error(), "payload.error");
      }
      case sch::Payload::SessionClosed:
        return text(static_cast<const sch::SessionClosed*>(raw)->reason(), "payload.reason");
      case sch::Payload::ErasureRequest: {
        const auto* p = static_cast<const sch::ErasureRequest*>(raw);
        SF_TRY(text(p->reason(), "payload.reason"));
        return text(p->requested_by(), "payload.requested_by");
      }
      case sch::Payload::Custom: {
        const auto* p = static_cast<const sch::Custom*>(raw);
        SF_TRY(non_empty(p->type_name(), "payload.type_name"));
        return p->data() != nullptr ? spend(p->data()->size()) : std::nullopt;
      }
      case sch::Payload::SessionAmended:
        return session_amended(static_cast<const sch::SessionAmended*>(raw));
    }
    // A payload type appended to the schema after this build: kept as it is (spec section 2), never interpreted.
    return std::nullopt;
  }

  Problem key_values(const fb::Vector<fb::Offset<sch::KeyValue>>* pairs) {
    if (pairs == nullptr) return std::nullopt;
    for (fb::uoffset_t i = 0; i < pairs->size(); ++i) {
      const auto* kv = pairs->Get(i);
      auto at = [i](std::string_view field) {
        return [i, field] { return join(indexed("payload.metadata", i), field); };
      };
      SF_TRY(text(kv->key(), at("key")));
      SF_TRY(text(kv->value(), at("value")));
    }
    return std::nullopt;
  }

  Problem session_amended(const sch::SessionAmended* p) {
    SF_TRY(key_values(p->metadata()));
    const auto versions = withdraw_versions(*p);
    for (std::size_t i = 0; i < versions.size(); ++i) {
      if (versions[i] == 0) return indexed("payload.withdraw_versions", i) + ": must be >= 1, got 0";
    }
    return text(p->reason(), "payload.reason");
  }

  Problem session_opened(const sch::SessionOpened* p) {
    SF_TRY(text(p->model(), "payload.model"));
    SF_TRY(text(p->system_prompt(), "payload.system_prompt"));
    if (const auto* policy = p->policy()) {
      SF_TRY(text(policy->tokenizer(), "payload.policy.tokenizer"));
      SF_TRY(text(policy->provider(), "payload.policy.provider"));
    }
    SF_TRY(key_values(p->metadata()));
    if (p->parent_session_id() != nullptr) {
      SF_TRY(session("payload.parent_session_id", p->parent_session_id()->string_view()));
    } else if (p->parent_version() != 0) {
      return std::string("payload.parent_version: only allowed with parent_session_id");
    }
    return std::nullopt;
  }

  Problem message(const sch::Message* p) {
    const auto role = static_cast<int>(p->role());
    if (role < 0 || role > static_cast<int>(sch::Role::MAX)) {
      return "payload.role: unknown role " + std::to_string(role) +
             " (expected system, developer, user, assistant or tool)";
    }
    if (const auto* content = p->content()) {
      for (fb::uoffset_t i = 0; i < content->size(); ++i) {
        const auto* part = content->Get(i);
        auto at = [i](std::string_view field) {
          return [i, field] { return join(indexed("payload.content", i), field); };
        };
        // `kind` is not checked: ContentKind may gain members, and an unknown kind is carried, not interpreted.
        SF_TRY(text(part->text(), at("text")));
        SF_TRY(text(part->media_type(), at("media_type")));
      }
    }
    if (const auto* calls = p->tool_calls(); calls != nullptr && calls->size() > 0) {
      if (p->role() != sch::Role::assistant) {
        return std::string("payload.tool_calls: only allowed when role is assistant");
      }
      for (fb::uoffset_t i = 0; i < calls->size(); ++i) {
        const auto* call = calls->Get(i);
        auto at = [i](std::string_view field) {
          return [i, field] { return join(indexed("payload.tool_calls", i), field); };
        };
        SF_TRY(non_empty(call->id(), at("id")));
        SF_TRY(non_empty(call->name(), at("name")));
        SF_TRY(text(call->arguments(), at("arguments")));
      }
    }
    const fb::String* call_id = p->tool_call_id();
    if (p->role() == sch::Role::tool) {
      if (call_id == nullptr || call_id->size() == 0) {
        return std::string("payload.tool_call_id: required when role is tool");
      }
    } else if (call_id != nullptr && call_id->size() > 0) {
      return std::string("payload.tool_call_id: only allowed when role is tool");
    }
    SF_TRY(text(call_id, "payload.tool_call_id"));
    return text(p->name(), "payload.name");
  }

  std::size_t _budget;
};

// Runs after the Verifier refused a buffer, to say where: the same checks as the generated Event::Verify, one field
// at a time. Mirrors events_generated.h; if the schema gains envelope fields the generic message still applies.
std::string diagnose(std::span<const std::uint8_t> bytes) {
  fb::Verifier v(bytes.data(), bytes.size(), verifier_options());
  const fb::uoffset_t root = v.VerifyOffset(0);
  if (root == 0) return "flatbuffers: root offset out of bounds";
  const auto* table = reinterpret_cast<const fb::Table*>(bytes.data() + root);
  if (!table->VerifyTableStart(v)) return "flatbuffers: root table out of bounds or malformed";

  using E = sch::Event;
  struct StringField {
    const char* name;
    fb::voffset_t vt;
    bool required;
  };
  const StringField strings[] = {{"event_id", E::VT_EVENT_ID, true},
                                 {"session_id", E::VT_SESSION_ID, true},
                                 {"source", E::VT_SOURCE, false},
                                 {"correlation_id", E::VT_CORRELATION_ID, false},
                                 {"causation_id", E::VT_CAUSATION_ID, false},
                                 {"expected_previous_event_id", E::VT_EXPECTED_PREVIOUS_EVENT_ID, false}};
  for (const auto& f : strings) {
    if (table->GetOptionalFieldOffset(f.vt) == 0) {
      if (f.required) return std::string(f.name) + ": missing (required)";
      continue;
    }
    if (!table->VerifyOffset(v, f.vt) || !v.VerifyString(table->GetPointer<const fb::String*>(f.vt))) {
      return std::string(f.name) + ": string out of bounds or not terminated";
    }
  }
  if (!table->VerifyField<std::uint64_t>(v, E::VT_EXPECTED_VERSION, 8)) {
    return "expected_version: out of bounds or misaligned";
  }
  if (!table->VerifyField<std::int64_t>(v, E::VT_OCCURRED_AT_US, 8)) {
    return "occurred_at_us: out of bounds or misaligned";
  }
  if (!table->VerifyField<std::uint8_t>(v, E::VT_PAYLOAD_TYPE, 1)) return "payload_type: out of bounds";
  if (table->GetOptionalFieldOffset(E::VT_PAYLOAD) == 0) return "payload: missing (required)";
  if (!table->VerifyOffset(v, E::VT_PAYLOAD)) return "payload: offset out of bounds";
  const auto type = static_cast<sch::Payload>(table->GetField<std::uint8_t>(E::VT_PAYLOAD_TYPE, 0));
  if (!sch::VerifyPayload(v, table->GetPointer<const void*>(E::VT_PAYLOAD), type)) {
    return "payload: " + payload_type_name(static_cast<std::uint8_t>(type)) +
           " table malformed, truncated or nested too deep";
  }
  return "flatbuffers: verification failed (malformed or truncated buffer)";
}

}  // namespace

std::optional<std::string> verify_structure(std::span<const std::uint8_t> bytes) {
  constexpr std::size_t kHeader = sizeof(fb::uoffset_t) + fb::kFileIdentifierLength;
  if (bytes.size() < kHeader) {
    return "flatbuffers: record too short (" + std::to_string(bytes.size()) + " bytes)";
  }
  if (bytes.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) return std::string("flatbuffers: record too large");
  const char* identifier = sch::EventIdentifier();
  if (std::memcmp(bytes.data() + sizeof(fb::uoffset_t), identifier, fb::kFileIdentifierLength) != 0) {
    std::string_view got(reinterpret_cast<const char*>(bytes.data()) + sizeof(fb::uoffset_t),
                         fb::kFileIdentifierLength);
    return "flatbuffers: file identifier is " + quoted(got) + ", expected \"" + identifier + "\"";
  }
  fb::Verifier v(bytes.data(), bytes.size(), verifier_options());
  if (!sch::VerifyEventBuffer(v)) return diagnose(bytes);
  return std::nullopt;
}

base::Result<EventId> check_event(std::span<const std::uint8_t> bytes, std::optional<std::string_view> kafka_key) {
  if (auto problem = verify_structure(bytes)) return base::make_error(std::move(*problem));
  EventId id{};
  Validator validator(bytes.size());
  if (auto problem = validator.event(*sch::GetEvent(bytes.data()), kafka_key, id)) {
    return base::make_error(std::move(*problem));
  }
  return id;
}

bool is_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    // ASCII runs, 8 bytes at a time.
    while (i + 8 <= n) {
      std::uint64_t chunk;
      std::memcpy(&chunk, s + i, 8);
      if (chunk & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;  // overlong
      if (c == 0xed) hi = 0x9f;  // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;  // overlong
      if (c == 0xf4) hi = 0x8f;  // above U+10FFFF
    } else {
      return false;
    }
    if (n - i < len) return false;
    if (s[i + 1] < lo || s[i + 1] > hi) return false;
    for (std::size_t k = 2; k < len; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

std::string quoted(std::string_view text) {
  constexpr std::size_t kShown = 64;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  std::size_t i = 0;
  for (; i < text.size() && i < kShown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else if (c >= 0x80) {
          // Copy a whole UTF-8 sequence if it is one, else show the byte.
          std::size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
          if (len > 1 && i + len <= text.size() && is_utf8(text.substr(i, len))) {
            out.append(text.substr(i, len));
            i += len - 1;
          } else {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
          }
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  if (i < text.size()) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace statefold::codec::internal
