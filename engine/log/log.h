// log: Kafka, through librdkafka. Small interfaces over the consumer group, the idempotent producer, topic
// administration and the in-process mock cluster, so that no other module sees librdkafka's types.
//
//   auto consumer = log::Consumer::create({.brokers = "127.0.0.1:9092", .topic = "statefold.events",
//                                          .group = "statefold"}, &listener);
//   std::vector<log::Record> batch;
//   consumer.value()->poll(batch, 5000, std::chrono::milliseconds(100));
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/base/result.h"

namespace statefold::log {

inline constexpr std::string_view kDefaultTopic = "statefold.events";
inline constexpr std::string_view kDeadLetterTopic = "statefold.dlq";

// Extra librdkafka properties ("key=value"), applied last; for operators who know what they change.
using Properties = std::vector<std::pair<std::string, std::string>>;

// Properties every Kafka client of this process is made with, after its own settings and before its `extra`: the
// cluster's security (security.protocol, sasl.*, ssl.*), which every consumer, producer and admin client shares.
// Set once at start-up, before the first client is made (the CLI's [kafka] table, docs/security.md).
void set_client_properties(Properties properties);
// Whether a librdkafka property holds a secret (a password, a private key, a JAAS configuration, a client secret):
// errors never show its value, and the [kafka] table takes it only from the environment.
bool is_secret_property(std::string_view name);

struct Header {
  std::string name;
  std::string value;
};

// One consumed record. Its views stay valid until the next poll() of the consumer that returned it.
struct Record {
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::int64_t timestamp_ms = 0;
  std::optional<std::string_view> key;
  std::span<const std::uint8_t> value;
  std::string_view content_type;  // the `content-type` header, empty when absent
};

// Told about partitions as the group moves them. on_assigned returns where to start reading each partition:
// the stored next offset, or nullopt for the beginning of the partition.
class AssignmentListener {
 public:
  virtual ~AssignmentListener() = default;
  virtual std::map<std::int32_t, std::optional<std::int64_t>> on_assigned(const std::vector<std::int32_t>& partitions) = 0;
  virtual void on_revoked(const std::vector<std::int32_t>& partitions) = 0;
};

struct ConsumerOptions {
  std::string brokers;
  std::string topic{kDefaultTopic};
  std::string group = "statefold";
  std::string client_id = "statefold";
  // Static group membership: a member that restarts with the same id gets its partitions back at once instead
  // of waiting for the group to time the old incarnation out. Empty: dynamic membership.
  std::string instance_id;
  std::uint64_t queue_budget_bytes = 64ull << 20;  // librdkafka's prefetch queue: part of the memory budget
  Properties extra;
};

// The librdkafka properties the engine's consumer is created with (static membership and `extra` aside). Public
// so that the benchmarks measure their raw-consume baseline with exactly these.
Properties consumer_properties(const ConsumerOptions& options);

// Thread-safety: one thread polls; commit_for_lag may be called from that thread only.
class Consumer {
 public:
  static base::Result<std::unique_ptr<Consumer>> create(const ConsumerOptions& options,
                                                        AssignmentListener* listener);
  virtual ~Consumer() = default;
  // Appends up to `max` records, waiting up to `timeout` for the first; the batch ends early when the group
  // rebalances, so a batch never mixes partitions from before and after.
  virtual std::size_t poll(std::vector<Record>& out, std::size_t max, std::chrono::milliseconds timeout) = 0;
  virtual std::vector<std::int32_t> assignment() const = 0;
  virtual void pause(const std::vector<std::int32_t>& partitions) = 0;
  virtual void resume(const std::vector<std::int32_t>& partitions) = 0;
  // Group offsets exist only for lag monitoring: the store's offsets are the truth. False when not sent because
  // the group rebalanced moments ago: librdkafka before 2.10 can lose its assignment when a commit meets a
  // rebalance (librdkafka issue 4059); send them again later.
  virtual bool commit_for_lag(const std::map<std::int32_t, std::int64_t>& next_offsets) = 0;
  // High watermark of each assigned partition as last reported by the broker (-1 unknown). A cached figure: for a
  // partition assigned again after a while it may be the old one until the first fetch answers.
  virtual std::map<std::int32_t, std::int64_t> high_watermarks() const = 0;
  // The high watermarks of `partitions` asked of the broker now (blocking up to `timeout`); a partition it did not
  // answer for is absent.
  virtual std::map<std::int32_t, std::int64_t> query_high_watermarks(const std::vector<std::int32_t>& partitions,
                                                                     std::chrono::milliseconds timeout) = 0;
  // The next offset the consumer will fetch for each assigned partition (-1 unknown). It moves past
  // transaction markers, which are never delivered as records.
  virtual std::map<std::int32_t, std::int64_t> positions() const = 0;
  // Leaves the group cleanly.
  virtual void close() = 0;
  // A fatal error the consumer met (empty if none).
  virtual std::string fatal_error() const = 0;
};

struct ProducerOptions {
  std::string brokers;
  std::string client_id = "statefold";
  std::string compression = "zstd";
  std::chrono::milliseconds delivery_timeout{30000};
  // Set for a transactional producer. Keep it stable across restarts of the same instance: the broker then
  // fences the previous incarnation and aborts what it left open.
  std::string transactional_id;
  Properties extra;
};

struct Delivery {
  std::int32_t partition = -1;
  std::int64_t offset = -1;
  std::string error;  // empty on success
};

// Idempotent (enable.idempotence, acks=all) producer. send() queues; flush() waits for every delivery.
class Producer {
 public:
  using DeliveryCallback = std::function<void(const Delivery&)>;
  static base::Result<std::unique_ptr<Producer>> create(const ProducerOptions& options);
  virtual ~Producer() = default;
  // Keyed records land on the partition Java clients would choose (murmur2).
  virtual base::Result<void> send(std::string_view topic, std::optional<std::string_view> key,
                                  std::span<const std::uint8_t> value, const std::vector<Header>& headers,
                                  DeliveryCallback on_delivery = {}, std::optional<std::int32_t> partition = {}) = 0;
  // Waits until everything sent so far is delivered or failed; error if any delivery failed or time ran out.
  virtual base::Result<void> flush(std::chrono::milliseconds timeout) = 0;
  // Serves delivery callbacks, waiting up to `timeout` for one.
  virtual void poll(std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) = 0;

  // Transactions (transactional producers only): the records sent between begin and commit become visible to
  // read_committed consumers together, or not at all. Not thread-safe: one thread runs the transactions.
  // Recovery is built in: a commit that times out (the broker away) leaves its outcome unknown and the next
  // begin_transaction() resumes it first; an abortable failure is aborted; errors are `unavailable` (retry later)
  // until fatal() (fenced or broken: only a new producer helps).
  virtual base::Result<void> begin_transaction() = 0;
  virtual base::Result<void> commit_transaction(std::chrono::milliseconds timeout) = 0;
  virtual void abort_transaction(std::chrono::milliseconds timeout) = 0;
  virtual bool fatal() const = 0;
};

// The partition a keyed record lands on: murmur2 of the key, as Java clients and our producer choose.
std::int32_t partition_for_key(std::string_view key, int partitions);

// Creates the topic if it does not exist (infinite retention, then `topic_config`, e.g. cleanup.policy=compact);
// leaves an existing one alone.
base::Result<void> ensure_topic(const std::string& brokers, const std::string& topic, int partitions,
                                const Properties& extra = {}, const Properties& topic_config = {});
// Number of partitions of a topic, or an error if it does not exist.
base::Result<int> partition_count(const std::string& brokers, const std::string& topic);
// The first offset of each partition whose record timestamp is at or after `time_ms` (the end offset where there
// is none): what "up to a time" means for replay.
base::Result<std::map<std::int32_t, std::int64_t>> offsets_for_time(const std::string& brokers, const std::string& topic,
                                                                    std::int64_t time_ms);
// High watermarks (next offset to be written) of every partition of a topic.
base::Result<std::map<std::int32_t, std::int64_t>> end_offsets(const std::string& brokers, const std::string& topic);

// librdkafka's in-process mock cluster, for `--embedded-kafka`: a try-out without Java that keeps nothing
// after the process exits.
class EmbeddedCluster {
 public:
  static base::Result<std::unique_ptr<EmbeddedCluster>> start(int brokers = 1);
  virtual ~EmbeddedCluster() = default;
  virtual const std::string& bootstrap_servers() const = 0;
  virtual base::Result<void> create_topic(const std::string& topic, int partitions) = 0;
};

// A record read back by its position (audit), owning its bytes.
struct StoredRecord {
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::int64_t timestamp_ms = 0;
  std::optional<std::string> key;
  std::vector<std::uint8_t> value;
  std::string content_type;
};

// Reads every partition of a topic from its beginning and then follows it, outside any consumer group: the
// membership topic, which every instance reads whole. Thread-safety: one thread.
class Tail {
 public:
  static base::Result<std::unique_ptr<Tail>> open(const std::string& brokers, const std::string& topic,
                                                  const Properties& extra = {});
  virtual ~Tail() = default;
  // The records that arrived since the last call (owning their bytes), waiting up to `timeout` for the first.
  virtual std::vector<StoredRecord> poll(std::chrono::milliseconds timeout) = 0;
};

// Reads the records at `offsets` (ascending) of one partition: sequentially through short gaps, seeking over long
// ones. An offset with no record (compacted away, or a transaction marker) is absent from the result.
base::Result<std::map<std::int64_t, StoredRecord>> read_records(const std::string& brokers, const std::string& topic,
                                                                std::int32_t partition,
                                                                const std::vector<std::int64_t>& offsets);

// Reads chosen partitions of a topic outside any consumer group, each from a chosen offset, for as long as they are
// wanted: a standby's fold of partitions another instance owns. Reads committed records only, as the engine's
// consumer does. Records are views into the consumer's buffers, valid until the next poll. One thread.
class Follower {
 public:
  static base::Result<std::unique_ptr<Follower>> create(const std::string& brokers, const std::string& topic,
                                                        const Properties& extra = {});
  virtual ~Follower() = default;
  // Starts reading `partition` at `offset` (nullopt: its beginning); the others go on where they were.
  virtual base::Result<void> follow(std::int32_t partition, std::optional<std::int64_t> offset) = 0;
  virtual base::Result<void> stop_following(std::int32_t partition) = 0;
  virtual std::vector<std::int32_t> following() const = 0;
  virtual std::size_t poll(std::vector<Record>& out, std::size_t max, std::chrono::milliseconds timeout) = 0;
};

// Reads one partition of a topic from its first record to its end as of the call, outside any consumer group,
// handing each record to `visit` in offset order. A topic that does not exist is an error of code not_found.
base::Result<void> read_partition(const std::string& brokers, const std::string& topic, std::int32_t partition,
                                  const std::function<void(StoredRecord&&)>& visit, const Properties& extra = {});

std::string librdkafka_version();

}  // namespace statefold::log
