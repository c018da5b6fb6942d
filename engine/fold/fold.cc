#include "engine/fold/fold.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "engine/base/hex.h"
#include "engine/base/time.h"
#include "engine/fold/internal/stored.h"
#include "statefold/schema/events_generated.h"

namespace statefold::fold {

namespace {

using base::Digest;

Digest to_digest(const std::vector<std::uint8_t>& bytes) {
  Digest d{};
  if (bytes.size() == d.size()) std::copy(bytes.begin(), bytes.end(), d.begin());
  return d;
}

std::vector<std::uint8_t> from_digest(const Digest& d) { return {d.begin(), d.end()}; }

void xor_into(std::vector<std::uint8_t>& acc, const Digest& d) {
  if (acc.size() != d.size()) acc.assign(d.size(), 0);
  for (std::size_t i = 0; i < d.size(); ++i) acc[i] ^= d[i];
}

std::string finished_bytes(const flatbuffers::FlatBufferBuilder& builder) {
  return {reinterpret_cast<const char*>(builder.GetBufferPointer()), builder.GetSize()};
}

// The batch's one builder is reused: a fresh builder per write was an allocation and a regrowth per event.
template <typename T>
std::string pack(flatbuffers::FlatBufferBuilder& builder, const T& object) {
  builder.Clear();
  builder.Finish(T::TableType::Pack(builder, &object));
  return finished_bytes(builder);
}

using detail::verified_root;

Digest memory_term(std::string_view label, std::string_view value, bool pinned) {
  return base::Sha256().update_framed(label).update_framed(value).update_u64(pinned ? 1 : 0).finish();
}

std::string_view sv(const flatbuffers::String* s) { return s == nullptr ? std::string_view() : s->string_view(); }

// A session's metadata as the header keeps it: canonical key\0value\0 pairs in the order given; rendering to
// JSON happens in views.
std::string stored_metadata(const flatbuffers::Vector<flatbuffers::Offset<schema::KeyValue>>* pairs) {
  std::string metadata;
  if (pairs == nullptr) return metadata;
  for (const auto* kv : *pairs) {
    metadata.append(sv(kv->key())).push_back('\0');
    metadata.append(sv(kv->value())).push_back('\0');
  }
  return metadata;
}

std::optional<codec::EventId> previous_event_id(const state::SessionHeaderT& h) {
  if (h.last_event_id.size() != 16) return std::nullopt;
  codec::EventId id{};
  std::copy(h.last_event_id.begin(), h.last_event_id.end(), id.begin());
  return id;
}

}  // namespace

std::string_view outcome_name(Outcome outcome) {
  switch (outcome) {
    case Outcome::accepted: return "accepted";
    case Outcome::duplicate: return "duplicate";
    case Outcome::rejected: return "rejected";
  }
  return "unknown";
}

struct Folder::Session {
  std::string id;
  state::SessionHeaderT header;
  bool existed = false;
  Digest state_hash_before{};
  bool dirty = false;
};

Folder::Folder(const Reader& base) : _base(base) {}
Folder::~Folder() = default;

std::optional<std::string> Folder::read(std::string_view key) const {
  if (const auto* pending = _writes.find(key)) {
    if (!*pending) return std::nullopt;
    return std::string(**pending);
  }
  return _base.get(key);
}

Folder::Session& Folder::session(std::string_view session_id) {
  auto it = _sessions.find(session_id);
  if (it != _sessions.end()) return *it->second;
  auto s = std::make_unique<Session>();
  s->id = std::string(session_id);
  if (auto header = load_header(_base, session_id)) {
    s->header = std::move(*header);
    s->existed = true;
    s->state_hash_before = to_digest(s->header.state_hash);
  }
  return *_sessions.emplace(s->id, std::move(s)).first->second;
}

void Folder::refuse(Session& s, const codec::Event& event, const Position& position, Outcome kind,
                    std::uint64_t duplicate_of, const std::string& reason) {
  state::RefusalT refusal;
  refusal.kind = static_cast<std::uint8_t>(kind);
  refusal.event_id.assign(event.id().begin(), event.id().end());
  refusal.partition = position.partition;
  refusal.offset = position.offset;
  refusal.expected_version = event.expected_version().value_or(0);
  refusal.actual_version = s.header.version;
  refusal.duplicate_of = duplicate_of;
  refusal.reason = reason;
  if (kind == Outcome::duplicate) {
    ++s.header.duplicates;
    ++_summary.duplicates;
  } else {
    ++s.header.rejections;
    ++_summary.rejections;
  }
  _writes.put(key::refusal(s.id, s.header.duplicates + s.header.rejections), pack(_builder, refusal));
  s.dirty = true;
  _summary_dirty = true;
}

std::string Folder::unwithdrawable(const Session& s, const schema::SessionAmended& amended) const {
  for (const std::uint64_t v : codec::withdraw_versions(amended)) {
    if (v > s.header.version) {
      return "withdraw_versions: version " + std::to_string(v) + " is beyond the session's version " +
             std::to_string(s.header.version);
    }
    auto stored = read(key::history(s.id, v));
    if (!stored) return "withdraw_versions: version " + std::to_string(v) + " has no history entry";
    const auto* entry = verified_root<state::HistoryEntry>(*stored, "history entry");
    if (entry->payload_type() != static_cast<std::uint8_t>(schema::Payload::Message)) {
      return "withdraw_versions: version " + std::to_string(v) + " is a " +
             std::string(codec::payload_type_name(entry->payload_type())) + ", not a Message";
    }
  }
  return {};
}

Applied Folder::apply(const codec::Event& event, const Position& position) {
  if (!_summary_loaded) {
    _summary = load_summary(_base);
    _summary_loaded = true;
  }
  Session& s = session(event.session_id());
  auto& h = s.header;

  // Duplicates first: a re-sent event that carried an expected version is still the same event.
  const std::string id_key = key::event_id(s.id, event.id());
  if (auto seen = read(id_key)) {
    const std::uint64_t first = key::read_be64(*seen);
    std::string why = "event id already accepted at version " + std::to_string(first);
    refuse(s, event, position, Outcome::duplicate, first, why);
    return {Outcome::duplicate, h.version, first, std::move(why)};
  }
  std::string reason;
  const auto* expected_previous = event.root().expected_previous_event_id();
  if (auto expected = event.expected_version(); expected && *expected != h.version) {
    reason = "expected version " + std::to_string(*expected) + ", session is at version " + std::to_string(h.version);
  } else if (expected_previous != nullptr &&
             codec::parse_event_id(expected_previous->string_view()) != previous_event_id(h)) {
    reason = "expected the previous event to be " + expected_previous->str() + ", the session's last event is " +
             (h.last_event_id.empty() ? std::string("none") : base::to_hex(h.last_event_id));
  } else if (h.erased) {
    reason = "session is erased";
  } else if (h.closed && event.payload_type() != static_cast<std::uint8_t>(schema::Payload::ErasureRequest)) {
    reason = "session is closed";  // an erasure is still accepted: a closed session's content may be erased
  } else if (event.payload_type() == static_cast<std::uint8_t>(schema::Payload::SessionOpened) && h.opened) {
    reason = "session already opened";
  } else if (event.payload_type() == static_cast<std::uint8_t>(schema::Payload::Summary)) {
    const auto* summary = event.root().payload_as_Summary();
    if (summary->through_version() > h.version) {
      reason = "summary.through_version " + std::to_string(summary->through_version()) +
               " is beyond the session's version " + std::to_string(h.version);
    }
  } else if (event.payload_type() == static_cast<std::uint8_t>(schema::Payload::SessionAmended)) {
    reason = unwithdrawable(s, *event.root().payload_as_SessionAmended());
  }
  if (!reason.empty()) {
    refuse(s, event, position, Outcome::rejected, 0, reason);
    return {Outcome::rejected, h.version, 0, reason};
  }

  // Accepted: next version, chain link, history entry, dedupe entry, then the payload's own effect.
  const std::uint64_t version = ++h.version;
  const Digest event_digest = base::sha256(event.canonical());
  Digest chain = h.chain_hash.size() == 32 ? to_digest(h.chain_hash) : Digest{};
  chain = base::Sha256().update(chain).update(event_digest).finish();
  h.chain_hash = from_digest(chain);

  // The history entry is built straight from the event's bytes (the object API would copy them twice more). The
  // vectors are created in the order HistoryEntry::Pack creates them, so the bytes are the same as packing a
  // HistoryEntryT (tests/fold checks it).
  _builder.Clear();
  const auto chain_vector = _builder.CreateVector(h.chain_hash);
  const auto canonical = event.canonical();
  const auto event_vector = canonical.empty() ? flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>()
                                              : _builder.CreateVector(canonical.data(), canonical.size());
  _builder.Finish(state::CreateHistoryEntry(_builder, version, position.partition, position.offset,
                                            position.log_time_ms, chain_vector, event.payload_type(), event_vector,
                                            h.duplicates, h.rejections));
  _writes.put(key::history(s.id, version), finished_bytes(_builder));

  std::string version_bytes;
  key::append_be64(version_bytes, version);
  _writes.put(id_key, std::move(version_bytes));
  h.last_event_id.assign(event.id().begin(), event.id().end());

  const std::int64_t at = event.root().occurred_at_us();
  if (version == 1) h.first_occurred_at_us = at;
  h.last_occurred_at_us = at;

  apply_payload(s, event, version);
  if (version % kCheckpointInterval == 0) write_checkpoint(s, version);
  ++_summary.events_applied;
  s.dirty = true;
  _summary_dirty = true;
  return {Outcome::accepted, version, 0, {}};
}

void Folder::apply_payload(Session& s, const codec::Event& event, std::uint64_t version) {
  auto& h = s.header;
  const schema::Event& root = event.root();
  if (!event.payload_known()) {
    ++h.unknown_events;
    ++_summary.unknown_events;
    return;
  }
  switch (root.payload_type()) {
    case schema::Payload::SessionOpened: {
      const auto* p = root.payload_as_SessionOpened();
      h.opened = true;
      h.model = sv(p->model());
      h.system_prompt = sv(p->system_prompt());
      if (const auto* policy = p->policy()) {
        h.token_budget = policy->token_budget();
        h.output_reserve = policy->output_reserve();
        h.tokenizer = sv(policy->tokenizer());
        h.provider = sv(policy->provider());
      }
      h.parent_session_id = sv(p->parent_session_id());
      h.parent_version = p->parent_version();
      h.metadata_json = stored_metadata(p->metadata());
      break;
    }
    case schema::Payload::Message: {
      const auto* p = root.payload_as_Message();
      ++h.messages;
      if (p->tool_calls() != nullptr) h.tool_calls += p->tool_calls()->size();
      break;
    }
    case schema::Payload::MemorySet: {
      const auto* p = root.payload_as_MemorySet();
      const std::string k = key::memory(s.id, sv(p->label()));
      if (auto old = read(k)) {
        const auto* entry = verified_root<state::MemoryEntry>(*old, "memory entry");
        xor_into(h.memory_digest, memory_term(sv(p->label()), sv(entry->value()), entry->pinned()));
      } else {
        ++h.memory_entries;
      }
      xor_into(h.memory_digest, memory_term(sv(p->label()), sv(p->value()), p->pinned()));
      state::MemoryEntryT entry;
      entry.value = sv(p->value());
      entry.pinned = p->pinned();
      entry.version = version;
      _writes.put(k, pack(_builder, entry));
      break;
    }
    case schema::Payload::MemoryDelete: {
      // Deleting a label that is not set is accepted and changes nothing but the version.
      const auto* p = root.payload_as_MemoryDelete();
      const std::string k = key::memory(s.id, sv(p->label()));
      if (auto old = read(k)) {
        const auto* entry = verified_root<state::MemoryEntry>(*old, "memory entry");
        xor_into(h.memory_digest, memory_term(sv(p->label()), sv(entry->value()), entry->pinned()));
        --h.memory_entries;
        _writes.erase(k);
      }
      break;
    }
    case schema::Payload::Summary: {
      const auto* p = root.payload_as_Summary();
      h.summary = sv(p->text());
      h.summary_through = p->through_version();
      break;
    }
    case schema::Payload::InferenceReceipt: {
      const auto* p = root.payload_as_InferenceReceipt();
      ++h.receipts;
      if (const auto* usage = p->usage()) {
        h.input_tokens += usage->input_tokens();
        h.output_tokens += usage->output_tokens();
        h.cached_tokens += usage->cached_tokens();
      }
      count_usage(s.id, root);
      break;
    }
    case schema::Payload::SessionClosed:
      h.closed = true;
      break;
    case schema::Payload::ErasureRequest:
      h.erased = true;
      erase_content(s, version);
      break;
    case schema::Payload::Custom:
      ++h.custom_events;
      break;
    case schema::Payload::SessionAmended: {
      // The withdrawn messages need nothing here: their history entries stay, and context readers apply the
      // withdrawal when they reach this event (so a context rendered at an earlier version still has them).
      const auto* p = root.payload_as_SessionAmended();
      if (p->metadata() != nullptr) h.metadata_json = stored_metadata(p->metadata());
      break;
    }
    case schema::Payload::NONE:
      break;  // the codec refuses events without a payload
  }
}

Applied Folder::refold(const codec::Event& event, const Position& position, std::uint64_t duplicates,
                       std::uint64_t rejections) {
  Session& s = session(event.session_id());
  s.header.duplicates = duplicates;
  s.header.rejections = rejections;
  Applied applied = apply(event, position);
  if (applied.outcome != Outcome::accepted) {
    throw std::runtime_error("history of session " + s.id + " does not refold at version " +
                             std::to_string(s.header.version + 1) + ": " + applied.reason);
  }
  return applied;
}

std::map<std::string, std::string, std::less<>> Folder::merged_scan(std::string_view prefix) const {
  std::map<std::string, std::string, std::less<>> merged;
  _base.scan(prefix, [&](std::string_view k, std::string_view v) {
    merged.emplace(std::string(k), std::string(v));
    return true;
  });
  _writes.scan(prefix, prefix, [&](std::string_view k, const std::optional<std::string_view>& v) {
    if (v) {
      merged.insert_or_assign(std::string(k), std::string(*v));
    } else if (auto it = merged.find(k); it != merged.end()) {
      merged.erase(it);
    }
    return true;
  });
  return merged;
}

void Folder::write_checkpoint(Session& s, std::uint64_t version) {
  state::SessionCheckpointT checkpoint;
  checkpoint.version = version;
  state::SessionHeaderT header = s.header;
  header.state_hash = from_digest(state_hash(header));
  const std::string packed = pack(_builder, header);
  checkpoint.header.assign(packed.begin(), packed.end());
  const std::string prefix = key::memory_prefix(s.id);
  for (const auto& [k, v] : merged_scan(prefix)) {
    const auto* entry = verified_root<state::MemoryEntry>(v, "memory entry");
    auto m = std::make_unique<state::CheckpointMemoryT>();
    m->label = k.substr(prefix.size());
    m->value = sv(entry->value());
    m->pinned = entry->pinned();
    m->version = entry->version();
    checkpoint.memory.push_back(std::move(m));
  }
  _writes.put(key::checkpoint(s.id, version), pack(_builder, checkpoint));
}

// Erasure (docs/erasure.md): personal content leaves the session's state, history and checkpoints; versions,
// chain hashes, digests and counts stay, and each redacted history entry keeps its original event's digest so the
// chain still verifies against the log. Cost: one write per event of the session, once.
void Folder::erase_content(Session& s, std::uint64_t erasure_version) {
  auto& h = s.header;
  h.summary.clear();
  for (const auto& [k, v] : merged_scan(key::history_prefix(s.id))) {
    state::HistoryEntryT entry;
    verified_root<state::HistoryEntry>(v, "history entry")->UnPackTo(&entry);
    if (entry.redacted || entry.version >= erasure_version) continue;
    entry.event_digest = from_digest(base::sha256(entry.event));
    entry.event = codec::redact(entry.event);
    entry.redacted = true;
    _writes.put(k, pack(_builder, entry));
  }
  for (const auto& [k, v] : merged_scan(key::memory_prefix(s.id))) {
    state::MemoryEntryT entry;
    verified_root<state::MemoryEntry>(v, "memory entry")->UnPackTo(&entry);
    entry.value.clear();
    _writes.put(k, pack(_builder, entry));
  }
  for (const auto& [k, v] : merged_scan(key::checkpoint_prefix(s.id))) {
    state::SessionCheckpointT checkpoint;
    verified_root<state::SessionCheckpoint>(v, "session checkpoint")->UnPackTo(&checkpoint);
    state::SessionHeaderT header = decode_header(
        std::string_view(reinterpret_cast<const char*>(checkpoint.header.data()), checkpoint.header.size()));
    header.summary.clear();
    const std::string packed = pack(_builder, header);
    checkpoint.header.assign(packed.begin(), packed.end());
    for (auto& m : checkpoint.memory) m->value.clear();
    _writes.put(k, pack(_builder, checkpoint));
  }
}

void Folder::count_usage(std::string_view session_id, const schema::Event& root) {
  const auto* p = root.payload_as_InferenceReceipt();
  const std::string_view tenant = key::tenant_of(session_id);
  const std::string day = utc_day(root.occurred_at_us());
  const std::string_view caller = p->caller() ? p->caller()->string_view() : std::string_view();
  const std::string_view model = p->model() ? p->model()->string_view() : std::string_view();
  std::string k = key::usage(tenant, day, caller, model);
  auto it = _usage.find(k);
  if (it == _usage.end()) {
    state::UsageT row;
    if (auto stored = read(k)) {
      verified_root<state::Usage>(*stored, "usage row")->UnPackTo(&row);
    } else {
      row.tenant = std::string(tenant);
      row.day = day;
      row.caller = std::string(caller);
      row.model = std::string(model);
    }
    it = _usage.emplace(std::move(k), std::move(row)).first;
  }
  state::UsageT& row = it->second;
  ++row.calls;
  if (p->status() < 200 || p->status() > 299) ++row.failed;
  if (const auto* usage = p->usage()) {
    row.input_tokens += usage->input_tokens();
    row.output_tokens += usage->output_tokens();
    row.cached_tokens += usage->cached_tokens();
  }
}

std::string utc_day(std::int64_t us) {
  using namespace std::chrono;
  return base::utc_date(floor<days>(sys_time<microseconds>(microseconds(us))));
}

void Folder::record_dead_letter() {
  if (!_summary_loaded) {
    _summary = load_summary(_base);
    _summary_loaded = true;
  }
  ++_summary.dlq_records;
  _summary_dirty = true;
}

const WriteSet& Folder::finish() {
  for (auto& [id, s] : _sessions) {
    if (!s->dirty) continue;
    const Digest after = state_hash(s->header);
    s->header.state_hash = from_digest(after);
    if (s->existed) {
      xor_into(_summary.store_hash, store_hash_term(id, s->state_hash_before));
    } else {
      ++_summary.sessions;
    }
    xor_into(_summary.store_hash, store_hash_term(id, after));
    s->existed = true;
    s->state_hash_before = after;
    s->dirty = false;
    _writes.put(key::header(id), pack(_builder, s->header));
  }
  for (auto& [k, row] : _usage) _writes.put(k, pack(_builder, row));
  _usage.clear();
  if (_summary_dirty) {
    if (_summary.store_hash.empty()) _summary.store_hash.assign(32, 0);
    _writes.put(std::string(key::kSummary), pack(_builder, _summary));
    _summary_dirty = false;
  }
  return _writes;
}

std::vector<std::pair<std::string, std::string>> metadata_pairs(const state::SessionHeaderT& header) {
  std::vector<std::pair<std::string, std::string>> pairs;
  const std::string& m = header.metadata_json;
  for (std::size_t i = 0; i < m.size();) {
    const std::size_t k_end = m.find('\0', i);
    const std::size_t v_end = k_end == std::string::npos ? std::string::npos : m.find('\0', k_end + 1);
    if (v_end == std::string::npos) break;
    pairs.emplace_back(m.substr(i, k_end - i), m.substr(k_end + 1, v_end - k_end - 1));
    i = v_end + 1;
  }
  return pairs;
}

std::optional<state::SessionHeaderT> load_header(const Reader& reader, std::string_view session_id) {
  auto bytes = reader.get(key::header(session_id));
  if (!bytes) return std::nullopt;
  return decode_header(*bytes);
}

state::SessionHeaderT decode_header(std::string_view bytes) {
  state::SessionHeaderT header;
  verified_root<state::SessionHeader>(bytes, "session header")->UnPackTo(&header);
  return header;
}

state::StoreSummaryT decode_summary(std::string_view bytes) {
  state::StoreSummaryT summary;
  verified_root<state::StoreSummary>(bytes, "store summary")->UnPackTo(&summary);
  if (summary.store_hash.size() != 32) summary.store_hash.assign(32, 0);
  return summary;
}

state::StoreSummaryT load_summary(const Reader& reader) {
  if (auto bytes = reader.get(key::kSummary)) return decode_summary(*bytes);
  state::StoreSummaryT empty;
  empty.store_hash.assign(32, 0);
  return empty;
}

std::string merge_summaries(const std::vector<std::string>& parts) {
  state::StoreSummaryT total;
  total.store_hash.assign(32, 0);
  for (const std::string& bytes : parts) {
    flatbuffers::Verifier verifier(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    if (!verifier.VerifyBuffer<state::StoreSummary>(nullptr)) return bytes;
    state::StoreSummaryT part;
    flatbuffers::GetRoot<state::StoreSummary>(bytes.data())->UnPackTo(&part);
    total.sessions += part.sessions;
    total.events_applied += part.events_applied;
    total.duplicates += part.duplicates;
    total.rejections += part.rejections;
    total.unknown_events += part.unknown_events;
    total.dlq_records += part.dlq_records;
    if (part.store_hash.size() == 32) xor_into(total.store_hash, to_digest(part.store_hash));
  }
  flatbuffers::FlatBufferBuilder builder(256);
  return pack(builder, total);
}

Digest state_hash(const state::SessionHeaderT& h) {
  base::Sha256 d;
  d.update_framed("statefold.session.v1");
  d.update_u64(h.version);
  d.update(std::span<const std::uint8_t>(h.chain_hash));
  d.update_framed(std::string_view(reinterpret_cast<const char*>(h.memory_digest.data()), h.memory_digest.size()));
  for (const std::string* s : {&h.model, &h.system_prompt, &h.tokenizer, &h.provider, &h.parent_session_id,
                               &h.metadata_json, &h.summary}) {
    d.update_framed(*s);
  }
  for (std::uint64_t v : {std::uint64_t{h.token_budget}, std::uint64_t{h.output_reserve}, h.parent_version,
                          h.summary_through, h.messages, h.tool_calls, h.memory_entries, h.receipts,
                          h.custom_events, h.unknown_events, h.duplicates, h.rejections, h.input_tokens,
                          h.output_tokens, h.cached_tokens, static_cast<std::uint64_t>(h.first_occurred_at_us),
                          static_cast<std::uint64_t>(h.last_occurred_at_us)}) {
    d.update_u64(v);
  }
  d.update_u64((h.opened ? 1u : 0u) | (h.closed ? 2u : 0u) | (h.erased ? 4u : 0u));
  d.update_framed(std::string_view(reinterpret_cast<const char*>(h.last_event_id.data()), h.last_event_id.size()));
  return d.finish();
}

Digest store_hash_term(std::string_view session_id, const Digest& state_hash) {
  return base::Sha256().update_framed(session_id).update(state_hash).finish();
}

}  // namespace statefold::fold
