// view: what `inspect` and the HTTP API show of the state, as JSON (stable field names, documented in
// docs/state.md) or as text for people. Reads only through fold::Reader, so it works on a live store, a read-only
// one, or a MemoryKv.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/result.h"
#include "engine/fold/kv.h"

namespace statefold::state {
struct UsageT;
}

namespace statefold::view {

struct SessionOptions {
  std::uint64_t max_messages = 1000;  // the newest ones; 0 = counts only
};

// nullopt when the session does not exist.
std::optional<std::string> session_json(const fold::Reader& reader, std::string_view session_id,
                                        const SessionOptions& options = {});
std::optional<std::string> session_text(const fold::Reader& reader, std::string_view session_id,
                                        const SessionOptions& options = {});

// The session as it was at a past `version` (time travel, fold::SessionAsOf: cost bounded by the checkpoint
// interval), with "as_of":{"version","current_version","redacted"} added to session_json's fields. Errors name
// the problem: no such session, or a version outside 1..current.
base::Result<std::string> session_json_at(const fold::Reader& reader, std::string_view session_id,
                                          std::uint64_t version, const SessionOptions& options = {});
base::Result<std::string> session_text_at(const fold::Reader& reader, std::string_view session_id,
                                          std::uint64_t version, const SessionOptions& options = {});

// One page of a session's history: {"session_id","version","events":[{"version","partition","offset",
// "log_time_ms","chain_hash","payload_type","event":{...}}],"next_from_version"} (next_from_version null at the
// end). nullopt when the session does not exist. Reads at most `limit` entries: cost bounded by the page.
std::optional<std::string> history_json(const fold::Reader& reader, std::string_view session_id,
                                        std::uint64_t from_version, std::uint64_t limit);

// Sessions whose id starts with `prefix`, after `cursor` (exclusive), at most `limit`:
// {"sessions":[{"session_id","version","status"}],"next_cursor"} (next_cursor null at the end).
std::string sessions_json(const fold::Reader& reader, std::string_view prefix, std::string_view cursor,
                          std::uint64_t limit);
// The same sessions one by one, with the status sessions_json shows ("open", "closed", or "implicit": events
// before any session-opened); whether more sessions follow the last one.
base::Result<bool> visit_session_rows(
    const fold::Reader& reader, std::string_view prefix, std::string_view cursor, std::uint64_t limit,
    const std::function<void(std::string_view session_id, std::uint64_t version, std::string_view status)>& visit);

// What the receipts recorded from `from_day` through `through_day` (YYYY-MM-DD, UTC): one tenant's rows, or every
// tenant's when `tenant` is nullopt. {"object":"list","from","to","data":[{"tenant","day","key","model","calls",
// "failed","input_tokens","output_tokens","cached_tokens"}],"totals":{"calls",...}}; "key" is the API key's name.
std::string usage_json(const fold::Reader& reader, std::optional<std::string_view> tenant, std::string_view from_day,
                       std::string_view through_day);
// The same answer for rows gathered elsewhere (a group's, cluster::GroupUsageRows), in the order given.
std::string usage_json(const std::vector<state::UsageT>& rows, std::string_view from_day, std::string_view through_day);

std::string summary_json(const fold::Reader& reader, const std::map<std::int32_t, std::int64_t>& offsets);
std::string summary_text(const fold::Reader& reader, const std::map<std::int32_t, std::int64_t>& offsets);

// The store hash (hex) alone: what equality tests and `verify` compare.
std::string store_hash_hex(const fold::Reader& reader);

}  // namespace statefold::view
