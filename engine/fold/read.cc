#include "engine/fold/read.h"

#include <algorithm>

#include "engine/fold/internal/stored.h"
#include "engine/fold/layout.h"

namespace statefold::fold {

namespace {

// Where a damaged value sits, in words: the keys themselves hold binary versions and NUL separators.
base::Error damaged(std::string_view what, std::string_view where) {
  return base::make_error("corrupt stored " + std::string(what) + " " + std::string(where) +
                          ": it does not verify as FlatBuffers");
}

std::string of_session(std::string_view session_id) { return "of session " + std::string(session_id); }

std::string at_version(std::string_view session_id, std::uint64_t version) {
  return of_session(session_id) + " at version " + std::to_string(version);
}

std::span<const std::uint8_t> bytes_of(const flatbuffers::Vector<std::uint8_t>* v) {
  return v == nullptr ? std::span<const std::uint8_t>() : std::span<const std::uint8_t>(v->data(), v->size());
}

// A history entry and the event inside it, both verified; nullptr when either does not.
const state::HistoryEntry* verified_history(std::string_view value, const schema::Event** event) {
  const auto* entry = detail::verify_root<state::HistoryEntry>(value);
  if (entry == nullptr || entry->event() == nullptr) return nullptr;
  const auto bytes = bytes_of(entry->event());
  *event = detail::verify_root<schema::Event>(
      std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  return *event == nullptr ? nullptr : entry;
}

}  // namespace

base::Result<std::optional<state::SessionHeaderT>> read_header(const Reader& reader, std::string_view session_id) {
  auto bytes = reader.get(key::header(session_id));
  if (!bytes) return std::optional<state::SessionHeaderT>();
  const auto* root = detail::verify_root<state::SessionHeader>(*bytes);
  if (root == nullptr) return damaged("session header", of_session(session_id));
  state::SessionHeaderT header;
  root->UnPackTo(&header);
  return std::optional<state::SessionHeaderT>(std::move(header));
}

base::Result<state::StoreSummaryT> read_summary(const Reader& reader) {
  state::StoreSummaryT summary;
  if (auto bytes = reader.get(key::kSummary)) {
    const auto* root = detail::verify_root<state::StoreSummary>(*bytes);
    if (root == nullptr) return damaged("store summary", "of the store");
    root->UnPackTo(&summary);
  }
  if (summary.store_hash.size() != 32) summary.store_hash.assign(32, 0);
  return summary;
}

base::Result<bool> visit_sessions(
    const Reader& reader, std::string_view id_prefix, std::string_view after, std::uint64_t limit,
    const std::function<void(std::string_view session_id, const state::SessionHeaderT& header)>& visit,
    Sessions which) {
  const std::string prefix = key::header(id_prefix);
  std::string start = after.empty() ? prefix : key::header(after);
  if (!after.empty()) start.push_back('\0');  // strictly after
  std::uint64_t visited = 0;
  bool more = false;
  std::optional<base::Error> error;
  reader.scan(prefix, start, [&](std::string_view k, std::string_view value) {
    const std::string_view id = k.substr(1);
    const auto* root = detail::verify_root<state::SessionHeader>(value);
    if (root == nullptr) {
      error = damaged("session header", of_session(id));
      return false;
    }
    if (which == Sessions::begun && root->version() == 0) return true;
    if (visited >= limit) {
      more = true;
      return false;
    }
    state::SessionHeaderT header;
    root->UnPackTo(&header);
    ++visited;
    visit(id, header);
    return true;
  });
  if (error) return *error;
  return more;
}

base::Result<std::optional<std::uint64_t>> visit_history(const Reader& reader, std::string_view session_id,
                                                         const HistoryBounds& bounds,
                                                         const std::function<bool(const HistoryRecord&)>& visit) {
  const std::string prefix = key::history_prefix(session_id);
  std::uint64_t visited = 0;
  std::optional<std::uint64_t> next;
  std::optional<base::Error> error;
  reader.scan(prefix, key::history(session_id, std::max<std::uint64_t>(1, bounds.from)),
              [&](std::string_view k, std::string_view value) {
                const std::uint64_t version = key::read_be64(k.substr(prefix.size()));
                if (version > bounds.through) return false;
                if (visited >= bounds.limit) {
                  next = version;
                  return false;
                }
                const schema::Event* event = nullptr;
                const auto* entry = verified_history(value, &event);
                if (entry == nullptr) {
                  error = damaged("history entry", at_version(session_id, version));
                  return false;
                }
                ++visited;
                return visit(HistoryRecord{*entry, *event, bytes_of(entry->event())});
              });
  if (error) return *error;
  return next;
}

std::optional<std::uint64_t> version_of_event(const Reader& reader, std::string_view session_id,
                                             std::span<const std::uint8_t> event_id) {
  auto bytes = reader.get(key::event_id(session_id, event_id));
  if (!bytes || bytes->size() < 8) return std::nullopt;
  return key::read_be64(*bytes);
}

base::Result<std::optional<state::HistoryEntryT>> read_history_entry(const Reader& reader,
                                                                   std::string_view session_id,
                                                                   std::uint64_t version) {
  auto bytes = reader.get(key::history(session_id, version));
  if (!bytes) return std::optional<state::HistoryEntryT>();
  const schema::Event* event = nullptr;
  const auto* entry = verified_history(*bytes, &event);
  if (entry == nullptr) return damaged("history entry", at_version(session_id, version));
  state::HistoryEntryT out;
  entry->UnPackTo(&out);
  return std::optional<state::HistoryEntryT>(std::move(out));
}

base::Result<std::vector<MemoryItem>> read_memory(const Reader& reader, std::string_view session_id) {
  const std::string prefix = key::memory_prefix(session_id);
  std::vector<MemoryItem> items;
  std::optional<base::Error> error;
  reader.scan(prefix, [&](std::string_view k, std::string_view value) {
    const std::string_view label = k.substr(prefix.size());
    const auto* entry = detail::verify_root<state::MemoryEntry>(value);
    if (entry == nullptr) {
      error = damaged("memory entry", of_session(session_id) + " labelled \"" + std::string(label) + "\"");
      return false;
    }
    items.push_back({std::string(label), entry->value() == nullptr ? std::string() : entry->value()->str(),
                     entry->pinned(), entry->version()});
    return true;
  });
  if (error) return *error;
  return items;
}

base::Result<std::vector<state::RefusalT>> read_refusals(const Reader& reader, std::string_view session_id,
                                                         std::uint64_t from, std::uint64_t limit) {
  const std::string prefix = key::refusal_prefix(session_id);
  std::vector<state::RefusalT> refusals;
  std::optional<base::Error> error;
  reader.scan(prefix, key::refusal(session_id, std::max<std::uint64_t>(1, from)), [&](std::string_view k, std::string_view value) {
    if (refusals.size() >= limit) return false;
    const auto* root = detail::verify_root<state::Refusal>(value);
    if (root == nullptr) {
      error = damaged("refusal", of_session(session_id) + " number " +
                                     std::to_string(key::read_be64(k.substr(prefix.size()))));
      return false;
    }
    root->UnPackTo(&refusals.emplace_back());
    return true;
  });
  if (error) return *error;
  return refusals;
}

base::Result<void> visit_usage(const Reader& reader, std::optional<std::string_view> tenant,
                               std::string_view from_day, std::string_view through_day,
                               const std::function<void(const state::UsageT&)>& visit) {
  const std::string prefix = tenant ? key::usage_prefix(*tenant) : std::string(1, key::kUsage);
  // One tenant's rows are in day order, so its scan starts at the first day; every tenant's is read whole.
  const std::string start = tenant ? key::usage_prefix(*tenant) + std::string(from_day) : prefix;
  // Each partition counts its own sessions' receipts, so a whole-store reader meets a row once per partition that
  // has it, one after another: they are added up into one.
  std::optional<base::Error> error;
  std::string pending_key;
  std::optional<state::UsageT> pending;
  auto flush = [&] {
    if (pending) visit(*pending);
    pending.reset();
  };
  reader.scan(prefix, start, [&](std::string_view k, std::string_view value) {
    const auto* root = detail::verify_root<state::Usage>(value);
    if (root == nullptr) {
      error = damaged("usage row", tenant ? "of tenant \"" + std::string(*tenant) + "\"" : std::string("of the store"));
      return false;
    }
    const std::string_view day = root->day() ? root->day()->string_view() : std::string_view();
    if (day > through_day) return !tenant.has_value();  // one tenant: past the last day, done
    if (day < from_day) return true;
    if (pending && k == pending_key) {
      pending->calls += root->calls();
      pending->failed += root->failed();
      pending->input_tokens += root->input_tokens();
      pending->output_tokens += root->output_tokens();
      pending->cached_tokens += root->cached_tokens();
      return true;
    }
    flush();
    pending_key.assign(k);
    root->UnPackTo(&pending.emplace());
    return true;
  });
  if (error) return *error;
  flush();
  return {};
}

base::Result<state::UsageT> sum_usage(const Reader& reader, std::optional<std::string_view> tenant,
                                      std::string_view from_day, std::string_view through_day,
                                      std::string_view caller) {
  state::UsageT sum;
  auto read = visit_usage(reader, tenant, from_day, through_day, [&](const state::UsageT& row) {
    if (row.caller != caller) return;
    sum.calls += row.calls;
    sum.failed += row.failed;
    sum.input_tokens += row.input_tokens;
    sum.output_tokens += row.output_tokens;
    sum.cached_tokens += row.cached_tokens;
  });
  if (!read) return read.error();
  return sum;
}

base::Result<std::uint64_t> budget_tokens(const Reader& reader, std::optional<std::string_view> tenant,
                                          std::string_view from_day, std::string_view through_day,
                                          std::string_view caller) {
  auto sum = sum_usage(reader, tenant, from_day, through_day, caller);
  if (!sum) return sum.error();
  return sum->input_tokens + sum->output_tokens;
}

}  // namespace statefold::fold
