// What the Kafka benchmarks share: a generated workload produced to a topic as `statefold append` would, and the
// raw librdkafka consume of that topic the engine and replay are measured against, with the engine consumer's own
// properties (log::consumer_properties), so the baseline stays the engine's and both benchmarks compare with it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "engine/base/result.h"
#include "engine/workload/workload.h"

namespace statefold::bench {

inline constexpr std::chrono::seconds kStallTimeout{120};  // no progress for this long: the run is broken

struct Produced {
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  double seconds = 0;
  workload::Stats expected;  // what folding the topic must report
};

// Creates the topic if needed and produces the workload (FlatBuffers, keyed by session; idempotent, acks=all, zstd).
base::Result<Produced> produce_workload(const std::string& brokers, const std::string& topic, int partitions,
                                        const workload::Options& options, const std::string& client_id);

struct RawConsume {
  std::uint64_t records = 0;
  double first_to_last_s = 0;  // first record seen -> last record consumed
  double wall_s = 0;           // client created -> last record consumed (group join included)
  double cpu_s = 0;            // this process, all threads, over wall_s
  std::uint64_t checksum = 0;  // of every payload byte, touched as decoding would
};

// Consumes `total` records of `topic` in a fresh group, read_committed, with the fetch sizes the engine derives from
// a memory budget of `memory_budget_mb`.
base::Result<RawConsume> raw_consume(const std::string& brokers, const std::string& topic, const std::string& group,
                                     std::uint64_t total, std::uint64_t memory_budget_mb,
                                     const std::string& client_id);

void delete_topic(const std::string& brokers, const std::string& topic);

double process_cpu_s();  // user + system CPU of this process so far

}  // namespace statefold::bench
