// Typed, verified reads of stored session state over any fold::Reader (a store, a snapshot, a MemoryKv, a
// SessionAsOf), so views, forks, materialise and audit neither build keys (layout.h) nor trust stored bytes. Every
// table is verified before use: a damaged value is a base::Error naming what it is and where, never a misread.
//
//   auto header = fold::read_header(reader, "chat-42");   // error: damaged; nullopt: no such session
//   auto next = fold::visit_history(reader, "chat-42", {.from = 1, .limit = 50},
//                                   [&](const fold::HistoryRecord& r) { show(r.version(), r.event); return true; });
//
// Thread-safety: stateless; as safe as the Reader it reads.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/result.h"
#include "engine/fold/kv.h"
#include "statefold/schema/events_generated.h"
#include "statefold/schema/state_generated.h"

namespace statefold::fold {

// nullopt: no such session.
[[nodiscard]] base::Result<std::optional<state::SessionHeaderT>> read_header(const Reader& reader,
                                                                           std::string_view session_id);

// A session has begun once one of its events was accepted. Before that its header only counts refusals (a
// conditional append to a session that does not exist yet): audit and verify see it, readers do not, so a
// refused write leaves no session behind.
inline bool begun(const state::SessionHeaderT& header) { return header.version > 0; }
enum class Sessions { begun, all };

// Store-wide counters; zeros (and a zero store hash of 32 bytes) before anything was folded.
[[nodiscard]] base::Result<state::StoreSummaryT> read_summary(const Reader& reader);

// Sessions whose id starts with `id_prefix`, in id order, strictly after `after` (from the first when empty), at
// most `limit` of them (only begun ones unless `which` is all). Returns whether more sessions follow the last one
// visited.
[[nodiscard]] base::Result<bool> visit_sessions(
    const Reader& reader, std::string_view id_prefix, std::string_view after, std::uint64_t limit,
    const std::function<void(std::string_view session_id, const state::SessionHeaderT& header)>& visit,
    Sessions which = Sessions::begun);

// One accepted event of a session's history, verified; valid only during the visit that hands it out.
struct HistoryRecord {
  const state::HistoryEntry& entry;
  const schema::Event& event;  // the stored event (redacted content once erased), verified as an Event
  std::span<const std::uint8_t> event_bytes;
  std::uint64_t version() const { return entry.version(); }
};

// Which versions a history read covers: from..through, at most `limit` entries (cost bounded by the page).
struct HistoryBounds {
  std::uint64_t from = 1;
  std::uint64_t through = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t limit = std::numeric_limits<std::uint64_t>::max();
};

// Visits the session's history entries within `bounds` in version order, until `visit` returns false. Returns the
// version a next page starts at when `limit` cut the read short, else nullopt. Entries are verified one at a time,
// so a damaged one stops the read with an error after the entries before it were visited.
[[nodiscard]] base::Result<std::optional<std::uint64_t>> visit_history(
    const Reader& reader, std::string_view session_id, const HistoryBounds& bounds,
    const std::function<bool(const HistoryRecord&)>& visit);

// The version that accepted the event with this id in the session (the dedupe index); nullopt when none did.
[[nodiscard]] std::optional<std::uint64_t> version_of_event(const Reader& reader, std::string_view session_id,
                                                            std::span<const std::uint8_t> event_id);

// The history entry at `version`; nullopt when there is none.
[[nodiscard]] base::Result<std::optional<state::HistoryEntryT>> read_history_entry(const Reader& reader,
                                                                                 std::string_view session_id,
                                                                                 std::uint64_t version);

struct MemoryItem {
  std::string label;
  std::string value;
  bool pinned = false;
  std::uint64_t version = 0;  // the version that set it
};

// The session's memory entries in label order.
[[nodiscard]] base::Result<std::vector<MemoryItem>> read_memory(const Reader& reader, std::string_view session_id);

// The session's refusals (duplicates and rejections) in the order they happened, from the `from`-th (1-based) on,
// at most `limit` of them.
[[nodiscard]] base::Result<std::vector<state::RefusalT>> read_refusals(
    const Reader& reader, std::string_view session_id, std::uint64_t from = 1,
    std::uint64_t limit = std::numeric_limits<std::uint64_t>::max());

// Usage rows (what the receipts recorded, per tenant, UTC day, API key and model) for the days from..through
// ("YYYY-MM-DD", both included), in tenant then day order: one tenant's, or every tenant's when `tenant` is nullopt.
[[nodiscard]] base::Result<void> visit_usage(const Reader& reader, std::optional<std::string_view> tenant,
                                             std::string_view from_day, std::string_view through_day,
                                             const std::function<void(const state::UsageT&)>& visit);
// The sum of the rows visit_usage gives whose caller is `caller` (tenant, day, caller and model left empty).
[[nodiscard]] base::Result<state::UsageT> sum_usage(const Reader& reader, std::optional<std::string_view> tenant,
                                                    std::string_view from_day, std::string_view through_day,
                                                    std::string_view caller);
// What a token budget counts: input + output tokens of sum_usage.
[[nodiscard]] base::Result<std::uint64_t> budget_tokens(const Reader& reader, std::optional<std::string_view> tenant,
                                                        std::string_view from_day, std::string_view through_day,
                                                        std::string_view caller);

}  // namespace statefold::fold
