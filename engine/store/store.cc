#include "engine/store/store.h"

#include <rocksdb/cache.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>

#include "engine/base/logging.h"
#include "engine/fold/fold.h"
#include "engine/fold/layout.h"
#include "engine/log/log.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <shared_mutex>

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


using Family = std::shared_ptr<rocksdb::ColumnFamilyHandle>;

constexpr std::string_view kFamilyPrefix = "partition-";

std::string family_name(std::int32_t partition) {
  std::string name(kFamilyPrefix);
  name.append(std::to_string(partition));
  return name;
}

std::optional<std::int32_t> partition_of_family(const std::string& name) {
  if (!name.starts_with(kFamilyPrefix) || name.size() == kFamilyPrefix.size()) return std::nullopt;
  std::int32_t p = 0;
  for (char c : std::string_view(name).substr(kFamilyPrefix.size())) {
    if (c < '0' || c > '9' || p > 100'000'000) return std::nullopt;
    p = p * 10 + (c - '0');
  }
  return p;
}

std::string be64_bytes(std::uint64_t v) {
  std::string out;
  fold::key::append_be64(out, v);
  return out;
}
}  // namespace

struct Store::Impl {
  Options options;
  std::shared_ptr<rocksdb::Cache> cache;
  rocksdb::ColumnFamilyOptions family_options;
  std::unique_ptr<rocksdb::DB> db;
  rocksdb::WriteOptions write_options;
  std::atomic<bool> unflushed{false};  // WAL off: batches committed since the last flush was started
  std::atomic<int> partition_count{0};
  Family default_family;
  // Created by the committing thread, dropped by the engine's; read from any thread. Declared after `db`, so the
  // handles go before it does.
  mutable std::shared_mutex families_mutex;
  std::map<std::int32_t, Family> families;

  Family adopt(rocksdb::ColumnFamilyHandle* handle) {
    rocksdb::DB* owner = db.get();
    return Family(handle, [owner](rocksdb::ColumnFamilyHandle* h) { owner->DestroyColumnFamilyHandle(h); });
  }
  Family family(std::int32_t partition) const {
    std::shared_lock lock(families_mutex);
    auto it = families.find(partition);
    return it == families.end() ? nullptr : it->second;
  }
  std::vector<Family> all_families() const {
    std::shared_lock lock(families_mutex);
    std::vector<Family> out;
    out.reserve(families.size());
    for (const auto& [p, f] : families) out.push_back(f);
    return out;
  }
  // The family of a session's home partition; null while the store knows no partition count or lacks it.
  Family home_family(std::string_view session_id) const {
    const int count = partition_count.load(std::memory_order_relaxed);
    if (count <= 0) return nullptr;
    return family(log::partition_for_key(session_id, count));
  }
  base::Result<Family> family_for_write(std::int32_t partition) {
    if (auto existing = family(partition)) return existing;
    std::unique_lock lock(families_mutex);
    // Made by another thread between the two locks (a restore beside a commit): that one it is.
    if (auto it = families.find(partition); it != families.end()) return it->second;
    rocksdb::ColumnFamilyHandle* raw = nullptr;
    rocksdb::Status status = db->CreateColumnFamily(family_options, family_name(partition), &raw);
    if (!status.ok()) {
      return base::make_error("cannot create the state of partition " + std::to_string(partition) + " in " +
                              options.path + ": " + status.ToString());
    }
    return families[partition] = adopt(raw);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles() const {
    std::shared_lock lock(families_mutex);
    std::vector<rocksdb::ColumnFamilyHandle*> out{default_family.get()};
    for (const auto& [p, f] : families) out.push_back(f.get());
    return out;
  }
};

Store::Store(std::unique_ptr<Impl> impl) : _impl(std::move(impl)) {}
Store::~Store() {
  if (!_impl || !_impl->db || _impl->options.read_only || _impl->options.wal) return;
  // WAL off: what is only in the memtables would be lost on close; flushed, a clean restart rereads nothing.
  rocksdb::FlushOptions flush;
  flush.wait = true;
  flush.allow_write_stall = true;
  if (rocksdb::Status status = _impl->db->Flush(flush, _impl->handles()); !status.ok()) {
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
  db_options.create_missing_column_families = !options.read_only;
  // WAL off, the families' memtables flush together, so that what survives a crash is a prefix of the batches in
  // every partition at once, each with its own offsets.
  db_options.atomic_flush = !options.wal;
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
  impl->family_options = rocksdb::ColumnFamilyOptions(db_options);

  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(db_options, options.path, &names).ok()) {
    names = {rocksdb::kDefaultColumnFamilyName};  // a new store (or one Open reports the trouble of)
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : names) {
    if (name != rocksdb::kDefaultColumnFamilyName && !partition_of_family(name)) {
      return base::make_error("the store at " + options.path + " holds a column family statefold did not make (" +
                              name + "); is it a statefold store?");
    }
    descriptors.emplace_back(name, impl->family_options);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status status =
      options.read_only ? rocksdb::DB::OpenForReadOnly(db_options, options.path, descriptors, &handles, &raw)
                        : rocksdb::DB::Open(db_options, options.path, descriptors, &handles, &raw);
  if (!status.ok()) {
    return base::make_error("cannot open the store at " + options.path + ": " + status.ToString());
  }
  impl->db.reset(raw);
  for (std::size_t i = 0; i < handles.size(); ++i) {
    if (auto partition = partition_of_family(descriptors[i].name)) {
      impl->families[*partition] = impl->adopt(handles[i]);
    } else {
      impl->default_family = impl->adopt(handles[i]);
    }
  }
  impl->write_options.sync = options.sync_writes;
  impl->write_options.disableWAL = !options.wal;

  std::string version;
  status = impl->db->Get(rocksdb::ReadOptions(), slice(fold::key::kSchemaVersion), &version);
  if (status.IsNotFound()) {
    if (options.read_only) {
      // A store that never committed a batch: readable, and empty.
    } else {
      status = impl->db->Put(impl->write_options, slice(fold::key::kSchemaVersion),
                             be64_bytes(fold::kStateSchemaVersion));
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

  std::string count;
  status = impl->db->Get(rocksdb::ReadOptions(), slice(fold::key::kPartitionCount), &count);
  if (!status.ok() && !status.IsNotFound()) {
    return base::make_error("cannot read the store's partition count: " + status.ToString());
  }
  const int recorded = status.ok() ? static_cast<int>(fold::key::read_be64(count)) : 0;
  if (recorded > 0 && options.partitions > 0 && recorded != options.partitions) {
    return base::make_error(base::ErrorCode::invalid_argument,
                            "the store at " + options.path + " holds state for a topic of " + std::to_string(recorded) +
                                " partitions, but the topic has " + std::to_string(options.partitions) +
                                " now: its sessions' home partitions moved. Rebuild it from the topic with "
                                "`statefold replay` into a new directory.");
  }
  if (recorded == 0 && options.partitions > 0 && !options.read_only) {
    status = impl->db->Put(impl->write_options, slice(fold::key::kPartitionCount), be64_bytes(options.partitions));
    if (!status.ok()) return base::make_error("cannot record the store's partition count: " + status.ToString());
  }
  impl->partition_count = recorded > 0 ? recorded : options.partitions;
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

namespace {

// The smallest key greater than every key with `prefix`; empty when there is none (every byte 0xff, or no prefix).
std::string upper_bound_of(std::string_view prefix) {
  std::string upper(prefix);
  while (!upper.empty() && static_cast<unsigned char>(upper.back()) == 0xff) upper.pop_back();
  if (!upper.empty()) upper.back() = static_cast<char>(static_cast<unsigned char>(upper.back()) + 1);
  return upper;
}

// RocksDB counts into a thread-local perf context by default (kEnableCount): on every key comparison of a memtable
// insert or lookup, a thread-local access through the shared library. statefold reads none of those counters, so
// each thread that reads or writes the store turns them off, once.
void without_perf_counters() {
  thread_local const bool turned_off = [] {
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
    return true;
  }();
  (void)turned_off;
}

std::optional<std::string> get_at(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* family,
                                  const rocksdb::Snapshot* snapshot, std::string_view key) {
  if (family == nullptr) return std::nullopt;
  without_perf_counters();
  rocksdb::ReadOptions read_options;
  read_options.snapshot = snapshot;
  std::string value;
  rocksdb::Status status = db.Get(read_options, family, slice(key), &value);
  if (status.IsNotFound()) return std::nullopt;
  if (!status.ok()) throw std::runtime_error("store read failed: " + status.ToString());
  return value;
}

// Visits the keys with `prefix` from `start` on in every family given, merged in key order; a key held by several
// families (a usage row, the summary) is visited once for each, in the order given.
void scan_at(rocksdb::DB& db, const std::vector<Family>& families, const rocksdb::Snapshot* snapshot,
             std::string_view prefix, std::string_view start,
             const std::function<bool(std::string_view, std::string_view)>& visit) {
  without_perf_counters();
  rocksdb::ReadOptions read_options;
  read_options.snapshot = snapshot;
  const std::string upper = upper_bound_of(prefix);
  const rocksdb::Slice upper_slice = slice(upper);
  if (!upper.empty()) read_options.iterate_upper_bound = &upper_slice;
  std::vector<std::unique_ptr<rocksdb::Iterator>> iterators;
  for (const Family& family : families) {
    if (!family) continue;
    iterators.emplace_back(db.NewIterator(read_options, family.get()));
    iterators.back()->Seek(slice(start.size() >= prefix.size() ? start : prefix));
  }
  for (;;) {
    rocksdb::Iterator* next = nullptr;
    for (const auto& it : iterators) {
      if (it->Valid() && (next == nullptr || it->key().compare(next->key()) < 0)) next = it.get();
    }
    if (next == nullptr) break;
    const std::string_view key = view(next->key());
    if (key.substr(0, prefix.size()) != prefix) break;
    if (!visit(key, view(next->value()))) break;
    next->Next();
  }
  for (const auto& it : iterators) {
    if (!it->status().ok()) throw std::runtime_error("store scan failed: " + it->status().ToString());
  }
}

}  // namespace

// One partition's state (pinned to a snapshot of the store when asked).
class Store::PartitionView final : public fold::Reader {
 public:
  PartitionView(rocksdb::DB& db, Family family, bool pinned)
      : _db(db), _family(std::move(family)), _snapshot(pinned ? db.GetSnapshot() : nullptr) {}
  ~PartitionView() override {
    if (_snapshot != nullptr) _db.ReleaseSnapshot(_snapshot);
  }
  std::optional<std::string> get(std::string_view key) const override {
    return get_at(_db, _family.get(), _snapshot, key);
  }
  void scan(std::string_view prefix, std::string_view start,
            const std::function<bool(std::string_view, std::string_view)>& visit) const override {
    if (_family) scan_at(_db, {_family}, _snapshot, prefix, start, visit);
  }
  using Reader::scan;

 private:
  rocksdb::DB& _db;
  Family _family;
  const rocksdb::Snapshot* _snapshot;
};

// The whole store: a session's keys from its home partition, store-wide keys merged over the partitions.
class Store::View final : public fold::Reader {
 public:
  View(const Impl& impl, bool pinned) : _impl(impl), _snapshot(pinned ? impl.db->GetSnapshot() : nullptr) {}
  ~View() override {
    if (_snapshot != nullptr) _impl.db->ReleaseSnapshot(_snapshot);
  }
  std::optional<std::string> get(std::string_view key) const override {
    if (key == fold::key::kSummary) {
      std::vector<std::string> parts;
      for (const Family& family : _impl.all_families()) {
        if (auto part = get_at(*_impl.db, family.get(), _snapshot, key)) parts.push_back(std::move(*part));
      }
      if (parts.empty()) return std::nullopt;
      return parts.size() == 1 ? std::move(parts.front()) : fold::merge_summaries(parts);
    }
    if (auto session = fold::key::session_of(key)) {
      return get_at(*_impl.db, _impl.home_family(*session).get(), _snapshot, key);
    }
    return get_at(*_impl.db, _impl.default_family.get(), _snapshot, key);
  }
  void scan(std::string_view prefix, std::string_view start,
            const std::function<bool(std::string_view, std::string_view)>& visit) const override {
    if (auto session = fold::key::session_of_prefix(prefix)) {
      if (Family family = _impl.home_family(*session)) scan_at(*_impl.db, {family}, _snapshot, prefix, start, visit);
      return;
    }
    scan_at(*_impl.db, _impl.all_families(), _snapshot, prefix, start, visit);
  }
  using Reader::scan;

 private:
  const Impl& _impl;
  const rocksdb::Snapshot* _snapshot;
};

std::optional<std::string> Store::get(std::string_view key) const { return View(*_impl, false).get(key); }

void Store::scan(std::string_view prefix, std::string_view start,
                 const std::function<bool(std::string_view, std::string_view)>& visit) const {
  View(*_impl, false).scan(prefix, start, visit);
}

std::unique_ptr<fold::Reader> Store::snapshot() const { return std::make_unique<View>(*_impl, true); }

std::unique_ptr<fold::Reader> Store::partition(std::int32_t partition) const {
  return std::make_unique<PartitionView>(*_impl->db, _impl->family(partition), false);
}

std::unique_ptr<fold::Reader> Store::partition_snapshot(std::int32_t partition) const {
  return std::make_unique<PartitionView>(*_impl->db, _impl->family(partition), true);
}

base::Result<void> Store::load_partition(std::int32_t partition,
                                         const std::vector<std::pair<std::string_view, std::string_view>>& entries) {
  const int count = partition_count();
  if (partition < 0 || partition >= count) {
    return base::make_error(base::ErrorCode::invalid_argument,
                            "partition " + std::to_string(partition) + " is not one of the topic's " +
                                std::to_string(count) + " partitions the store was written for");
  }
  if (_impl->family(partition)) {
    return base::make_error(base::ErrorCode::conflict,
                            "partition " + std::to_string(partition) + " has state here already");
  }
  auto family = _impl->family_for_write(partition);
  if (!family) return family.error();
  std::size_t bytes = 64;
  for (const auto& [key, value] : entries) bytes += key.size() + value.size() + 16;
  rocksdb::WriteBatch batch(bytes);
  for (const auto& [key, value] : entries) batch.Put(family->get(), slice(key), slice(value));
  auto written = write(batch);
  if (!written) {
    (void)drop_partition(partition);  // an empty family would read as a partition with state and no offset
    return written.error();
  }
  if (!_impl->options.wal) _impl->unflushed.store(true, std::memory_order_relaxed);
  return {};
}

std::vector<std::int32_t> Store::partitions() const {
  std::shared_lock lock(_impl->families_mutex);
  std::vector<std::int32_t> out;
  for (const auto& [p, family] : _impl->families) out.push_back(p);
  return out;
}

std::vector<std::int32_t> Store::partitions_in_creation_order() const {
  std::shared_lock lock(_impl->families_mutex);
  std::vector<std::pair<std::uint32_t, std::int32_t>> by_id;
  for (const auto& [p, family] : _impl->families) by_id.emplace_back(family->GetID(), p);
  std::sort(by_id.begin(), by_id.end());
  std::vector<std::int32_t> out;
  for (const auto& [id, p] : by_id) out.push_back(p);
  return out;
}

base::Result<void> Store::create_partitions(const std::vector<std::int32_t>& partitions) {
  for (std::int32_t p : partitions) {
    if (auto made = _impl->family_for_write(p); !made) return made.error();
  }
  return {};
}

int Store::partition_count() const { return _impl->partition_count.load(std::memory_order_relaxed); }

base::Result<void> Store::drop_partition(std::int32_t partition) {
  Family family;
  {
    std::unique_lock lock(_impl->families_mutex);
    auto it = _impl->families.find(partition);
    if (it == _impl->families.end()) return {};
    family = std::move(it->second);
    _impl->families.erase(it);
  }
  rocksdb::Status status = _impl->db->DropColumnFamily(family.get());
  if (!status.ok()) {
    std::unique_lock lock(_impl->families_mutex);
    _impl->families.emplace(partition, std::move(family));
    return base::make_error("cannot drop the state of partition " + std::to_string(partition) + ": " +
                            status.ToString());
  }
  return {};
}

base::Result<void> Store::commit(std::int32_t partition, const fold::WriteSet& writes,
                                 std::optional<std::int64_t> next_offset) {
  std::map<std::int32_t, std::int64_t> next;
  if (next_offset) next[partition] = *next_offset;
  return commit({{partition, &writes}}, next);
}

base::Result<void> Store::commit(const std::map<std::int32_t, const fold::WriteSet*>& writes,
                                 const std::map<std::int32_t, std::int64_t>& next_offsets) {
  const int count = partition_count();
  if (count <= 0) {
    return base::make_error("the store at " + _impl->options.path +
                            " does not know the topic's partition count, which places every session's state");
  }
  // The families outlive the batch's write even if a partition is dropped meanwhile.
  std::map<std::int32_t, Family> families;
  auto family_of = [&](std::int32_t p) -> base::Result<rocksdb::ColumnFamilyHandle*> {
    if (p < 0 || p >= count) {
      return base::make_error("partition " + std::to_string(p) + " is not one of the topic's " +
                              std::to_string(count) + " partitions the store was written for");
    }
    auto& held = families[p];
    if (!held) {
      auto made = _impl->family_for_write(p);
      if (!made) return made.error();
      held = std::move(*made);
    }
    return held.get();
  };
  // Sized up front: a batch of thousands of events grew its buffer by doubling, copying it each time.
  std::size_t bytes = 64 + next_offsets.size() * 32;
  for (const auto& [p, set] : writes) {
    for (const auto& [key, value] : set->entries()) bytes += key.size() + (value ? value->size() : 0) + 16;
  }
  rocksdb::WriteBatch batch(bytes);
  for (const auto& [p, set] : writes) {
    auto family = family_of(p);
    if (!family) return family.error();
    for (const auto& [key, value] : set->entries()) {
      if (value) {
        batch.Put(*family, slice(key), slice(*value));
      } else {
        batch.Delete(*family, slice(key));
      }
    }
  }
  for (const auto& [p, offset] : next_offsets) {
    auto family = family_of(p);
    if (!family) return family.error();
    batch.Put(*family, slice(fold::key::offset(p)), be64_bytes(static_cast<std::uint64_t>(offset)));
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

base::Result<void> Store::visit_serialised(
    std::string_view write_batch, const std::function<void(std::string_view key, std::size_t value_bytes)>& visit) {
  struct Visitor : rocksdb::WriteBatch::Handler {
    const std::function<void(std::string_view, std::size_t)>* visit = nullptr;
    rocksdb::Status PutCF(std::uint32_t, const rocksdb::Slice& key, const rocksdb::Slice& value) override {
      (*visit)(key.ToStringView(), value.size());
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteCF(std::uint32_t, const rocksdb::Slice& key) override {
      (*visit)(key.ToStringView(), 0);
      return rocksdb::Status::OK();
    }
    rocksdb::Status SingleDeleteCF(std::uint32_t, const rocksdb::Slice& key) override {
      (*visit)(key.ToStringView(), 0);
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteRangeCF(std::uint32_t, const rocksdb::Slice& begin, const rocksdb::Slice&) override {
      (*visit)(begin.ToStringView(), 0);
      return rocksdb::Status::OK();
    }
  } visitor;
  visitor.visit = &visit;
  const rocksdb::WriteBatch batch{std::string(write_batch)};
  const rocksdb::Status status = batch.Iterate(&visitor);
  if (!status.ok()) return base::make_error("cannot read a serialised WriteBatch: " + status.ToString());
  return {};
}

base::Result<void> Store::write(rocksdb::WriteBatch& batch) {
  without_perf_counters();
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
  Family family = _impl->home_family(session_id);
  if (!family) return {};
  // Every per-session key starts with a tag and the session id; the header is the id alone, the rest follow a NUL.
  for (char tag : {fold::key::kHeader, fold::key::kHistory, fold::key::kMemory, fold::key::kCheckpoint}) {
    std::string begin(1, tag);
    begin.append(session_id);
    std::string end = begin;
    end.append(1, '\x01');
    const rocksdb::Slice b(begin);
    const rocksdb::Slice e(end);
    rocksdb::Status status = _impl->db->CompactRange(options, family.get(), &b, &e);
    if (!status.ok()) return base::make_error("compacting session " + std::string(session_id) + ": " + status.ToString());
  }
  return {};
}

void Store::flush_unflushed() {
  if (_impl->options.wal || !_impl->unflushed.exchange(false, std::memory_order_relaxed)) return;
  rocksdb::FlushOptions flush;
  flush.wait = false;  // the flush thread writes it; the engine goes on
  flush.allow_write_stall = true;
  if (rocksdb::Status status = _impl->db->Flush(flush, _impl->handles()); !status.ok()) {
    _impl->unflushed.store(true, std::memory_order_relaxed);
    base::log_warn("store: flushing the memtable failed; will try again", {{"error", status.ToString()}});
  }
}

std::map<std::int32_t, std::int64_t> Store::offsets() const {
  std::map<std::int32_t, std::int64_t> out;
  for (std::int32_t p : partitions()) {
    if (auto stored = get_at(*_impl->db, _impl->family(p).get(), nullptr, fold::key::offset(p))) {
      out[p] = static_cast<std::int64_t>(fold::key::read_be64(*stored));
    }
  }
  return out;
}

Stats Store::stats() const {
  Stats s;
  s.memory_bytes = _impl->cache->GetUsage();
  std::uint64_t v = 0;
  if (_impl->db->GetAggregatedIntProperty(rocksdb::DB::Properties::kEstimateLiveDataSize, &v)) s.live_data_bytes = v;
  if (_impl->db->GetAggregatedIntProperty(rocksdb::DB::Properties::kEstimatePendingCompactionBytes, &v)) {
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
