#include "engine/codec/codec.h"

#include <array>
#include <stdexcept>
#include <utility>

#include "engine/base/hex.h"
#include "engine/codec/internal/json_form.h"
#include "engine/codec/internal/validate.h"
#include "statefold/schema/events_generated.h"

namespace statefold::codec {

namespace {


char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

}  // namespace

Event::Event(std::vector<std::uint8_t> canonical, EventId id) : _canonical(std::move(canonical)), _id(id) {}

const schema::Event& Event::root() const { return *schema::GetEvent(_canonical.data()); }

std::string_view Event::session_id() const {
  const auto* id = root().session_id();  // required: the Verifier saw it
  return id != nullptr ? std::string_view(id->c_str(), id->size()) : std::string_view();
}

std::optional<std::uint64_t> Event::expected_version() const {
  const auto v = root().expected_version();
  if (!v) return std::nullopt;
  return *v;
}

std::uint8_t Event::payload_type() const { return static_cast<std::uint8_t>(root().payload_type()); }

bool Event::payload_known() const {
  const std::uint8_t type = payload_type();
  return type != static_cast<std::uint8_t>(schema::Payload::NONE) &&
         type <= static_cast<std::uint8_t>(schema::Payload::MAX);
}

Encoding encoding_for_content_type(std::optional<std::string_view> content_type) {
  if (!content_type) return Encoding::flatbuffers;
  const std::string_view media = trim(content_type->substr(0, content_type->find(';')));
  if (media.size() != kJsonContentType.size()) return Encoding::flatbuffers;
  for (std::size_t i = 0; i < media.size(); ++i) {
    if (lower(media[i]) != kJsonContentType[i]) return Encoding::flatbuffers;
  }
  return Encoding::json;
}

base::Result<Event> decode(std::span<const std::uint8_t> value, Encoding encoding,
                           std::optional<std::string_view> kafka_key) {
  std::vector<std::uint8_t> bytes;
  if (encoding == Encoding::json) {
    auto parsed = internal::parse_json(std::string_view(reinterpret_cast<const char*>(value.data()), value.size()));
    if (!parsed) return parsed.error();
    bytes = std::move(parsed).value();
  } else {
    // Copied before verifying: the Verifier and the accessors need the builder's alignment, which a Kafka payload
    // pointer does not promise; the event owns its bytes anyway.
    bytes.assign(value.begin(), value.end());
  }
  auto id = internal::check_event(bytes, kafka_key);
  if (!id) return id.error();
  return Event(std::move(bytes), id.value());
}

base::Result<std::vector<std::uint8_t>> json_to_flatbuffers(std::string_view json) {
  auto parsed = internal::parse_json(json);
  if (!parsed) return parsed.error();
  auto id = internal::check_event(parsed.value(), std::nullopt);
  if (!id) return id.error();
  return std::move(parsed).value();
}

std::string to_json(const Event& event) { return internal::render_json(event.canonical(), event.payload_known()); }

std::string flatbuffers_to_json(std::span<const std::uint8_t> canonical) {
  // Bytes from the store were verified when they were accepted; checking the structure again is cheap and keeps a
  // corrupted entry from being read out of bounds.
  std::vector<std::uint8_t> aligned;
  if (reinterpret_cast<std::uintptr_t>(canonical.data()) % 8 != 0) {
    aligned.assign(canonical.begin(), canonical.end());
    canonical = aligned;
  }
  if (auto problem = internal::verify_structure(canonical)) {
    throw std::invalid_argument("codec::flatbuffers_to_json: not a verified event: " + *problem);
  }
  const auto type = static_cast<std::uint8_t>(schema::GetEvent(canonical.data())->payload_type());
  const bool known = type != 0 && type <= static_cast<std::uint8_t>(schema::Payload::MAX);
  return internal::render_json(canonical, known);
}

namespace {
// Hex digit values by byte, 0xff for anything else: one load per character on a path every record takes.
constexpr std::array<std::uint8_t, 256> kNibble = [] {
  std::array<std::uint8_t, 256> t{};
  t.fill(0xff);
  for (int c = 0; c < 10; ++c) t['0' + c] = static_cast<std::uint8_t>(c);
  for (int c = 0; c < 6; ++c) {
    t['a' + c] = static_cast<std::uint8_t>(10 + c);
    t['A' + c] = static_cast<std::uint8_t>(10 + c);
  }
  return t;
}();
}  // namespace

std::optional<EventId> parse_event_id(std::string_view text) {
  // Straight into the 16 bytes: this runs for every record the engine folds.
  if (text.size() != 32 && text.size() != 36) return std::nullopt;
  if (text.size() == 36 && (text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-')) {
    return std::nullopt;
  }
  EventId id{};
  std::uint8_t bad = 0;
  std::size_t i = 0;
  for (std::size_t byte = 0; byte < id.size(); ++byte) {
    if (text.size() == 36 && (i == 8 || i == 13 || i == 18 || i == 23)) ++i;
    const std::uint8_t hi = kNibble[static_cast<std::uint8_t>(text[i])];
    const std::uint8_t lo = kNibble[static_cast<std::uint8_t>(text[i + 1])];
    bad |= hi | lo;
    id[byte] = static_cast<std::uint8_t>(hi << 4 | (lo & 0x0f));
    i += 2;
  }
  if (bad & 0xf0) return std::nullopt;  // a byte that is no hex digit (dashes included, in the plain form)
  return id;
}

std::string event_id_to_string(const EventId& id) { return base::to_hex(std::span<const std::uint8_t>(id)); }

std::vector<std::uint64_t> withdraw_versions(const schema::SessionAmended& amended) {
  std::vector<std::uint64_t> out;
  const auto* versions = amended.withdraw_versions();
  if (versions == nullptr) return out;
  out.reserve(versions->size());
  const std::uint8_t* data = versions->Data();
  // ReadScalar copes with any alignment (and byte order); the vector's own iterator does not.
  for (flatbuffers::uoffset_t i = 0; i < versions->size(); ++i) {
    out.push_back(flatbuffers::ReadScalar<std::uint64_t>(data + i * sizeof(std::uint64_t)));
  }
  return out;
}

std::string payload_type_name(std::uint8_t type) {
  if (type <= static_cast<std::uint8_t>(schema::Payload::MAX)) {
    return schema::EnumNamePayload(static_cast<schema::Payload>(type));
  }
  return "unknown(" + std::to_string(type) + ")";
}

}  // namespace statefold::codec
