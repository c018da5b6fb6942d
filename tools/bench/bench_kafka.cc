#include "bench_kafka.h"

#include <librdkafka/rdkafka.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "engine/codec/codec.h"
#include "engine/log/log.h"

namespace statefold::bench {

namespace {
using Clock = std::chrono::steady_clock;
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

double process_cpu_s() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

base::Result<Produced> produce_workload(const std::string& brokers, const std::string& topic, int partitions,
                                        const workload::Options& options, const std::string& client_id) {
  Produced out;
  struct Item {
    std::string session;
    std::vector<std::uint8_t> value;
  };
  std::vector<Item> items;
  items.reserve(options.events);
  std::string bad;
  out.expected = workload::generate(options, [&](std::string_view line) {
    auto fb = codec::json_to_flatbuffers(line);
    if (!fb) {
      if (bad.empty()) bad = fb.error().message;
      return;
    }
    auto ev = codec::decode(*fb, codec::Encoding::flatbuffers);
    if (!ev) {
      if (bad.empty()) bad = ev.error().message;
      return;
    }
    items.push_back({std::string(ev->session_id()), std::move(*fb)});
  });
  if (!bad.empty()) return base::make_error("the workload does not encode: " + bad);
  if (auto r = log::ensure_topic(brokers, topic, partitions); !r) return r.error();
  log::ProducerOptions producer_options;  // the defaults of `statefold append`: idempotent, acks=all, zstd
  producer_options.brokers = brokers;
  producer_options.client_id = client_id;
  auto producer = log::Producer::create(producer_options);
  if (!producer) return producer.error();
  std::uint64_t failed = 0;
  std::string first_error;
  const auto t0 = Clock::now();
  for (const Item& item : items) {
    auto sent = (*producer)->send(topic, item.session, item.value, {}, [&](const log::Delivery& d) {
      if (!d.error.empty() && failed++ == 0) first_error = d.error;
    });
    if (!sent) return sent.error();
    out.bytes += item.value.size();
  }
  if (auto flushed = (*producer)->flush(std::chrono::minutes(5)); !flushed) return flushed.error();
  out.seconds = seconds(Clock::now() - t0);
  if (failed > 0) return base::make_error(std::to_string(failed) + " record(s) not delivered: " + first_error);
  out.records = items.size();
  return out;
}

base::Result<RawConsume> raw_consume(const std::string& brokers, const std::string& topic, const std::string& group,
                                     std::uint64_t total, std::uint64_t memory_budget_mb,
                                     const std::string& client_id) {
  // Exactly the engine consumer's properties; EngineOptions gives the consumer a quarter of the memory budget.
  log::ConsumerOptions engine_like;
  engine_like.brokers = brokers;
  engine_like.group = group;
  engine_like.client_id = client_id;
  engine_like.queue_budget_bytes = (memory_budget_mb << 20) / 4;
  const log::Properties properties = log::consumer_properties(engine_like);
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [name, value] : properties) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error, sizeof error) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return base::make_error("raw consumer: " + name + ": " + error);
    }
  }
  const auto t_created = Clock::now();
  const double cpu_created = process_cpu_s();
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return base::make_error(std::string("raw consumer: ") + error);
  }
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  const rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_destroy(rk);
    return base::make_error(std::string("raw consumer: subscribe: ") + rd_kafka_err2str(err));
  }
  RawConsume out;
  Clock::time_point t_first{};
  Clock::time_point t_progress = Clock::now();
  std::string failure;
  while (out.records < total) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (m == nullptr) {
      if (Clock::now() - t_progress > kStallTimeout) {
        failure = "raw consumer: no record for " + std::to_string(kStallTimeout.count()) + " s at " +
                  std::to_string(out.records) + "/" + std::to_string(total);
        break;
      }
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::fprintf(stderr, "raw consumer: %s\n", rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    if (out.records == 0) t_first = Clock::now();
    // Touch every payload byte, as decoding would, so the raw figure is not a pointer shuffle.
    const auto* bytes = static_cast<const std::uint8_t*>(m->payload);
    for (std::size_t i = 0; i < m->len; ++i) out.checksum += bytes[i];
    out.checksum += m->key_len;
    rd_kafka_message_destroy(m);
    ++out.records;
    t_progress = Clock::now();
  }
  out.cpu_s = process_cpu_s() - cpu_created;
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  if (!failure.empty()) return base::make_error(failure);
  out.first_to_last_s = seconds(t_progress - t_first);
  out.wall_s = seconds(t_progress - t_created);
  return out;
}

void delete_topic(const std::string& brokers, const std::string& topic) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), error, sizeof error);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  if (rk == nullptr) return;
  rd_kafka_DeleteTopic_t* del = rd_kafka_DeleteTopic_new(topic.c_str());
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_DeleteTopics(rk, &del, 1, nullptr, queue);
  if (rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, 30000)) rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(queue);
  rd_kafka_DeleteTopic_destroy(del);
  rd_kafka_destroy(rk);
}

}  // namespace statefold::bench
