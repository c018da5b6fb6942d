// time_travel_bench: spec section 4 / issue 4, "time-travel read latency at versions 10 and 10,000 of one session".
// Prints figures; not a test.
//
//   time_travel_bench [--versions 10000] [--reads 2000] [--memory-labels 20]
//
// In-process against a real store (store::Store on RocksDB in a temporary directory): one session is folded to
// --versions versions (messages of about 400 bytes, a memory update every 10th event over --memory-labels labels, a
// summary every 1,000), committed in batches of 500 like the engine's, then flushed to disk by reopening the store.
// Then, taking turns so machine noise hits all alike, it times the read the API serves for
// `GET /v1/sessions/{id}?version=N` (view::session_json_at: the nearest checkpoint plus the refold of the events
// after it, then the session JSON) at several versions, and the current-state read
// (`GET /v1/sessions/{id}`) as the baseline. The ratio of the version-10,000 read to the version-10 read shows
// that the cost does not grow with the session (the spec's bound is the checkpoint interval,
// fold::kCheckpointInterval); the worst case inside an interval (version = k * interval - 1) is printed too.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#include "engine/codec/codec.h"
#include "engine/fold/fold.h"
#include "engine/fold/layout.h"
#include "engine/store/store.h"
#include "engine/view/view.h"

using namespace statefold;  // NOLINT: a main file, not a header

namespace {

using Clock = std::chrono::steady_clock;

std::string line(std::uint64_t n, const std::string& session, const std::string& type, const std::string& payload) {
  char id[33];
  std::snprintf(id, sizeof id, "%032llx", static_cast<unsigned long long>(n));
  return std::string(R"({"event_id":")") + id + R"(","session_id":")" + session + R"(","occurred_at_us":)" +
         std::to_string(1767225600000000ull + n) + R"(,"payload_type":")" + type + R"(","payload":)" + payload + "}";
}

std::string event_json(std::uint64_t version, const std::string& session, std::uint64_t labels) {
  if (version == 1) return line(version, session, "SessionOpened", R"({"model":"gpt-4o","system_prompt":"Be brief."})");
  if (version % 1000 == 0) {
    return line(version, session, "Summary",
                R"({"text":"Summary through )" + std::to_string(version - 1) + R"(.","through_version":)" +
                    std::to_string(version - 1) + "}");
  }
  if (version % 10 == 0) {
    return line(version, session, "MemorySet",
                R"({"label":"fact-)" + std::to_string(version % labels) + R"(","value":"value at )" +
                    std::to_string(version) + R"(","pinned":false})");
  }
  std::string text(400, 'a' + static_cast<char>(version % 26));
  return line(version, session, "Message",
              std::string(R"({"role":")") + (version % 2 ? "user" : "assistant") + R"(","content":[{"text":")" + text +
                  R"("}]})");
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Time-travel read latency at versions 10 and 10,000 of one session (docs/performance.md)"};
  std::uint64_t versions = 10000;
  int reads = 2000;
  std::uint64_t labels = 20;
  std::string work_dir;
  app.add_option("--versions", versions, "Versions of the session")->capture_default_str();
  app.add_option("--reads", reads, "Timed reads per version")->capture_default_str();
  app.add_option("--memory-labels", labels, "Distinct memory labels")->capture_default_str();
  app.add_option("--work-dir", work_dir, "Where the store goes (default: a fresh directory under /tmp)");
  CLI11_PARSE(app, argc, argv);
  if (versions < 10) {
    std::fprintf(stderr, "time_travel_bench: --versions must be at least 10\n");
    return 2;
  }
  if (work_dir.empty()) work_dir = "/tmp/time_travel_bench-" + std::to_string(::getpid());
  std::filesystem::remove_all(work_dir);
  std::filesystem::create_directories(work_dir);
  const std::string session = "bench-session";

  store::Options options;
  options.path = work_dir + "/store";
  options.partitions = 1;
  options.memory_budget_bytes = 384ull << 20;
  {
    auto store = store::Store::open(options);
    if (!store) {
      std::fprintf(stderr, "time_travel_bench: %s\n", store.error().message.c_str());
      return 1;
    }
    for (std::uint64_t v = 1; v <= versions;) {
      const auto state = (*store)->partition(0);
      fold::Folder folder(*state);
      for (std::uint64_t end = std::min(versions, v + 499); v <= end; ++v) {
        auto json = event_json(v, session, labels);
        auto event = codec::decode(std::span(reinterpret_cast<const std::uint8_t*>(json.data()), json.size()),
                                   codec::Encoding::json);
        if (!event) {
          std::fprintf(stderr, "time_travel_bench: %s\n", event.error().message.c_str());
          return 1;
        }
        folder.apply(*event, {0, static_cast<std::int64_t>(v), static_cast<std::int64_t>(v)});
      }
      if (auto ok = (*store)->commit(0, folder.finish(), static_cast<std::int64_t>(v)); !ok) {
        std::fprintf(stderr, "time_travel_bench: %s\n", ok.error().message.c_str());
        return 1;
      }
    }
  }
  auto store = store::Store::open(options);  // reopened: the session is read from files, not the memtable
  if (!store) {
    std::fprintf(stderr, "time_travel_bench: %s\n", store.error().message.c_str());
    return 1;
  }

  const std::uint64_t interval = fold::kCheckpointInterval;
  std::vector<std::uint64_t> points{10, versions};
  if (versions > interval) points.push_back(versions / interval * interval - 1);  // most refolds at this length
  std::map<std::uint64_t, std::vector<double>> us;  // version -> latencies; 0 = the current-state read
  // State without the message list (counts, memory, summary, hashes): the list's length differs between version 10
  // and version 10,000 and would hide what is compared here, the cost of rebuilding the state.
  const view::SessionOptions shown{0};
  std::size_t bytes = 0;
  for (int round = -50; round < reads; ++round) {  // 50 warm-up rounds
    for (std::uint64_t v : points) {
      auto reader = (*store)->snapshot();
      const auto t0 = Clock::now();
      auto body = view::session_json_at(*reader, session, v, shown);
      const auto t1 = Clock::now();
      if (!body) {
        std::fprintf(stderr, "time_travel_bench: version %llu: %s\n", static_cast<unsigned long long>(v),
                     body.error().message.c_str());
        return 1;
      }
      bytes += body->size();
      if (round >= 0) us[v].push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    auto reader = (*store)->snapshot();
    const auto t0 = Clock::now();
    auto current = view::session_json(*reader, session, shown);
    const auto t1 = Clock::now();
    bytes += current ? current->size() : 0;
    if (round >= 0) us[0].push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }

  std::printf("time-travel read of one session of %llu versions (checkpoint every %llu versions, %d reads each,\n"
              "session JSON without the message list; RocksDB store on disk, warm cache)\n",
              static_cast<unsigned long long>(versions), static_cast<unsigned long long>(interval), reads);
  std::printf("  %-28s %10s %10s %10s\n", "read", "p50 us", "p99 us", "refolds");
  std::printf("  %-28s %10.1f %10.1f %10s\n", "current state (baseline)", percentile(us[0], 0.5),
              percentile(us[0], 0.99), "-");
  for (std::uint64_t v : points) {
    std::printf("  %-28s %10.1f %10.1f %10llu\n", ("?version=" + std::to_string(v)).c_str(), percentile(us[v], 0.5),
                percentile(us[v], 0.99), static_cast<unsigned long long>(v % interval));
  }
  const double ratio = percentile(us[versions], 0.5) / percentile(us[10], 0.5);
  std::printf("ratio p50 version %llu / version 10: %.2f (flat in session length when near 1; the refolds differ:\n"
              "  %llu vs %llu)\n",
              static_cast<unsigned long long>(versions), ratio, static_cast<unsigned long long>(versions % interval),
              10ull % interval);
  std::filesystem::remove_all(work_dir);
  (void)bytes;
  return 0;
}
