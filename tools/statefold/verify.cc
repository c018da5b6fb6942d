#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>

#include <boost/json.hpp>

#include "base/hex.h"
#include "commands.h"
#include "fold/fold.h"
#include "log/log.h"
#include "replay_runner.h"
#include "store/store.h"
#include "view/view.h"

namespace statefold::cli {

namespace {

// Every session's state hash recomputed from its header (a stored hash could have been altered with the header).
std::map<std::string, std::string> state_hashes(const store::Store& store) {
  std::map<std::string, std::string> out;
  store.scan(std::string(1, fold::key::kHeader), [&](std::string_view key, std::string_view value) {
    out.emplace(key.substr(1), base::to_hex(fold::state_hash(fold::decode_header(value))));
    return true;
  });
  return out;
}

// The store hash recomputed from the recomputed state hashes.
std::string store_hash_of(const std::map<std::string, std::string>& hashes) {
  std::vector<std::uint8_t> acc(32, 0);
  for (const auto& [id, hex] : hashes) {
    auto digest = base::from_hex(hex);
    base::Digest d{};
    std::copy(digest->begin(), digest->end(), d.begin());
    const auto term = fold::store_hash_term(id, d);
    for (std::size_t i = 0; i < acc.size(); ++i) acc[i] ^= term[i];
  }
  return base::to_hex(acc);
}

}  // namespace

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
  return [a]() {
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
    const auto expected = state_hashes(**live);
    const std::string live_store_hash = store_hash_of(expected);

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
    std::string rebuilt_store_hash;
    {
      store::Options rebuilt_options;
      rebuilt_options.path = pattern + "/store";
      rebuilt_options.read_only = true;
      auto rebuilt = store::Store::open(rebuilt_options);
      if (!rebuilt) {
        std::cerr << "statefold verify: " << rebuilt.error().message << "\n";
        return kFailure;
      }
      actual = state_hashes(**rebuilt);
      rebuilt_store_hash = store_hash_of(actual);
    }

    boost::json::array differing;
    for (const auto& [id, hash] : expected) {
      auto it = actual.find(id);
      if (it == actual.end()) {
        differing.push_back({{"session_id", id}, {"live", hash}, {"rebuilt", nullptr}});
      } else if (it->second != hash) {
        differing.push_back({{"session_id", id}, {"live", hash}, {"rebuilt", it->second}});
      }
    }
    for (const auto& [id, hash] : actual) {
      if (!expected.contains(id)) differing.push_back({{"session_id", id}, {"live", nullptr}, {"rebuilt", hash}});
    }
    const bool ok = differing.empty() && live_store_hash == rebuilt_store_hash;
    if (a->format == "json") {
      boost::json::object o{{"ok", ok},
                            {"sessions", expected.size()},
                            {"live_store_hash", live_store_hash},
                            {"rebuilt_store_hash", rebuilt_store_hash},
                            {"differing", differing}};
      std::cout << boost::json::serialize(o) << "\n";
    } else {
      std::cout << "verified " << expected.size() << " session(s) against a rebuild of " << replayed->records
                << " record(s)\n";
      std::cout << "live store hash:    " << live_store_hash << "\nrebuilt store hash: " << rebuilt_store_hash << "\n";
      std::size_t shown = 0;
      for (const auto& d : differing) {
        if (shown++ >= a->show) break;
        const auto& o = d.as_object();
        std::cout << "DIFFERS " << o.at("session_id").as_string().c_str() << ": live "
                  << (o.at("live").is_null() ? std::string("(missing)") : std::string(o.at("live").as_string()))
                  << ", rebuilt "
                  << (o.at("rebuilt").is_null() ? std::string("(missing)") : std::string(o.at("rebuilt").as_string()))
                  << "\n";
      }
      std::cout << (ok ? "OK: every session matches\n"
                       : "MISMATCH: " + std::to_string(differing.size()) + " session(s) differ\n");
    }
    return ok ? kOk : kMismatch;
  };
}

}  // namespace statefold::cli
