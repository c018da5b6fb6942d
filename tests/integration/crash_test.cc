// Exactly-once state across kill -9 (spec section 3.1, and the last target of section 8): `statefold serve` is
// SIGKILLed at random moments while it folds and restarted on the same data dir each time; the store it ends with
// must equal, byte for byte in its hashes and exactly in its counts, an uninterrupted run over the same topic and the
// in-memory reference fold. A lost event or an event applied twice changes a version, a count or a hash.
//
// The seed of the kill schedule is printed; rerun a failure with STATEFOLD_CRASH_SEED=<seed>.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "engine/store/store.h"
#include "engine/workload/workload.h"
#include "support/cluster.h"

namespace statefold::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kEvents = 200000;
constexpr std::uint64_t kSessions = 2000;
constexpr int kMinMidStreamKills = 12;
constexpr int kMaxLives = 40;

std::uint64_t crash_seed() {
  if (const char* s = std::getenv("STATEFOLD_CRASH_SEED"); s != nullptr && *s != '\0') return std::stoull(s);
  return std::random_device{}();
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::unique_ptr<store::Store> open_read_only(const std::string& data_dir) {
  store::Options options;
  options.path = data_dir + "/store";
  options.read_only = true;
  options.memory_budget_bytes = 64ull << 20;
  auto opened = store::Store::open(options);
  if (!opened) {
    ADD_FAILURE() << "cannot open " << options.path << ": " << opened.error().message;
    return nullptr;
  }
  return std::move(*opened);
}

class Crash : public ClusterTest {
 protected:
  // `mode`: flags every serve of the test gets, e.g. {"--wal", "off"}.
  void kill_nine_at_random_moments(const std::vector<std::string>& mode);
};

// WAL on (the default): a kill loses at most the batch in flight, which is folded again from its stored offsets.
TEST_F(Crash, KillNineAtRandomMomentsLosesNothingAndAppliesNothingTwice) { kill_nine_at_random_moments({}); }

// WAL off: a kill loses every batch not flushed from the memtables yet; the store comes back at a prefix of the
// batches with their offsets, and the next life folds the rest again from there. Every life runs with the WAL off,
// the clean stops and the uninterrupted run included. (The read-only `inspect` that sees progress sees only
// flushed memtables here: small ones, with the 32 MB budget, so it still sees progress every few thousand events.)
TEST_F(Crash, WalOffKillNineAtRandomMomentsLosesNothingAndAppliesNothingTwice) {
  kill_nine_at_random_moments({"--wal", "off"});
}

void Crash::kill_nine_at_random_moments(const std::vector<std::string>& mode) {
  const std::uint64_t seed = crash_seed();
  std::printf("crash_test: kill schedule seed %llu (rerun with STATEFOLD_CRASH_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  RecordProperty("crash_seed", std::to_string(seed));
  std::mt19937_64 rng(seed);

  workload::Options workload_options;
  workload_options.sessions = kSessions;
  workload_options.events = kEvents;
  workload_options.seed = 4242;
  std::vector<std::string> lines;
  lines.reserve(kEvents);
  const workload::Stats stats =
      workload::generate(workload_options, [&](std::string_view line) { lines.emplace_back(line); });
  const std::string input = path("events.jsonl");
  write_lines(input, lines);

  const std::string topic = unique_name("events");
  auto appended = append(topic, input);
  ASSERT_TRUE(appended.status.exited_with(0)) << appended.status.describe() << "\n" << appended.err;

  // --- Lives of serve on one data dir, each ended by SIGKILL, until enough kills landed mid-stream. ---
  const std::string killed_dir = data_dir("killed");
  // Small batches: many commits to land between. The smallest memory budget while it is being killed: small
  // memtables mean frequent flushes and compactions (more kinds of moment to die in), and a short WAL, which keeps
  // each read-only `inspect` of the live store quick, so "it has committed something" is seen soon.
  std::vector<std::string> serve_flags = {"--max-batch", "500"};
  serve_flags.insert(serve_flags.end(), mode.begin(), mode.end());
  std::vector<std::string> killed_flags = serve_flags;
  killed_flags.insert(killed_flags.end(), {"--memory-budget-mb", "32"});
  int kills = 0;
  int mid_stream_kills = 0;
  std::uint64_t done = 0;        // records in the store when the current life started
  double rate = 100000;          // events/s; starts high (so early kills come soon) and only grows
  double first_progress_ms = 1e9;  // fastest observed time from spawn to a first commit
  std::vector<std::string> report;
  for (int life = 0; life < kMaxLives && mid_stream_kills < kMinMidStreamKills; ++life) {
    ServeOptions options = serve_options(topic, killed_dir, killed_flags);
    // A fresh group per life: a SIGKILLed member stays in its group until session.timeout.ms (45 s) expires, and the
    // next life would wait that long for its partitions. The group only serves lag monitoring: where each life
    // starts comes from the store, which is exactly what is under test.
    options.group = topic + ".life-" + std::to_string(life);
    const auto spawned = Clock::now();
    Serve& serve = start_serve(options);

    // Every third life is killed blind, at a random moment early in its life (during start-up, group join, or the
    // first batches); the others at a random moment after their first commit, sized so that the stream outlasts
    // the kills still needed.
    const int kills_left = kMinMidStreamKills - mid_stream_kills;
    const double remaining = static_cast<double>(kEvents - done);
    const double budget_ms = std::clamp(remaining / rate * 1000.0 / (kills_left + 1.5), 10.0, 1500.0);
    const bool blind = life % 3 == 2;
    double delay_ms = 0;
    double progress_ms = -1;
    if (blind) {
      const double hi = std::clamp(std::min(first_progress_ms, 1500.0) + budget_ms, 100.0, 1500.0);
      delay_ms = std::uniform_real_distribution<double>(100.0, hi)(rng);
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(delay_ms));
    } else {
      bool died = false;
      const bool progressed = wait_until(
          [&] {
            if (!serve.running()) {
              died = true;
              return true;
            }
            auto s = inspect_summary(killed_dir);
            return s && s->total() > done;
          },
          minutes(3), milliseconds(10));
      ASSERT_FALSE(died) << "serve exited by itself (" << serve.process().status()->describe() << "); log:\n"
                         << tail(serve.log_path());
      ASSERT_TRUE(progressed) << "serve made no progress within 3 minutes; log:\n" << tail(serve.log_path());
      progress_ms = ms_since(spawned);
      first_progress_ms = std::min(first_progress_ms, progress_ms);
      delay_ms = std::uniform_real_distribution<double>(0.0, budget_ms)(rng);
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(delay_ms));
    }
    const double killed_at_ms = ms_since(spawned);
    const ExitStatus status = serve.kill();
    ASSERT_EQ(status.signal, SIGKILL) << "serve ended before the kill: " << status.describe() << "; log:\n"
                                      << tail(serve.log_path());
    ++kills;

    // Killed before it created the store, there is nothing to read yet; otherwise the store must open.
    std::optional<Summary> after;
    std::string error;
    const bool has_store = std::filesystem::exists(killed_dir + "/store/CURRENT");
    ASSERT_TRUE(!has_store || wait_until([&] { return (after = inspect_summary(killed_dir, &error)).has_value(); },
                                         seconds(60)))
        << "the store does not open after kill " << kills << ": " << error;
    const std::uint64_t now_total = after ? after->total() : 0;
    ASSERT_LE(now_total, kEvents) << "more records in the store than on the topic: " << (after ? after->json : "");
    const bool mid_stream = now_total > done && now_total < kEvents;
    if (mid_stream) ++mid_stream_kills;
    if (!blind && now_total > done && killed_at_ms > progress_ms) {
      // Pessimistic: what this life folded, over the time since its first commit was seen.
      rate = std::max(rate, static_cast<double>(now_total - done) / ((killed_at_ms - progress_ms + 50) / 1000.0));
    }
    const std::string seen =
        blind ? "" : " (first commit seen at " + std::to_string(static_cast<int>(progress_ms)) + " ms)";
    char line[256];
    std::snprintf(line, sizeof line,
                  "kill %2d (life %2d, %s): %6.0f ms after spawn%s, store at %6llu/%llu records (+%llu)%s", kills,
                  life, blind ? "blind         " : "after progress", killed_at_ms, seen.c_str(),
                  static_cast<unsigned long long>(now_total), static_cast<unsigned long long>(kEvents),
                  static_cast<unsigned long long>(now_total - std::min(now_total, done)),
                  mid_stream ? "  mid-stream" : "");
    std::printf("crash_test: %s\n", line);
    std::fflush(stdout);
    report.emplace_back(line);
    ASSERT_GE(now_total, done) << "the store went backwards after a kill";
    done = now_total;
    if (done >= kEvents) break;  // finished before the kill: no more kills possible on this topic
  }
  std::printf("crash_test: %d kills, %d of them mid-stream (seed %llu, WAL %s)\n", kills, mid_stream_kills,
              static_cast<unsigned long long>(seed), mode.empty() ? "on" : "off");
  EXPECT_GE(mid_stream_kills, kMinMidStreamKills) << "too few kills landed while serve was folding";

  // --- The last life folds the rest and stops cleanly. ---
  {
    ServeOptions options = serve_options(topic, killed_dir, serve_flags);
    options.group = topic + ".final";
    Serve& serve = start_serve(options);
    ASSERT_TRUE(wait_for_summary(killed_dir, [&](const Summary& s) { return s.total() >= kEvents; }, minutes(8),
                                 &serve));
    const ExitStatus stopped = serve.stop();
    ASSERT_TRUE(stopped.exited_with(0)) << stopped.describe();
  }

  // --- An uninterrupted run over the same topic, with another group and data dir. ---
  const std::string clean_dir = data_dir("clean");
  {
    ServeOptions options = serve_options(topic, clean_dir, serve_flags);
    options.group = topic + ".uninterrupted";
    Serve& serve = start_serve(options);
    ASSERT_TRUE(wait_for_summary(clean_dir, [&](const Summary& s) { return s.total() >= kEvents; }, minutes(8),
                                 &serve));
    const ExitStatus stopped = serve.stop();
    ASSERT_TRUE(stopped.exited_with(0)) << stopped.describe();
  }

  ReferenceFold reference;
  reference.fold(lines, 5000);

  auto killed = inspect_summary(killed_dir);
  auto clean = inspect_summary(clean_dir);
  ASSERT_TRUE(killed && clean);
  EXPECT_EQ(killed->json, clean->json) << "killed " << kills << " times vs uninterrupted";
  EXPECT_EQ(killed->store_hash, reference.store_hash());
  EXPECT_EQ(killed->total(), kEvents);
  EXPECT_EQ(killed->offsets_sum(), static_cast<std::int64_t>(kEvents));
  EXPECT_EQ(killed->events_applied, stats.accepted);
  EXPECT_EQ(killed->duplicates, stats.duplicates);
  EXPECT_EQ(killed->rejections, stats.stale);
  EXPECT_EQ(killed->dlq_records, 0u);
  EXPECT_EQ(killed->sessions, stats.sessions_opened);

  // Every session: its version is the number of events it accepted in the reference, and its state and chain
  // hashes are the reference's.
  auto killed_store = open_read_only(killed_dir);
  auto clean_store = open_read_only(clean_dir);
  ASSERT_TRUE(killed_store && clean_store);
  int mismatched = 0;
  for (std::uint64_t i = 0; i < stats.sessions_opened; ++i) {
    const std::string id = workload::session_id(workload_options, i);
    auto expected = fold::load_header(reference.kv(), id);
    auto got = fold::load_header(*killed_store, id);
    auto uninterrupted = fold::load_header(*clean_store, id);
    ASSERT_TRUE(expected && got && uninterrupted) << id;
    const bool same = got->version == reference.accepted(id) && got->version == stats.final_versions[i] &&
                      got->version == uninterrupted->version && got->state_hash == expected->state_hash &&
                      got->chain_hash == expected->chain_hash && got->duplicates == expected->duplicates &&
                      got->rejections == expected->rejections;
    if (!same && ++mismatched <= 10) {
      ADD_FAILURE() << id << ": version " << got->version << " (uninterrupted " << uninterrupted->version
                    << ", accepted in the reference " << reference.accepted(id) << "), duplicates " << got->duplicates
                    << " vs " << expected->duplicates << ", rejections " << got->rejections << " vs "
                    << expected->rejections << ", state hash "
                    << (got->state_hash == expected->state_hash ? "equal" : "differs");
    }
  }
  EXPECT_EQ(mismatched, 0) << "sessions whose state differs from the reference after " << kills << " kills";

  // And a few sessions in full, through inspect.
  for (std::uint64_t i = 0; i < stats.sessions_opened; i += 197) {
    const std::string id = workload::session_id(workload_options, i);
    SCOPED_TRACE("session " + id);
    EXPECT_EQ(inspect_session(killed_dir, id, 1000).value_or("missing"), reference.session_json(id, 1000).value_or(""));
  }

  for (std::size_t i = 0; i < report.size(); ++i) RecordProperty("kill_" + std::to_string(i + 1), report[i]);
}

}  // namespace
}  // namespace statefold::testing
