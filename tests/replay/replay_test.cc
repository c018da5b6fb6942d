// Replay, verify and audit (spec section 5) end to end against a real broker. Generated workloads go on a fresh
// topic with `statefold append`, `statefold serve` folds them (stopped with SIGTERM), and then:
//   replay  rebuilds exactly the live state: all of it, up to recorded offsets, up to a time, and after a SIGKILL
//           mid-way by running the same command again;
//   verify  passes on an untouched store and names a session whose stored state was changed behind the engine;
//   audit   passes on untouched history, lists refusals, and names the first version whose stored event, or whose
//           record in Kafka, is not what the chain says.
// Stores are tampered with only while no engine runs, through store::Store and the FlatBuffers object API.
#include <gtest/gtest.h>

#include <flatbuffers/flatbuffers.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/base/hex.h"
#include "engine/codec/codec.h"
#include "engine/fold/fold.h"
#include "engine/fold/layout.h"
#include "engine/log/log.h"
#include "engine/store/store.h"
#include "engine/view/view.h"
#include "engine/workload/workload.h"
#include "statefold/schema/events_generated.h"
#include "statefold/schema/state_generated.h"
#include "support/cluster.h"
#include "workload_fixture.h"

namespace statefold::testing {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

// Exit codes of docs/cli.md.
constexpr int kOk = 0;
constexpr int kFailure = 1;
constexpr int kUsage = 2;
constexpr int kNotFound = 4;
constexpr int kMismatch = 5;

std::int64_t epoch_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

// RFC 3339 with milliseconds, at the given zone offset: "2026-01-01T12:00:00.123Z", "...T13:30:00.123+01:30".
std::string rfc3339(std::chrono::system_clock::time_point t, int zone_minutes = 0) {
  const std::int64_t ms = epoch_ms(t);
  const std::time_t local = static_cast<std::time_t>(ms / 1000 + zone_minutes * 60);
  std::tm tm{};
  gmtime_r(&local, &tm);
  char date[48];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[80];
  if (zone_minutes == 0) {
    std::snprintf(out, sizeof out, "%s.%03dZ", date, static_cast<int>(ms % 1000));
  } else {
    const int m = zone_minutes < 0 ? -zone_minutes : zone_minutes;
    std::snprintf(out, sizeof out, "%s.%03d%c%02d:%02d", date, static_cast<int>(ms % 1000),
                  zone_minutes < 0 ? '-' : '+', m / 60, m % 60);
  }
  return out;
}

// A run for a failure message: status, stdout, and the end of stderr (librdkafka can be chatty).
std::string describe(const RunResult& r) {
  const std::size_t keep = 6000;
  const std::string err = r.err.size() > keep ? "..." + r.err.substr(r.err.size() - keep) : r.err;
  return r.status.describe() + (r.timed_out ? " (timed out)" : "") + "\n--- stdout:\n" + r.out +
         "\n--- stderr:\n" + err;
}

// stdout as one JSON object; a test failure (and an empty object) if it is not one.
json::object parse_object(const RunResult& r) {
  try {
    return json::parse(r.out).as_object();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a JSON object (" << e.what() << "): " << describe(r);
    return {};
  }
}

// A summary printed by `replay --format json` (the `inspect --summary --format json` form).
std::optional<Summary> printed_summary(const RunResult& r) {
  try {
    return parse_summary(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a summary (" << e.what() << "): " << describe(r);
    return std::nullopt;
  }
}

std::string str(const json::value& v) { return v.is_string() ? std::string(v.as_string()) : json::serialize(v); }

// A JSON member as an unsigned number; nullopt when it is absent or not a number.
std::optional<std::uint64_t> uint_of(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_number()) return std::nullopt;
  return v->to_number<std::uint64_t>();
}

// The stored next offsets of a data dir's store, opened read-only (safe while another process writes it). nullopt
// while there is no store yet, or when it cannot be opened at this instant (files moving under a compaction).
std::optional<Offsets> stored_offsets(const std::string& data_dir) {
  store::Options options;
  options.path = data_dir + "/store";
  options.read_only = true;
  options.create_if_missing = false;
  options.memory_budget_bytes = 8ull << 20;
  auto opened = store::Store::open(options);
  if (!opened) return std::nullopt;
  return (*opened)->offsets();
}

template <typename T>
std::string pack(const T& object) {
  flatbuffers::FlatBufferBuilder builder(256);
  builder.Finish(T::TableType::Pack(builder, &object));
  return std::string(reinterpret_cast<const char*>(builder.GetBufferPointer()), builder.GetSize());
}

base::Digest to_digest(const std::vector<std::uint8_t>& bytes) {
  base::Digest d{};
  std::copy_n(bytes.begin(), std::min(bytes.size(), d.size()), d.begin());
  return d;
}

// A stopped engine's store opened for writing, to change it behind the engine's back as a bug or an intruder would.
// Writes go through commit() with no offsets, so the stored positions stay as they are. Each lands in the state of
// the partition the session it names lives in (store/store.h).
class TamperedStore {
 public:
  explicit TamperedStore(const std::string& data_dir) {
    store::Options options;
    options.path = data_dir + "/store";
    options.create_if_missing = false;
    auto opened = store::Store::open(options);
    if (!opened) throw std::runtime_error("cannot open " + options.path + " for writing: " + opened.error().message);
    _store = std::move(*opened);
  }
  const store::Store& store() const { return *_store; }
  void put(std::string_view session, std::string key, std::string value) {
    _writes[home(session)].put(std::move(key), std::move(value));
  }
  // The summary of the partition `session` lives in (the store's own is the sum of these).
  state::StoreSummaryT partition_summary(std::string_view session) const {
    return fold::load_summary(*_store->partition(home(session)));
  }
  // Everything put so far, in one batch.
  void commit() {
    std::map<std::int32_t, const fold::WriteSet*> writes;
    for (const auto& [partition, set] : _writes) writes[partition] = &set;
    auto done = _store->commit(writes, {});
    if (!done) throw std::runtime_error("tampering commit failed: " + done.error().message);
    _writes.clear();
  }

 private:
  std::int32_t home(std::string_view session) const {
    return log::partition_for_key(session, _store->partition_count());
  }
  std::unique_ptr<store::Store> _store;
  std::map<std::int32_t, fold::WriteSet> _writes;
};

struct Position {
  std::int32_t partition = -1;
  std::int64_t offset = -1;
};

class ReplayTest : public ClusterTest {
 protected:
  // `statefold COMMAND --brokers B --topic T --data-dir D [extra...]`.
  RunResult run_command(const std::string& command, const std::string& topic, const std::string& data,
                        const std::vector<std::string>& extra = {}, milliseconds timeout = minutes(5)) const {
    std::vector<std::string> args{command, "--brokers", brokers(), "--topic", topic, "--data-dir", data};
    args.insert(args.end(), extra.begin(), extra.end());
    return statefold(args, timeout);
  }

  // Appends lines [begin, end) with `statefold append --format json` as `encoding` records (flatbuffers or json);
  // the position of every appended line is added to `positions` (indexed like `lines`, when given).
  void append_lines(const std::string& topic, const std::vector<std::string>& lines, std::size_t begin,
                    std::size_t end, std::vector<Position>* positions = nullptr,
                    const std::string& encoding = "flatbuffers") {
    const std::string file = path("append-" + std::to_string(++_appends) + ".jsonl");
    write_lines(file, lines, begin, end);
    auto r = append(topic, file, {"--format", "json", "--encoding", encoding});
    ASSERT_TRUE(r.status.exited_with(kOk)) << describe(r);
    if (positions == nullptr) return;
    positions->resize(lines.size());
    std::istringstream out(r.out);
    std::size_t seen = 0;
    for (std::string line; std::getline(out, line);) {
      if (line.empty()) continue;
      const json::object o = json::parse(line).as_object();
      const auto index = begin + o.at("line").to_number<std::size_t>() - 1;
      ASSERT_LT(index, end) << line;
      (*positions)[index] = {o.at("partition").to_number<std::int32_t>(), o.at("offset").to_number<std::int64_t>()};
      ++seen;
    }
    ASSERT_EQ(seen, end - begin) << "append --format json must print one line per event:\n" << r.out;
  }

  // serve folds the topic into `data` until it has taken in `records`, then stops with SIGTERM; the summary after.
  std::optional<Summary> fold_live(const std::string& topic, const std::string& data, std::uint64_t records) {
    Serve& serve = start_serve(serve_options(topic, data));
    auto folded = wait_for_summary(data, [&](const Summary& s) { return s.total() >= records; }, minutes(5), &serve);
    const ExitStatus stopped = serve.stop();
    EXPECT_TRUE(stopped.exited_with(kOk)) << stopped.describe();
    if (!folded) return std::nullopt;
    auto summary = inspect_summary(data);
    EXPECT_TRUE(summary);
    if (summary) {
      EXPECT_EQ(summary->total(), records) << summary->json;
    }
    return summary;
  }

 private:
  int _appends = 0;
};

// ------------------------------------------------------------------------------------------------ replay

// A replay of the whole topic into a new directory is the live store: summary, offsets, store hash, sessions.
TEST_F(ReplayTest, ReplayRebuildsExactlyTheLiveState) {
  constexpr std::uint64_t kEvents = 20000;
  const Generated g = generate(200, kEvents, 41);
  ASSERT_GT(g.stats.duplicates, 0u);
  ASSERT_GT(g.stats.stale, 0u);
  const std::string topic = unique_name("events");
  ASSERT_NO_FATAL_FAILURE(append_lines(topic, g.lines, 0, g.lines.size()));
  const std::string live = data_dir("live");
  auto folded = fold_live(topic, live, kEvents);
  ASSERT_TRUE(folded);
  EXPECT_EQ(folded->events_applied, g.stats.accepted);
  EXPECT_EQ(folded->sessions, g.stats.sessions_opened);

  const std::string rebuilt = data_dir("replay");
  auto replayed = run_command("replay", topic, rebuilt, {"--format", "json"});
  ASSERT_TRUE(replayed.status.exited_with(kOk)) << describe(replayed);
  auto printed = printed_summary(replayed);
  ASSERT_TRUE(printed);
  EXPECT_EQ(printed->json, folded->json) << "replay --format json prints the summary of the rebuilt store";
  EXPECT_EQ(printed->store_hash, folded->store_hash);
  auto inspected = inspect_summary(rebuilt);
  ASSERT_TRUE(inspected);
  EXPECT_EQ(inspected->json, folded->json);

  // Session by session, as inspect shows them (messages, memory, counts, hashes).
  for (std::uint64_t i = 0; i < g.stats.sessions_opened; i += 20) {
    const std::string id = workload::session_id(g.options, i);
    SCOPED_TRACE("session " + id);
    auto want = inspect_session(live, id, 1000);
    auto got = inspect_session(rebuilt, id, 1000);
    ASSERT_TRUE(want);
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, *want);
  }

  // The same command again: the replay is complete, so it folds nothing and reports the same state (text form).
  auto again = run_command("replay", topic, rebuilt);
  ASSERT_TRUE(again.status.exited_with(kOk)) << describe(again);
  EXPECT_NE(again.out.find("replayed 0 record(s)"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("store hash:      " + folded->store_hash), std::string::npos) << again.out;
  auto unchanged = inspect_summary(rebuilt);
  ASSERT_TRUE(unchanged);
  EXPECT_EQ(unchanged->json, folded->json);
}

// Undecodable records are counted as dead letters in the rebuilt summary exactly as the live engine counted them,
// and neither replay nor verify sends them to a dead-letter topic again: a rebuild has no effect outside its store.
TEST_F(ReplayTest, ReplayCountsDeadLettersWithoutSendingThemAgain) {
  const Generated g = generate(10, 600, 43);
  const std::string topic = unique_name("events");
  ASSERT_NO_FATAL_FAILURE(append_lines(topic, g.lines, 0, 300));
  produce(brokers(), topic,
          {RawRecord{workload::session_id(g.options, 0), "not an event", {}, std::nullopt},
           RawRecord{std::nullopt, "\x01\x02\x03 neither", {}, std::nullopt}});
  ASSERT_FALSE(HasFailure());
  ASSERT_NO_FATAL_FAILURE(append_lines(topic, g.lines, 300, g.lines.size()));

  const std::string live = data_dir("live");
  auto folded = fold_live(topic, live, g.lines.size() + 2);
  ASSERT_TRUE(folded);
  ASSERT_EQ(folded->dlq_records, 2u);
  const std::string live_dlq = topic + ".dlq";  // serve_options' dead-letter topic
  auto live_dead_letters = end_offsets(brokers(), live_dlq);
  ASSERT_TRUE(live_dead_letters);
  ASSERT_EQ(sum(*live_dead_letters), 2);
  // replay and verify have no --dead-letter-topic: if they sent anything, it would go to the default one.
  auto default_count = [&]() -> std::int64_t {
    auto ends = log::end_offsets(brokers(), std::string(log::kDeadLetterTopic));
    return ends ? sum(*ends) : 0;  // no such topic: nothing in it
  };
  const std::int64_t default_before = default_count();

  auto replayed = run_command("replay", topic, data_dir("replay"), {"--format", "json"});
  ASSERT_TRUE(replayed.status.exited_with(kOk)) << describe(replayed);
  auto printed = printed_summary(replayed);
  ASSERT_TRUE(printed);
  EXPECT_EQ(printed->json, folded->json);
  auto verified = run_command("verify", topic, live, {"--format", "json"});
  EXPECT_TRUE(verified.status.exited_with(kOk)) << describe(verified);

  auto live_after = end_offsets(brokers(), live_dlq);
  ASSERT_TRUE(live_after);
  EXPECT_EQ(sum(*live_after), 2) << "a rebuild re-sent dead letters to the live dead-letter topic";
  EXPECT_EQ(default_count(), default_before)
      << "replay/verify re-sent the topic's dead letters to " << log::kDeadLetterTopic
      << " (the default dead-letter topic, which may be another deployment's)";
}

// The state at recorded offsets: serve folds workload A, the summary is recorded, serve folds B; a replay up to the
// recorded offsets gives exactly the recorded summary. An arbitrary cut, with one partition left out, gives the
// reference fold of exactly the records below it. A partial replay then resumes to the end, and a store already
// past a target is refused.
TEST_F(ReplayTest, ReplayUpToOffsetsEqualsTheStateAtThoseOffsets) {
  const Generated g = generate(40, 6000, 51);
  const std::size_t half = g.lines.size() / 2;
  const std::string topic = unique_name("events");
  const std::string live = data_dir("live");
  std::vector<Position> positions;

  Serve& serve = start_serve(serve_options(topic, live));
  ASSERT_NO_FATAL_FAILURE(append_lines(topic, g.lines, 0, half, &positions));
  auto at_a = wait_for_summary(live, [&](const Summary& s) { return s.total() >= half; }, minutes(3), &serve);
  ASSERT_TRUE(at_a);
  ASSERT_EQ(at_a->total(), half) << at_a->json;
  ASSERT_NO_FATAL_FAILURE(append_lines(topic, g.lines, half, g.lines.size(), &positions));
  auto full = wait_for_summary(live, [&](const Summary& s) { return s.total() >= g.lines.size(); }, minutes(3), &serve);
  ASSERT_TRUE(full);
  const ExitStatus stopped = serve.stop();
  ASSERT_TRUE(stopped.exited_with(kOk)) << stopped.describe();
  full = inspect_summary(live);
  ASSERT_TRUE(full);
  ASSERT_EQ(full->total(), g.lines.size());
  ASSERT_NE(full->store_hash, at_a->store_hash);

  // (1) Up to the offsets the live store had after A.
  const std::string at_a_dir = data_dir("at-a");
  auto r = run_command("replay", topic, at_a_dir, {"--until-offset", offsets_arg(at_a->offsets), "--format", "json"});
  ASSERT_TRUE(r.status.exited_with(kOk)) << describe(r);
  auto printed = printed_summary(r);
  ASSERT_TRUE(printed);
  EXPECT_EQ(printed->json, at_a->json) << "replay up to the recorded offsets must give the recorded state";

  // (2) An arbitrary cut: half of every partition but the fullest, which is left out and so folds nothing.
  std::int32_t left_out = full->offsets.begin()->first;
  for (const auto& [p, o] : full->offsets) {
    if (o > full->offsets.at(left_out)) left_out = p;
  }
  Offsets cut;
  for (const auto& [p, o] : full->offsets) {
    if (p != left_out) cut[p] = o / 2;
  }
  ASSERT_FALSE(cut.empty());
  std::vector<std::string> below;
  for (std::size_t i = 0; i < g.lines.size(); ++i) {
    auto it = cut.find(positions[i].partition);
    if (it != cut.end() && positions[i].offset < it->second) below.push_back(g.lines[i]);
  }
  ReferenceFold reference;
  reference.fold(below);
  Offsets folded_to;
  for (const auto& [p, o] : cut) {
    if (o > 0) folded_to[p] = o;
  }
  r = run_command("replay", topic, data_dir("cut"), {"--until-offset", offsets_arg(cut), "--format", "json"});
  ASSERT_TRUE(r.status.exited_with(kOk)) << describe(r);
  printed = printed_summary(r);
  ASSERT_TRUE(printed);
  EXPECT_EQ(printed->json, view::summary_json(reference.kv(), folded_to))
      << "cut " << offsets_arg(cut) << ", partition " << left_out << " unlisted";
  EXPECT_FALSE(printed->offsets.contains(left_out)) << "an unlisted partition folds nothing";

  // (3) The replay up to A, run again without a target, resumes to the end of the topic: the full live state.
  r = run_command("replay", topic, at_a_dir, {"--format", "json"});
  ASSERT_TRUE(r.status.exited_with(kOk)) << describe(r);
  printed = printed_summary(r);
  ASSERT_TRUE(printed);
  EXPECT_EQ(printed->json, full->json);

  // (4) That store is now past A's offsets: replaying it "up to A" is refused, never rolled back or left half-done.
  bool past = false;
  for (const auto& [p, o] : full->offsets) past = past || o > (at_a->offsets.contains(p) ? at_a->offsets.at(p) : 0);
  ASSERT_TRUE(past);
  r = run_command("replay", topic, at_a_dir, {"--until-offset", offsets_arg(at_a->offsets)});
  EXPECT_TRUE(r.status.exited_with(kFailure)) << describe(r);
  EXPECT_NE(r.err.find("already past"), std::string::npos) << r.err;
  auto untouched = inspect_summary(at_a_dir);
  ASSERT_TRUE(untouched);
  EXPECT_EQ(untouched->json, full->json);
}

// The state before a time, by the broker's record timestamps: A is produced, 2 s pass, the time is noted, 1 s
// passes, B is produced. A replay up to that time (RFC 3339 in UTC, with a zone offset, or epoch ms) is the state
// after A; up to a time before everything it is empty.
TEST_F(ReplayTest, ReplayUpToATimeEqualsTheStateBeforeThatTime) {
  const Generated g = generate(30, 4000, 53);
  const std::size_t half = g.lines.size() / 2;
  const std::string topic = unique_name("events");
  const std::string live = data_dir("live");
  const auto before_everything = std::chrono::system_clock::now() - seconds(1);

  Serve& serve = start_serve(serve_options(topic, live));
  ASSERT_NO_FATAL_FAILURE(append_lines(topic, g.lines, 0, half));
  auto at_a = wait_for_summary(live, [&](const Summary& s) { return s.total() >= half; }, minutes(3), &serve);
  ASSERT_TRUE(at_a);
  ASSERT_EQ(at_a->total(), half) << at_a->json;
  std::this_thread::sleep_for(seconds(2));
  const auto between = std::chrono::system_clock::now();
  std::this_thread::sleep_for(seconds(1));
  ASSERT_NO_FATAL_FAILURE(append_lines(topic, g.lines, half, g.lines.size()));
  ASSERT_TRUE(
      wait_for_summary(live, [&](const Summary& s) { return s.total() >= g.lines.size(); }, minutes(3), &serve));
  const ExitStatus stopped = serve.stop();
  ASSERT_TRUE(stopped.exited_with(kOk)) << stopped.describe();

  const std::vector<std::pair<std::string, std::string>> forms = {
      {"rfc3339-utc", rfc3339(between)},
      {"rfc3339-offset", rfc3339(between, 90)},
      {"epoch-ms", std::to_string(epoch_ms(between))},
  };
  for (const auto& [name, until] : forms) {
    SCOPED_TRACE("--until-time " + until);
    auto r = run_command("replay", topic, data_dir("until-" + name), {"--until-time", until, "--format", "json"});
    ASSERT_TRUE(r.status.exited_with(kOk)) << describe(r);
    auto printed = printed_summary(r);
    ASSERT_TRUE(printed);
    EXPECT_EQ(printed->json, at_a->json);
  }

  auto r = run_command("replay", topic, data_dir("until-before"),
                       {"--until-time", rfc3339(before_everything), "--format", "json"});
  ASSERT_TRUE(r.status.exited_with(kOk)) << describe(r);
  auto empty = printed_summary(r);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->sessions, 0u) << empty->json;
  EXPECT_EQ(empty->total(), 0u) << empty->json;
  EXPECT_TRUE(empty->offsets.empty()) << empty->json;
}

// Targets replay cannot use are refused at once: malformed ones as usage errors, and ones the topic can never
// reach (a partition it does not have, an offset past a partition's end) instead of waiting forever for records
// that will not come.
TEST_F(ReplayTest, ReplayRefusesTargetsItCannotReach) {
  const Generated g = generate(8, 400, 55);
  const std::string topic = unique_name("events");
  ASSERT_NO_FATAL_FAILURE(append_lines(topic, g.lines, 0, g.lines.size()));
  auto ends = end_offsets(brokers(), topic);
  ASSERT_TRUE(ends);
  ASSERT_EQ(sum(*ends), static_cast<std::int64_t>(g.lines.size()));

  const std::vector<std::vector<std::string>> malformed = {
      {"--until-offset", "0:x"},
      {"--until-offset", "0:5,"},
      {"--until-offset", "-1:5"},
      {"--until-time", "yesterday"},
      {"--until-time", "2026-01-01T00:00:00"},  // no zone
      {"--until-offset", "0:1", "--until-time", "0"},
  };
  for (const auto& flags : malformed) {
    auto r = run_command("replay", topic, data_dir("malformed"), flags, seconds(60));
    EXPECT_TRUE(r.status.exited_with(kUsage)) << flags[0] << " " << flags[1] << ": " << describe(r);
  }

  std::int32_t fullest = ends->begin()->first;
  for (const auto& [p, o] : *ends) {
    if (o > ends->at(fullest)) fullest = p;
  }
  const auto missing = static_cast<std::int32_t>(ends->size()) + 5;
  const std::vector<std::pair<std::string, std::int32_t>> unreachable = {
      {std::to_string(fullest) + ":1," + std::to_string(missing) + ":1", missing},
      {std::to_string(fullest) + ":" + std::to_string(ends->at(fullest) + 1000), fullest},
  };
  for (const auto& [target, partition] : unreachable) {
    SCOPED_TRACE("--until-offset " + target);
    auto r = run_command("replay", topic, data_dir("unreachable-" + std::to_string(partition)),
                         {"--until-offset", target}, seconds(30));
    EXPECT_FALSE(r.timed_out) << "replay waited for records that do not exist: " << describe(r);
    EXPECT_TRUE(r.status.exited_with(kUsage)) << describe(r);
    EXPECT_NE(r.err.find("partition " + std::to_string(partition)), std::string::npos) << r.err;
  }
}

// A replay SIGKILLed mid-way and run again with the same command finishes with the state of an uninterrupted one,
// folding only what the first run had not committed.
TEST_F(ReplayTest, ReplayResumesAfterSigkill) {
  constexpr std::uint64_t kEvents = 100000;
  const Generated g = generate(1000, kEvents, 61);
  const std::string topic = unique_name("events");
  ASSERT_NO_FATAL_FAILURE(append_lines(topic, g.lines, 0, g.lines.size()));
  auto ends = end_offsets(brokers(), topic);
  ASSERT_TRUE(ends);
  const std::int64_t total = sum(*ends);
  ASSERT_EQ(total, static_cast<std::int64_t>(kEvents));

  auto clean_run = run_command("replay", topic, data_dir("clean"), {"--format", "json"});
  ASSERT_TRUE(clean_run.status.exited_with(kOk)) << describe(clean_run);
  auto clean = printed_summary(clean_run);
  ASSERT_TRUE(clean);
  ASSERT_EQ(clean->offsets, *ends);
  ReferenceFold reference;
  reference.fold(g.lines);
  EXPECT_EQ(clean->json, view::summary_json(reference.kv(), *ends));

  // Killed once its store shows a fifth of the records committed, and before it shows them all: a replay of 100k
  // events takes seconds on 2 cores, so a run that finishes before the poll sees it mid-way is tried again in a
  // new dir.
  std::string target;
  std::int64_t done_at_kill = -1;
  for (int attempt = 1; attempt <= 5 && done_at_kill < 0; ++attempt) {
    target = data_dir("interrupted-" + std::to_string(attempt));
    const std::string log = path("interrupted-" + std::to_string(attempt) + ".log");
    add_log(log);
    Process child = Process::spawn(
        {statefold_bin(), "replay", "--brokers", brokers(), "--topic", topic, "--data-dir", target}, log + ".out", log);
    bool killed = false;
    const bool ended = wait_until(
        [&] {
          if (!child.running()) return true;
          auto stored = stored_offsets(target);
          if (stored && sum(*stored) >= total / 5 && sum(*stored) < total) {
            const ExitStatus status = child.kill();
            killed = status.signal == SIGKILL;
            return true;
          }
          return false;
        },
        minutes(3), milliseconds(2));
    ASSERT_TRUE(ended) << "the replay neither finished nor committed within 3 minutes:\n" << tail(log);
    if (!killed) {
      ASSERT_TRUE(child.status() && child.status()->exited_with(kOk))
          << (child.status() ? child.status()->describe() : "running") << "\n" << tail(log);
      continue;  // finished before the poll saw it mid-way
    }
    auto stored = stored_offsets(target);
    ASSERT_TRUE(stored) << "the killed replay's store does not open";
    if (sum(*stored) > 0 && sum(*stored) < total) done_at_kill = sum(*stored);
  }
  ASSERT_GT(done_at_kill, 0) << "no attempt caught the replay mid-way";
  std::cerr << "[          ] killed after " << done_at_kill << " of " << total << " records\n";

  const auto resume_started = std::chrono::steady_clock::now();
  auto resumed = run_command("replay", topic, target, {}, minutes(5));
  const double resume_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - resume_started).count();
  std::cerr << "[          ] the resumed replay took " << resume_seconds << " s\n";
  ASSERT_TRUE(resumed.status.exited_with(kOk)) << describe(resumed);
  // An uninterrupted replay of this topic takes a few seconds here; a resumed one must not first wait out the
  // killed run's consumer-group session (45 s by default) before it gets its partitions.
  EXPECT_LT(resume_seconds, 30.0) << "the resumed replay waited for the killed run's group membership to expire";
  EXPECT_NE(resumed.err.find("resuming replay"), std::string::npos) << describe(resumed);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(resumed.out, m, std::regex(R"(replayed (\d+) record\(s\))"))) << resumed.out;
  EXPECT_EQ(std::stoll(m[1].str()), total - done_at_kill) << "a resumed replay folds only what was missing";
  auto final_summary = inspect_summary(target);
  ASSERT_TRUE(final_summary);
  EXPECT_EQ(final_summary->json, clean->json);
  EXPECT_EQ(final_summary->store_hash, reference.store_hash());
}

// ------------------------------------------------------------------------------------------------ verify

// verify passes on an untouched store. A session header changed behind the engine (its stored state hash left
// as it was, so the store now contradicts itself) makes it exit 5 naming that session, and audit of the session
// exits 5 too. So does a consistent forgery (state hash and store hash recomputed), which only a rebuild can see.
TEST_F(ReplayTest, VerifyPassesOnAnUntouchedStoreAndNamesTamperedSessions) {
  const Generated g = generate(20, 2000, 71);
  const std::string topic = unique_name("events");
  ASSERT_NO_FATAL_FAILURE(append_lines(topic, g.lines, 0, g.lines.size()));
  const std::string live = data_dir("live");
  auto folded = fold_live(topic, live, g.lines.size());
  ASSERT_TRUE(folded);

  auto r = run_command("verify", topic, live, {"--format", "json"});
  ASSERT_TRUE(r.status.exited_with(kOk)) << describe(r);
  json::object o = parse_object(r);
  EXPECT_EQ(o["ok"], json::value(true)) << r.out;
  EXPECT_EQ(uint_of(o, "sessions"), std::optional<std::uint64_t>(folded->sessions)) << r.out;
  EXPECT_EQ(str(o["live_store_hash"]), folded->store_hash) << r.out;
  EXPECT_EQ(str(o["rebuilt_store_hash"]), folded->store_hash) << r.out;
  EXPECT_TRUE(o["differing"].is_array() && o["differing"].as_array().empty()) << r.out;
  r = run_command("verify", topic, live);
  ASSERT_TRUE(r.status.exited_with(kOk)) << describe(r);
  EXPECT_NE(r.out.find("OK: every session matches"), std::string::npos) << r.out;

  auto differing = [](const json::object& result) {
    std::set<std::string> ids;
    if (auto* d = result.if_contains("differing"); d != nullptr && d->is_array()) {
      for (const auto& v : d->as_array()) ids.insert(str(v.as_object().at("session_id")));
    }
    return ids;
  };

  // One more message in the header, the stored state hash kept.
  const std::string victim = workload::session_id(g.options, 3);
  {
    TamperedStore tampered(live);
    auto header = fold::load_header(tampered.store(), victim);
    ASSERT_TRUE(header);
    state::SessionHeaderT changed = *header;
    changed.messages += 1;
    tampered.put(victim, fold::key::header(victim), pack(changed));
    tampered.commit();
  }
  r = run_command("verify", topic, live, {"--format", "json"});
  EXPECT_TRUE(r.status.exited_with(kMismatch)) << "a changed session header must fail verify: " << describe(r);
  o = parse_object(r);
  EXPECT_EQ(o["ok"], json::value(false)) << r.out;
  EXPECT_EQ(differing(o), std::set<std::string>{victim}) << r.out;

  auto audited = run_command("audit", topic, live, {"--session", victim, "--format", "json"});
  EXPECT_TRUE(audited.status.exited_with(kMismatch)) << describe(audited);
  o = parse_object(audited);
  EXPECT_EQ(o["ok"], json::value(false)) << audited.out;
  EXPECT_NE(str(o["problem"]).find("state hash"), std::string::npos) << audited.out;
  const std::string bystander = workload::session_id(g.options, 4);
  audited = run_command("audit", topic, live, {"--session", bystander, "--format", "json"});
  EXPECT_TRUE(audited.status.exited_with(kOk)) << describe(audited);

  // A consistent forgery: another header changed, its state hash recomputed and the summary's store hash moved to
  // match, so the store agrees with itself everywhere.
  const std::string forged = workload::session_id(g.options, 7);
  {
    TamperedStore tampered(live);
    auto header = fold::load_header(tampered.store(), forged);
    ASSERT_TRUE(header);
    state::SessionHeaderT changed = *header;
    changed.tool_calls += 1;
    const base::Digest before = to_digest(header->state_hash);
    const base::Digest after = fold::state_hash(changed);
    changed.state_hash.assign(after.begin(), after.end());
    state::StoreSummaryT summary = tampered.partition_summary(forged);
    ASSERT_EQ(summary.store_hash.size(), before.size());
    const base::Digest out = fold::store_hash_term(forged, before);
    const base::Digest in = fold::store_hash_term(forged, after);
    for (std::size_t i = 0; i < summary.store_hash.size(); ++i) summary.store_hash[i] ^= out[i] ^ in[i];
    tampered.put(forged, fold::key::header(forged), pack(changed));
    tampered.put(forged, std::string(fold::key::kSummary), pack(summary));
    tampered.commit();
  }
  r = run_command("verify", topic, live, {"--format", "json"});
  EXPECT_TRUE(r.status.exited_with(kMismatch)) << describe(r);
  o = parse_object(r);
  EXPECT_EQ(differing(o), (std::set<std::string>{victim, forged})) << r.out;
  EXPECT_EQ(str(o["rebuilt_store_hash"]), folded->store_hash) << r.out;
  EXPECT_NE(str(o["live_store_hash"]), folded->store_hash) << r.out;
  r = run_command("verify", topic, live);
  EXPECT_TRUE(r.status.exited_with(kMismatch)) << describe(r);
  EXPECT_NE(r.out.find("DIFFERS " + forged), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("DIFFERS " + victim), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MISMATCH: 2 session(s) differ"), std::string::npos) << r.out;

  r = run_command("verify", topic, data_dir("no-such-store"));
  EXPECT_TRUE(r.status.exited_with(kNotFound)) << describe(r);
}

// ------------------------------------------------------------------------------------------------ audit

// audit of untouched sessions: every accepted event read back from Kafka and checked (FlatBuffers and JSON records
// alike: the chain covers the canonical bytes), the refusals listed with their reasons. Then a stored event changed
// behind the engine, a topic with other records at those offsets and a topic without them each give exit 5 naming
// the first bad version.
TEST_F(ReplayTest, AuditChecksHistoryAgainstTheLogAndNamesTheFirstBadVersion) {
  const Generated g = generate(20, 2000, 81);
  ASSERT_GT(g.stats.duplicates, 0u);
  ASSERT_GT(g.stats.stale, 0u);
  const std::string topic = unique_name("events");
  const std::size_t half = g.lines.size() / 2;
  ASSERT_NO_FATAL_FAILURE(append_lines(topic, g.lines, 0, half));
  ASSERT_NO_FATAL_FAILURE(append_lines(topic, g.lines, half, g.lines.size(), nullptr, "json"));
  const std::string live = data_dir("live");
  auto folded = fold_live(topic, live, g.lines.size());
  ASSERT_TRUE(folded);

  std::uint64_t refusals_total = 0;
  std::set<std::string> kinds;
  std::string with_refusals;
  std::map<std::string, json::object> audits;
  for (std::uint64_t i = 0; i < g.stats.sessions_opened; ++i) {
    const std::string id = workload::session_id(g.options, i);
    SCOPED_TRACE("session " + id);
    auto r = run_command("audit", topic, live, {"--session", id, "--format", "json"});
    ASSERT_TRUE(r.status.exited_with(kOk)) << describe(r);
    json::object o = parse_object(r);
    EXPECT_EQ(o["ok"], json::value(true));
    EXPECT_FALSE(o.contains("first_bad_version")) << r.out;
    const auto version = o["version"].to_number<std::uint64_t>();
    EXPECT_EQ(version, g.stats.final_versions[i]);
    const json::array& events = o["events"].as_array();
    ASSERT_EQ(events.size(), version) << "every accepted event is audited";
    for (std::size_t v = 0; v < events.size(); ++v) {
      const json::object& e = events[v].as_object();
      EXPECT_EQ(e.at("version").to_number<std::uint64_t>(), v + 1);
      EXPECT_EQ(e.at("ok"), json::value(true)) << json::serialize(e);
    }
    auto shown = inspect_session(live, id, 0);
    ASSERT_TRUE(shown);
    const json::object counts = json::parse(*shown).as_object().at("counts").as_object();
    const json::array& refusals = o["refusals"].as_array();
    EXPECT_EQ(refusals.size(), counts.at("duplicates").to_number<std::uint64_t>() +
                                   counts.at("rejections").to_number<std::uint64_t>())
        << "every refusal of the session is listed";
    for (const auto& v : refusals) {
      const json::object& refusal = v.as_object();
      kinds.insert(str(refusal.at("kind")));
      EXPECT_FALSE(str(refusal.at("reason")).empty()) << json::serialize(refusal);
      EXPECT_GE(refusal.at("offset").to_number<std::int64_t>(), 0) << json::serialize(refusal);
    }
    refusals_total += refusals.size();
    if (!refusals.empty() && with_refusals.empty()) with_refusals = id;
    // gen's receipts carry random request hashes and no render record: listed, not re-renderable, not a mismatch.
    for (const auto& receipt : o["receipts"].as_array()) {
      EXPECT_TRUE(str(receipt.at("verdict")).starts_with("not re-renderable")) << json::serialize(receipt);
    }
    audits[id] = std::move(o);
  }
  EXPECT_EQ(refusals_total, folded->duplicates + folded->rejections);
  EXPECT_EQ(kinds, (std::set<std::string>{"duplicate", "rejected"}));
  ASSERT_FALSE(with_refusals.empty());
  auto text = run_command("audit", topic, live, {"--session", with_refusals});
  ASSERT_TRUE(text.status.exited_with(kOk)) << describe(text);
  EXPECT_NE(text.out.find("refusals ("), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("receipts ("), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("OK: the history matches the log"), std::string::npos) << text.out;
  auto unknown = run_command("audit", topic, live, {"--session", "no-such-session"});
  EXPECT_TRUE(unknown.status.exited_with(kNotFound)) << describe(unknown);

  // A stored event changed behind the engine: one letter of a message's text, so it still decodes.
  const std::string victim = workload::session_id(g.options, 0);
  const std::uint64_t victim_version = audits[victim]["version"].to_number<std::uint64_t>();
  std::uint64_t tampered_version = 0;
  {
    TamperedStore tampered(live);
    for (std::uint64_t v = std::max<std::uint64_t>(2, victim_version / 2); v <= victim_version && !tampered_version;
         ++v) {
      auto bytes = tampered.store().get(fold::key::history(victim, v));
      ASSERT_TRUE(bytes) << "no history entry for version " << v;
      state::HistoryEntryT entry;
      flatbuffers::GetRoot<state::HistoryEntry>(bytes->data())->UnPackTo(&entry);
      const auto* event = flatbuffers::GetRoot<schema::Event>(entry.event.data());
      const auto* message = event->payload_as_Message();
      if (message == nullptr || message->content() == nullptr) continue;
      for (const auto* part : *message->content()) {
        if (part->text() == nullptr) continue;
        const auto begin = static_cast<std::size_t>(reinterpret_cast<const std::uint8_t*>(part->text()->data()) -
                                                    entry.event.data());
        for (std::size_t at = begin; at < begin + part->text()->size(); ++at) {
          std::uint8_t& c = entry.event[at];
          if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            c ^= 0x20;  // toggles the case: still valid UTF-8, still a valid event
            tampered_version = v;
            break;
          }
        }
        if (tampered_version) break;
      }
      if (!tampered_version) continue;
      auto still = codec::decode(entry.event, codec::Encoding::flatbuffers);
      ASSERT_TRUE(still.ok()) << "the tampered event should still decode: " << still.error().message;
      tampered.put(victim, fold::key::history(victim, v), pack(entry));
      tampered.commit();
    }
  }
  ASSERT_GT(tampered_version, 0u) << "no message with an ASCII letter in the second half of " << victim;
  auto r = run_command("audit", topic, live, {"--session", victim, "--format", "json"});
  EXPECT_TRUE(r.status.exited_with(kMismatch)) << describe(r);
  json::object o = parse_object(r);
  EXPECT_EQ(o["ok"], json::value(false)) << r.out;
  EXPECT_EQ(uint_of(o, "first_bad_version"), std::optional<std::uint64_t>(tampered_version)) << r.out;
  EXPECT_EQ(str(o["problem"]), "the stored event differs from the record in Kafka") << r.out;
  std::vector<std::uint64_t> bad;
  for (const auto& v : o["events"].as_array()) {
    const json::object& e = v.as_object();
    if (e.at("ok") != json::value(true)) bad.push_back(e.at("version").to_number<std::uint64_t>());
  }
  EXPECT_EQ(bad, std::vector<std::uint64_t>{tampered_version}) << "only the changed event is bad: " << r.out;
  r = run_command("audit", topic, live, {"--session", victim});
  EXPECT_TRUE(r.status.exited_with(kMismatch)) << describe(r);
  EXPECT_NE(r.out.find("MISMATCH at version " + std::to_string(tampered_version) + ": "), std::string::npos) << r.out;

  // The wrong topic: the same offsets hold other sessions' records.
  const std::string other_session = workload::session_id(g.options, 1);
  const std::string wrong = unique_name("wrong");
  ASSERT_TRUE(log::ensure_topic(brokers(), wrong, static_cast<int>(folded->offsets.size())).ok());
  const Generated other = generate(10, g.lines.size(), 82, "other-");
  std::vector<RawRecord> records;
  std::size_t next = 0;
  for (const auto& [partition, end] : folded->offsets) {
    for (std::int64_t offset = 0; offset < end; ++offset, ++next) {
      ASSERT_LT(next, other.lines.size());
      auto bytes = codec::json_to_flatbuffers(other.lines[next]);
      ASSERT_TRUE(bytes.ok()) << bytes.error().message;
      auto event = codec::decode(*bytes, codec::Encoding::flatbuffers);
      ASSERT_TRUE(event.ok()) << event.error().message;
      records.push_back(RawRecord{std::string(event->session_id()), std::string(bytes->begin(), bytes->end()), {},
                                  partition});
    }
  }
  produce(brokers(), wrong, records);
  ASSERT_FALSE(HasFailure());
  r = run_command("audit", wrong, live, {"--session", other_session, "--format", "json"});
  EXPECT_TRUE(r.status.exited_with(kMismatch)) << describe(r);
  o = parse_object(r);
  EXPECT_EQ(uint_of(o, "first_bad_version"), std::optional<std::uint64_t>(1)) << r.out;
  EXPECT_EQ(str(o["problem"]).rfind("the record belongs to session other-", 0), 0u) << r.out;

  // A topic without those offsets at all.
  const std::string empty = unique_name("empty");
  ASSERT_TRUE(log::ensure_topic(brokers(), empty, static_cast<int>(folded->offsets.size())).ok());
  ASSERT_TRUE(end_offsets(brokers(), empty));  // leaders settled
  r = run_command("audit", empty, live, {"--session", other_session, "--format", "json"});
  EXPECT_TRUE(r.status.exited_with(kMismatch)) << describe(r);
  o = parse_object(r);
  const json::object& first = audits[other_session]["events"].as_array().at(0).as_object();
  EXPECT_EQ(uint_of(o, "first_bad_version"), std::optional<std::uint64_t>(1)) << r.out;
  EXPECT_EQ(str(o["problem"]), "no record at partition " + std::to_string(first.at("partition").to_number<int>()) +
                                   " offset " + std::to_string(first.at("offset").to_number<std::int64_t>()))
      << r.out;
}

}  // namespace
}  // namespace statefold::testing
