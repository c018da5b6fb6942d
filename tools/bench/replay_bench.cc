// replay_bench: spec section 8's "fold throughput from a real local broker >= 0.25 x raw librdkafka consume of the
// same topic, same run", for `statefold replay` (spec section 5): how fast the real command rebuilds a store from
// the topic, against a bare librdkafka consumer reading the same topic. Prints figures; it is not a test.
//
//   replay_bench --brokers 127.0.0.1:19292 [--events 200000] [--sessions 2000] [--rounds 3]
//                [--statefold build/release/tools/statefold/statefold]
//
// 1. Generates the deterministic workload, encodes it as canonical FlatBuffers (what `statefold append` sends by
//    default) and produces it, keyed by session, into a fresh topic of 4 partitions; waits for every ack.
// 2. Alternates, --rounds times: (a) a bare librdkafka consumer in a fresh group with the engine's consumer settings,
//    reading every record and touching every payload byte (as fold_throughput_bench does, so the two benchmarks'
//    raw figures mean the same); (b) `statefold replay --brokers B --topic T --data-dir NEW` as a child process
//    (the binary next to this one's directory unless --statefold), timed from spawn to exit, into a fresh directory.
// 3. Checks every replayed store against the generator's own counts (`inspect --summary --format json`, untimed)
//    and prints each round, the ratio replay/raw per round and the median ratio against the target.
//
// The replay is timed as an operator sees it: process start, store creation, the group join, the fold and the
// final summary. The raw consumer is timed from its creation, so its figure includes its group join too; its rate
// from first to last record (without the join) is printed beside it, with a stricter ratio.
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "bench_kafka.h"
#include "engine/codec/codec.h"
#include "engine/log/log.h"
#include "engine/workload/workload.h"
#include "support/process.h"

using namespace statefold;  // NOLINT: a main file, not a header

namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using statefold::testing::Process;
using statefold::testing::RunResult;

constexpr double kTargetRatio = 0.25;
constexpr std::chrono::minutes kReplayTimeout{30};

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Args {
  std::string brokers;
  std::uint64_t events = 200000;
  std::uint64_t sessions = 2000;
  std::uint64_t seed = 1;
  int partitions = 4;
  int rounds = 3;
  std::string topic;  // reuse an existing topic (no produce phase, no check against the generator)
  bool keep_topic = false;
  std::string work_dir;
  std::string statefold;
  std::uint64_t memory_budget_mb = 512;  // replay's default; the raw consumer gets the same quarter of it
};

// CPU seconds used so far by this process (all threads), or by its reaped children.
double cpu_s(int who) {
  rusage usage{};
  ::getrusage(who, &usage);
  auto s = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; };
  return s(usage.ru_utime) + s(usage.ru_stime);
}

// The statefold binary of the same build: build/<preset>/tools/bench/replay_bench -> build/<preset>/tools/statefold.
std::string default_statefold() {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "statefold";
  return (self.parent_path().parent_path() / "statefold" / "statefold").string();
}

// ---------------------------------------------------------------------------------------------------------------
// Produce (as fold_throughput_bench: the same records, so the figures of the two benchmarks compare).

base::Result<bench::Produced> produce(const Args& a, const std::string& topic) {
  workload::Options workload_options;
  workload_options.sessions = a.sessions;
  workload_options.events = a.events;
  workload_options.seed = a.seed;
  return bench::produce_workload(a.brokers, topic, a.partitions, workload_options, "statefold-replay-bench");
}

std::uint64_t sum(const std::map<std::int32_t, std::int64_t>& offsets) {
  std::uint64_t total = 0;
  for (const auto& [p, o] : offsets) total += static_cast<std::uint64_t>(std::max<std::int64_t>(0, o));
  return total;
}


// ---------------------------------------------------------------------------------------------------------------
// (a) Raw librdkafka consume, with the properties the engine's consumer sets (engine/log/consumer.cc), exactly as
// fold_throughput_bench measures it.

struct RawRun {
  std::uint64_t records = 0;
  double steady_s = 0;  // first record seen -> last record consumed
  double wall_s = 0;    // client created -> last record consumed (group join included)
  double cpu_s = 0;     // this process, all threads, over wall_s
};

base::Result<RawRun> raw_consume(const Args& a, const std::string& topic, const std::string& group,
                                 std::uint64_t total, std::uint64_t* checksum) {
  auto run = bench::raw_consume(a.brokers, topic, group, total, a.memory_budget_mb, "statefold-replay-bench-raw");
  if (!run) return run.error();
  *checksum = run->checksum;
  return RawRun{run->records, run->first_to_last_s, run->wall_s, run->cpu_s};
}

// ---------------------------------------------------------------------------------------------------------------
// (b) `statefold replay` as a child process.

struct ReplayRun {
  std::uint64_t records = 0;  // as the command reports: "replayed N record(s) in S s"
  double wall_s = 0;          // spawn -> exit
  double own_s = 0;           // the command's own S: engine opened (store created) -> last batch committed
  double cpu_s = 0;           // the child's CPU time, all threads
  std::uint64_t accepted = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t rejected = 0;
  std::uint64_t dead_letters = 0;
  std::uint64_t folded_to = 0;  // sum of the replayed store's next offsets
};

std::string tail(const std::string& text, std::size_t keep = 2000) {
  return text.size() > keep ? "..." + text.substr(text.size() - keep) : text;
}

base::Result<ReplayRun> replay(const Args& a, const std::string& topic, const std::string& data_dir) {
  ReplayRun out;
  const double cpu_before = cpu_s(RUSAGE_CHILDREN);
  const auto t0 = Clock::now();
  const RunResult r = statefold::testing::run({a.statefold, "replay", "--brokers", a.brokers, "--topic", topic,
                                               "--data-dir", data_dir, "--memory-budget-mb",
                                               std::to_string(a.memory_budget_mb)},
                                              kReplayTimeout);
  out.wall_s = seconds(Clock::now() - t0);
  out.cpu_s = cpu_s(RUSAGE_CHILDREN) - cpu_before;
  if (!r.status.exited_with(0)) {
    return base::make_error("statefold replay: " + r.status.describe() + (r.timed_out ? " (timed out)" : "") +
                            "\n" + tail(r.err));
  }
  std::smatch m;
  if (!std::regex_search(r.out, m, std::regex(R"(replayed (\d+) record\(s\) in ([0-9.eE+-]+) s)"))) {
    return base::make_error("statefold replay printed no \"replayed N record(s) in S s\": " + tail(r.out));
  }
  out.records = std::stoull(m[1].str());
  out.own_s = std::stod(m[2].str());

  // The check, untimed: the replayed store's summary as inspect prints it.
  const RunResult s = statefold::testing::run(
      {a.statefold, "inspect", "--data-dir", data_dir, "--summary", "--format", "json"}, std::chrono::minutes(2));
  if (!s.status.exited_with(0)) {
    return base::make_error("statefold inspect: " + s.status.describe() + "\n" + tail(s.err));
  }
  try {
    const json::object o = json::parse(s.out).as_object();
    out.accepted = o.at("events_applied").to_number<std::uint64_t>();
    out.duplicates = o.at("duplicates").to_number<std::uint64_t>();
    out.rejected = o.at("rejections").to_number<std::uint64_t>();
    out.dead_letters = o.at("dlq_records").to_number<std::uint64_t>();
    for (const auto& [p, offset] : o.at("offsets").as_object()) {
      out.folded_to += static_cast<std::uint64_t>(std::max<std::int64_t>(0, offset.to_number<std::int64_t>()));
    }
  } catch (const std::exception& e) {
    return base::make_error(std::string("unreadable summary (") + e.what() + "): " + tail(s.out));
  }
  return out;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"statefold replay benchmark: `statefold replay` vs raw librdkafka consume of the same topic "
               "(spec sections 5 and 8). Prints figures."};
  app.add_option("--brokers", a.brokers, "Kafka bootstrap servers (tools/kafka.sh start prints them)")->required();
  app.add_option("--events", a.events, "Events in the workload")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--sessions", a.sessions, "Sessions in the workload")->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", a.seed, "Workload seed")->capture_default_str();
  app.add_option("--partitions", a.partitions, "Partitions of the fresh topic")->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--rounds", a.rounds, "Raw/replay alternations")->capture_default_str()->check(CLI::Range(1, 20));
  app.add_option("--topic", a.topic, "Replay this existing topic instead of producing a fresh one (the check "
                                     "against the generator is then skipped)");
  app.add_flag("--keep-topic", a.keep_topic, "Keep the fresh topic (its name is printed) instead of deleting it");
  app.add_option("--work-dir", a.work_dir, "Directory for the replayed stores (default: a temporary directory)");
  app.add_option("--statefold", a.statefold, "The statefold binary (default: the one of this build)");
  app.add_option("--memory-budget-mb", a.memory_budget_mb, "replay --memory-budget-mb (the raw consumer's prefetch "
                                                           "queue gets the same quarter of it)")
      ->capture_default_str()->check(CLI::Range(32, 1 << 20));
  CLI11_PARSE(app, argc, argv);
  if (a.statefold.empty()) a.statefold = default_statefold();
  if (::access(a.statefold.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "replay_bench: no statefold binary at %s (build it, or pass --statefold)\n",
                 a.statefold.c_str());
    return 1;
  }

  const bool fresh = a.topic.empty();
  const std::string topic =
      fresh ? "statefold.replay-bench." + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                             std::chrono::system_clock::now().time_since_epoch())
                                                             .count()) +
                  "." + std::to_string(::getpid())
            : a.topic;
  const bool own_work = a.work_dir.empty();
  const std::filesystem::path work = own_work ? std::filesystem::temp_directory_path() /
                                                    ("statefold-replay-bench-" + std::to_string(::getpid()))
                                              : std::filesystem::path(a.work_dir);
  std::filesystem::create_directories(work);

  std::printf("replay_bench  librdkafka %s  %u hardware threads\nstatefold: %s\n", log::librdkafka_version().c_str(),
              std::thread::hardware_concurrency(), a.statefold.c_str());
  bench::Produced produced;
  if (fresh) {
    std::printf("producing %llu events over %llu sessions (seed %llu) to %s (%d partitions)...\n",
                static_cast<unsigned long long>(a.events), static_cast<unsigned long long>(a.sessions),
                static_cast<unsigned long long>(a.seed), topic.c_str(), a.partitions);
    std::fflush(stdout);
    auto p = produce(a, topic);
    if (!p) {
      std::fprintf(stderr, "replay_bench: %s\n", p.error().message.c_str());
      return 1;
    }
    produced = std::move(*p);
  }
  auto ends = log::end_offsets(a.brokers, topic);
  if (!ends) {
    std::fprintf(stderr, "replay_bench: %s\n", ends.error().message.c_str());
    return 1;
  }
  const std::uint64_t total = sum(*ends);
  if (fresh && total != produced.records) {
    std::fprintf(stderr, "replay_bench: topic holds %llu records, %llu were produced\n",
                 static_cast<unsigned long long>(total), static_cast<unsigned long long>(produced.records));
    return 1;
  }
  if (total < 2) {
    std::fprintf(stderr, "replay_bench: topic %s holds %llu record(s); nothing to measure\n", topic.c_str(),
                 static_cast<unsigned long long>(total));
    return 1;
  }

  std::vector<RawRun> raw;
  std::vector<ReplayRun> replays;
  std::vector<std::string> errors;
  std::uint64_t checksum = 0;
  for (int round = 1; round <= a.rounds && errors.empty(); ++round) {
    std::printf("round %d: raw librdkafka consume...\n", round);
    std::fflush(stdout);
    const std::string group = topic + ".raw." + std::to_string(round) + "." + std::to_string(::getpid());
    auto r = raw_consume(a, topic, group, total, &checksum);
    if (!r) {
      errors.push_back(r.error().message);
      break;
    }
    raw.push_back(*r);
    std::printf("round %d: statefold replay...\n", round);
    std::fflush(stdout);
    const std::filesystem::path dir = work / ("replay-" + std::to_string(round));
    std::filesystem::remove_all(dir);
    auto f = replay(a, topic, dir.string());
    std::filesystem::remove_all(dir);
    if (!f) {
      errors.push_back(f.error().message);
      break;
    }
    replays.push_back(*f);
  }
  if (own_work) std::filesystem::remove_all(work);
  if (fresh && !a.keep_topic) bench::delete_topic(a.brokers, topic);

  // ----- report ------------------------------------------------------------------------------------------------
  std::printf("\nreplay from a real local broker (spec 8: fold throughput >= %.2f x raw librdkafka consume, same "
              "run)\n",
              kTargetRatio);
  std::printf("topic %s: %llu records, %zu partitions%s\n", topic.c_str(), static_cast<unsigned long long>(total),
              ends->size(), fresh ? (a.keep_topic ? " (kept)" : " (deleted after the run)") : "");
  if (fresh) {
    std::printf("producer (context): %llu records, %.1f MB of FlatBuffers values, acks=all, zstd: %.2f s = "
                "%.0f records/s\n",
                static_cast<unsigned long long>(produced.records), static_cast<double>(produced.bytes) / 1e6,
                produced.seconds, static_cast<double>(produced.records) / produced.seconds);
  }
  const double n = static_cast<double>(total);
  std::printf("\n%-6s %12s %12s %9s %14s %10s %12s %10s %7s %7s\n", "round", "raw steady/s", "raw wall/s",
              "raw CPU", "replay ev/s", "replay wall", "replay own/s", "replay CPU", "ratio", "strict");
  std::vector<double> ratios;
  std::vector<double> strict;
  for (std::size_t i = 0; i < std::max(raw.size(), replays.size()); ++i) {
    char c[9][32] = {"-", "-", "-", "-", "-", "-", "-", "-", "-"};
    if (i < raw.size()) {
      std::snprintf(c[0], sizeof c[0], "%.0f", static_cast<double>(raw[i].records - 1) / raw[i].steady_s);
      std::snprintf(c[1], sizeof c[1], "%.0f", n / raw[i].wall_s);
      std::snprintf(c[2], sizeof c[2], "%.2f us", raw[i].cpu_s * 1e6 / n);
    }
    if (i < replays.size()) {
      std::snprintf(c[3], sizeof c[3], "%.0f", n / replays[i].wall_s);
      std::snprintf(c[4], sizeof c[4], "%.2f s", replays[i].wall_s);
      std::snprintf(c[5], sizeof c[5], "%.0f", n / replays[i].own_s);
      std::snprintf(c[6], sizeof c[6], "%.2f us", replays[i].cpu_s * 1e6 / n);
    }
    if (i < raw.size() && i < replays.size()) {
      ratios.push_back(raw[i].wall_s / replays[i].wall_s);
      strict.push_back((n / replays[i].wall_s) / (static_cast<double>(raw[i].records - 1) / raw[i].steady_s));
      std::snprintf(c[7], sizeof c[7], "%.3f", ratios.back());
      std::snprintf(c[8], sizeof c[8], "%.3f", strict.back());
    }
    std::printf("%-6zu %12s %12s %9s %14s %10s %12s %10s %7s %7s\n", i + 1, c[0], c[1], c[2], c[3], c[4], c[5], c[6],
                c[7], c[8]);
  }
  std::printf(
      "raw steady: first -> last record; raw wall: consumer created -> last record (group join included).\n"
      "replay ev/s and wall: the whole command, spawn -> exit (process start, store creation, group join, fold, "
      "summary);\nreplay own: records / the time the command reports (engine opened -> last batch committed).\n"
      "CPU: CPU time per record (raw: this process, all threads; replay: the child, all threads).\n"
      "ratio: replay ev/s / raw wall/s (both include a group join); strict: replay ev/s / raw steady/s.\n");
  if (!replays.empty()) {
    const ReplayRun& f = replays.back();
    std::printf("replayed store: accepted %llu, duplicates %llu, rejected %llu, dead letters %llu, folded to offset "
                "sum %llu\n",
                static_cast<unsigned long long>(f.accepted), static_cast<unsigned long long>(f.duplicates),
                static_cast<unsigned long long>(f.rejected), static_cast<unsigned long long>(f.dead_letters),
                static_cast<unsigned long long>(f.folded_to));
    for (const ReplayRun& run : replays) {
      bool ok = run.records == total && run.folded_to == total;
      if (fresh) {
        ok = ok && run.accepted == produced.expected.accepted && run.duplicates == produced.expected.duplicates &&
             run.rejected == produced.expected.stale && run.dead_letters == 0;
      }
      if (!ok) {
        errors.push_back("a replayed store differs from what the topic holds (records " + std::to_string(run.records) +
                         ", accepted " + std::to_string(run.accepted) + ")");
        break;
      }
    }
    if (fresh) {
      std::printf("state check against the generator: %s (expected accepted %llu, duplicates %llu, rejected %llu)\n",
                  errors.empty() ? "ok" : "MISMATCH", static_cast<unsigned long long>(produced.expected.accepted),
                  static_cast<unsigned long long>(produced.expected.duplicates),
                  static_cast<unsigned long long>(produced.expected.stale));
    }
  }
  if (!raw.empty()) std::printf("raw payload checksum: %llu\n", static_cast<unsigned long long>(checksum));
  if (!ratios.empty()) {
    const double m = median(ratios);
    std::printf("\n%-52s %10s %10s %6s\n", "figure", "measured", "target", "");
    std::printf("%-52s %10.3f %10s %6s\n", "replay events/s / raw records/s (median)", m, ">= 0.25",
                m >= kTargetRatio ? "PASS" : "MISS");
    std::printf("%-52s %10.3f %10s %6s\n", "strict: replay / raw first-to-last record (median)", median(strict),
                ">= 0.25", median(strict) >= kTargetRatio ? "PASS" : "MISS");
  }
  for (const std::string& e : errors) std::fprintf(stderr, "replay_bench: %s\n", e.c_str());
  return errors.empty() ? 0 : 1;
}
