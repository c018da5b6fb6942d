#include <iostream>

#include "commands.h"
#include "config.h"
#include "engine/base/time.h"
#include "engine/log/log.h"
#include "engine/store/store.h"
#include "engine/view/view.h"
#include "replay_runner.h"

namespace statefold::cli {

Runner add_replay(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "replay", "Rebuild state from the topic into a new store, from the beginning up to the end, an offset or a time. "
                "Interrupted, run the same command again: it resumes where it stopped");
  struct Args {
    ReplayRequest request;
    std::string until_offset;
    std::string until_time;
    std::string format = "text";
    std::string wal = "on";
  };
  auto a = std::make_shared<Args>();
  a->request.brokers = "127.0.0.1:9092";
  a->request.topic = std::string(log::kDefaultTopic);
  cmd->add_option("--brokers", a->request.brokers, "Kafka bootstrap servers")->capture_default_str()->envname("STATEFOLD_BROKERS");
  cmd->add_option("--topic", a->request.topic, "Event topic")->capture_default_str()->envname("STATEFOLD_TOPIC");
  cmd->add_option("--data-dir", a->request.data_dir, "The new store's directory (created; an unfinished replay there resumes)")
      ->required();
  auto* offset = cmd->add_option("--until-offset", a->until_offset,
                                 "Stop before these offsets: PARTITION:OFFSET,... (unlisted partitions: nothing)");
  auto* time = cmd->add_option("--until-time", a->until_time,
                               "Stop before the first record at or after this time (RFC 3339 or epoch ms)");
  offset->excludes(time);
  cmd->add_option("--memory-budget-mb", a->request.memory_budget_mb, "Memory budget")->capture_default_str();
  cmd->add_option("--wal", a->wal,
                  "RocksDB's write-ahead log, on or off. Off: faster; an interrupted replay resumes from the last "
                  "flushed memtable instead of the last batch (the store is flushed when the replay ends)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str()
      ->envname("STATEFOLD_WAL");
  cmd->add_option("--format", a->format, "text or json (the result)")->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  auto kafka_config = std::make_shared<std::string>();
  add_kafka_config_option(cmd, *kafka_config);
  return [a, kafka_config]() {
    if (!kafka_config_ok(*kafka_config, "replay")) return kUsage;
    auto& r = a->request;
    r.wal = a->wal == "on";
    base::Result<std::map<std::int32_t, std::int64_t>> stop = base::make_error("unset");
    if (!a->until_offset.empty()) {
      stop = parse_offsets(a->until_offset);
      if (!stop) {
        std::cerr << "statefold replay: --until-offset: " << stop.error().message << "\n";
        return kUsage;
      }
    } else if (!a->until_time.empty()) {
      auto ms = base::parse_time_ms(a->until_time);
      if (!ms) {
        std::cerr << "statefold replay: --until-time: " << ms.error().message << "\n";
        return kUsage;
      }
      stop = log::offsets_for_time(r.brokers, r.topic, *ms);
    } else {
      stop = log::end_offsets(r.brokers, r.topic);
    }
    if (!stop) {
      std::cerr << "statefold replay: " << stop.error().message << "\n";
      return kFailure;
    }
    if (!a->until_offset.empty()) {
      auto ends = log::end_offsets(r.brokers, r.topic);
      if (!ends) {
        std::cerr << "statefold replay: " << ends.error().message << "\n";
        return kFailure;
      }
      for (const auto& [p, o] : *stop) {
        auto it = ends->find(p);
        if (it == ends->end()) {
          std::cerr << "statefold replay: --until-offset: " << r.topic << " has no partition " << p << "\n";
          return kUsage;
        }
        if (o > it->second) {
          std::cerr << "statefold replay: --until-offset: partition " << p << " ends at " << it->second << "\n";
          return kUsage;
        }
      }
    }
    r.stop_at = *stop;
    auto outcome = run_replay(r);
    if (!outcome) {
      std::cerr << "statefold replay: " << outcome.error().message << "\n";
      return kFailure;
    }
    store::Options options;
    options.path = r.data_dir + "/store";
    options.read_only = true;
    auto store = store::Store::open(options);
    if (!store) {
      std::cerr << "statefold replay: " << store.error().message << "\n";
      return kFailure;
    }
    const auto offsets = (*store)->offsets();
    if (a->format == "json") {
      std::cout << view::summary_json(**store, offsets) << "\n";
    } else {
      std::cout << "replayed " << outcome->records << " record(s) in " << outcome->seconds << " s into " << r.data_dir
                << "\n"
                << view::summary_text(**store, offsets);
    }
    return kOk;
  };
}

}  // namespace statefold::cli
