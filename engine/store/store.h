// store: session state in RocksDB (WAL on by default). A batch of folded events commits as one WriteBatch holding
// the state changes and the next offset of every partition it consumed, so state and position never disagree,
// whatever instant the process dies at (spec section 3.1).
//
// Thread-safety: get/scan/offsets may be called from any thread; commit from one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "engine/base/result.h"
#include "engine/fold/kv.h"

namespace rocksdb {
class WriteBatch;
}

namespace statefold::store {

struct Options {
  std::string path;
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

  // Writes `writes` and the partitions' next offsets in one WriteBatch. Out of disk space: a resource_exhausted
  // error, nothing of the batch written; resume() once space is back, then commit it again.
  base::Result<void> commit(const fold::WriteSet& writes, const std::map<std::int32_t, std::int64_t>& next_offsets);
  // Writes a WriteBatch as Options::batch_tap was told it, unchanged: the storage floor of fold_throughput_bench
  // (the engine's writes without decode or fold).
  base::Result<void> write_serialised(std::string write_batch);
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
  std::unique_ptr<Impl> _impl;
};

}  // namespace statefold::store
