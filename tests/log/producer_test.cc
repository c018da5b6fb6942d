// The transactional producer against librdkafka's mock cluster, where a transaction's end (EndTxn) can be made slow.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "engine/log/log.h"

namespace statefold::log {
namespace {

using namespace std::chrono_literals;

constexpr std::int16_t kEndTxnApiKey = 26;  // Kafka protocol: EndTxn (commit or abort on the coordinator)

// A one-broker mock cluster with one topic; the handle it lives in is a plain producer no test uses.
class MockCluster {
 public:
  MockCluster() {
    char error[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", error, sizeof error);
    _host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    _cluster = rd_kafka_mock_cluster_new(_host, 1);
    rd_kafka_mock_topic_create(_cluster, "events", 2, 1);
  }
  ~MockCluster() {
    rd_kafka_mock_cluster_destroy(_cluster);
    rd_kafka_destroy(_host);
  }
  std::string bootstrap() const { return rd_kafka_mock_cluster_bootstraps(_cluster); }
  // The next `count` EndTxn requests are answered after `delay`.
  void delay_end_txn(std::chrono::milliseconds delay, int count) {
    for (int i = 0; i < count; ++i) {
      rd_kafka_mock_broker_push_request_error_rtts(_cluster, 1, kEndTxnApiKey, 1, RD_KAFKA_RESP_ERR_NO_ERROR,
                                                   static_cast<int>(delay.count()));
    }
  }

 private:
  rd_kafka_t* _host = nullptr;
  rd_kafka_mock_cluster_t* _cluster = nullptr;
};

std::unique_ptr<Producer> transactional(const MockCluster& cluster) {
  ProducerOptions options;
  options.brokers = cluster.bootstrap();
  options.client_id = "producer-test";
  options.compression = "none";
  options.delivery_timeout = 5s;  // within the transaction timeout (10 s), as librdkafka requires
  options.transactional_id = "producer-test-tx";
  options.extra = {{"log_level", "0"}};
  auto producer = Producer::create(options);
  EXPECT_TRUE(producer) << (producer ? "" : producer.error().message);
  return producer ? std::move(*producer) : nullptr;
}

base::Result<void> one_record_transaction(Producer& producer, std::chrono::milliseconds timeout) {
  if (auto begun = producer.begin_transaction(); !begun) return begun;
  const std::string value = "v";
  if (auto sent = producer.send("events", "s", {reinterpret_cast<const std::uint8_t*>(value.data()), value.size()},
                                {}, nullptr, std::nullopt);
      !sent) {
    return sent;
  }
  // Delivered first, so that the commit's time goes to the broker's answer to EndTxn and nothing else.
  if (auto flushed = producer.flush(5s); !flushed) return flushed;
  return producer.commit_transaction(timeout);
}

// What a caller that got 503 does: tries again (begin_transaction() gives an earlier commit 2 s each time).
base::Result<void> commits_within_attempts(Producer& producer, int attempts) {
  base::Result<void> committed = base::make_error("not tried");
  for (int attempt = 0; attempt < attempts && !committed; ++attempt) committed = one_record_transaction(producer, 10s);
  return committed;
}

TEST(TransactionalProducerTest, ACommitSlowerThanItsTimeoutIsFinishedByTheNextTransaction) {
  MockCluster cluster;
  auto producer = transactional(cluster);
  ASSERT_TRUE(producer);
  cluster.delay_end_txn(1500ms, 1);

  auto slow = one_record_transaction(*producer, 300ms);
  ASSERT_FALSE(slow) << "the commit took 1.5 s and its timeout was 0.3 s";
  EXPECT_EQ(slow.error().code, base::ErrorCode::unavailable) << slow.error().message;

  auto next = commits_within_attempts(*producer, 5);
  EXPECT_TRUE(next) << next.error().message;
  EXPECT_FALSE(producer->fatal());
}

TEST(TransactionalProducerTest, ShortCommitTimeoutsAgainstASlowBrokerNeverWedgeTheProducer) {
  MockCluster cluster;
  auto producer = transactional(cluster);
  ASSERT_TRUE(producer);
  cluster.delay_end_txn(700ms, 6);

  // Which of these commit in time depends on timing; that none of them leaves the producer stuck does not.
  for (int i = 0; i < 6; ++i) (void)one_record_transaction(*producer, std::chrono::milliseconds(50 * i));
  auto last = commits_within_attempts(*producer, 5);
  EXPECT_TRUE(last) << last.error().message;
  EXPECT_FALSE(producer->fatal());
}

// A coordinator that does not answer: librdkafka resends the commit every request timeout, for good, and each
// begin_transaction() would wait 2 s for it in vain. Past the transaction timeout the broker has settled it either
// way, so the producer declares itself fatal and its owner (the appender) replaces it with one that fences it.
TEST(TransactionalProducerTest, ACommitThatNeverResolvesMakesTheProducerAskToBeReplaced) {
  MockCluster cluster;
  auto producer = transactional(cluster);
  ASSERT_TRUE(producer);
  cluster.delay_end_txn(60s, 5);

  ASSERT_FALSE(one_record_transaction(*producer, 200ms));
  const auto start = std::chrono::steady_clock::now();
  base::Result<void> begun = base::make_error("not tried");
  while (!begun && !producer->fatal() && std::chrono::steady_clock::now() - start < 30s) {
    begun = producer->begin_transaction();
  }
  ASSERT_FALSE(begun) << "a commit the coordinator never answered was taken as resolved";
  ASSERT_TRUE(producer->fatal()) << "still waiting for the commit after 30 s";
  EXPECT_NE(begun.error().message.find("unresolved"), std::string::npos) << begun.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 25s);  // 15 s, and the 2 s windows around it
}

}  // namespace
}  // namespace statefold::log
