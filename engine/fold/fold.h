// fold: the pure function (state, event) -> state of spec section 3. No I/O, no clocks, no randomness: the same
// events over the same state always produce byte-identical writes.
//
//   fold::Folder folder(store);                 // store: any fold::Reader
//   for (auto& [event, pos] : batch) folder.apply(event, pos);
//   store.commit(folder.finish(), next_offsets);  // one atomic batch with the offsets
//
// Not thread-safe: one Folder per batch, on one thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/base/sha256.h"
#include "engine/codec/codec.h"
#include "engine/fold/kv.h"
#include "engine/fold/layout.h"
#include "statefold/schema/events_generated.h"
#include "statefold/schema/state_generated.h"

namespace statefold::fold {

// Where an event sits on the log. Recorded in history and refusals; never part of the state hash, so the same
// events give the same state whatever partitioning carried them.
struct Position {
  std::int32_t partition = -1;
  std::int64_t offset = -1;
  std::int64_t log_time_ms = 0;
};

enum class Outcome : std::uint8_t { accepted = 0, duplicate = 1, rejected = 2 };
std::string_view outcome_name(Outcome outcome);

struct Applied {
  Outcome outcome = Outcome::accepted;
  std::uint64_t version = 0;       // accepted: this event's version; otherwise the session's current version
  std::uint64_t duplicate_of = 0;  // duplicate: the version that accepted this event id first
  std::string reason;              // duplicate or rejected: why, in words
};

class Folder {
 public:
  explicit Folder(const Reader& base);
  ~Folder();
  Folder(const Folder&) = delete;
  Folder& operator=(const Folder&) = delete;

  Applied apply(const codec::Event& event, const Position& position);
  // Time travel: folds an event history recorded as accepted, with the session's refusal counters restored to
  // what they were when it was accepted. Throws if the event does not fold as accepted (a corrupt history).
  Applied refold(const codec::Event& event, const Position& position, std::uint64_t duplicates,
                 std::uint64_t rejections);
  // A record that could not be decoded went to the dead-letter topic: counted in the same batch.
  void record_dead_letter();

  // Serialises the touched session headers and the store summary; the returned writes are the batch.
  const WriteSet& finish();

 private:
  struct Session;
  Session& session(std::string_view session_id);
  std::optional<std::string> read(std::string_view key) const;
  void refuse(Session& s, const codec::Event& event, const Position& position, Outcome kind,
              std::uint64_t duplicate_of, const std::string& reason);
  void apply_payload(Session& s, const codec::Event& event, std::uint64_t version);
  // Why a SessionAmended cannot be accepted (a version it withdraws is beyond the session or not a Message); empty
  // when it can.
  std::string unwithdrawable(const Session& s, const schema::SessionAmended& amended) const;
  // The keys under `prefix` as this batch sees them (the base overlaid with pending writes). For the rare
  // whole-session passes only: checkpoints and erasure.
  std::map<std::string, std::string, std::less<>> merged_scan(std::string_view prefix) const;
  void write_checkpoint(Session& s, std::uint64_t version);
  void erase_content(Session& s, std::uint64_t erasure_version);
  // Adds a receipt to its tenant's usage row of the day (written once per row by finish()).
  void count_usage(std::string_view session_id, const schema::Event& root);

  const Reader& _base;
  flatbuffers::FlatBufferBuilder _builder{1024};
  WriteSet _writes;
  // Hashed, not ordered: a lookup per event; finish() writes the headers in any order (the WriteSet orders them).
  struct IdHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view id) const { return std::hash<std::string_view>{}(id); }
  };
  std::unordered_map<std::string, std::unique_ptr<Session>, IdHash, std::equal_to<>> _sessions;
  std::map<std::string, state::UsageT, std::less<>> _usage;  // rows this batch adds to, by key
  state::StoreSummaryT _summary;
  bool _summary_loaded = false;
  bool _summary_dirty = false;
};

// --- Pure reads over any Reader (the store, a MemoryKv, a snapshot). ---

std::optional<state::SessionHeaderT> load_header(const Reader& reader, std::string_view session_id);
// The UTC day of a time in microseconds since the epoch, as usage rows name it: "YYYY-MM-DD".
std::string utc_day(std::int64_t us);
// A stored header's bytes (e.g. the value a scan of key::kHeader keys visits); throws if they do not verify.
state::SessionHeaderT decode_header(std::string_view bytes);
state::StoreSummaryT load_summary(const Reader& reader);
// A stored summary's bytes (the value of key::kSummary); throws if they do not verify.
state::StoreSummaryT decode_summary(std::string_view bytes);
// The whole store's summary from its partitions' (counts add, store hashes XOR), packed as stored. A part that does
// not verify is returned as it is, so that whoever reads the result reports it damaged.
std::string merge_summaries(const std::vector<std::string>& parts);
// The session's metadata (SessionOpened.metadata), in the order given; stored as key\0value\0 pairs.
std::vector<std::pair<std::string, std::string>> metadata_pairs(const state::SessionHeaderT& header);
// The state hash of a header: SHA-256 over its fields in a fixed, framed order (the stored state_hash excluded).
base::Digest state_hash(const state::SessionHeaderT& header);
// One session's share of the store hash: SHA-256(session id, state hash). The store hash XORs them.
base::Digest store_hash_term(std::string_view session_id, const base::Digest& state_hash);

}  // namespace statefold::fold
