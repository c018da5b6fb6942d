// runtime: the engine loop of `statefold serve`. Polls a batch from the consumer group, decodes and folds it, sends
// undecodable records to the dead-letter topic, and commits state plus offsets in one store batch.
//
//   auto engine = runtime::Engine::open(options);
//   std::thread t([&] { auto r = engine.value()->run(); });
//   ...
//   engine.value()->stop();  // the batch in hand is finished and committed before run() returns
//
// Thread-safety: run() on one thread; stop(), stats() and store() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/result.h"
#include "engine/fold/fold.h"
#include "engine/log/log.h"
#include "engine/runtime/ownership.h"
#include "engine/store/store.h"

namespace statefold::runtime {

struct EngineOptions {
  std::string brokers;
  std::string topic{log::kDefaultTopic};
  std::string dead_letter_topic{log::kDeadLetterTopic};
  std::string group = "statefold";
  std::string data_dir;
  std::size_t max_batch = 5000;
  std::chrono::milliseconds poll_timeout{100};
  std::uint64_t memory_budget_bytes = 512ull << 20;  // RocksDB cache + write buffers + Kafka prefetch queue
  // Folding pauses while the data directory's file system has less than this free, so that RocksDB never runs
  // out of space mid-write (it aborts on some of those paths); it resumes by itself once space is back. 0: never.
  std::uint64_t disk_reserve_bytes = 256ull << 20;
  bool sync_writes = false;
  // RocksDB's WAL (store::Options::wal). Off: cheaper commits; after a crash the engine rereads from Kafka what the
  // memtables held (exactly once still: offsets commit with the state). The memtable is flushed on a clean stop
  // and once the engine has been idle for idle_flush_after.
  bool wal = true;
  std::chrono::milliseconds idle_flush_after{1000};
  // Static group membership (group.instance.id from the data dir): a restart on the same store gets its partitions
  // back at once, but a stop does not leave the group, so the partitions of an instance stopped for good move only
  // after session.timeout.ms. Off: a stop (SIGTERM) hands them over at once; a restart is a join like any other.
  bool static_membership = true;
  // The state of a partition this instance does not fold (taken by another member, or never given back after a
  // restart) is dropped once it has been away this long. A partition back sooner resumes from its state; one back
  // later is folded again from the log. 0: kept for ever.
  std::chrono::seconds drop_lost_after{600};
  std::chrono::seconds progress_interval{10};
  log::Properties kafka_properties;
  // Partitions of the topic: a session's home partition is murmur2(session id) over them, and a record found on
  // another one is dead-lettered (live, replay and verify then agree). 0: asked of the broker at open.
  int partitions = 0;
  // Replay mode: fold each listed partition up to (not including) its offset, fold nothing of unlisted
  // partitions, and return from run() once every listed partition got there.
  std::optional<std::map<std::int32_t, std::int64_t>> stop_at;
  // Called on the engine's thread for a partition the group gives this instance while its store has no state for
  // it: may load the partition's state into the store (from a partition snapshot) and return the offset that state
  // covers, from which folding goes on. nullopt: folded from the start of the log.
  std::function<std::optional<std::int64_t>(std::int32_t partition, store::Store& store)> restore_partition;
  // Benchmarks: told each committed batch's WriteBatch bytes, on the commit thread (store::Options::batch_tap).
  std::function<void(std::string_view write_batch)> store_batch_tap;
};

// Monotonic counters since start; read with relaxed loads for metrics and progress lines.
struct EngineStats {
  std::atomic<std::uint64_t> records{0};
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> duplicates{0};
  std::atomic<std::uint64_t> rejected{0};
  std::atomic<std::uint64_t> dead_letters{0};
  std::atomic<std::uint64_t> batches{0};
  std::atomic<std::uint64_t> skipped_refolds{0};  // records below the stored offset, seen again after a rebalance
  std::atomic<std::uint64_t> pauses{0};           // times fetching paused because the store throttled writes
  std::atomic<std::uint64_t> disk_pauses{0};      // times folding paused because the disk was nearly full
};

// What one record did, reported after its batch is durable (read-your-writes waits on this).
struct FoldedRecord {
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string session_id;   // empty for a dead letter
  fold::Applied applied;    // for a dead letter: outcome rejected, reason = the decode error
  bool dead_letter = false;
};

// Told about every committed batch, on the engine's commit thread; metrics implement it. Must not block.
class EngineProbe {
 public:
  virtual ~EngineProbe() = default;
  virtual void batch_committed(std::size_t records, std::chrono::nanoseconds fold_time,
                               std::chrono::nanoseconds commit_time) = 0;
};

class Engine final : private log::AssignmentListener {
 public:
  static base::Result<std::unique_ptr<Engine>> open(const EngineOptions& options);
  ~Engine() override;

  // Folds until stop(); returns an error when the engine cannot go on (Kafka fatal error, store failure).
  base::Result<void> run();
  void stop() { _stop.store(true); }

  // Called on the engine's commit thread after each committed batch.
  void on_committed(std::function<void(const std::vector<FoldedRecord>&)> observer);
  // Called on the engine's thread whenever the group gives or takes partitions, with every partition this instance
  // folds from then on, before any other member may start on a revoked one. Set before run().
  void on_assignment(std::function<void(const std::vector<std::int32_t>& owned)> observer);
  // Warm standbys: the partitions this instance should also fold while another owns them, read from the event
  // topic outside the group (any thread; applied on the engine's thread). Their state is not served; when the group
  // gives this instance one of them, folding goes on from where the standby got, not from a snapshot or offset 0.
  void set_standbys(std::vector<std::int32_t> partitions);
  // The partitions folded as standbys now.
  std::vector<std::int32_t> standbys() const;
  // This instance's name in the consumer group: stable per data directory (static membership).
  const std::string& instance_id() const { return _instance_id; }
  // Set before run(); not owned.
  void set_probe(EngineProbe* probe) { _probe = probe; }
  const EngineOptions& options() const { return _options; }
  // True once every assigned partition's lag is at most max_lag (and at least one partition is assigned), and none
  // is moving (see Ownership).
  bool caught_up(std::int64_t max_lag) const;
  // Partitions assigned here that are still being folded up to where the log ended when they came (Ownership::moving).
  std::vector<std::int32_t> moving() const;

  const store::Store& store() const { return *_store; }
  const EngineStats& stats() const { return _stats; }
  std::vector<std::int32_t> assignment() const;
  Ownership ownership(std::string_view session_id) const;
  // Lag per assigned partition: high watermark - stored next offset (-1 when unknown).
  std::map<std::int32_t, std::int64_t> lag() const;
  // Why folding is paused for lack of disk space (writes are refused meanwhile, reads go on), or nullopt.
  std::optional<std::string> disk_full() const;
  // The next offset to fold of every partition the store has folded from.
  std::map<std::int32_t, std::int64_t> next_offsets() const { return _store->offsets(); }

 private:
  explicit Engine(EngineOptions options);
  std::map<std::int32_t, std::optional<std::int64_t>> on_assigned(const std::vector<std::int32_t>& partitions) override;
  void on_revoked(const std::vector<std::int32_t>& partitions) override;
  // Folds a batch on this thread (through the batch still committing, if any), then waits for that one and hands
  // this one to the commit thread: the fold of batch n+1 overlaps the RocksDB write of batch n.
  base::Result<void> fold_batch(const std::vector<log::Record>& records);
  // Waits for the batch in flight, if any; its error, if its commit failed.
  base::Result<void> finish_commit();
  struct Commit;
  class CommitThread;
  base::Result<void> commit(Commit& batch);  // on the commit thread
  // The key and value a dead letter is sent with: the record's own, cut to a size Kafka takes (headers then name
  // the original's size and SHA-256).
  static std::pair<std::optional<std::string_view>, std::span<const std::uint8_t>> dead_letter_body(
      const log::Record& record, std::vector<log::Header>& headers);
  // Why a record of `session_id` found on `partition` must not be folded (it is not the session's home), or nullopt.
  std::optional<base::Error> check_home_partition(std::string_view session_id, std::int32_t partition) const;
  // The stored offsets to the group, for lag monitoring: at most once a second unless `now`.
  void commit_lag_offsets(bool now = false);
  void maybe_log_progress();
  // Ends the move of each partition whose committed offset reached the log's end as first seen after it came.
  void settle_moves();
  // Drops the state of partitions away for longer than EngineOptions::drop_lost_after (on the engine's thread).
  void drop_lost_partitions();
  // Follows the wanted standbys that are not owned here, and stops following the others (the engine's thread).
  base::Result<void> apply_standbys();
  // Compares the data directory's free space with the reserve (at most a few times a second) and logs changes;
  // true while folding must pause.
  bool disk_is_low();
  // On the commit thread, after RocksDB ran out of space: waits for space (or stop()), then resumes the store.
  base::Result<void> wait_for_disk_space(const base::Error& failure);
  void set_disk_full(std::string why);
  bool reached_stop();

  EngineOptions _options;
  std::unique_ptr<store::Store> _store;
  std::unique_ptr<log::Consumer> _consumer;
  std::unique_ptr<log::Producer> _dead_letters;
  // Records below are already folded: the store's offsets, and those of the batch in flight.
  std::map<std::int32_t, std::int64_t> _next_offsets;
  std::atomic<bool> _stop{false};
  EngineStats _stats;
  std::function<void(const std::vector<FoldedRecord>&)> _observer;
  std::function<void(const std::vector<std::int32_t>&)> _assignment_observer;
  std::string _instance_id;
  // Partitions moving here: the offset they must be folded to (-1 until the broker told the log's end).
  mutable std::mutex _moves_mutex;
  mutable std::mutex _standby_mutex;
  std::optional<std::vector<std::int32_t>> _wanted_standbys;  // set_standbys' latest, until applied
  std::vector<std::int32_t> _standby_partitions;               // wanted, owned ones included
  std::vector<std::int32_t> _following;                         // folded as standbys now (under _standby_mutex)
  std::unique_ptr<log::Follower> _follower;
  bool _standbys_dirty = false;
  std::map<std::int32_t, std::int64_t> _moves;
  std::map<std::int32_t, std::int64_t> _committed;  // next offsets in the store, as of the last finished commit
  std::chrono::steady_clock::time_point _last_settle;
  std::map<std::int32_t, std::chrono::steady_clock::time_point> _lost_since;  // stored here, folded elsewhere
  std::chrono::steady_clock::time_point _last_lost_check;
  std::chrono::steady_clock::time_point _last_end_query;
  EngineProbe* _probe = nullptr;
  std::unique_ptr<CommitThread> _committer;
  std::unique_ptr<Commit> _in_flight;       // handed to the commit thread, not known to be in the store yet
  std::optional<base::Error> _commit_error;  // a failed commit seen inside a rebalance callback
  std::chrono::steady_clock::time_point _last_progress;
  mutable std::mutex _disk_mutex;
  std::string _disk_full;  // why folding is paused for space; empty when it is not
  bool _disk_low = false;
  std::chrono::steady_clock::time_point _last_disk_check;
  std::map<std::int32_t, std::int64_t> _lag_offsets;  // not yet committed to the group
  std::chrono::steady_clock::time_point _last_lag_commit;
  std::uint64_t _records_at_last_progress = 0;
  std::chrono::steady_clock::time_point _last_records;  // when a poll last brought records
};

}  // namespace statefold::runtime
