// fold_throughput_bench: spec section 8, "fold throughput from a real local broker >= 0.25 x raw librdkafka
// consume of the same topic, same run" and "engine CPU per event, all threads <= 4 us". Prints figures; it is not
// a test.
//
//   fold_throughput_bench --brokers 127.0.0.1:19292 [--events 200000] [--sessions 2000] [--rounds 3]
//
// 1. Generates the deterministic workload, encodes it as canonical FlatBuffers (what `statefold append` sends by
//    default) and produces it, keyed by session, into a fresh topic of 4 partitions; waits for every ack.
// 2. Alternates, --rounds times: (a) a bare librdkafka consumer with the engine's consumer settings
//    (engine/log/consumer.cc) reading every record and touching every payload byte; (b) runtime::Engine on a
//    fresh store and a fresh group folding the same topic until every record is committed to the store.
// 3. (c) The storage floor, each round: the WriteBatches the engine wrote in (b), captured as RocksDB serialised
//    them, written again in the same order into a fresh store opened with the engine's store options, without
//    decode or fold. It is what the engine's writes cost RocksDB alone; issue 14 wants the engine within 1.5x of it.
//    Both stores must end with the same store hash.
// 4. Prints each round, the ratio engine/raw per round and the median ratio against the target, the engine's CPU per
//    event against spec 8's 4 us, the engine against its storage floor, and what the engine's WriteBatches hold
//    per event by kind of key (the floor's bytes and entries).
//
// Rates are taken from the first record seen to the last one consumed (raw) or committed (engine), so the group
// join, which is the broker's work and the same for both, is left out; the wall times including it are printed too.

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <pthread.h>
#include <sys/resource.h>
#include <thread>
#include <time.h>
#include <unistd.h>
#include <vector>

#include "bench_kafka.h"
#include "engine/base/hex.h"
#include "engine/base/sha256.h"
#include "engine/codec/codec.h"
#include "engine/fold/fold.h"
#include "engine/log/log.h"
#include "engine/runtime/engine.h"
#include "engine/store/store.h"
#include "engine/workload/workload.h"

using namespace statefold;  // NOLINT: a main file, not a header

namespace {

using Clock = std::chrono::steady_clock;

constexpr double kTargetRatio = 0.25;
constexpr double kTargetCpuUs = 4.0;  // spec 8: engine CPU per event, all threads
constexpr double kTargetFloor = 1.5;  // issue 14: the engine's time within 1.5x of its storage floor's

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Args {
  std::string brokers;
  std::uint64_t events = 200000;
  std::uint64_t sessions = 2000;
  std::uint64_t seed = 1;
  int partitions = 4;
  int rounds = 3;
  std::string topic;       // reuse an existing topic (no produce phase), e.g. under a profiler
  std::string only = "both";
  bool keep_topic = false;
  std::string work_dir;
  std::uint64_t memory_budget_mb = 512;  // EngineOptions default
  std::size_t max_batch = runtime::EngineOptions{}.max_batch;
  bool floor = true;         // (c) the storage floor after each engine round
  bool digest = false;       // a SHA-256 over every key and value of each store, besides its store hash
  std::string digest_store;  // only print the store hash and digest of this data directory
  std::string wal = "on";    // RocksDB's WAL for the engine and the floor (serve --wal)
};

struct Rate {
  std::uint64_t records = 0;
  double steady_s = 0;  // first record seen -> last record consumed / committed
  double wall_s = 0;    // client created -> last record consumed / committed
  double cpu_s = 0;     // CPU time of the whole process over wall_s (librdkafka and RocksDB threads included)
  double per_s() const { return steady_s > 0 ? static_cast<double>(records) / steady_s : 0; }
};


double this_thread_cpu_s() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// CPU seconds used so far by one thread.
double thread_cpu_s(pthread_t thread) {
  clockid_t clock{};
  timespec ts{};
  if (::pthread_getcpuclockid(thread, &clock) != 0 || ::clock_gettime(clock, &ts) != 0) return 0;
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// ---------------------------------------------------------------------------------------------------------------
// Produce.

base::Result<bench::Produced> produce(const Args& a, const std::string& topic) {
  workload::Options workload_options;
  workload_options.sessions = a.sessions;
  workload_options.events = a.events;
  workload_options.seed = a.seed;
  return bench::produce_workload(a.brokers, topic, a.partitions, workload_options, "statefold-bench");
}

base::Result<std::uint64_t> topic_records(const std::string& brokers, const std::string& topic) {
  auto ends = log::end_offsets(brokers, topic);
  if (!ends) return ends.error();
  std::uint64_t total = 0;
  for (const auto& [p, o] : *ends) total += static_cast<std::uint64_t>(std::max<std::int64_t>(0, o));
  return total;
}


// ---------------------------------------------------------------------------------------------------------------
// (a) Raw librdkafka consume, with the properties KafkaConsumer::init sets for the engine's consumer.

base::Result<Rate> raw_consume(const Args& a, const std::string& topic, const std::string& group,
                               std::uint64_t total, std::uint64_t* checksum) {
  auto run = bench::raw_consume(a.brokers, topic, group, total, a.memory_budget_mb, "statefold-bench-raw");
  if (!run) return run.error();
  *checksum = run->checksum;
  // The first record is the clock's start, so it is not counted in the steady rate.
  return Rate{run->records - 1, run->first_to_last_s, run->wall_s, run->cpu_s};
}

// ---------------------------------------------------------------------------------------------------------------
// What a store holds: its store hash (the summary's, what `statefold inspect --summary` prints) and, when asked, a
// SHA-256 over every key and value in key order, so that two folds of one topic can be compared byte for byte.

struct StoreFacts {
  std::string store_hash;
  std::string digest;  // empty unless asked
  std::uint64_t keys = 0;
  std::vector<std::int32_t> partitions;  // in the order the store made their state (the floor makes them so too)
  int partition_count = 0;
};

base::Result<StoreFacts> store_facts(const std::string& data_dir, bool full) {
  store::Options options;
  options.path = data_dir + "/store";
  options.read_only = true;
  options.create_if_missing = false;
  options.memory_budget_bytes = 64ull << 20;
  auto opened = store::Store::open(options);
  if (!opened) return opened.error();
  const store::Store& s = **opened;
  StoreFacts facts;
  facts.store_hash = base::to_hex(fold::load_summary(s).store_hash);
  facts.partitions = s.partitions_in_creation_order();
  facts.partition_count = s.partition_count();
  if (full) {
    base::Sha256 digest;
    s.scan("", [&](std::string_view k, std::string_view v) {
      digest.update_framed(k).update_framed(v);
      ++facts.keys;
      return true;
    });
    const base::Digest d = digest.finish();
    facts.digest = base::to_hex(std::span<const std::uint8_t>(d));
  }
  return facts;
}

// ---------------------------------------------------------------------------------------------------------------
// (b) The engine, in-process, on a fresh store and group.

struct EngineRun {
  Rate rate;
  double engine_thread_cpu_s = 0;  // the thread running Engine::run: poll, decode, fold, commit
  // The two stages of the engine's pipeline, summed over the batches (the engine's probe): the engine thread folding
  // (decode to finish), the commit thread writing. Over the wall time, they say which stage holds the other up.
  double fold_busy_s = 0;
  double commit_busy_s = 0;
  std::uint64_t accepted = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t rejected = 0;
  std::uint64_t dead_letters = 0;
  std::uint64_t batches = 0;
  StoreFacts store;
};

// Sums the engine's per-batch fold and commit times (called on the commit thread, read after the engine stopped).
class StageTimes final : public runtime::EngineProbe {
 public:
  void batch_committed(std::size_t, std::chrono::nanoseconds fold_time, std::chrono::nanoseconds commit_time) override {
    fold += fold_time;
    commit += commit_time;
  }
  std::chrono::nanoseconds fold{};
  std::chrono::nanoseconds commit{};
};

// `captured`, when given, receives the serialised WriteBatch of every commit (on the engine's commit thread; the
// copy costs it about one memcpy of the batch).
base::Result<EngineRun> engine_fold(const Args& a, const std::string& topic, const std::string& group,
                                    const std::string& data_dir, std::uint64_t total,
                                    std::vector<std::string>* captured) {
  runtime::EngineOptions options;
  options.brokers = a.brokers;
  options.topic = topic;
  options.dead_letter_topic = topic + ".dlq";  // nothing should land there; keep it off statefold.dlq anyway
  options.group = group;
  options.data_dir = data_dir;
  options.memory_budget_bytes = a.memory_budget_mb << 20;
  options.max_batch = a.max_batch;
  options.wal = a.wal == "on";
  options.progress_interval = std::chrono::hours(1);
  if (captured != nullptr) {
    options.store_batch_tap = [captured](std::string_view batch) { captured->emplace_back(batch); };
  }
  const auto t_created = Clock::now();
  const double cpu_created = bench::process_cpu_s();
  auto engine = runtime::Engine::open(options);
  if (!engine) return engine.error();
  runtime::Engine& e = **engine;
  StageTimes stages;
  e.set_probe(&stages);
  base::Result<void> result;
  std::thread runner([&] { result = e.run(); });

  // Watch from this thread with short sleeps: an atomic load per millisecond, then the store's offsets (four keys)
  // once every record is folded, so the end is when the last batch is durable, not merely folded.
  auto committed = [&] {
    std::uint64_t sum = 0;
    for (const auto& [p, o] : e.store().offsets()) sum += static_cast<std::uint64_t>(o);
    return sum;
  };
  Clock::time_point t_first{};
  std::uint64_t records_at_first = 0;
  Clock::time_point t_progress = Clock::now();
  std::uint64_t last_records = 0;
  std::string failure;
  bool finished = false;
  while (!finished) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const std::uint64_t records = e.stats().records.load(std::memory_order_relaxed);
    const auto now = Clock::now();
    if (records > 0 && records_at_first == 0) {
      t_first = now;
      records_at_first = records;
    }
    if (records != last_records) {
      last_records = records;
      t_progress = now;
    }
    if (records >= total) {
      while (committed() < total) std::this_thread::sleep_for(std::chrono::microseconds(200));
      finished = true;
    } else if (now - t_progress > bench::kStallTimeout) {
      failure = "engine: no record folded for " + std::to_string(bench::kStallTimeout.count()) + " s at " +
                std::to_string(records) + "/" + std::to_string(total);
      break;
    }
  }
  const auto t_end = Clock::now();
  const double cpu = bench::process_cpu_s() - cpu_created;
  const double thread_cpu = thread_cpu_s(runner.native_handle());
  e.stop();
  runner.join();
  if (!result) return base::make_error("engine: " + result.error().message);
  if (!failure.empty()) return base::make_error(failure);
  EngineRun out;
  out.rate = Rate{total - records_at_first, seconds(t_end - t_first), seconds(t_end - t_created), cpu};
  out.engine_thread_cpu_s = thread_cpu;
  out.fold_busy_s = seconds(stages.fold);
  out.commit_busy_s = seconds(stages.commit);
  out.accepted = e.stats().accepted.load();
  out.duplicates = e.stats().duplicates.load();
  out.rejected = e.stats().rejected.load();
  out.dead_letters = e.stats().dead_letters.load();
  out.batches = e.stats().batches.load();
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// (c) The storage floor: the engine's WriteBatches, as captured, into a fresh store with the engine's store options.

struct FloorRun {
  Rate rate;
  double writer_cpu_s = 0;  // the thread calling Write
  std::uint64_t batches = 0;
  std::uint64_t bytes = 0;
};

// What the engine's WriteBatches hold, by kind of key (its first byte, engine/fold/layout.h): how many entries and
// bytes per event each kind costs RocksDB. The floor is set by these, so this is where a smaller floor must come from.
struct WriteKind {
  std::uint64_t entries = 0;
  std::uint64_t key_bytes = 0;
  std::uint64_t value_bytes = 0;
};
using WriteComposition = std::map<char, WriteKind>;

base::Result<WriteComposition> composition_of(const std::vector<std::string>& batches) {
  WriteComposition out;
  for (const std::string& batch : batches) {
    auto visited = store::Store::visit_serialised(batch, [&out](std::string_view key, std::size_t value_bytes) {
      WriteKind& kind = out[key.empty() ? '?' : key.front()];
      ++kind.entries;
      kind.key_bytes += key.size();
      kind.value_bytes += value_bytes;
    });
    if (!visited) return visited.error();
  }
  return out;
}

const char* name_of_kind(char tag) {
  switch (tag) {
    case fold::key::kHistory: return "history entry (e)";
    case fold::key::kEventId: return "event id, dedupe (i)";
    case fold::key::kHeader: return "session header (h)";
    case fold::key::kCheckpoint: return "checkpoint (c)";
    case fold::key::kRefusal: return "refusal (r)";
    case fold::key::kMemory: return "memory entry (m)";
    case fold::key::kUsage: return "usage row (u)";
    case fold::key::kOffset: return "partition offset (o)";
    default: break;
  }
  if (std::string_view(&tag, 1) == fold::key::kSummary) return "store summary (g)";
  return "other";
}

base::Result<FloorRun> storage_floor(const Args& a, std::vector<std::string> batches, const std::string& data_dir,
                                     std::uint64_t total, const StoreFacts& engine_store) {
  FloorRun out;
  out.batches = batches.size();
  for (const auto& b : batches) out.bytes += b.size();
  std::filesystem::create_directories(data_dir);
  const auto t_created = Clock::now();
  const double cpu_created = bench::process_cpu_s();
  store::Options options;  // as runtime::Engine::open sets them
  options.path = data_dir + "/store";
  options.memory_budget_bytes = (a.memory_budget_mb << 20) * 3 / 4;
  options.sync_writes = runtime::EngineOptions().sync_writes;
  options.wal = a.wal == "on";
  options.partitions = engine_store.partition_count;
  auto opened = store::Store::open(options);
  if (!opened) return opened.error();
  // The batches name partitions by column family id: made in the engine store's order, they are the same.
  if (auto made = (*opened)->create_partitions(engine_store.partitions); !made) return made.error();
  const auto t_first = Clock::now();
  const double writer_cpu = this_thread_cpu_s();
  for (std::string& batch : batches) {
    if (auto written = (*opened)->write_serialised(std::move(batch)); !written) {
      return base::make_error("storage floor: " + written.error().message);
    }
  }
  const auto t_end = Clock::now();
  out.writer_cpu_s = this_thread_cpu_s() - writer_cpu;
  out.rate = Rate{total, seconds(t_end - t_first), seconds(t_end - t_created), bench::process_cpu_s() - cpu_created};
  return out;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string group_name(const std::string& topic, const char* what, int round) {
  return topic + "." + what + "." + std::to_string(round) + "." + std::to_string(::getpid());
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"statefold fold throughput benchmark: engine vs raw librdkafka consume of the same topic "
               "(spec section 8). Prints figures."};
  app.add_option("--brokers", a.brokers, "Kafka bootstrap servers (tools/kafka.sh start prints them)");
  app.add_option("--events", a.events, "Events in the workload")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--sessions", a.sessions, "Sessions in the workload")->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", a.seed, "Workload seed")->capture_default_str();
  app.add_option("--partitions", a.partitions, "Partitions of the fresh topic")->capture_default_str();
  app.add_option("--rounds", a.rounds, "Raw/engine alternations")->capture_default_str()->check(CLI::Range(1, 20));
  app.add_option("--topic", a.topic, "Read this existing topic instead of producing a fresh one (for profiling; "
                                     "the state check is then skipped)");
  app.add_option("--only", a.only, "Run only one side: raw, engine or both")->capture_default_str()
      ->check(CLI::IsMember({"both", "raw", "engine"}));
  app.add_flag("--keep-topic", a.keep_topic, "Keep the fresh topic (its name is printed) instead of deleting it");
  app.add_option("--work-dir", a.work_dir, "Directory for the engine's stores (default: a temporary directory)");
  app.add_option("--memory-budget-mb", a.memory_budget_mb, "Engine memory budget (its consumer gets a quarter)")
      ->capture_default_str();
  app.add_option("--max-batch", a.max_batch, "Most records the engine folds into one store batch (serve "
                                             "--max-batch)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--floor,!--no-floor", a.floor, "Run (c), the storage floor (the engine's WriteBatches written "
                                                 "again into a fresh store), after each engine round")
      ->capture_default_str();
  app.add_option("--wal", a.wal, "RocksDB's write-ahead log for the engine and the floor: on or off (serve --wal)")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  app.add_flag("--digest", a.digest, "Print a SHA-256 over every key and value of each store besides its store hash");
  app.add_option("--digest-store", a.digest_store, "Only print the store hash and digest of this data directory "
                                                   "(e.g. one `statefold replay` wrote), then exit");
  CLI11_PARSE(app, argc, argv);
  if (!a.digest_store.empty()) {
    auto facts = store_facts(a.digest_store, true);
    if (!facts) {
      std::fprintf(stderr, "fold_throughput_bench: %s\n", facts.error().message.c_str());
      return 1;
    }
    std::printf("%s: store hash %s, digest of %llu keys and values %s\n", a.digest_store.c_str(),
                facts->store_hash.c_str(), static_cast<unsigned long long>(facts->keys), facts->digest.c_str());
    return 0;
  }
  if (a.brokers.empty()) {
    std::fprintf(stderr, "fold_throughput_bench: --brokers is required\n");
    return 2;
  }

  const bool fresh = a.topic.empty();
  const std::string topic =
      fresh ? "statefold.bench." + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                      std::chrono::system_clock::now().time_since_epoch())
                                                      .count()) +
                  "." + std::to_string(::getpid())
            : a.topic;
  std::filesystem::path work = a.work_dir.empty()
                                   ? std::filesystem::temp_directory_path() /
                                         ("statefold-bench-" + std::to_string(::getpid()))
                                   : std::filesystem::path(a.work_dir);

  std::printf("fold_throughput_bench  librdkafka %s  %u hardware threads  WAL %s\n",
              log::librdkafka_version().c_str(), std::thread::hardware_concurrency(), a.wal.c_str());
  bench::Produced produced;
  if (fresh) {
    std::printf("producing %llu events over %llu sessions (seed %llu) to %s (%d partitions)...\n",
                static_cast<unsigned long long>(a.events), static_cast<unsigned long long>(a.sessions),
                static_cast<unsigned long long>(a.seed), topic.c_str(), a.partitions);
    std::fflush(stdout);
    auto p = produce(a, topic);
    if (!p) {
      std::fprintf(stderr, "fold_throughput_bench: %s\n", p.error().message.c_str());
      return 1;
    }
    produced = std::move(*p);
  }
  auto total = topic_records(a.brokers, topic);
  if (!total) {
    std::fprintf(stderr, "fold_throughput_bench: %s\n", total.error().message.c_str());
    return 1;
  }
  if (fresh && *total != produced.records) {
    std::fprintf(stderr, "fold_throughput_bench: topic holds %llu records, %llu were produced\n",
                 static_cast<unsigned long long>(*total), static_cast<unsigned long long>(produced.records));
    return 1;
  }

  std::vector<Rate> raw;
  std::vector<EngineRun> folded;
  std::vector<FloorRun> floors;
  WriteComposition composition;  // of the first engine round's batches (every round writes the same)
  std::vector<StoreFacts> floor_stores;
  std::vector<std::string> errors;
  std::uint64_t checksum = 0;
  for (int round = 1; round <= a.rounds && errors.empty(); ++round) {
    if (a.only != "engine") {
      std::printf("round %d: raw librdkafka consume...\n", round);
      std::fflush(stdout);
      auto r = raw_consume(a, topic, group_name(topic, "raw", round), *total, &checksum);
      if (!r) {
        errors.push_back(r.error().message);
        break;
      }
      raw.push_back(*r);
    }
    if (a.only != "raw") {
      std::printf("round %d: statefold engine...\n", round);
      std::fflush(stdout);
      const std::filesystem::path dir = work / ("engine-" + std::to_string(round));
      std::filesystem::remove_all(dir);
      std::vector<std::string> captured;
      auto r = engine_fold(a, topic, group_name(topic, "engine", round), dir.string(), *total,
                           a.floor ? &captured : nullptr);
      if (r) {
        auto facts = store_facts(dir.string(), a.digest);
        if (facts) {
          r->store = std::move(*facts);
        } else {
          r = facts.error();
        }
      }
      std::filesystem::remove_all(dir);
      if (!r) {
        errors.push_back(r.error().message);
        break;
      }
      folded.push_back(*r);
      if (a.floor && composition.empty()) {
        auto c = composition_of(captured);
        if (!c) {
          errors.push_back(c.error().message);
          break;
        }
        composition = std::move(*c);
      }
      if (a.floor) {
        std::printf("round %d: storage floor (%zu WriteBatches of the engine into a fresh store)...\n", round,
                    captured.size());
        std::fflush(stdout);
        const std::filesystem::path floor_dir = work / ("floor-" + std::to_string(round));
        std::filesystem::remove_all(floor_dir);
        auto f = storage_floor(a, std::move(captured), floor_dir.string(), *total, folded.back().store);
        base::Result<StoreFacts> facts = base::make_error("not run");
        if (f) facts = store_facts(floor_dir.string(), a.digest);
        std::filesystem::remove_all(floor_dir);
        if (!f || !facts) {
          errors.push_back(!f ? f.error().message : facts.error().message);
          break;
        }
        floors.push_back(*f);
        floor_stores.push_back(std::move(*facts));
      }
    }
  }
  if (a.work_dir.empty()) std::filesystem::remove_all(work);
  if (fresh && !a.keep_topic) {
    bench::delete_topic(a.brokers, topic);
    bench::delete_topic(a.brokers, topic + ".dlq");
  }

  // ----- report ------------------------------------------------------------------------------------------------
  std::printf("\nfold throughput from a real local broker (spec 8: >= %.2f x raw librdkafka consume, same run)\n",
              kTargetRatio);
  std::printf("topic %s: %llu records, %d partitions%s\n", topic.c_str(), static_cast<unsigned long long>(*total),
              fresh ? a.partitions : 0, fresh ? (a.keep_topic ? " (kept)" : " (deleted after the run)") : "");
  if (fresh) {
    std::printf("producer (context): %llu records, %.1f MB of FlatBuffers values, acks=all, zstd: %.2f s = "
                "%.0f records/s\n",
                static_cast<unsigned long long>(produced.records), static_cast<double>(produced.bytes) / 1e6,
                produced.seconds, static_cast<double>(produced.records) / produced.seconds);
  }
  std::printf("\n%-6s %14s %9s %9s %16s %9s %9s %9s %7s\n", "round", "raw records/s", "raw wall", "raw CPU",
              "engine events/s", "eng. wall", "eng. CPU", "eng. thr.", "ratio");
  std::vector<double> ratios;
  const std::size_t rows = std::max(raw.size(), folded.size());
  auto us_per = [&](double cpu_s) { return cpu_s * 1e6 / static_cast<double>(*total); };
  for (std::size_t i = 0; i < rows; ++i) {
    char raw_rate[32] = "-", raw_wall[32] = "-", raw_cpu[32] = "-", eng_rate[32] = "-", eng_wall[32] = "-",
         eng_cpu[32] = "-", eng_thread[32] = "-", ratio[32] = "-";
    if (i < raw.size()) {
      std::snprintf(raw_rate, sizeof raw_rate, "%.0f", raw[i].per_s());
      std::snprintf(raw_wall, sizeof raw_wall, "%.2f s", raw[i].wall_s);
      std::snprintf(raw_cpu, sizeof raw_cpu, "%.2f us", us_per(raw[i].cpu_s));
    }
    if (i < folded.size()) {
      std::snprintf(eng_rate, sizeof eng_rate, "%.0f", folded[i].rate.per_s());
      std::snprintf(eng_wall, sizeof eng_wall, "%.2f s", folded[i].rate.wall_s);
      std::snprintf(eng_cpu, sizeof eng_cpu, "%.2f us", us_per(folded[i].rate.cpu_s));
      std::snprintf(eng_thread, sizeof eng_thread, "%.2f us", us_per(folded[i].engine_thread_cpu_s));
    }
    if (i < raw.size() && i < folded.size()) {
      ratios.push_back(folded[i].rate.per_s() / raw[i].per_s());
      std::snprintf(ratio, sizeof ratio, "%.3f", ratios.back());
    }
    std::printf("%-6zu %14s %9s %9s %16s %9s %9s %9s %7s\n", i + 1, raw_rate, raw_wall, raw_cpu, eng_rate, eng_wall,
                eng_cpu, eng_thread, ratio);
  }
  std::printf("rates: first record -> last record consumed (raw) or committed to the store (engine).\n"
              "wall: client created -> end, group join included. CPU: process CPU time per record over the wall "
              "time\n(all threads: librdkafka, RocksDB flushes); eng. thr.: CPU time per record of the thread "
              "running Engine::run.\n");
  for (std::size_t i = 0; i < folded.size(); ++i) {
    const EngineRun& f = folded[i];
    std::printf("round %zu pipeline: engine thread folding %.0f %% of the time, commit thread writing %.0f %% "
                "(%.2f / %.2f us per event)\n",
                i + 1, 100 * f.fold_busy_s / f.rate.wall_s, 100 * f.commit_busy_s / f.rate.wall_s,
                us_per(f.fold_busy_s), us_per(f.commit_busy_s));
  }
  if (!folded.empty()) {
    std::printf("pipeline: wall time per batch the engine thread spent from decode to finish, and the commit thread "
                "in Store::commit;\nthe stage near 100 %% is the one the other waits for.\n");
    const EngineRun& f = folded.back();
    std::printf("engine counts: accepted %llu, duplicates %llu, rejected %llu, dead letters %llu, %llu batches "
                "(%.0f records/batch)\n",
                static_cast<unsigned long long>(f.accepted), static_cast<unsigned long long>(f.duplicates),
                static_cast<unsigned long long>(f.rejected), static_cast<unsigned long long>(f.dead_letters),
                static_cast<unsigned long long>(f.batches),
                f.batches ? static_cast<double>(*total) / static_cast<double>(f.batches) : 0.0);
    if (fresh) {
      const bool ok = f.accepted == produced.expected.accepted && f.duplicates == produced.expected.duplicates &&
                      f.rejected == produced.expected.stale && f.dead_letters == 0;
      std::printf("state check against the generator: %s (expected accepted %llu, duplicates %llu, rejected %llu)\n",
                  ok ? "ok" : "MISMATCH", static_cast<unsigned long long>(produced.expected.accepted),
                  static_cast<unsigned long long>(produced.expected.duplicates),
                  static_cast<unsigned long long>(produced.expected.stale));
      if (!ok) errors.push_back("the engine's counts differ from the generator's");
    }
  }
  for (std::size_t i = 0; i < folded.size(); ++i) {
    std::printf("round %zu store hash %s%s%s\n", i + 1, folded[i].store.store_hash.c_str(),
                folded[i].store.digest.empty() ? "" : ", digest of every key and value ",
                folded[i].store.digest.c_str());
  }
  std::vector<double> floor_ratios;
  if (!floors.empty()) {
    std::printf("\nstorage floor: the engine's own WriteBatches written again into a fresh store (same options), "
                "no decode, no fold\n");
    std::printf("%-6s %8s %9s %16s %9s %9s %10s %14s %12s\n", "round", "batches", "MB", "floor events/s",
                "CPU", "writer", "same state", "engine/floor t", "CPU eng/fl");
    for (std::size_t i = 0; i < floors.size() && i < folded.size(); ++i) {
      const FloorRun& f = floors[i];
      const bool same = floor_stores[i].store_hash == folded[i].store.store_hash &&
                        floor_stores[i].digest == folded[i].store.digest;
      if (!same) errors.push_back("round " + std::to_string(i + 1) + ": the storage floor's store differs from the engine's");
      floor_ratios.push_back(f.rate.per_s() / folded[i].rate.per_s());
      std::printf("%-6zu %8llu %9.1f %16.0f %6.2f us %6.2f us %10s %14.2f %12.2f\n", i + 1,
                  static_cast<unsigned long long>(f.batches), static_cast<double>(f.bytes) / 1e6, f.rate.per_s(),
                  us_per(f.rate.cpu_s), us_per(f.writer_cpu_s), same ? "yes" : "NO", floor_ratios.back(),
                  folded[i].rate.cpu_s / f.rate.cpu_s);
    }
    std::printf("engine/floor t: the engine's time per event over the floor's (floor events/s / engine events/s); "
                "CPU eng/fl: process CPU\nper event, engine over floor. same state: the floor's store hash%s equals "
                "the engine's.\n",
                a.digest ? " and digest" : "");
  }
  if (!composition.empty()) {
    std::uint64_t entries = 0;
    std::uint64_t bytes = 0;
    for (const auto& [tag, kind] : composition) {
      entries += kind.entries;
      bytes += kind.key_bytes + kind.value_bytes;
    }
    std::vector<std::pair<char, WriteKind>> kinds(composition.begin(), composition.end());
    std::sort(kinds.begin(), kinds.end(), [](const auto& x, const auto& y) {
      return x.second.key_bytes + x.second.value_bytes > y.second.key_bytes + y.second.value_bytes;
    });
    const auto per_event = [&](std::uint64_t n) { return static_cast<double>(n) / static_cast<double>(*total); };
    std::printf("\nwhat the engine writes (round 1's WriteBatches), per event of the topic\n");
    std::printf("%-24s %10s %10s %10s %10s %8s\n", "kind of key", "entries", "key B", "value B", "bytes", "share");
    for (const auto& [tag, kind] : kinds) {
      const std::uint64_t b = kind.key_bytes + kind.value_bytes;
      std::printf("%-24s %10.3f %10.1f %10.1f %10.1f %7.1f%%\n", name_of_kind(tag), per_event(kind.entries),
                  static_cast<double>(kind.key_bytes) / static_cast<double>(kind.entries),
                  static_cast<double>(kind.value_bytes) / static_cast<double>(kind.entries), per_event(b),
                  100.0 * static_cast<double>(b) / static_cast<double>(bytes));
    }
    std::printf("%-24s %10.3f %10s %10s %10.1f\n", "all", per_event(entries), "", "", per_event(bytes));
    std::printf("key B, value B: average per entry of that kind; entries, bytes: per event of the topic.\n");
  }
  if (!raw.empty()) std::printf("raw payload checksum: %llu\n", static_cast<unsigned long long>(checksum));
  if (!ratios.empty()) {
    const double m = median(ratios);
    std::printf("\n%-44s %10s %10s %6s\n", "figure", "measured", "target", "");
    std::printf("%-44s %10.3f %10s %6s\n", "engine events/s / raw records/s (median)", m, ">= 0.25",
                m >= kTargetRatio ? "PASS" : "MISS");
  }
  if (!folded.empty()) {
    std::vector<double> cpu;
    for (const EngineRun& f : folded) cpu.push_back(us_per(f.rate.cpu_s));
    const double m = median(cpu);
    if (ratios.empty()) std::printf("\n%-44s %10s %10s %6s\n", "figure", "measured", "target", "");
    std::printf("%-44s %7.2f us %10s %6s\n", "engine CPU per event, all threads (median)", m, "<= 4 us",
                m <= kTargetCpuUs ? "PASS" : "MISS");
  }
  if (!floor_ratios.empty()) {
    const double m = median(floor_ratios);
    std::printf("%-44s %10.2f %10s %6s\n", "engine time / storage floor time (median)", m, "<= 1.50",
                m <= kTargetFloor ? "PASS" : "MISS");
  }
  for (const std::string& e : errors) std::fprintf(stderr, "fold_throughput_bench: %s\n", e.c_str());
  return errors.empty() ? 0 : 1;
}
