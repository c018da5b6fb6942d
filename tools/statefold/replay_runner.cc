#include "replay_runner.h"

#include <unistd.h>

#include <atomic>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <thread>

#include "engine/base/hex.h"
#include "engine/base/logging.h"
#include "engine/base/sha256.h"
#include "engine/runtime/engine.h"

namespace statefold::cli {

namespace {

std::int64_t total_of(const std::map<std::int32_t, std::int64_t>& offsets) {
  std::int64_t sum = 0;
  for (const auto& [p, o] : offsets) sum += std::max<std::int64_t>(0, o);
  return sum;
}

// Progress of the store towards the targets, in records (offsets), for the display.
std::int64_t done_of(const std::map<std::int32_t, std::int64_t>& stored, const std::map<std::int32_t, std::int64_t>& stop_at) {
  std::int64_t sum = 0;
  for (const auto& [p, limit] : stop_at) {
    auto it = stored.find(p);
    if (it != stored.end()) sum += std::min(it->second, std::max<std::int64_t>(0, limit));
  }
  return sum;
}

std::string format_eta(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<long long>(seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

}  // namespace

base::Result<ReplayOutcome> run_replay(const ReplayRequest& request) {
  runtime::EngineOptions options;
  options.brokers = request.brokers;
  options.topic = request.topic;
  options.data_dir = request.data_dir;
  options.memory_budget_bytes = request.memory_budget_mb << 20;
  options.stop_at = request.stop_at;
  options.wal = request.wal;
  options.progress_interval = std::chrono::hours(24);  // the display below reports progress instead
  // A group of its own per target directory: a replay never takes partitions from the live engines, and a
  // resumed replay is the same member again.
  const auto dir_hash = base::sha256(std::filesystem::absolute(request.data_dir).string());
  options.group = "statefold-replay-" + base::to_hex(std::span<const std::uint8_t>(dir_hash.data(), 8));
  auto engine = runtime::Engine::open(options);
  if (!engine) return engine.error();

  const auto start_offsets = (*engine)->next_offsets();
  for (const auto& [p, stored] : start_offsets) {
    auto limit = request.stop_at.find(p);
    if (stored > (limit == request.stop_at.end() ? 0 : limit->second)) {
      return base::make_error("the store in " + request.data_dir + " is already past the requested end on partition " +
                              std::to_string(p) + " (stored offset " + std::to_string(stored) +
                              "); replay into a new directory");
    }
  }
  const std::int64_t target = total_of(request.stop_at);
  const std::int64_t already = done_of(start_offsets, request.stop_at);
  if (already > 0 && !request.quiet) {
    base::log_info("resuming replay", {{"data_dir", request.data_dir}, {"done", std::to_string(already)},
                                       {"target", std::to_string(target)}});
  }

  // The progress thread sleeps on a condition variable so the end of the replay wakes it at once.
  std::mutex progress_mutex;
  std::condition_variable progress_wake;
  bool finished = false;
  const auto started = std::chrono::steady_clock::now();
  const bool tty = isatty(STDERR_FILENO) != 0;
  std::thread progress([&] {
    auto last_log = started;
    while (true) {
      {
        std::unique_lock lock(progress_mutex);
        if (progress_wake.wait_for(lock, std::chrono::milliseconds(tty ? 250 : 500), [&] { return finished; })) break;
      }
      if (request.quiet) continue;
      const auto now = std::chrono::steady_clock::now();
      const double elapsed = std::chrono::duration<double>(now - started).count();
      const std::int64_t done = done_of((*engine)->next_offsets(), request.stop_at);
      const double rate = elapsed > 0 ? static_cast<double>(done - already) / elapsed : 0;
      const std::int64_t lag = target - done;
      const double eta = rate > 0 ? static_cast<double>(lag) / rate : NAN;
      char line[200];
      std::snprintf(line, sizeof line, "replay: offset %lld of %lld, lag %lld, %.0f events/s, ETA %s",
                    static_cast<long long>(done), static_cast<long long>(target), static_cast<long long>(lag), rate,
                    format_eta(eta).c_str());
      if (tty) {
        std::fprintf(stderr, "\r%s\033[K", line);
      } else if (now - last_log >= std::chrono::seconds(10)) {
        base::log_info(line);
        last_log = now;
      }
    }
    if (tty && !request.quiet) std::fprintf(stderr, "\n");
  });
  auto result = (*engine)->run();
  {
    std::lock_guard lock(progress_mutex);
    finished = true;
  }
  progress_wake.notify_all();
  progress.join();
  if (!result) return result.error();
  ReplayOutcome outcome;
  outcome.records = (*engine)->stats().records.load();
  outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return outcome;
}

base::Result<std::map<std::int32_t, std::int64_t>> parse_offsets(const std::string& text) {
  std::map<std::int32_t, std::int64_t> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(start, end - start);
    const auto colon = item.find(':');
    std::int32_t p = 0;
    std::int64_t o = 0;
    if (colon == std::string::npos ||
        std::from_chars(item.data(), item.data() + colon, p).ptr != item.data() + colon ||
        std::from_chars(item.data() + colon + 1, item.data() + item.size(), o).ptr != item.data() + item.size() ||
        p < 0 || o < 0 || colon == 0 || colon + 1 == item.size()) {
      return base::make_error("expected PARTITION:OFFSET[,PARTITION:OFFSET...], got \"" + item + "\"");
    }
    out[p] = o;
    start = end + 1;
  }
  return out;
}

}  // namespace statefold::cli
