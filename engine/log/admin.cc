#include <thread>

#include "engine/log/internal/config.h"
// After rdkafka.h, which config.h includes.
#include <librdkafka/rdkafka_mock.h>

namespace statefold::log {

namespace {

using internal::HandlePtr;

base::Result<HandlePtr> admin_handle(const std::string& brokers, const Properties& extra) {
  // Looking a topic up must never create it with the broker's defaults.
  auto conf = internal::make_conf(
      {{"bootstrap.servers", brokers}, {"client.id", "statefold-admin"}, {"allow.auto.create.topics", "false"}});
  if (!conf) return conf.error();
  for (const auto& [name, value] : extra) {
    if (auto r = internal::set(conf->get(), name, value); !r) return r.error();
  }
  internal::route_logs(conf->get());
  char error[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf->get(), error, sizeof error);
  if (rk == nullptr) return base::make_error(std::string("cannot create a Kafka client: ") + error);
  (void)conf->release();
  return HandlePtr(rk);
}

constexpr int kTimeoutMs = 15000;

}  // namespace

namespace {
// The topic's partition count; nullopt when the broker answered that it does not exist; an error when the broker
// could not be asked.
base::Result<std::optional<int>> lookup_topic(const std::string& brokers, const std::string& topic) {
  auto rk = admin_handle(brokers, {});
  if (!rk) return rk.error();
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk->get(), topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk->get(), 0, t, &md, kTimeoutMs);
  rd_kafka_topic_destroy(t);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return base::make_error("cannot reach Kafka at " + brokers + ": " + rd_kafka_err2str(err));
  }
  std::optional<int> count;
  if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[0].partition_cnt > 0) {
    count = md->topics[0].partition_cnt;
  }
  rd_kafka_metadata_destroy(md);
  return count;
}
}  // namespace

base::Result<int> partition_count(const std::string& brokers, const std::string& topic) {
  auto found = lookup_topic(brokers, topic);
  if (!found) return found.error();
  if (!*found) return base::make_error("topic " + topic + " does not exist at " + brokers);
  return **found;
}

base::Result<void> ensure_topic(const std::string& brokers, const std::string& topic, int partitions,
                                const Properties& extra, const Properties& topic_config) {
  auto existing = lookup_topic(brokers, topic);
  if (!existing) return existing.error();  // unreachable: say so now rather than after a create timeout
  if (*existing) return {};
  auto rk = admin_handle(brokers, extra);
  if (!rk) return rk.error();
  char error[512];
  rd_kafka_NewTopic_t* new_topic = rd_kafka_NewTopic_new(topic.c_str(), partitions, -1, error, sizeof error);
  if (new_topic == nullptr) return base::make_error("topic " + topic + ": " + error);
  // The log is the source of truth: keep it forever.
  rd_kafka_NewTopic_set_config(new_topic, "retention.ms", "-1");
  rd_kafka_NewTopic_set_config(new_topic, "retention.bytes", "-1");
  for (const auto& [name, value] : topic_config) rd_kafka_NewTopic_set_config(new_topic, name.c_str(), value.c_str());
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk->get());
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(rk->get(), RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(options, kTimeoutMs, error, sizeof error);
  rd_kafka_CreateTopics(rk->get(), &new_topic, 1, options, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, kTimeoutMs + 5000);
  std::string failure;
  if (event == nullptr) {
    failure = "no answer from Kafka at " + brokers;
  } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    failure = rd_kafka_event_error_string(event);
  } else {
    std::size_t n = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &n);
    for (std::size_t i = 0; i < n; ++i) {
      rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        const char* msg = rd_kafka_topic_result_error_string(results[i]);
        failure = msg != nullptr ? msg : rd_kafka_err2str(err);
      }
    }
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_NewTopic_destroy(new_topic);
  rd_kafka_queue_destroy(queue);
  if (!failure.empty()) return base::make_error("cannot create topic " + topic + ": " + failure);
  // Creation is asynchronous on the broker: wait until the metadata shows the partitions.
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (auto count = partition_count(brokers, topic); count) return {};
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return base::make_error("topic " + topic + " was created but does not show up in the metadata");
}

base::Result<std::map<std::int32_t, std::int64_t>> end_offsets(const std::string& brokers, const std::string& topic) {
  auto count = partition_count(brokers, topic);
  if (!count) return count.error();
  auto rk = admin_handle(brokers, {});
  if (!rk) return rk.error();
  std::map<std::int32_t, std::int64_t> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTimeoutMs);
  for (int p = 0; p < *count; ++p) {
    for (;;) {
      std::int64_t low = 0;
      std::int64_t high = 0;
      rd_kafka_resp_err_t err =
          rd_kafka_query_watermark_offsets(rk->get(), topic.c_str(), p, &low, &high, kTimeoutMs);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        out[p] = high;
        break;
      }
      // A topic created a moment ago may not have its leaders elected yet: transient, so ask again.
      const bool transient = err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
                             err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                             err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || err == RD_KAFKA_RESP_ERR__TRANSPORT;
      if (!transient || std::chrono::steady_clock::now() > deadline) {
        return base::make_error("cannot read the end offset of " + topic + "[" + std::to_string(p) + "]: " +
                                rd_kafka_err2str(err));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  return out;
}

base::Result<std::map<std::int32_t, std::int64_t>> offsets_for_time(const std::string& brokers, const std::string& topic,
                                                                    std::int64_t time_ms) {
  auto count = partition_count(brokers, topic);
  if (!count) return count.error();
  auto rk = admin_handle(brokers, {});
  if (!rk) return rk.error();
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(*count);
  for (int p = 0; p < *count; ++p) rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = time_ms;
  rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk->get(), list, kTimeoutMs);
  std::map<std::int32_t, std::int64_t> out;
  std::string failure;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) failure = rd_kafka_err2str(err);
  for (int i = 0; i < list->cnt && failure.empty(); ++i) {
    const auto& e = list->elems[i];
    if (e.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      failure = "partition " + std::to_string(e.partition) + ": " + rd_kafka_err2str(e.err);
    } else {
      out[e.partition] = e.offset;
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
  if (!failure.empty()) return base::make_error("cannot look up offsets by time in " + topic + ": " + failure);
  // No record at or after the time: everything is before it, so the end offset.
  auto ends = end_offsets(brokers, topic);
  if (!ends) return ends.error();
  for (auto& [p, o] : out) {
    if (o < 0) o = (*ends)[p];
  }
  return out;
}

namespace {

class MockCluster final : public EmbeddedCluster {
 public:
  base::Result<void> init(int brokers) {
    auto rk = admin_handle("", {{"log_level", "3"}});
    if (!rk) return rk.error();
    _rk = std::move(*rk);
    _cluster = rd_kafka_mock_cluster_new(_rk.get(), brokers);
    if (_cluster == nullptr) return base::make_error("cannot start librdkafka's mock cluster");
    _bootstrap = rd_kafka_mock_cluster_bootstraps(_cluster);
    return {};
  }
  ~MockCluster() override {
    if (_cluster != nullptr) rd_kafka_mock_cluster_destroy(_cluster);
  }
  const std::string& bootstrap_servers() const override { return _bootstrap; }
  base::Result<void> create_topic(const std::string& topic, int partitions) override {
    if (auto err = rd_kafka_mock_topic_create(_cluster, topic.c_str(), partitions, 1);
        err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return base::make_error("mock cluster: cannot create " + topic + ": " + rd_kafka_err2str(err));
    }
    return {};
  }

 private:
  HandlePtr _rk;
  rd_kafka_mock_cluster_t* _cluster = nullptr;
  std::string _bootstrap;
};

}  // namespace

base::Result<std::unique_ptr<EmbeddedCluster>> EmbeddedCluster::start(int brokers) {
  auto cluster = std::make_unique<MockCluster>();
  if (auto r = cluster->init(brokers); !r) return r.error();
  return std::unique_ptr<EmbeddedCluster>(std::move(cluster));
}

}  // namespace statefold::log
