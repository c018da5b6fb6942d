#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>

#include "commands.h"
#include "config.h"
#include "connectors/audit/verify.h"
#include "engine/log/log.h"
#include "engine/store/store.h"
#include "replay_runner.h"

namespace statefold::cli {

Runner add_verify(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "verify", "Rebuild the live store's state from the topic into a temporary store, up to the live store's offsets, "
                "and compare every session's state hash. Exit 5 if any differs");
  struct Args {
    std::string brokers = "127.0.0.1:9092";
    std::string topic{log::kDefaultTopic};
    std::string data_dir;
    std::string work_dir;
    std::string format = "text";
    std::uint64_t memory_mb = 256;
    std::size_t show = 20;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--brokers", a->brokers, "Kafka bootstrap servers")->capture_default_str()->envname("STATEFOLD_BROKERS");
  cmd->add_option("--topic", a->topic, "Event topic")->capture_default_str()->envname("STATEFOLD_TOPIC");
  cmd->add_option("--data-dir", a->data_dir, "The live engine's data directory (read-only)")->required();
  cmd->add_option("--work-dir", a->work_dir, "Where the temporary store goes (default: the system temp dir)");
  cmd->add_option("--memory-budget-mb", a->memory_mb, "Memory budget of the rebuild")->capture_default_str();
  cmd->add_option("--show", a->show, "How many differing sessions to list")->capture_default_str();
  cmd->add_option("--format", a->format, "text or json")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  auto kafka_config = std::make_shared<std::string>();
  add_kafka_config_option(cmd, *kafka_config);
  return [a, kafka_config]() {
    if (!kafka_config_ok(*kafka_config, "verify")) return kUsage;
    store::Options live_options;
    live_options.path = a->data_dir + "/store";
    live_options.read_only = true;
    auto live = store::Store::open(live_options);
    if (!live) {
      std::cerr << "statefold verify: " << live.error().message << "\n";
      return kNotFound;
    }
    // Read-only, the live store is frozen as of now: its offsets and states belong together.
    const auto offsets = (*live)->offsets();
    const auto expected = audit::state_hashes(**live);
    if (!expected) {
      std::cerr << "statefold verify: " << expected.error().message << "\n";
      return kFailure;
    }

    std::string base = a->work_dir.empty() ? std::filesystem::temp_directory_path().string() : a->work_dir;
    std::string pattern = base + "/statefold-verify-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      std::cerr << "statefold verify: cannot create a temporary directory in " << base << "\n";
      return kFailure;
    }
    struct Cleanup {
      std::string dir;
      ~Cleanup() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
      }
    } cleanup{pattern};

    ReplayRequest request{a->brokers, a->topic, pattern, offsets, a->memory_mb, false};
    auto replayed = run_replay(request);
    if (!replayed) {
      std::cerr << "statefold verify: rebuild failed: " << replayed.error().message << "\n";
      return kFailure;
    }
    std::map<std::string, std::string> actual;
    {
      store::Options rebuilt_options;
      rebuilt_options.path = pattern + "/store";
      rebuilt_options.read_only = true;
      auto rebuilt = store::Store::open(rebuilt_options);
      if (!rebuilt) {
        std::cerr << "statefold verify: " << rebuilt.error().message << "\n";
        return kFailure;
      }
      auto hashes = audit::state_hashes(**rebuilt);
      if (!hashes) {
        std::cerr << "statefold verify: rebuilt store: " << hashes.error().message << "\n";
        return kFailure;
      }
      actual = std::move(*hashes);
    }
    const auto report = audit::compare(*expected, actual);
    std::cout << (a->format == "json" ? audit::to_json(report) : audit::to_text(report, replayed->records, a->show));
    return report.ok() ? kOk : kMismatch;
  };
}

}  // namespace statefold::cli
