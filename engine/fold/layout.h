// The RocksDB key layout of session state. Every key starts with a one-byte tag; per-session keys continue with
// the session id and a NUL separator (session ids never contain NUL), so one session's keys are contiguous and a
// fold touches only the few keys an event changes: the cost of an event does not grow with the session.
//
//   h<sid>                      SessionHeader       (version, hashes, counters, config)
//   e<sid>\0<be64 version>      HistoryEntry        (the accepted event, its offset and chain hash)
//   i<sid>\0<16-byte event id>  be64 version        (duplicate detection, kept for the session's whole life)
//   m<sid>\0<label>             MemoryEntry
//   r<sid>\0<be64 seq>          Refusal             (duplicates and rejections, in order)
//   c<sid>\0<be64 version>      SessionCheckpoint   (every kCheckpointInterval versions, for time travel)
//   u<tenant>\0<YYYY-MM-DD>\0<caller>\0<model>   Usage (parts escaped: \1 -> \1\1, \0 -> \1\2)
//   g                           StoreSummary
//   o<be32 partition>           be64 next offset    (written by the store, in the same batch)
//   v                           schema version      (written by the store)
//   n                           be64 partition count of the topic (written by the store)
//
// State is kept per partition of the event topic (store/store.h): a session's keys, and each partition's usage rows,
// summary and offset, live with the partition the session's events are on, so that a partition's state can be
// taken, dropped, shipped and restored as a unit. The same key (a usage row, the summary) may then exist once per
// partition; a reader of the whole store sees their sum (fold::merge_summaries, fold::visit_usage).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace statefold::fold {

// Bumped whenever the layout or a stored table changes incompatibly; a store of another version is refused.
// 2: last_event_id in the header and its state hash. 3: session checkpoints; history entries carry refusal counts
// and, once erased, the original event's digest. 4: usage rows per tenant, day, API key and model, from receipts
// (a store of version 3 lacks them: rebuild it with `statefold replay`). 5: state per partition (a RocksDB column
// family each), usage rows and the summary counted per partition.
inline constexpr std::uint32_t kStateSchemaVersion = 5;

// A session's state is checkpointed every this many versions, so a read of any past version refolds fewer than
// this many events from history: time travel costs the same at version 10 and version 10,000. Each checkpoint
// holds the header and the memory entries, written once per interval (a small share of the fold's writes).
inline constexpr std::uint64_t kCheckpointInterval = 64;

namespace key {
inline constexpr char kHeader = 'h';
inline constexpr char kHistory = 'e';
inline constexpr char kEventId = 'i';
inline constexpr char kMemory = 'm';
inline constexpr char kRefusal = 'r';
inline constexpr char kCheckpoint = 'c';
inline constexpr char kUsage = 'u';
inline constexpr std::string_view kSummary = "g";
inline constexpr char kOffset = 'o';
inline constexpr std::string_view kSchemaVersion = "v";
inline constexpr std::string_view kPartitionCount = "n";

std::string header(std::string_view session_id);
std::string history(std::string_view session_id, std::uint64_t version);
std::string history_prefix(std::string_view session_id);
std::string event_id(std::string_view session_id, std::span<const std::uint8_t> id);
std::string memory(std::string_view session_id, std::string_view label);
std::string memory_prefix(std::string_view session_id);
std::string refusal(std::string_view session_id, std::uint64_t seq);
std::string refusal_prefix(std::string_view session_id);
std::string checkpoint(std::string_view session_id, std::uint64_t version);
std::string checkpoint_prefix(std::string_view session_id);
std::string offset(std::int32_t partition);
// A session's tenant: its id up to the first '/' ("" when it has none), as auth::Principal names namespaces.
std::string_view tenant_of(std::string_view session_id);
std::string usage(std::string_view tenant, std::string_view day, std::string_view caller, std::string_view model);
std::string usage_prefix(std::string_view tenant);  // one tenant's rows, in day order

void append_be64(std::string& out, std::uint64_t v);
std::uint64_t read_be64(std::string_view bytes);  // the first 8 bytes
std::int32_t partition_of_offset_key(std::string_view key);
// The session a per-session key (h, e, i, m, r, c) belongs to; nullopt for the store-wide ones. For a prefix of a
// per-session key, the session it names once the prefix reaches the separator (a header prefix never does: it may
// be the start of many ids).
std::optional<std::string_view> session_of(std::string_view key);
std::optional<std::string_view> session_of_prefix(std::string_view prefix);
}  // namespace key

}  // namespace statefold::fold
