#include "engine/runtime/engine.h"

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "engine/base/hex.h"
#include "engine/base/logging.h"
#include "engine/base/text.h"
#include "engine/base/sha256.h"
#include "engine/codec/codec.h"
#include "statefold/schema/events_generated.h"

namespace statefold::runtime {

namespace {

constexpr std::chrono::milliseconds kDeadLetterFlushTimeout{30000};
// A dead letter is sent whole up to these sizes, cut beyond: well under the producer's message.max.bytes
// (1,000,000), headers and the record's framing included.
constexpr std::size_t kDeadLetterMaxValueBytes = 900 * 1000;
constexpr std::size_t kDeadLetterMaxKeyBytes = 4096;

std::string mib(std::uint64_t bytes) {
  std::string out = std::to_string(bytes >> 20);
  out += " MiB";
  return out;
}

}  // namespace

// A folded batch on its way into the store: a folder per partition, since each partition's state (its summary and
// usage rows too) is its own (store/store.h). A folder reads through `reader` (the same partition's writes in the
// batch before, still committing, over the partition's state) and is not read again once finished: only `writes`
// is, by the commit thread.
struct Engine::Commit {
  struct Part {
    std::unique_ptr<fold::Reader> state;
    std::unique_ptr<fold::Overlay> reader;
    std::unique_ptr<fold::Folder> folder;
    const fold::WriteSet* writes = nullptr;
  };
  std::map<std::int32_t, Part> parts;
  std::map<std::int32_t, std::int64_t> next;
  std::vector<std::string> erased;  // sessions whose erasure this batch accepted
  std::vector<FoldedRecord> folded;
  std::size_t records = 0;
  std::chrono::steady_clock::duration fold_time{};
};

// One thread that commits one batch at a time, so that the engine thread folds the next meanwhile.
class Engine::CommitThread {
 public:
  explicit CommitThread(Engine& engine) : _engine(engine), _thread([this] { loop(); }) {}
  ~CommitThread() {
    {
      std::lock_guard lock(_mutex);
      _stopping = true;
    }
    _changed.notify_all();
    _thread.join();
  }
  void submit(Commit& batch) {
    {
      std::lock_guard lock(_mutex);
      _job = &batch;
    }
    _changed.notify_all();
  }
  // Waits for the batch submitted last; what its commit gave.
  base::Result<void> wait() {
    std::unique_lock lock(_mutex);
    _changed.wait(lock, [&] { return _job == nullptr; });
    return std::exchange(_result, base::Result<void>());
  }

 private:
  void loop() {
    std::unique_lock lock(_mutex);
    for (;;) {
      _changed.wait(lock, [&] { return _job != nullptr || _stopping; });
      if (_job == nullptr) return;  // stopping, nothing left to commit
      Commit* job = _job;
      lock.unlock();
      base::Result<void> result;
      try {
        result = _engine.commit(*job);
      } catch (const std::exception& e) {  // e.g. an observer that throws: the engine thread reports it
        result = base::make_error(std::string("committing a batch failed: ") + e.what());
      }
      lock.lock();
      _result = std::move(result);
      _job = nullptr;
      _changed.notify_all();
    }
  }

  Engine& _engine;
  std::mutex _mutex;
  std::condition_variable _changed;
  Commit* _job = nullptr;
  bool _stopping = false;
  base::Result<void> _result;
  std::thread _thread;  // last: it starts once the members above exist
};

Engine::Engine(EngineOptions options) : _options(std::move(options)) {}
Engine::~Engine() {
  _committer.reset();  // a batch in flight is committed first
  if (_consumer) _consumer->close();
}

base::Result<std::unique_ptr<Engine>> Engine::open(const EngineOptions& options) {
  std::unique_ptr<Engine> engine(new Engine(options));
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return base::make_error("cannot create the data directory " + options.data_dir + ": " + ec.message());

  // The budget: three quarters to RocksDB (cache and memtables), a quarter to Kafka's prefetch queue.
  store::Options store_options;
  store_options.path = options.data_dir + "/store";
  store_options.memory_budget_bytes = options.memory_budget_bytes * 3 / 4;
  store_options.sync_writes = options.sync_writes;
  store_options.wal = options.wal;
  store_options.batch_tap = options.store_batch_tap;
  // RocksDB aborts on some write paths when the disk is full, opening included: refuse with a message instead.
  // Between this floor and the reserve, the store opens and serves reads while folding waits for space.
  if (options.disk_reserve_bytes > 0) {
    const std::uint64_t floor = std::min<std::uint64_t>(options.disk_reserve_bytes, 16ull << 20);
    if (auto space = std::filesystem::space(options.data_dir, ec); !ec && space.available < floor) {
      std::string why = "the data directory " + options.data_dir + " has ";
      why += mib(space.available) + " free, too little to open the store safely (it needs " + mib(floor) +
             "); free some space and start again";
      return base::make_error(base::ErrorCode::resource_exhausted, why);
    }
  }
  if (options.partitions <= 0) {
    // A session's home partition depends on the topic's partition count: folding checks every record against it,
    // and the store keeps each partition's state apart.
    auto partitions = log::partition_count(options.brokers, options.topic);
    if (!partitions) return partitions.error();
    engine->_options.partitions = *partitions;
  }
  store_options.partitions = engine->_options.partitions;
  auto store = store::Store::open(store_options);
  if (!store) return store.error();
  engine->_store = std::move(*store);
  engine->_next_offsets = engine->_store->offsets();
  engine->_committed = engine->_next_offsets;

  log::ProducerOptions producer_options;
  producer_options.brokers = options.brokers;
  producer_options.client_id = "statefold-dlq";
  producer_options.extra = options.kafka_properties;
  auto producer = log::Producer::create(producer_options);
  if (!producer) return producer.error();
  engine->_dead_letters = std::move(*producer);

  log::ConsumerOptions consumer_options;
  consumer_options.brokers = options.brokers;
  consumer_options.topic = options.topic;
  consumer_options.group = options.group;
  // One store, one member: after a kill -9 the restarted engine takes its partitions back at once (spec 8:
  // ready in under a second) instead of waiting out the dead member's session.
  const auto dir_hash = base::sha256(std::filesystem::absolute(options.data_dir).string());
  engine->_instance_id = options.group + "-" + base::to_hex(std::span<const std::uint8_t>(dir_hash.data(), 8));
  if (options.static_membership) consumer_options.instance_id = engine->_instance_id;
  consumer_options.queue_budget_bytes = options.memory_budget_bytes / 4;
  consumer_options.extra = options.kafka_properties;
  auto consumer = log::Consumer::create(consumer_options, engine.get());
  if (!consumer) return consumer.error();
  engine->_consumer = std::move(*consumer);
  return engine;
}

void Engine::on_committed(std::function<void(const std::vector<FoldedRecord>&)> observer) {
  _observer = std::move(observer);
}

void Engine::on_assignment(std::function<void(const std::vector<std::int32_t>& owned)> observer) {
  _assignment_observer = std::move(observer);
}

std::vector<std::int32_t> Engine::assignment() const { return _consumer->assignment(); }

Ownership Engine::ownership(std::string_view session_id) const {
  if (_options.partitions <= 0) return {};
  const std::int32_t partition = log::partition_for_key(session_id, _options.partitions);
  const auto owned = assignment();
  if (owned.empty()) return {Ownership::State::unassigned, partition};
  if (std::find(owned.begin(), owned.end(), partition) == owned.end()) return {Ownership::State::elsewhere, partition};
  std::lock_guard lock(_moves_mutex);
  if (_moves.contains(partition)) return {Ownership::State::moving, partition};
  return {Ownership::State::owned, partition};
}

std::vector<std::int32_t> Engine::moving() const {
  std::lock_guard lock(_moves_mutex);
  std::vector<std::int32_t> out;
  for (const auto& [partition, until] : _moves) out.push_back(partition);
  return out;
}

void Engine::settle_moves() {
  const auto now = std::chrono::steady_clock::now();
  if (now - _last_settle < std::chrono::milliseconds(20)) return;
  _last_settle = now;
  // Where the log ends, asked of the broker once per move: the consumer's cached figure may be from an earlier time
  // this instance had the partition, and a partition declared ready on it would answer without acknowledged writes.
  std::vector<std::int32_t> unknown;
  {
    std::lock_guard lock(_moves_mutex);
    if (_moves.empty()) return;
    for (const auto& [partition, until] : _moves) {
      if (until < 0) unknown.push_back(partition);
    }
  }
  std::map<std::int32_t, std::int64_t> ends;
  if (!unknown.empty() && now - _last_end_query >= std::chrono::milliseconds(500)) {  // the broker may be away
    _last_end_query = now;
    ends = _consumer->query_high_watermarks(unknown, std::chrono::milliseconds(2000));
  }
  // With no batch in flight, everything the consumer returned is in the store: its position (which moves past
  // transaction markers, never delivered as records) counts as folded too.
  const auto positions = _in_flight ? std::map<std::int32_t, std::int64_t>() : _consumer->positions();
  std::vector<std::int32_t> settled;
  {
    std::lock_guard lock(_moves_mutex);
    for (auto it = _moves.begin(); it != _moves.end();) {
      auto& [partition, until] = *it;
      if (until < 0) {
        auto end = ends.find(partition);
        if (end != ends.end() && end->second >= 0) until = end->second;
      }
      std::int64_t done = 0;
      if (auto c = _committed.find(partition); c != _committed.end()) done = c->second;
      if (auto p = positions.find(partition); p != positions.end()) done = std::max(done, p->second);
      if (until >= 0 && done >= until) {
        settled.push_back(partition);
        it = _moves.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (!settled.empty()) base::log_info("partitions ready", {{"topic", _options.topic}, {"partitions", base::join(settled)}});
}

void Engine::set_standbys(std::vector<std::int32_t> partitions) {
  std::sort(partitions.begin(), partitions.end());
  std::lock_guard lock(_standby_mutex);
  if (partitions == _standby_partitions && !_wanted_standbys) return;
  _wanted_standbys = std::move(partitions);
}

std::vector<std::int32_t> Engine::standbys() const {
  std::lock_guard lock(_standby_mutex);
  return _following;
}

base::Result<void> Engine::apply_standbys() {
  if (_options.stop_at) return {};
  {
    std::lock_guard lock(_standby_mutex);
    if (_wanted_standbys) {
      _standby_partitions = std::move(*_wanted_standbys);
      _wanted_standbys.reset();
      _standbys_dirty = true;
    }
  }
  if (!_standbys_dirty) return {};
  _standbys_dirty = false;
  const auto owned = _consumer->assignment();
  std::vector<std::int32_t> target;
  for (std::int32_t p : _standby_partitions) {
    if (std::find(owned.begin(), owned.end(), p) == owned.end()) target.push_back(p);
  }
  if (!_follower && target.empty()) return {};
  if (!_follower) {
    auto follower = log::Follower::create(_options.brokers, _options.topic, _options.kafka_properties);
    if (!follower) return follower.error();
    _follower = std::move(*follower);
  }
  // What the follower folded is committed before a partition stops or starts: offsets stay with state.
  if (auto committed = finish_commit(); !committed) return committed.error();
  std::vector<std::int32_t> started;
  std::vector<std::int32_t> stopped;
  for (std::int32_t p : _follower->following()) {
    if (std::find(target.begin(), target.end(), p) != target.end()) continue;
    if (auto r = _follower->stop_following(p); !r) return r.error();
    stopped.push_back(p);
  }
  const auto following = _follower->following();
  for (std::int32_t p : target) {
    if (std::find(following.begin(), following.end(), p) != following.end()) continue;
    auto next = _next_offsets.find(p);
    const std::optional<std::int64_t> from =
        next == _next_offsets.end() ? std::nullopt : std::optional<std::int64_t>(next->second);
    if (auto r = _follower->follow(p, from); !r) return r.error();
    started.push_back(p);
  }
  {
    std::lock_guard lock(_standby_mutex);
    _following = _follower->following();
  }
  if (!started.empty() || !stopped.empty()) {
    base::log_info("standbys", {{"following", base::join(_follower->following())},
                                {"started", base::join(started)}, {"stopped", base::join(stopped)}});
  }
  return {};
}

void Engine::drop_lost_partitions() {
  if (_options.drop_lost_after.count() <= 0 || _options.stop_at) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - _last_lost_check < std::chrono::seconds(1)) return;
  _last_lost_check = now;
  auto owned = _consumer->assignment();
  for (std::int32_t p : standbys()) owned.push_back(p);  // a standby's state is kept, as an owner's
  const auto stored = _store->partitions();
  std::erase_if(_lost_since, [&](const auto& lost) {
    return std::find(stored.begin(), stored.end(), lost.first) == stored.end();
  });
  std::vector<std::int32_t> due;
  for (std::int32_t p : stored) {
    if (std::find(owned.begin(), owned.end(), p) != owned.end()) {
      _lost_since.erase(p);
      continue;
    }
    const auto since = _lost_since.try_emplace(p, now).first->second;
    if (now - since >= _options.drop_lost_after) due.push_back(p);
  }
  if (due.empty()) return;
  // Nothing of theirs may still be on its way in.
  if (auto committed = finish_commit(); !committed) {
    _commit_error = committed.error();
    return;
  }
  for (std::int32_t p : due) {
    if (auto dropped = _store->drop_partition(p); !dropped) {
      base::log_warn("cannot drop the state of a partition folded elsewhere; will try again",
                     {{"partition", std::to_string(p)}, {"error", dropped.error().message}});
      continue;
    }
    // Gained again, it is folded from the start of the log.
    _lost_since.erase(p);
    _next_offsets.erase(p);
    _committed.erase(p);
    _lag_offsets.erase(p);
    base::log_info("state of a partition folded elsewhere dropped",
                   {{"partition", std::to_string(p)},
                    {"away_s", std::to_string(_options.drop_lost_after.count())}});
  }
}

std::map<std::int32_t, std::int64_t> Engine::lag() const {
  std::map<std::int32_t, std::int64_t> out;
  auto stored = _store->offsets();
  // The consumer's position counts transaction markers as read; the stored offset never reaches past them.
  const auto positions = _consumer->positions();
  for (const auto& [partition, high] : _consumer->high_watermarks()) {
    if (high < 0) {
      out[partition] = -1;
      continue;
    }
    auto it = stored.find(partition);
    std::int64_t done = it == stored.end() ? 0 : it->second;
    if (auto p = positions.find(partition); p != positions.end()) done = std::max(done, p->second);
    out[partition] = std::max<std::int64_t>(0, high - done);
  }
  return out;
}

std::map<std::int32_t, std::optional<std::int64_t>> Engine::on_assigned(const std::vector<std::int32_t>& partitions) {
  // With the batch in flight committed, the store is the whole truth here.
  if (auto committed = finish_commit(); !committed) _commit_error = committed.error();
  // A partition folded here as a standby is the group's now: the consumer goes on from where the standby got.
  if (_follower) {
    bool stopped = false;
    for (std::int32_t p : partitions) {
      const auto following = _follower->following();
      if (std::find(following.begin(), following.end(), p) == following.end()) continue;
      if (auto r = _follower->stop_following(p); !r) _commit_error = r.error();
      stopped = true;
    }
    if (stopped) {
      std::lock_guard lock(_standby_mutex);
      _following = _follower->following();
    }
  }
  if (_options.restore_partition && !_options.stop_at) {
    for (std::int32_t p : partitions) {
      if (_next_offsets.contains(p)) continue;  // resumes from its own state
      if (auto restored = _options.restore_partition(p, *_store)) {
        _next_offsets[p] = *restored;
        _committed[p] = *restored;
      }
    }
  }
  std::map<std::int32_t, std::optional<std::int64_t>> starts;
  for (std::int32_t p : partitions) {
    auto it = _next_offsets.find(p);
    starts[p] = it == _next_offsets.end() ? std::nullopt : std::optional<std::int64_t>(it->second);
  }
  std::string where;
  for (const auto& [p, o] : starts) {
    if (!where.empty()) where.push_back(',');
    where.append(std::to_string(p)).push_back('@');
    where.append(o ? std::to_string(*o) : "beginning");
  }
  base::log_info("partitions assigned", {{"topic", _options.topic}, {"start", where}});
  {
    // Served once folded up to where the log ends now: its previous owner may have acknowledged writes up to there.
    std::lock_guard lock(_moves_mutex);
    for (std::int32_t p : partitions) _moves[p] = -1;
  }
  if (_assignment_observer) {
    auto owned = _consumer->assignment();  // the new partitions are added once this returns
    owned.insert(owned.end(), partitions.begin(), partitions.end());
    std::sort(owned.begin(), owned.end());
    owned.erase(std::unique(owned.begin(), owned.end()), owned.end());
    _assignment_observer(owned);
  }
  return starts;
}

void Engine::on_revoked(const std::vector<std::int32_t>& partitions) {
  // What was folded from these partitions is stored before another member starts on them.
  if (auto committed = finish_commit(); !committed) _commit_error = committed.error();
  base::log_info("partitions revoked", {{"topic", _options.topic}, {"partitions", base::join(partitions)}});
  _standbys_dirty = true;  // a revoked partition may be one to keep a standby of
  {
    std::lock_guard lock(_moves_mutex);
    for (std::int32_t p : partitions) _moves.erase(p);
  }
  if (_assignment_observer) {
    auto owned = _consumer->assignment();  // the revoked partitions are removed once this returns
    std::erase_if(owned, [&](std::int32_t p) { return std::find(partitions.begin(), partitions.end(), p) != partitions.end(); });
    _assignment_observer(owned);
  }
}

bool Engine::caught_up(std::int64_t max_lag) const {
  auto lags = lag();
  if (lags.empty()) return false;
  if (!moving().empty()) return false;
  for (const auto& [partition, l] : lags) {
    if (l < 0 || l > max_lag) return false;
  }
  return true;
}

base::Result<void> Engine::fold_batch(const std::vector<log::Record>& records) {
  const auto fold_start = std::chrono::steady_clock::now();
  auto batch = std::make_unique<Commit>();
  auto folder_of = [&](std::int32_t partition) -> fold::Folder& {
    Commit::Part& part = batch->parts[partition];
    if (!part.folder) {
      part.state = _store->partition(partition);
      const fold::Reader* reader = part.state.get();
      // The batch still committing is part of the state this one folds on.
      if (_in_flight) {
        if (auto it = _in_flight->parts.find(partition); it != _in_flight->parts.end() && it->second.writes) {
          part.reader = std::make_unique<fold::Overlay>(*it->second.writes, *part.state);
          reader = part.reader.get();
        }
      }
      part.folder = std::make_unique<fold::Folder>(*reader);
    }
    return *part.folder;
  };
  std::map<std::int32_t, std::int64_t>& next = batch->next;
  bool sent_dead_letters = false;
  for (const log::Record& r : records) {
    if (_options.stop_at) {
      auto limit = _options.stop_at->find(r.partition);
      if (limit == _options.stop_at->end() || r.offset >= limit->second) {
        _consumer->pause({r.partition});  // replay: past its end, nothing more of it is wanted
        continue;
      }
    }
    auto known = _next_offsets.find(r.partition);
    if (known != _next_offsets.end() && r.offset < known->second) {
      // Already folded: a rebalance handed us a partition we had read ahead on.
      _stats.skipped_refolds.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const auto encoding = codec::encoding_for_content_type(
        r.content_type.empty() ? std::nullopt : std::optional<std::string_view>(r.content_type));
    auto event = codec::decode(r.value, encoding, r.key);
    if (event) {
      if (auto misplaced = check_home_partition(event->session_id(), r.partition)) event = std::move(*misplaced);
    }
    FoldedRecord folded;
    folded.partition = r.partition;
    folded.offset = r.offset;
    if (!event) {
      std::vector<log::Header> headers = {
          {"statefold-reason", event.error().message},
          {"statefold-source-topic", _options.topic},
          {"statefold-source-partition", std::to_string(r.partition)},
          {"statefold-source-offset", std::to_string(r.offset)},
      };
      if (!r.content_type.empty()) headers.push_back({"content-type", std::string(r.content_type)});
      if (!_options.stop_at) {  // a replay rebuilds state; the live engine already dead-lettered this record
        const auto [key, value] = dead_letter_body(r, headers);
        if (auto sent = _dead_letters->send(_options.dead_letter_topic, key, value, headers); !sent) {
          return sent.error();
        }
        sent_dead_letters = true;
      }
      folder_of(r.partition).record_dead_letter();
      folded.dead_letter = true;
      folded.applied = {fold::Outcome::rejected, 0, 0, event.error().message};
      _stats.dead_letters.fetch_add(1, std::memory_order_relaxed);
      base::log_warn("record sent to the dead-letter topic",
                     {{"partition", std::to_string(r.partition)}, {"offset", std::to_string(r.offset)},
                      {"reason", event.error().message}});
    } else {
      folded.applied = folder_of(r.partition).apply(*event, {r.partition, r.offset, r.timestamp_ms});
      folded.session_id = std::string(event->session_id());
      if (folded.applied.outcome == fold::Outcome::accepted &&
          event->payload_type() == static_cast<std::uint8_t>(schema::Payload::ErasureRequest)) {
        batch->erased.push_back(folded.session_id);
      }
      switch (folded.applied.outcome) {
        case fold::Outcome::accepted: _stats.accepted.fetch_add(1, std::memory_order_relaxed); break;
        case fold::Outcome::duplicate: _stats.duplicates.fetch_add(1, std::memory_order_relaxed); break;
        case fold::Outcome::rejected: _stats.rejected.fetch_add(1, std::memory_order_relaxed); break;
      }
    }
    next[r.partition] = r.offset + 1;
    _stats.records.fetch_add(1, std::memory_order_relaxed);
    if (_observer) batch->folded.push_back(std::move(folded));
  }
  if (next.empty()) return {};
  // A dead letter must be on its topic before the offset that skips it is stored: nothing is lost.
  if (sent_dead_letters) {
    if (auto flushed = _dead_letters->flush(kDeadLetterFlushTimeout); !flushed) {
      return base::make_error("cannot write to the dead-letter topic " + _options.dead_letter_topic + ": " +
                              flushed.error().message);
    }
  }
  // The folders read nothing more: the batch in flight may go.
  for (auto& [partition, part] : batch->parts) part.writes = &part.folder->finish();
  batch->records = records.size();
  batch->fold_time = std::chrono::steady_clock::now() - fold_start;
  for (const auto& [p, o] : next) _next_offsets[p] = o;
  // Batches reach the store in order, each whole with its offsets: the one in flight first.
  if (auto committed = finish_commit(); !committed) return committed.error();
  if (!_committer) _committer = std::make_unique<CommitThread>(*this);
  _in_flight = std::move(batch);
  _committer->submit(*_in_flight);
  return {};
}

base::Result<void> Engine::commit(Commit& batch) {
  const auto commit_start = std::chrono::steady_clock::now();
  for (;;) {
    std::map<std::int32_t, const fold::WriteSet*> writes;
    for (const auto& [partition, part] : batch.parts) writes[partition] = part.writes;
    auto committed = _store->commit(writes, batch.next);
    if (committed) break;
    // Out of space despite the reserve (something else filled the disk): nothing of the batch is in. Wait for
    // space and write it again, whole, so exactly-once holds.
    if (committed.error().code != base::ErrorCode::resource_exhausted) return committed.error();
    if (auto resumed = wait_for_disk_space(committed.error()); !resumed) return resumed.error();
  }
  if (_probe != nullptr) {
    _probe->batch_committed(batch.records, batch.fold_time, std::chrono::steady_clock::now() - commit_start);
  }
  for (const auto& session : batch.erased) {
    // The erased content is out of the state; compaction takes it out of the store's files as well.
    if (auto compacted = _store->compact_session(session); !compacted) return compacted.error();
    base::log_info("erased session compacted out of the store files", {{"session", session}});
  }
  _stats.batches.fetch_add(1, std::memory_order_relaxed);
  // Appends waiting for their fold (read-your-writes) are answered as soon as the batch is in the store.
  if (_observer) _observer(batch.folded);
  return {};
}

base::Result<void> Engine::finish_commit() {
  if (!_in_flight) return {};
  auto committed = _committer->wait();
  auto done = std::move(_in_flight);
  if (!committed) return committed.error();
  // Group offsets are for lag monitoring only: at most one commit a second, or small batches (API appends) would
  // queue thousands of OffsetCommits ahead of the heartbeats and cost the group membership.
  for (const auto& [p, o] : done->next) {
    _lag_offsets[p] = o;
    _committed[p] = o;
  }
  return {};
}

std::pair<std::optional<std::string_view>, std::span<const std::uint8_t>> Engine::dead_letter_body(
    const log::Record& r, std::vector<log::Header>& headers) {
  // A record the broker took may still be too large to send again whole (compressed on its way in, or just under
  // the broker's limit while the producer's is lower): it is sent cut, with what identifies the original, so no
  // record can stop the partition (spec 10).
  std::optional<std::string_view> key = r.key;
  std::span<const std::uint8_t> value = r.value;
  if (value.size() > kDeadLetterMaxValueBytes) {
    headers.push_back({"statefold-original-size", std::to_string(value.size())});
    headers.push_back({"statefold-original-sha256", base::to_hex(base::sha256(value))});
    value = value.first(kDeadLetterMaxValueBytes);
  }
  if (key && key->size() > kDeadLetterMaxKeyBytes) {
    headers.push_back({"statefold-original-key-size", std::to_string(key->size())});
    headers.push_back({"statefold-original-key-sha256", base::to_hex(base::sha256(*key))});
    key = key->substr(0, kDeadLetterMaxKeyBytes);
  }
  return {key, value};
}

std::optional<base::Error> Engine::check_home_partition(std::string_view session_id, std::int32_t partition) const {
  if (_options.partitions <= 0) return std::nullopt;
  const std::int32_t home = log::partition_for_key(session_id, _options.partitions);
  if (home == partition) return std::nullopt;
  // Folding it here would order the session's events differently live and in a replay (spec 10): refused, whatever
  // the partition is, the same way every time.
  return base::make_error(base::ErrorCode::invalid_argument,
                          "session " + std::string(session_id) + " belongs on partition " + std::to_string(home) +
                              " (murmur2 of its id over " + std::to_string(_options.partitions) +
                              " partitions, as Java clients and statefold compute it), but this record is on partition " +
                              std::to_string(partition) +
                              ": produce with the key = session id and a murmur2 partitioner (librdkafka clients: "
                              "partitioner=murmur2_random; see docs/events.md)");
}

std::optional<std::string> Engine::disk_full() const {
  std::lock_guard lock(_disk_mutex);
  if (_disk_full.empty()) return std::nullopt;
  return _disk_full;
}

void Engine::set_disk_full(std::string why) {
  std::lock_guard lock(_disk_mutex);
  _disk_full = std::move(why);
}

bool Engine::disk_is_low() {
  if (_options.disk_reserve_bytes == 0) return false;
  const auto now = std::chrono::steady_clock::now();
  if (now - _last_disk_check < std::chrono::milliseconds(200)) return _disk_low;
  _last_disk_check = now;
  std::error_code ec;
  const auto space = std::filesystem::space(_options.data_dir, ec);
  if (ec) return _disk_low;  // cannot tell: keep the last answer rather than stop on a failed statvfs
  // A little above the reserve to resume, so that folding does not flap around the line.
  const std::uint64_t reserve = _options.disk_reserve_bytes;
  const std::uint64_t resume_at = reserve + std::min<std::uint64_t>(reserve / 8, 64ull << 20);
  const bool low = _disk_low ? space.available < resume_at : space.available < reserve;
  if (low == _disk_low) return low;
  _disk_low = low;
  if (low) {
    std::string why = "the data directory " + _options.data_dir + " has ";
    why += mib(space.available) + " free, less than the disk reserve of " + mib(reserve) +
           ": folding is paused and writes are refused until space returns";
    base::log_error("disk nearly full: folding paused",
                    {{"data_dir", _options.data_dir}, {"free_bytes", std::to_string(space.available)},
                     {"reserve_bytes", std::to_string(reserve)}});
    _stats.disk_pauses.fetch_add(1, std::memory_order_relaxed);
    set_disk_full(std::move(why));
  } else {
    base::log_info("disk space is back: folding resumes",
                   {{"data_dir", _options.data_dir}, {"free_bytes", std::to_string(space.available)}});
    set_disk_full({});
  }
  return low;
}

base::Result<void> Engine::wait_for_disk_space(const base::Error& failure) {
  base::log_error("the store ran out of disk space: the batch will be written again once space returns",
                  {{"data_dir", _options.data_dir}, {"error", failure.message}});
  _stats.disk_pauses.fetch_add(1, std::memory_order_relaxed);
  set_disk_full("the store of " + _options.data_dir + " ran out of disk space: " + failure.message);
  const std::uint64_t needed = std::max<std::uint64_t>(_options.disk_reserve_bytes, 16ull << 20);
  for (;;) {
    if (_stop.load()) return failure;
    std::error_code ec;
    if (auto space = std::filesystem::space(_options.data_dir, ec); !ec && space.available >= needed) {
      if (auto resumed = _store->resume(); resumed) break;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  base::log_info("disk space is back: the store resumed writing", {{"data_dir", _options.data_dir}});
  set_disk_full({});
  return {};
}

void Engine::commit_lag_offsets(bool now) {
  const auto at = std::chrono::steady_clock::now();
  if (_lag_offsets.empty() || (!now && at - _last_lag_commit < std::chrono::seconds(1))) return;
  // Only the group's own partitions: a standby's progress is not the group's to record.
  if (_follower) {
    const auto owned = _consumer->assignment();
    std::erase_if(_lag_offsets, [&](const auto& e) { return std::find(owned.begin(), owned.end(), e.first) == owned.end(); });
    if (_lag_offsets.empty()) return;
  }
  if (!_consumer->commit_for_lag(_lag_offsets)) return;  // the group just rebalanced: later
  _lag_offsets.clear();
  _last_lag_commit = at;
}

void Engine::maybe_log_progress() {
  auto now = std::chrono::steady_clock::now();
  if (now - _last_progress < _options.progress_interval) return;
  const std::uint64_t records = _stats.records.load();
  const double seconds = std::chrono::duration<double>(now - _last_progress).count();
  if (records != _records_at_last_progress) {
    std::int64_t total_lag = 0;
    for (const auto& [p, l] : lag()) total_lag += std::max<std::int64_t>(0, l);
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.0f", (records - _records_at_last_progress) / seconds);
    base::log_info("folding", {{"records", std::to_string(records)}, {"accepted", std::to_string(_stats.accepted.load())},
                               {"duplicates", std::to_string(_stats.duplicates.load())},
                               {"rejected", std::to_string(_stats.rejected.load())},
                               {"dead_letters", std::to_string(_stats.dead_letters.load())},
                               {"events_per_s", rate}, {"lag", std::to_string(total_lag)}});
  }
  _last_progress = now;
  _records_at_last_progress = records;
}

bool Engine::reached_stop() {
  if (!_options.stop_at) return false;
  const auto positions = _consumer->positions();
  for (const auto& [partition, limit] : *_options.stop_at) {
    if (limit <= 0) continue;
    auto next = _next_offsets.find(partition);
    if (next != _next_offsets.end() && next->second >= limit) continue;
    // The consumer's position moves past transaction markers, which never arrive as records.
    auto position = positions.find(partition);
    if (position != positions.end() && position->second >= limit) continue;
    return false;
  }
  return true;
}

base::Result<void> Engine::run() {
  base::log_info("engine started", {{"brokers", _options.brokers}, {"topic", _options.topic},
                                    {"group", _options.group}, {"data_dir", _options.data_dir},
                                    {"wal", _options.wal ? "on" : "off"}});
  _last_progress = std::chrono::steady_clock::now();
  std::vector<log::Record> batch;
  batch.reserve(_options.max_batch);
  bool paused = false;
  while (!_stop.load()) {
    // Back-pressure: while RocksDB throttles writes, or the disk is nearly full, stop fetching (polling goes on,
    // so the group keeps us). A batch already fetched is still folded: the reserve is there for it.
    const bool stalled = _store->write_stalled();
    if (const bool pause = stalled || disk_is_low(); pause != paused) {
      const auto partitions = _consumer->assignment();
      pause ? _consumer->pause(partitions) : _consumer->resume(partitions);
      paused = pause;
      _stats.pauses.fetch_add(stalled ? 1 : 0, std::memory_order_relaxed);
      if (stalled || !pause) base::log_info(stalled ? "store is throttling writes: fetching paused" : "fetching resumed");
    }
    // While a batch commits, only take what is already fetched: with nothing new, finish the commit (and answer
    // the appends waiting for it) instead of waiting on the consumer.
    _consumer->poll(batch, _options.max_batch,
                    _in_flight ? std::chrono::milliseconds(0) : _options.poll_timeout);
    if (std::string fatal = _consumer->fatal_error(); !fatal.empty()) {
      (void)finish_commit();
      return base::make_error("Kafka consumer failed: " + fatal);
    }
    if (_commit_error) return *std::exchange(_commit_error, std::nullopt);
    if (batch.empty()) {
      if (auto committed = finish_commit(); !committed) return committed.error();
      // WAL off: idle, flush the memtable, so that a crash now rereads nothing (a no-op with the WAL on).
      if (std::chrono::steady_clock::now() - _last_records >= _options.idle_flush_after) _store->flush_unflushed();
    } else {
      _last_records = std::chrono::steady_clock::now();
      if (auto folded = fold_batch(batch); !folded) {
        (void)finish_commit();
        return folded.error();
      }
    }
    // Standbys: the partitions followed outside the group, folded like the owned ones (not while paused).
    if (auto applied = apply_standbys(); !applied) {
      (void)finish_commit();
      return applied.error();
    }
    if (_follower && !paused) {
      _follower->poll(batch, _options.max_batch, std::chrono::milliseconds(0));
      if (!batch.empty()) {
        _last_records = std::chrono::steady_clock::now();
        if (auto folded = fold_batch(batch); !folded) {
          (void)finish_commit();
          return folded.error();
        }
      }
    }
    commit_lag_offsets();
    settle_moves();
    drop_lost_partitions();
    maybe_log_progress();
    if (reached_stop()) break;
  }
  // The batch in hand is committed before the group is left, so the partitions move on at once.
  if (auto committed = finish_commit(); !committed) return committed.error();
  commit_lag_offsets(true);
  _consumer->close();
  base::log_info("engine stopped", {{"records", std::to_string(_stats.records.load())},
                                    {"accepted", std::to_string(_stats.accepted.load())}});
  return {};
}

}  // namespace statefold::runtime
