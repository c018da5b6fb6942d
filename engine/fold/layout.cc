#include "engine/fold/layout.h"

namespace statefold::fold::key {

namespace {
std::string session_prefix(char tag, std::string_view session_id) {
  std::string k;
  k.reserve(session_id.size() + 12);
  k.push_back(tag);
  k.append(session_id);
  k.push_back('\0');
  return k;
}
}  // namespace

void append_be64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

std::uint64_t read_be64(std::string_view bytes) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8 && i < bytes.size(); ++i) v = v << 8 | static_cast<std::uint8_t>(bytes[i]);
  return v;
}

std::string header(std::string_view session_id) {
  std::string k(1, kHeader);
  k.append(session_id);
  return k;
}

std::string history_prefix(std::string_view session_id) { return session_prefix(kHistory, session_id); }

std::string history(std::string_view session_id, std::uint64_t version) {
  std::string k = history_prefix(session_id);
  append_be64(k, version);
  return k;
}

std::string event_id(std::string_view session_id, std::span<const std::uint8_t> id) {
  std::string k = session_prefix(kEventId, session_id);
  k.append(reinterpret_cast<const char*>(id.data()), id.size());
  return k;
}

std::string memory_prefix(std::string_view session_id) { return session_prefix(kMemory, session_id); }

std::string memory(std::string_view session_id, std::string_view label) {
  std::string k = memory_prefix(session_id);
  k.append(label);
  return k;
}

std::string refusal_prefix(std::string_view session_id) { return session_prefix(kRefusal, session_id); }

std::string refusal(std::string_view session_id, std::uint64_t seq) {
  std::string k = refusal_prefix(session_id);
  append_be64(k, seq);
  return k;
}

std::string checkpoint_prefix(std::string_view session_id) { return session_prefix(kCheckpoint, session_id); }

std::string checkpoint(std::string_view session_id, std::uint64_t version) {
  std::string k = checkpoint_prefix(session_id);
  append_be64(k, version);
  return k;
}

std::string offset(std::int32_t partition) {
  std::string k(1, kOffset);
  auto p = static_cast<std::uint32_t>(partition);
  for (int shift = 24; shift >= 0; shift -= 8) k.push_back(static_cast<char>((p >> shift) & 0xff));
  return k;
}

std::string_view tenant_of(std::string_view session_id) {
  const auto slash = session_id.find('/');
  return slash == std::string_view::npos ? std::string_view() : session_id.substr(0, slash);
}

namespace {
// Escapes NUL so the separators stay unambiguous whatever a model or key name holds.
void append_part(std::string& k, std::string_view part) {
  for (char c : part) {
    if (c == '\1' || c == '\0') {
      k.push_back('\1');
      k.push_back(c == '\1' ? '\1' : '\2');
    } else {
      k.push_back(c);
    }
  }
  k.push_back('\0');
}
}  // namespace

std::string usage_prefix(std::string_view tenant) {
  std::string k(1, kUsage);
  append_part(k, tenant);
  return k;
}

std::string usage(std::string_view tenant, std::string_view day, std::string_view caller, std::string_view model) {
  std::string k = usage_prefix(tenant);
  append_part(k, day);
  append_part(k, caller);
  append_part(k, model);
  return k;
}

std::int32_t partition_of_offset_key(std::string_view key) {
  std::uint32_t p = 0;
  for (std::size_t i = 1; i < 5 && i < key.size(); ++i) p = p << 8 | static_cast<std::uint8_t>(key[i]);
  return static_cast<std::int32_t>(p);
}

namespace {
bool per_session_after_separator(char tag) {
  return tag == kHistory || tag == kEventId || tag == kMemory || tag == kRefusal || tag == kCheckpoint;
}
}  // namespace

std::optional<std::string_view> session_of(std::string_view key) {
  if (key.size() < 2) return std::nullopt;
  if (key[0] == kHeader) return key.substr(1);
  return session_of_prefix(key);
}

std::optional<std::string_view> session_of_prefix(std::string_view prefix) {
  if (prefix.size() < 2 || !per_session_after_separator(prefix[0])) return std::nullopt;
  const auto nul = prefix.find('\0', 1);
  if (nul == std::string_view::npos) return std::nullopt;
  return prefix.substr(1, nul - 1);
}

}  // namespace statefold::fold::key
