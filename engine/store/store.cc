#include "engine/store/store.h"

#include <rocksdb/cache.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>

#include "engine/base/logging.h"
#include "engine/fold/layout.h"

#include <atomic>
#include <cstring>

namespace statefold::store {

namespace {
rocksdb::Slice slice(std::string_view s) { return {s.data(), s.size()}; }
std::string_view view(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

// The session part of a key (layout.h): consecutive inserts of one session share it, so RocksDB can start each
// memtable insert from the previous one's position instead of searching the whole skip list.
class SessionPrefix final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "statefold.SessionPrefix"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    if (key.size() < 2) return key;
    switch (key[0]) {
      case fold::key::kHistory:
      case fold::key::kEventId:
      case fold::key::kMemory:
      case fold::key::kRefusal: {
        const void* nul = std::memchr(key.data() + 1, '\0', key.size() - 1);
        return nul == nullptr ? key
                              : rocksdb::Slice(key.data(), static_cast<const char*>(nul) - key.data() + 1);
      }
      default:
        return rocksdb::Slice(key.data(), 1);
    }
  }
  bool InDomain(const rocksdb::Slice&) const override { return true; }
};

std::string schema_version_bytes() {
  std::string v;
  fold::key::append_be64(v, fold::kStateSchemaVersion);
  return v;
}
}  // namespace

struct Store::Impl {
  Options options;
  std::shared_ptr<rocksdb::Cache> cache;
  std::unique_ptr<rocksdb::DB> db;
  rocksdb::WriteOptions write_options;
  std::atomic<bool> unflushed{false};  // WAL off: batches committed since the last flush was started
};

Store::Store(std::unique_ptr<Impl> impl) : _impl(std::move(impl)) {}
Store::~Store() {
  if (!_impl || !_impl->db || _impl->options.read_only || _impl->options.wal) return;
  // WAL off: what is only in the memtable would be lost on close; flushed, a clean restart rereads nothing.
  rocksdb::FlushOptions flush;
  flush.wait = true;
  flush.allow_write_stall = true;
  if (rocksdb::Status status = _impl->db->Flush(flush); !status.ok()) {
    base::log_error("store: flushing the memtable on close failed; the next start rereads its batches from Kafka",
                    {{"path", _impl->options.path}, {"error", status.ToString()}});
  }
}

base::Result<std::unique_ptr<Store>> Store::open(const Options& options) {
  if (options.sync_writes && !options.wal) {
    return base::make_error(base::ErrorCode::invalid_argument,
                            "sync writes need the WAL: with the WAL off there is no log to fsync (a batch is durable "
                            "once its memtable is flushed); use one or the other");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  // One budget: the block cache, with memtables charged to it through the write buffer manager.
  impl->cache = rocksdb::NewLRUCache(options.memory_budget_bytes);

  rocksdb::Options db_options;
  db_options.create_if_missing = options.create_if_missing && !options.read_only;
  db_options.write_buffer_manager =
      std::make_shared<rocksdb::WriteBufferManager>(options.memory_budget_bytes / 2, impl->cache);
  db_options.write_buffer_size = std::min<std::uint64_t>(64ull << 20, options.memory_budget_bytes / 4);
  db_options.max_write_buffer_number = 3;
  db_options.max_background_jobs = 2;
  db_options.bytes_per_sync = 1 << 20;
  db_options.compression = rocksdb::kLZ4Compression;
  db_options.bottommost_compression = rocksdb::kZSTD;
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  db_options.max_open_files = 512;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = impl->cache;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10, false));
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.format_version = 5;
  db_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // Keys share the session id as a prefix; whole-key bloom filters serve the point reads of a fold.
  db_options.memtable_whole_key_filtering = true;
  db_options.memtable_prefix_bloom_size_ratio = 0.02;
  db_options.memtable_insert_with_hint_prefix_extractor = std::make_shared<SessionPrefix>();
  db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;

  rocksdb::DB* raw = nullptr;
  rocksdb::Status status = options.read_only ? rocksdb::DB::OpenForReadOnly(db_options, options.path, &raw)
                                             : rocksdb::DB::Open(db_options, options.path, &raw);
  if (!status.ok()) {
    return base::make_error("cannot open the store at " + options.path + ": " + status.ToString());
  }
  impl->db.reset(raw);
  impl->write_options.sync = options.sync_writes;
  impl->write_options.disableWAL = !options.wal;

  std::string version;
  status = impl->db->Get(rocksdb::ReadOptions(), slice(fold::key::kSchemaVersion), &version);
  if (status.IsNotFound()) {
    if (options.read_only) {
      // A store that never committed a batch: readable, and empty.
    } else {
      status = impl->db->Put(impl->write_options, slice(fold::key::kSchemaVersion), schema_version_bytes());
      if (!status.ok()) return base::make_error("cannot initialise the store: " + status.ToString());
    }
  } else if (!status.ok()) {
    return base::make_error("cannot read the store's schema version: " + status.ToString());
  } else if (fold::key::read_be64(version) != fold::kStateSchemaVersion) {
    return base::make_error("the store at " + options.path + " has state schema version " +
                            std::to_string(fold::key::read_be64(version)) + "; this build reads version " +
                            std::to_string(fold::kStateSchemaVersion) +
                            ". Rebuild it from the topic with `statefold replay` into a new directory.");
  }
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

namespace {

std::optional<std::string> get_at(rocksdb::DB& db, const rocksdb::Snapshot* snapshot, std::string_view key) {
  rocksdb::ReadOptions read_options;
  read_options.snapshot = snapshot;
  std::string value;
  rocksdb::Status status = db.Get(read_options, slice(key), &value);
  if (status.IsNotFound()) return std::nullopt;
  if (!status.ok()) throw std::runtime_error("store read failed: " + status.ToString());
  return value;
}

void scan_at(rocksdb::DB& db, const rocksdb::Snapshot* snapshot, std::string_view prefix, std::string_view start,
             const std::function<bool(std::string_view, std::string_view)>& visit) {
  rocksdb::ReadOptions read_options;
  read_options.snapshot = snapshot;
  std::string upper(prefix);
  // The smallest key greater than every key with this prefix bounds the iterator.
  while (!upper.empty() && static_cast<unsigned char>(upper.back()) == 0xff) upper.pop_back();
  rocksdb::Slice upper_slice;
  if (!upper.empty()) {
    upper.back() = static_cast<char>(static_cast<unsigned char>(upper.back()) + 1);
    upper_slice = slice(upper);
    read_options.iterate_upper_bound = &upper_slice;
  }
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(read_options));
  for (it->Seek(slice(start.size() >= prefix.size() ? start : prefix)); it->Valid(); it->Next()) {
    std::string_view key = view(it->key());
    if (key.substr(0, prefix.size()) != prefix) break;
    if (!visit(key, view(it->value()))) break;
  }
  if (!it->status().ok()) throw std::runtime_error("store scan failed: " + it->status().ToString());
}

class SnapshotReader final : public fold::Reader {
 public:
  explicit SnapshotReader(rocksdb::DB& db) : _db(db), _snapshot(db.GetSnapshot()) {}
  ~SnapshotReader() override { _db.ReleaseSnapshot(_snapshot); }
  std::optional<std::string> get(std::string_view key) const override { return get_at(_db, _snapshot, key); }
  void scan(std::string_view prefix, std::string_view start,
            const std::function<bool(std::string_view, std::string_view)>& visit) const override {
    scan_at(_db, _snapshot, prefix, start, visit);
  }

 private:
  rocksdb::DB& _db;
  const rocksdb::Snapshot* _snapshot;
};

}  // namespace

std::optional<std::string> Store::get(std::string_view key) const { return get_at(*_impl->db, nullptr, key); }

void Store::scan(std::string_view prefix, std::string_view start,
                 const std::function<bool(std::string_view, std::string_view)>& visit) const {
  scan_at(*_impl->db, nullptr, prefix, start, visit);
}

std::unique_ptr<fold::Reader> Store::snapshot() const { return std::make_unique<SnapshotReader>(*_impl->db); }

base::Result<void> Store::commit(const fold::WriteSet& writes,
                                 const std::map<std::int32_t, std::int64_t>& next_offsets) {
  // Sized up front: a batch of thousands of events grew its buffer by doubling, copying it each time.
  std::size_t bytes = 64 + next_offsets.size() * 32;
  for (const auto& [key, value] : writes.entries()) bytes += key.size() + (value ? value->size() : 0) + 11;
  rocksdb::WriteBatch batch(bytes);
  for (const auto& [key, value] : writes.entries()) {
    if (value) {
      batch.Put(slice(key), slice(*value));
    } else {
      batch.Delete(slice(key));
    }
  }
  for (const auto& [partition, offset] : next_offsets) {
    std::string v;
    fold::key::append_be64(v, static_cast<std::uint64_t>(offset));
    batch.Put(slice(fold::key::offset(partition)), v);
  }
  auto written = write(batch);
  if (written && !_impl->options.wal) _impl->unflushed.store(true, std::memory_order_relaxed);
  if (written && _impl->options.batch_tap) _impl->options.batch_tap(view(batch.Data()));
  return written;
}

base::Result<void> Store::write_serialised(std::string write_batch) {
  rocksdb::WriteBatch batch(std::move(write_batch));
  return write(batch);
}

base::Result<void> Store::write(rocksdb::WriteBatch& batch) {
  rocksdb::Status status = _impl->db->Write(_impl->write_options, &batch);
  if (status.IsNoSpace()) {
    return base::make_error(base::ErrorCode::resource_exhausted,
                            "store write failed, the disk of " + _impl->options.path + " is full: " + status.ToString());
  }
  if (!status.ok()) return base::make_error("store write failed: " + status.ToString());
  return {};
}

base::Result<void> Store::resume() {
  rocksdb::Status status = _impl->db->Resume();
  if (!status.ok()) return base::make_error("the store cannot resume writing: " + status.ToString());
  return {};
}

base::Result<void> Store::compact_session(std::string_view session_id) {
  rocksdb::CompactRangeOptions options;
  options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  // Every per-session key starts with a tag and the session id; the header is the id alone, the rest follow a NUL.
  for (char tag : {fold::key::kHeader, fold::key::kHistory, fold::key::kMemory, fold::key::kCheckpoint}) {
    std::string begin(1, tag);
    begin.append(session_id);
    std::string end = begin;
    end.append(1, '\x01');
    const rocksdb::Slice b(begin);
    const rocksdb::Slice e(end);
    rocksdb::Status status = _impl->db->CompactRange(options, &b, &e);
    if (!status.ok()) return base::make_error("compacting session " + std::string(session_id) + ": " + status.ToString());
  }
  return {};
}

void Store::flush_unflushed() {
  if (_impl->options.wal || !_impl->unflushed.exchange(false, std::memory_order_relaxed)) return;
  rocksdb::FlushOptions flush;
  flush.wait = false;  // the flush thread writes it; the engine goes on
  flush.allow_write_stall = true;
  if (rocksdb::Status status = _impl->db->Flush(flush); !status.ok()) {
    _impl->unflushed.store(true, std::memory_order_relaxed);
    base::log_warn("store: flushing the memtable failed; will try again", {{"error", status.ToString()}});
  }
}

std::map<std::int32_t, std::int64_t> Store::offsets() const {
  std::map<std::int32_t, std::int64_t> out;
  scan(std::string(1, fold::key::kOffset), [&](std::string_view key, std::string_view value) {
    out[fold::key::partition_of_offset_key(key)] = static_cast<std::int64_t>(fold::key::read_be64(value));
    return true;
  });
  return out;
}

Stats Store::stats() const {
  Stats s;
  s.memory_bytes = _impl->cache->GetUsage();
  std::uint64_t v = 0;
  if (_impl->db->GetIntProperty(rocksdb::DB::Properties::kEstimateLiveDataSize, &v)) s.live_data_bytes = v;
  if (_impl->db->GetIntProperty(rocksdb::DB::Properties::kEstimatePendingCompactionBytes, &v)) {
    s.pending_compaction_bytes = v;
  }
  if (_impl->db->GetIntProperty(rocksdb::DB::Properties::kNumRunningCompactions, &v)) s.running_compactions = v;
  return s;
}

bool Store::write_stalled() const {
  std::uint64_t v = 0;
  if (_impl->db->GetIntProperty("rocksdb.is-write-stopped", &v) && v != 0) return true;
  return _impl->db->GetIntProperty("rocksdb.actual-delayed-write-rate", &v) && v != 0;
}

base::Result<void> Store::checkpoint(const std::string& dir) const {
  rocksdb::Checkpoint* raw = nullptr;
  rocksdb::Status status = rocksdb::Checkpoint::Create(_impl->db.get(), &raw);
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // log_size_for_flush 0: flush the memtables first, so the copy needs no WAL replay.
  if (status.ok()) status = checkpoint->CreateCheckpoint(dir, 0);
  if (!status.ok()) return base::make_error("cannot checkpoint the store into " + dir + ": " + status.ToString());
  return {};
}

const std::string& Store::path() const { return _impl->options.path; }

}  // namespace statefold::store
