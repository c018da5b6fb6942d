#include <atomic>
#include <mutex>

#include "engine/log/internal/config.h"

namespace statefold::log {

namespace {

using internal::HandlePtr;

struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const { rd_kafka_topic_partition_list_destroy(list); }
};
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;

struct MessageDeleter {
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
};

// A consumed message as a Record: views into the message, valid while it lives.
Record view_of(const rd_kafka_message_t* m) {
  Record r;
  r.partition = m->partition;
  r.offset = m->offset;
  rd_kafka_timestamp_type_t type;
  r.timestamp_ms = rd_kafka_message_timestamp(m, &type);
  if (m->key != nullptr) r.key = std::string_view(static_cast<const char*>(m->key), m->key_len);
  r.value = std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(m->payload), m->len);
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const void* value = nullptr;
    std::size_t size = 0;
    if (rd_kafka_header_get_last(headers, "content-type", &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        value != nullptr) {
      r.content_type = std::string_view(static_cast<const char*>(value), size);
    }
  }
  return r;
}

// A consumer outside any consumer group: audit's reads and the tail of the membership topic (with assign()), and the
// standby follower (per partition).
base::Result<HandlePtr> groupless_consumer(const Properties& properties) {
  auto conf = internal::make_conf(properties);
  if (!conf) return conf.error();
  internal::route_logs(conf->get());
  char error[512];
  rd_kafka_t* raw = rd_kafka_new(RD_KAFKA_CONSUMER, conf->get(), error, sizeof error);
  if (raw == nullptr) return base::make_error(std::string("cannot create a Kafka consumer: ") + error);
  (void)conf->release();  // owned by the handle now
  return HandlePtr(raw);
}

// For reading a partition to its end once, with assign(): committed records only, and the end reported. The group id
// is required by assign(); nothing is ever committed under it.
Properties reader_properties(const std::string& brokers, Properties extra) {
  extra.insert(extra.end(), {{"bootstrap.servers", brokers},
                             {"group.id", "statefold-reader"},
                             {"enable.auto.commit", "false"},
                             {"enable.partition.eof", "true"},
                             {"isolation.level", "read_committed"}});
  return extra;
}

// A consumed message as a StoredRecord, owning its bytes.
StoredRecord stored_of(const rd_kafka_message_t* m) {
  const Record view = view_of(m);
  StoredRecord r;
  r.partition = view.partition;
  r.offset = view.offset;
  r.timestamp_ms = view.timestamp_ms;
  if (view.key) r.key = std::string(*view.key);
  r.value.assign(view.value.begin(), view.value.end());
  r.content_type = std::string(view.content_type);
  return r;
}

}  // namespace

Properties consumer_properties(const ConsumerOptions& options) {
  return {
      {"bootstrap.servers", options.brokers},
      {"group.id", options.group},
      {"client.id", options.client_id},
      {"partition.assignment.strategy", "cooperative-sticky"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"enable.partition.eof", "false"},
      {"isolation.level", "read_committed"},
      {"queued.max.messages.kbytes", std::to_string(std::max<std::uint64_t>(1024, options.queue_budget_bytes / 1024))},
      {"fetch.max.bytes", std::to_string(std::min<std::uint64_t>(52428800, options.queue_budget_bytes / 2))},
      {"statistics.interval.ms", "0"},
      // A member that died for good (static members never leave) holds up rebalances this long.
      {"session.timeout.ms", "10000"},
      // An idle partition's first fetch answers within this: readiness (lag) is known soon after assignment.
      {"fetch.wait.max.ms", "100"},
  };
}

namespace {

constexpr std::chrono::seconds kQuietAfterRebalance{5};

class KafkaConsumer final : public Consumer {
 public:
  KafkaConsumer(ConsumerOptions options, AssignmentListener* listener)
      : _options(std::move(options)), _listener(listener) {}

  ~KafkaConsumer() override {
    release();
    if (_rk && !_closed) rd_kafka_consumer_close(_rk.get());
  }

  base::Result<void> init() {
    auto conf = internal::make_conf(consumer_properties(_options));
    if (!conf) return conf.error();
    if (!_options.instance_id.empty()) {
      if (auto r = internal::set(conf->get(), "group.instance.id", _options.instance_id); !r) return r;
    }
    for (const auto& [name, value] : _options.extra) {
      if (auto r = internal::set(conf->get(), name, value); !r) return r;
    }
    internal::route_logs(conf->get());
    rd_kafka_conf_set_opaque(conf->get(), this);
    rd_kafka_conf_set_rebalance_cb(conf->get(), &KafkaConsumer::rebalance_trampoline);
    char error[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf->get(), error, sizeof error);
    if (rk == nullptr) return base::make_error(std::string("cannot create the Kafka consumer: ") + error);
    (void)conf->release();  // owned by rk now
    _rk.reset(rk);
    rd_kafka_poll_set_consumer(_rk.get());
    PartitionListPtr topics(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(topics.get(), _options.topic.c_str(), RD_KAFKA_PARTITION_UA);
    if (auto err = rd_kafka_subscribe(_rk.get(), topics.get()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return base::make_error("cannot subscribe to " + _options.topic + ": " + rd_kafka_err2str(err));
    }
    return {};
  }

  std::size_t poll(std::vector<Record>& out, std::size_t max, std::chrono::milliseconds timeout) override {
    release();
    out.clear();
    _rebalanced = false;
    int wait_ms = static_cast<int>(timeout.count());
    while (out.size() < max && !_rebalanced) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(_rk.get(), wait_ms);
      if (m == nullptr) break;
      wait_ms = 0;
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        handle_error(m);
        rd_kafka_message_destroy(m);
        continue;
      }
      _held.push_back(m);
      Record r = view_of(m);
      out.push_back(r);
    }
    return out.size();
  }

  std::vector<std::int32_t> assignment() const override {
    std::lock_guard lock(_mutex);
    return _assigned;
  }

  void pause(const std::vector<std::int32_t>& partitions) override { toggle(partitions, true); }
  void resume(const std::vector<std::int32_t>& partitions) override { toggle(partitions, false); }

  bool commit_for_lag(const std::map<std::int32_t, std::int64_t>& next_offsets) override {
    if (next_offsets.empty()) return true;
    // A rebalance comes in waves (revocations, then assignments, then often another round as members settle): wait
    // for the group to be quiet before committing.
    if (std::chrono::steady_clock::now() - _last_rebalance < kQuietAfterRebalance) return false;
    PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(next_offsets.size())));
    for (const auto& [p, o] : next_offsets) {
      rd_kafka_topic_partition_list_add(list.get(), _options.topic.c_str(), p)->offset = o;
    }
    rd_kafka_commit(_rk.get(), list.get(), 1 /* async */);
    return true;
  }

  std::map<std::int32_t, std::int64_t> high_watermarks() const override {
    std::map<std::int32_t, std::int64_t> out;
    for (std::int32_t p : assignment()) {
      std::int64_t low = -1;
      std::int64_t high = -1;
      rd_kafka_get_watermark_offsets(_rk.get(), _options.topic.c_str(), p, &low, &high);
      out[p] = high;
    }
    return out;
  }

  std::map<std::int32_t, std::int64_t> query_high_watermarks(const std::vector<std::int32_t>& partitions,
                                                             std::chrono::milliseconds timeout) override {
    std::map<std::int32_t, std::int64_t> out;
    for (std::int32_t p : partitions) {
      std::int64_t low = -1;
      std::int64_t high = -1;
      if (rd_kafka_query_watermark_offsets(_rk.get(), _options.topic.c_str(), p, &low, &high,
                                           static_cast<int>(timeout.count())) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        out[p] = high;
      }
    }
    return out;
  }

  std::map<std::int32_t, std::int64_t> positions() const override {
    std::map<std::int32_t, std::int64_t> out;
    const auto assigned = assignment();
    if (assigned.empty()) return out;
    PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(assigned.size())));
    for (std::int32_t p : assigned) rd_kafka_topic_partition_list_add(list.get(), _options.topic.c_str(), p);
    rd_kafka_position(_rk.get(), list.get());
    for (int i = 0; i < list->cnt; ++i) {
      out[list->elems[i].partition] = list->elems[i].offset < 0 ? -1 : list->elems[i].offset;
    }
    return out;
  }

  void close() override {
    release();
    if (_rk && !_closed) {
      rd_kafka_consumer_close(_rk.get());
      _closed = true;
    }
  }

  std::string fatal_error() const override {
    std::lock_guard lock(_mutex);
    return _fatal;
  }

 private:
  static void rebalance_trampoline(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                   rd_kafka_topic_partition_list_t* partitions, void* opaque) {
    static_cast<KafkaConsumer*>(opaque)->rebalance(rk, err, partitions);
  }

  void rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions) {
    _rebalanced = true;
    _last_rebalance = std::chrono::steady_clock::now();
    std::vector<std::int32_t> ids;
    for (int i = 0; i < partitions->cnt; ++i) ids.push_back(partitions->elems[i].partition);
    const bool cooperative = std::string_view(rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      // Start each partition where the store says, never where the group's committed offset says.
      auto starts = _listener->on_assigned(ids);
      for (int i = 0; i < partitions->cnt; ++i) {
        auto it = starts.find(partitions->elems[i].partition);
        partitions->elems[i].offset =
            (it != starts.end() && it->second) ? *it->second : RD_KAFKA_OFFSET_BEGINNING;
      }
      if (cooperative) {
        if (rd_kafka_error_t* e = rd_kafka_incremental_assign(rk, partitions)) {
          set_fatal(std::string("incremental assign failed: ") + rd_kafka_error_string(e));
          rd_kafka_error_destroy(e);
        }
      } else {
        rd_kafka_assign(rk, partitions);
      }
      std::lock_guard lock(_mutex);
      for (std::int32_t p : ids) _assigned.push_back(p);
      std::sort(_assigned.begin(), _assigned.end());
    } else {
      _listener->on_revoked(ids);
      if (cooperative) {
        if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk, partitions)) rd_kafka_error_destroy(e);
      } else {
        rd_kafka_assign(rk, nullptr);
      }
      std::lock_guard lock(_mutex);
      if (!cooperative) {
        _assigned.clear();
      } else {
        std::erase_if(_assigned, [&](std::int32_t p) { return std::find(ids.begin(), ids.end(), p) != ids.end(); });
      }
    }
  }

  void handle_error(const rd_kafka_message_t* m) {
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
    std::string what = rd_kafka_message_errstr(m);
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
      char buf[512];
      rd_kafka_fatal_error(_rk.get(), buf, sizeof buf);
      set_fatal(buf);
      return;
    }
    std::fprintf(stderr, "statefold: kafka consumer: %s\n", what.c_str());
  }

  void set_fatal(std::string message) {
    std::lock_guard lock(_mutex);
    if (_fatal.empty()) _fatal = std::move(message);
  }

  void toggle(const std::vector<std::int32_t>& partitions, bool pause) {
    if (partitions.empty()) return;
    PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
    for (std::int32_t p : partitions) rd_kafka_topic_partition_list_add(list.get(), _options.topic.c_str(), p);
    if (pause) {
      rd_kafka_pause_partitions(_rk.get(), list.get());
    } else {
      rd_kafka_resume_partitions(_rk.get(), list.get());
    }
  }

  void release() {
    for (rd_kafka_message_t* m : _held) rd_kafka_message_destroy(m);
    _held.clear();
  }

  ConsumerOptions _options;
  AssignmentListener* _listener;
  HandlePtr _rk;
  std::vector<rd_kafka_message_t*> _held;
  bool _rebalanced = false;
  std::chrono::steady_clock::time_point _last_rebalance;
  bool _closed = false;
  mutable std::mutex _mutex;
  std::vector<std::int32_t> _assigned;
  std::string _fatal;
};

}  // namespace

base::Result<std::unique_ptr<Consumer>> Consumer::create(const ConsumerOptions& options,
                                                         AssignmentListener* listener) {
  auto consumer = std::make_unique<KafkaConsumer>(options, listener);
  if (auto r = consumer->init(); !r) return r.error();
  return std::unique_ptr<Consumer>(std::move(consumer));
}

}  // namespace statefold::log

namespace statefold::log {

base::Result<std::map<std::int64_t, StoredRecord>> read_records(const std::string& brokers, const std::string& topic,
                                                                std::int32_t partition,
                                                                const std::vector<std::int64_t>& offsets) {
  std::map<std::int64_t, StoredRecord> out;
  if (offsets.empty()) return out;
  auto consumer = groupless_consumer(reader_properties(brokers, {}));
  if (!consumer) return consumer.error();
  internal::HandlePtr rk = std::move(*consumer);
  constexpr std::int64_t kSeekGap = 500;  // read through shorter gaps, seek over longer ones
  auto assign_at = [&](std::int64_t offset) {
    PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition)->offset = offset;
    return rd_kafka_assign(rk.get(), list.get());
  };
  if (auto err = assign_at(offsets.front()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return base::make_error("cannot read " + topic + "[" + std::to_string(partition) + "]: " + rd_kafka_err2str(err));
  }
  std::size_t next = 0;
  int idle = 0;
  while (next < offsets.size()) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 1000);
    if (m == nullptr) {
      if (++idle > 30) {
        return base::make_error("timed out reading " + topic + "[" + std::to_string(partition) + "] at offset " +
                                std::to_string(offsets[next]));
      }
      continue;
    }
    idle = 0;
    std::unique_ptr<rd_kafka_message_t, decltype(&rd_kafka_message_destroy)> guard(m, &rd_kafka_message_destroy);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) break;  // the rest is beyond the end of the log
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) return base::make_error(std::string("reading: ") + rd_kafka_message_errstr(m));
    while (next < offsets.size() && offsets[next] < m->offset) ++next;  // no record there
    if (next >= offsets.size()) break;
    if (m->offset == offsets[next]) {
      StoredRecord r = stored_of(m);
      out.emplace(r.offset, std::move(r));
      ++next;
    }
    if (next < offsets.size() && offsets[next] - m->offset > kSeekGap) {
      if (auto err = assign_at(offsets[next]); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return base::make_error(std::string("seek failed: ") + rd_kafka_err2str(err));
      }
    }
  }
  rd_kafka_consumer_close(rk.get());
  return out;
}

namespace {

// Follows partitions with librdkafka's per-partition (legacy) consumer: consume_start / consume_stop per partition,
// into one queue. Not assign(): librdkafka 2.0.2 aborts (rktp_started assertion, upstream issue 5573) when an
// assignment is replaced again before the previous one's partitions have stopped, and a standby plan can change twice
// in a second. consume_stop returns only once the partition has stopped, so no change ever overlaps another.
class KafkaFollower final : public Follower {
 public:
  KafkaFollower(HandlePtr rk, std::string topic) : _rk(std::move(rk)), _topic(std::move(topic)) {
    _queue = rd_kafka_queue_new(_rk.get());
    _handle = rd_kafka_topic_new(_rk.get(), _topic.c_str(), nullptr);
  }
  ~KafkaFollower() override {
    release();
    for (const auto& [p, next] : _next) rd_kafka_consume_stop(_handle, p);
    rd_kafka_topic_destroy(_handle);
    rd_kafka_queue_destroy(_queue);
  }

  base::Result<void> follow(std::int32_t partition, std::optional<std::int64_t> offset) override {
    if (_next.contains(partition)) return {};
    const std::int64_t from = offset.value_or(RD_KAFKA_OFFSET_BEGINNING);
    if (rd_kafka_consume_start_queue(_handle, partition, from, _queue) != 0) {
      return base::make_error("cannot follow " + where(partition) + ": " + rd_kafka_err2str(rd_kafka_last_error()));
    }
    _next[partition] = from;
    return {};
  }
  base::Result<void> stop_following(std::int32_t partition) override {
    if (_next.erase(partition) == 0) return {};
    if (rd_kafka_consume_stop(_handle, partition) != 0) {
      return base::make_error("cannot stop following " + where(partition) + ": " +
                              rd_kafka_err2str(rd_kafka_last_error()));
    }
    return {};
  }
  std::vector<std::int32_t> following() const override {
    std::vector<std::int32_t> out;
    for (const auto& [p, next] : _next) out.push_back(p);
    return out;
  }
  std::size_t poll(std::vector<Record>& out, std::size_t max, std::chrono::milliseconds timeout) override {
    release();
    out.clear();
    rd_kafka_poll(_rk.get(), 0);  // serves the handle's own events (errors, statistics)
    _batch.resize(std::max<std::size_t>(max, 1));
    const ssize_t n = rd_kafka_consume_batch_queue(_queue, static_cast<int>(timeout.count()), _batch.data(), max);
    for (ssize_t i = 0; i < n; ++i) {
      rd_kafka_message_t* m = _batch[static_cast<std::size_t>(i)];
      // A stopped partition's records are purged by consume_stop; the check is for one stopped and started again.
      auto next = _next.find(m->partition);
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR || next == _next.end() ||
          (next->second >= 0 && m->offset < next->second)) {
        rd_kafka_message_destroy(m);
        continue;
      }
      next->second = m->offset + 1;
      _held.push_back(m);
      out.push_back(view_of(m));
    }
    return out.size();
  }

 private:
  std::string where(std::int32_t partition) const { return _topic + "[" + std::to_string(partition) + "]"; }
  void release() {
    for (rd_kafka_message_t* m : _held) rd_kafka_message_destroy(m);
    _held.clear();
  }

  HandlePtr _rk;
  std::string _topic;
  rd_kafka_queue_t* _queue = nullptr;
  rd_kafka_topic_t* _handle = nullptr;
  std::map<std::int32_t, std::int64_t> _next;  // where each followed partition goes on (negative: a logical offset)
  std::vector<rd_kafka_message_t*> _held;
  std::vector<rd_kafka_message_t*> _batch;
};

}  // namespace

base::Result<std::unique_ptr<Follower>> Follower::create(const std::string& brokers, const std::string& topic,
                                                         const Properties& extra) {
  Properties properties = extra;
  // No group: the per-partition consumer neither joins one nor commits offsets.
  std::erase_if(properties, [](const auto& p) { return p.first == "group.id"; });
  properties.insert(properties.end(), {{"bootstrap.servers", brokers},
                                       {"auto.offset.reset", "earliest"},
                                       {"auto.commit.enable", "false"},
                                       {"enable.partition.eof", "false"},
                                       {"isolation.level", "read_committed"}});
  auto consumer = groupless_consumer(properties);
  if (!consumer) return consumer.error();
  return std::unique_ptr<Follower>(new KafkaFollower(std::move(*consumer), topic));
}

base::Result<void> read_partition(const std::string& brokers, const std::string& topic, std::int32_t partition,
                                  const std::function<void(StoredRecord&&)>& visit, const Properties& extra) {
  auto exists = partition_count(brokers, topic);
  if (!exists) return base::make_error(base::ErrorCode::not_found, exists.error().message);
  auto consumer = groupless_consumer(reader_properties(brokers, extra));
  if (!consumer) return consumer.error();
  internal::HandlePtr rk = std::move(*consumer);
  const std::string where = topic + "[" + std::to_string(partition) + "]";
  std::int64_t low = 0;
  std::int64_t high = 0;
  if (auto err = rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), partition, &low, &high, 10000);
      err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return base::make_error(base::ErrorCode::unavailable, "cannot find the end of " + where + ": " + rd_kafka_err2str(err));
  }
  if (high <= low) return {};
  PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition)->offset = low;
  if (auto err = rd_kafka_assign(rk.get(), list.get()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return base::make_error("cannot read " + where + ": " + rd_kafka_err2str(err));
  }
  int idle = 0;
  for (;;) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 1000);
    if (m == nullptr) {
      if (++idle > 30) return base::make_error(base::ErrorCode::unavailable, "timed out reading " + where);
      continue;
    }
    idle = 0;
    std::unique_ptr<rd_kafka_message_t, decltype(&rd_kafka_message_destroy)> guard(m, &rd_kafka_message_destroy);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) break;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) return base::make_error(std::string("reading: ") + rd_kafka_message_errstr(m));
    const bool last = m->offset + 1 >= high;
    visit(stored_of(m));
    if (last) break;
  }
  rd_kafka_consumer_close(rk.get());
  return {};
}

}  // namespace statefold::log

namespace statefold::log {

namespace {

class KafkaTail final : public Tail {
 public:
  explicit KafkaTail(internal::HandlePtr rk) : _rk(std::move(rk)) {}
  ~KafkaTail() override { rd_kafka_consumer_close(_rk.get()); }

  std::vector<StoredRecord> poll(std::chrono::milliseconds timeout) override {
    std::vector<StoredRecord> out;
    int wait_ms = static_cast<int>(timeout.count());
    while (out.size() < 10000) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(_rk.get(), wait_ms);
      if (m == nullptr) break;
      wait_ms = 0;
      std::unique_ptr<rd_kafka_message_t, MessageDeleter> guard(m);
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;  // transient (a broker away): librdkafka retries
      out.push_back(stored_of(m));
    }
    return out;
  }

 private:
  internal::HandlePtr _rk;
};

}  // namespace

base::Result<std::unique_ptr<Tail>> Tail::open(const std::string& brokers, const std::string& topic,
                                               const Properties& extra) {
  auto partitions = partition_count(brokers, topic);
  if (!partitions) return partitions.error();
  // A group id is required by the consumer API; nothing is ever committed under it.
  Properties properties = {{"bootstrap.servers", brokers},
                           {"group.id", "statefold-tail"},
                           {"enable.auto.commit", "false"},
                           {"enable.partition.eof", "false"},
                           {"fetch.wait.max.ms", "100"}};
  for (const auto& p : extra) properties.push_back(p);
  auto consumer = groupless_consumer(properties);
  if (!consumer) return consumer.error();
  internal::HandlePtr rk = std::move(*consumer);
  rd_kafka_poll_set_consumer(rk.get());
  PartitionListPtr list(rd_kafka_topic_partition_list_new(*partitions));
  for (int p = 0; p < *partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  if (auto err = rd_kafka_assign(rk.get(), list.get()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return base::make_error("cannot read " + topic + ": " + rd_kafka_err2str(err));
  }
  return std::unique_ptr<Tail>(std::make_unique<KafkaTail>(std::move(rk)));
}

}  // namespace statefold::log
