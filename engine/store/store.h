// store: session state in RocksDB (WAL on by default). A batch of folded events commits as one WriteBatch holding
// the state changes and the next offset of every partition it consumed, so state and position never disagree,
// whatever instant the process dies at (spec section 3.1).
//
// State is kept per partition of the event topic, a column family each ("partition-<n>"): a session's keys live in
// its home partition's family with that partition's usage rows, summary and next offset, so one partition's state
// can be read, dropped and restored as a unit (scale-out, docs/scaling.md). The store as a fold::Reader is the
// whole store: it finds a session's keys in its home partition (murmur2 of the id over the topic's partition
// count, which the store records), and merges the partitions for store-wide reads (listings, usage, the summary).
//
// Thread-safety: get/scan/offsets may be called from any thread; commit from one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include <optional>

#include "engine/base/result.h"
#include "engine/fold/kv.h"

namespace rocksdb {
class WriteBatch;
}

namespace statefold::store {

struct Options {
  std::string path;
  // The event topic's partition count, which decides every session's home partition. Recorded by the first writer;
  // a store recorded with another count is refused (its sessions' home partitions moved). 0: as recorded.
  int partitions = 0;
  bool read_only = false;          // inspect a stopped or running engine's store without touching it
  bool create_if_missing = true;
  std::uint64_t memory_budget_bytes = 256ull << 20;  // block cache, with write buffers charged to it
  bool sync_writes = false;        // fsync each batch; without it a kill -9 loses nothing, a power cut may lose
                                   // the last batches, which are re-read from Kafka (offsets move with state)
  // RocksDB's write-ahead log. Off, batches go to the memtable only: a kill -9 or a power cut loses what was not
  // flushed yet, and since every batch holds its offsets and the store is one column family (memtables flush in
  // order), what survives is a prefix of the batches with its own offsets, from which the engine rereads Kafka.
  // Still exactly once; costs a reread of up to the unflushed memtables after a crash. Not with sync_writes.
  // Closing the store flushes the memtable, so a clean stop rereads nothing.
  bool wal = true;
  // Benchmarks: told the bytes of every WriteBatch commit() writes (RocksDB's serialised form), on the committing
  // thread, once it is in; write_serialised() writes such bytes again, into another store.
  std::function<void(std::string_view write_batch)> batch_tap;
};

// Figures for metrics and the summary.
struct Stats {
  std::uint64_t memory_bytes = 0;         // block cache usage (write buffers are charged to it)
  std::uint64_t live_data_bytes = 0;
  std::uint64_t pending_compaction_bytes = 0;
  std::uint64_t running_compactions = 0;
};

class Store final : public fold::Reader {
 public:
  // Opens (or creates) the store at options.path. Refuses a store written under another state schema version.
  static base::Result<std::unique_ptr<Store>> open(const Options& options);
  ~Store() override;

  std::optional<std::string> get(std::string_view key) const override;
  void scan(std::string_view prefix, std::string_view start,
            const std::function<bool(std::string_view, std::string_view)>& visit) const override;
  using fold::Reader::scan;

  // Writes each partition's writes into its state and the partitions' next offsets, in one WriteBatch. Out of disk
  // space: a resource_exhausted error, nothing of the batch written; resume() once space is back, then commit it
  // again.
  base::Result<void> commit(const std::map<std::int32_t, const fold::WriteSet*>& writes,
                            const std::map<std::int32_t, std::int64_t>& next_offsets);
  // One partition's writes and, if given, its next offset.
  base::Result<void> commit(std::int32_t partition, const fold::WriteSet& writes,
                            std::optional<std::int64_t> next_offset = std::nullopt);

  // One partition's state alone, as the fold of that partition's events reads it (its summary and usage rows are
  // the partition's own). Empty for a partition with no state here. Valid while the store is open.
  std::unique_ptr<fold::Reader> partition(std::int32_t partition) const;
  // One partition's state pinned as it is now (a RocksDB snapshot), its offset included: what a partition snapshot
  // ships. Release it soon.
  std::unique_ptr<fold::Reader> partition_snapshot(std::int32_t partition) const;
  // Makes a partition's state from `entries` (keys and values as a partition_snapshot held them, its offset
  // included), in one batch: all of it or nothing. Refused where the partition has state already.
  base::Result<void> load_partition(std::int32_t partition,
                                    const std::vector<std::pair<std::string_view, std::string_view>>& entries);
  // The partitions with state in this store, ascending.
  std::vector<std::int32_t> partitions() const;
  // Deletes a partition's state and its offset (an instance that lost it for good). Reads already under way finish
  // on what they saw.
  base::Result<void> drop_partition(std::int32_t partition);
  // The topic's partition count the store was written for (0 while nothing was written).
  int partition_count() const;
  // Writes a WriteBatch as Options::batch_tap was told it, unchanged: the storage floor of fold_throughput_bench
  // (the engine's writes without decode or fold). The batch names partitions by RocksDB's column family ids: make
  // this store's partitions first, in the order the store that wrote it made them (create_partitions).
  base::Result<void> write_serialised(std::string write_batch);
  // Each key a serialised WriteBatch (Options::batch_tap) puts or deletes, with the size of its value (0 for a
  // delete), in the batch's order: what the engine writes, for fold_throughput_bench. Static: it reads only the
  // bytes. An error names what RocksDB could not parse.
  static base::Result<void> visit_serialised(std::string_view write_batch,
                                             const std::function<void(std::string_view key, std::size_t value_bytes)>& visit);
  // The partitions with state here in the order their state was first made.
  std::vector<std::int32_t> partitions_in_creation_order() const;
  // Makes empty state for these partitions, in this order, where there is none.
  base::Result<void> create_partitions(const std::vector<std::int32_t>& partitions);
  // Clears the error a failed write left RocksDB in (it refuses every write until then).
  base::Result<void> resume();

  // A reader pinned to the store as it is now: several reads through it see one consistent state even while
  // batches commit. Cheap (a RocksDB snapshot); release it soon, it holds old versions from compaction.
  std::unique_ptr<fold::Reader> snapshot() const;

  // A consistent copy of the whole store (state and offsets from the same instant) in `dir`, which must not
  // exist; files are hard-linked where possible, so it is cheap. Safe while batches commit.
  base::Result<void> checkpoint(const std::string& dir) const;

  // Rewrites the store files holding `session_id`'s keys so that values an erasure overwrote are physically gone
  // (RocksDB otherwise keeps old versions in older files until compaction reaches them). Blocks while it runs;
  // the memtable is flushed first, so the write-ahead log that held them is retired too.
  base::Result<void> compact_session(std::string_view session_id);

  // WAL off: starts a flush of the memtable in the background if batches were committed since the last one, so
  // an idle engine leaves nothing to reread and read-only openers (inspect) see its state. With the WAL on (its
  // batches are durable already), nothing.
  void flush_unflushed();

  // The stored next offset of every partition that has one.
  std::map<std::int32_t, std::int64_t> offsets() const;
  Stats stats() const;
  // True while RocksDB delays or stops writes (compaction behind): the engine stops fetching until it clears.
  bool write_stalled() const;
  const std::string& path() const;

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  base::Result<void> write(rocksdb::WriteBatch& batch);
  class View;
  class PartitionView;
  std::unique_ptr<Impl> _impl;
};

}  // namespace statefold::store
