// The standby follower (log::Follower) against librdkafka's mock cluster: partitions started and stopped at will,
// each read from a chosen offset, every record once. The churn case is the one that aborted librdkafka 2.0.2 when the
// follower replaced its whole assignment on each change.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/log/log.h"

namespace statefold::log {
namespace {

using namespace std::chrono_literals;

constexpr int kPerPartition = 300;

// A one-broker mock cluster whose topic "events" has two partitions of kPerPartition records each; record i of
// partition p says "p<p>-<i>".
class FilledCluster {
 public:
  FilledCluster() {
    char error[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", error, sizeof error);
    _host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    _cluster = rd_kafka_mock_cluster_new(_host, 1);
    rd_kafka_mock_topic_create(_cluster, "events", 2, 1);
    fill();
  }
  ~FilledCluster() {
    rd_kafka_mock_cluster_destroy(_cluster);
    rd_kafka_destroy(_host);
  }
  std::string bootstrap() const { return rd_kafka_mock_cluster_bootstraps(_cluster); }

 private:
  void fill() {
    char error[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap().c_str(), error, sizeof error);
    rd_kafka_conf_set(conf, "log_level", "0", error, sizeof error);
    rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    ASSERT_NE(producer, nullptr) << error;
    rd_kafka_topic_t* topic = rd_kafka_topic_new(producer, "events", nullptr);
    for (int i = 0; i < kPerPartition; ++i) {
      for (std::int32_t p = 0; p < 2; ++p) {
        std::string value = std::string("p").append(std::to_string(p)).append("-").append(std::to_string(i));
        ASSERT_EQ(rd_kafka_produce(topic, p, RD_KAFKA_MSG_F_COPY, value.data(), value.size(), nullptr, 0, nullptr), 0);
      }
    }
    ASSERT_EQ(rd_kafka_flush(producer, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_destroy(topic);
    rd_kafka_destroy(producer);
  }

  rd_kafka_t* _host = nullptr;
  rd_kafka_mock_cluster_t* _cluster = nullptr;
};

std::unique_ptr<Follower> follower_of(const FilledCluster& cluster) {
  auto follower = Follower::create(cluster.bootstrap(), "events", {{"log_level", "0"}});
  EXPECT_TRUE(follower) << (follower ? "" : follower.error().message);
  return follower ? std::move(*follower) : nullptr;
}

// What a follower has read, by partition: the offsets in the order they came, each checked against its value.
struct Seen {
  std::map<std::int32_t, std::vector<std::int64_t>> offsets;

  void take(const std::vector<Record>& records) {
    for (const Record& r : records) {
      const std::string value(reinterpret_cast<const char*>(r.value.data()), r.value.size());
      EXPECT_EQ(value, std::string("p").append(std::to_string(r.partition)).append("-").append(std::to_string(r.offset)));
      offsets[r.partition].push_back(r.offset);
    }
  }
  std::int64_t next(std::int32_t partition) const {
    auto it = offsets.find(partition);
    return it == offsets.end() || it->second.empty() ? 0 : it->second.back() + 1;
  }
  bool complete() const { return next(0) >= kPerPartition && next(1) >= kPerPartition; }
};

// Polls until both partitions were read to their last record (or 30 s went by).
void read_to_the_end(Follower& follower, Seen& seen) {
  std::vector<Record> batch;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!seen.complete() && std::chrono::steady_clock::now() < deadline) {
    follower.poll(batch, 64, 100ms);
    seen.take(batch);
  }
}

void expect_each_offset_once(const Seen& seen, std::int32_t partition, std::int64_t from) {
  const auto& got = seen.offsets.at(partition);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kPerPartition - from)) << "partition " << partition;
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], from + static_cast<std::int64_t>(i));
}

TEST(FollowerTest, ReadsEachFollowedPartitionFromItsOffsetOnce) {
  FilledCluster cluster;
  auto follower = follower_of(cluster);
  ASSERT_TRUE(follower);
  ASSERT_TRUE(follower->follow(0, std::nullopt));
  ASSERT_TRUE(follower->follow(1, 120));
  EXPECT_EQ(follower->following(), (std::vector<std::int32_t>{0, 1}));
  Seen seen;
  read_to_the_end(*follower, seen);
  expect_each_offset_once(seen, 0, 0);
  expect_each_offset_once(seen, 1, 120);
}

TEST(FollowerTest, PartitionsStoppedAndStartedAgainAndAgainGoOnWhereTheyWere) {
  FilledCluster cluster;
  auto follower = follower_of(cluster);
  ASSERT_TRUE(follower);
  Seen seen;
  std::vector<Record> batch;
  // Plan changes far faster than partitions start: each round stops one partition and starts the other again from
  // where it got, with only a short poll between.
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  int rounds = 0;
  while (!seen.complete() && std::chrono::steady_clock::now() < deadline) {
    const std::int32_t on = rounds % 2;
    ASSERT_TRUE(follower->stop_following(1 - on));
    ASSERT_TRUE(follower->follow(on, seen.next(on)));
    ASSERT_TRUE(follower->stop_following(on));  // at once: nothing of it read yet
    ASSERT_TRUE(follower->follow(on, seen.next(on)));
    EXPECT_EQ(follower->following(), std::vector<std::int32_t>{on});
    follower->poll(batch, 16, 20ms);
    seen.take(batch);
    ++rounds;
  }
  EXPECT_GT(rounds, 20);
  expect_each_offset_once(seen, 0, 0);
  expect_each_offset_once(seen, 1, 0);
}

TEST(FollowerTest, ChangesInARowFasterThanPartitionsStopAreTaken) {
  FilledCluster cluster;
  auto follower = follower_of(cluster);
  ASSERT_TRUE(follower);
  Seen seen;
  // Each change comes before the last one's partitions have started or stopped.
  for (int i = 0; i < 200; ++i) {
    const std::int32_t p = i % 2;
    ASSERT_TRUE(follower->follow(p, std::nullopt));
    if (i % 3 == 0) {
      ASSERT_TRUE(follower->stop_following(p));
    }
  }
  for (std::int32_t p : {0, 1}) ASSERT_TRUE(follower->stop_following(p));
  ASSERT_TRUE(follower->follow(0, 0));
  ASSERT_TRUE(follower->follow(1, 0));
  read_to_the_end(*follower, seen);
  expect_each_offset_once(seen, 0, 0);
  expect_each_offset_once(seen, 1, 0);
}

}  // namespace
}  // namespace statefold::log
