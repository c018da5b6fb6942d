// Snapshots (spec section 5) end to end against a real broker, with the statefold binary in child processes:
//   a snapshot taken while serve folds (over the HTTP API and with `snapshot create`), more events, serve stopped,
//   `snapshot restore`, serve again: the store ends equal to the run that was never interrupted (and to the
//   in-process reference fold), and a snapshot taken under load is a consistent cut (a replay up to its offsets
//   gives its store hash);
//   `snapshot list` shows snapshots newest first with their offsets, schema version and store hash;
//   restore refuses a snapshot of another state schema version, naming replay, and leaves the store as it was;
//   serve's periodic snapshots keep only the newest --snapshot-retention.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "api/http_client.h"
#include "engine/codec/codec.h"
#include "engine/fold/fold.h"
#include "engine/fold/layout.h"
#include "engine/store/store.h"
#include "engine/view/view.h"
#include "engine/workload/workload.h"
#include "support/cluster.h"
#include "workload_fixture.h"

namespace statefold::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

// Exit codes of docs/cli.md.
constexpr int kOk = 0;
constexpr int kFailure = 1;


// A run for a failure message: status, stdout, and the end of stderr (librdkafka can be chatty).
std::string describe(const RunResult& r) {
  const std::size_t keep = 6000;
  const std::string err = r.err.size() > keep ? "..." + r.err.substr(r.err.size() - keep) : r.err;
  return r.status.describe() + (r.timed_out ? " (timed out)" : "") + "\n--- stdout:\n" + r.out +
         "\n--- stderr:\n" + err;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A snapshot's manifest as the CLI and the API print it (docs/snapshots.md).
struct Manifest {
  std::string id;
  std::uint64_t schema_version = 0;
  Offsets offsets;
  std::string store_hash;
  std::uint64_t sessions = 0;
  std::uint64_t events_applied = 0;
};

Manifest manifest_of(const json::value& v) {
  const json::object& o = v.as_object();
  Manifest m;
  m.id = std::string(o.at("id").as_string());
  m.schema_version = o.at("schema_version").to_number<std::uint64_t>();
  for (const auto& [p, off] : o.at("offsets").as_object()) {
    m.offsets[std::stoi(std::string(p))] = off.to_number<std::int64_t>();
  }
  m.store_hash = std::string(o.at("store_hash").as_string());
  m.sessions = o.at("sessions").to_number<std::uint64_t>();
  m.events_applied = o.at("events_applied").to_number<std::uint64_t>();
  return m;
}

// One manifest per non-empty line (`snapshot list --format json`, `snapshot create --format json`); a test failure
// and nullopt when a line is not one.
std::optional<std::vector<Manifest>> manifests_of(const std::string& text) {
  std::vector<Manifest> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    try {
      out.push_back(manifest_of(json::parse(line)));
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not a manifest (" << e.what() << "): " << line;
      return std::nullopt;
    }
  }
  return out;
}

std::vector<std::string> ids_of(const std::vector<Manifest>& manifests) {
  std::vector<std::string> ids;
  for (const auto& m : manifests) ids.push_back(m.id);
  return ids;
}

// The names in a directory (a data dir: store, snapshots, store.before-restore-..., .restore-... leftovers).
std::set<std::string> entries(const std::string& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) names.insert(e.path().filename().string());
  return names;
}

// A manifest must say exactly what the store held: its figures are compared with a summary read at the same state.
void expect_manifest_is(const Manifest& m, const Summary& s) {
  EXPECT_EQ(m.schema_version, fold::kStateSchemaVersion) << m.id;
  EXPECT_EQ(m.offsets, s.offsets) << m.id << " vs " << s.json;
  EXPECT_EQ(m.store_hash, s.store_hash) << m.id << " vs " << s.json;
  EXPECT_EQ(m.sessions, s.sessions) << m.id << " vs " << s.json;
  EXPECT_EQ(m.events_applied, s.events_applied) << m.id << " vs " << s.json;
}

class SnapshotTest : public ClusterTest {
 protected:
  // `statefold snapshot SUB --data-dir D [extra...]`.
  RunResult snapshot(const std::string& sub, const std::string& data, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"snapshot", sub, "--data-dir", data};
    args.insert(args.end(), extra.begin(), extra.end());
    return statefold(args, minutes(2));
  }

  // `snapshot list --format json`, parsed (newest first, as printed).
  std::vector<Manifest> list(const std::string& data) {
    auto r = snapshot("list", data, {"--format", "json"});
    EXPECT_TRUE(r.status.exited_with(kOk)) << describe(r);
    auto manifests = manifests_of(r.out);
    return manifests ? *manifests : std::vector<Manifest>{};
  }

  void append_lines(const std::string& topic, const std::vector<std::string>& lines, std::size_t begin,
                    std::size_t end) {
    const std::string file = path("append-" + std::to_string(++_appends) + ".jsonl");
    write_lines(file, lines, begin, end);
    auto r = append(topic, file);
    ASSERT_TRUE(r.status.exited_with(kOk)) << describe(r);
  }

  // serve with its HTTP API on a free port, once /readyz answers 200; nullptr (and a failure) if it does not start.
  Serve* start_http_serve(const std::string& topic, const std::string& data, std::vector<std::string> extra,
                          std::uint16_t* port) {
    for (int attempt = 1; attempt <= 3; ++attempt) {
      *port = free_port();
      ServeOptions options = serve_options(topic, data, extra);
      options.http_address = "127.0.0.1:" + std::to_string(*port);
      Serve& serve = start_serve(options);
      wait_until([&] { return !serve.running() || contains(serve.log(), "HTTP API listening"); }, minutes(2),
                 milliseconds(20));
      if (!serve.running()) {
        // Someone took the port between free_port() and serve's bind: try another one.
        if (contains(serve.log(), "HTTP API on") && attempt < 3) continue;
        ADD_FAILURE() << "serve did not start its HTTP API:\n" << tail(serve.log_path());
        return nullptr;
      }
      HttpClient probe("127.0.0.1", *port, seconds(10));
      HttpReply last;
      const bool ready = wait_until(
          [&] {
            if (!serve.running()) return true;
            last = probe.get("/readyz");
            return last.status == 200;
          },
          minutes(2), milliseconds(50));
      if (!ready || !serve.running()) {
        ADD_FAILURE() << "serve not ready; last /readyz: " << last.describe() << "\n" << tail(serve.log_path());
        return nullptr;
      }
      return &serve;
    }
    return nullptr;
  }

  // serve (no HTTP, no automatic snapshots) folds the topic into `data` until it has taken in `records`, then stops
  // with SIGTERM; the summary after.
  std::optional<Summary> fold_live(const std::string& topic, const std::string& data, std::uint64_t records) {
    Serve& serve = start_serve(serve_options(topic, data, {"--snapshot-interval-s", "0"}));
    auto folded = wait_for_summary(data, [&](const Summary& s) { return s.total() >= records; }, minutes(3), &serve);
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

// The issue's scenario: snapshot, more events, restore, serve: equals an uninterrupted run.
//
// A is folded and snapshotted over the HTTP API at a quiet moment (its state is known exactly); B is produced in
// paced chunks and `snapshot create` asks the serving engine for a second snapshot while it folds them.
// serve is stopped at the end of the topic (the uninterrupted run), snapshot 1 is restored, which must bring back
// exactly the state after A, and serve again must reach exactly the uninterrupted state, the reference fold's.
TEST_F(SnapshotTest, SnapshotMoreEventsRestoreServeEqualsAnUninterruptedRun) {
  const Generated g = generate(100, 8000, 91);
  ASSERT_GT(g.stats.duplicates, 0u);
  ASSERT_GT(g.stats.stale, 0u);
  const std::size_t a_end = 3000;
  const std::string topic = unique_name("events");
  const std::string live = data_dir("live");
  ASSERT_NO_FATAL_FAILURE(append_lines(topic, g.lines, 0, a_end));

  std::uint16_t port = 0;
  Serve* serve = start_http_serve(topic, live, {"--snapshot-interval-s", "0"}, &port);
  ASSERT_NE(serve, nullptr);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  HttpClient http("127.0.0.1", port);
  auto at_a = wait_for_summary(live, [&](const Summary& s) { return s.total() >= a_end; }, minutes(3), serve);
  ASSERT_TRUE(at_a);
  ASSERT_EQ(at_a->total(), a_end) << at_a->json;

  // (1) Over the API while serving, nothing more to fold: the manifest is the state after A.
  HttpReply taken = http.post("/v1/snapshots", "");
  ASSERT_EQ(taken.status, 201) << taken.describe();
  const Manifest first = manifest_of(taken.json());
  expect_manifest_is(first, *at_a);
  EXPECT_EQ(sum(first.offsets), static_cast<std::int64_t>(a_end));

  // (2) Under load: a thread produces B in paced chunks, so serve goes on folding for seconds; once it has started
  // on B, the CLI asks the serving engine (it holds the store's lock) for a snapshot. The cut falls mid-B, and it
  // must be consistent all the same (checked by a replay below).
  std::vector<RawRecord> b_records;
  for (std::size_t i = a_end; i < g.lines.size(); ++i) {
    auto bytes = codec::json_to_flatbuffers(g.lines[i]);
    ASSERT_TRUE(bytes.ok()) << bytes.error().message;
    auto event = codec::decode(*bytes, codec::Encoding::flatbuffers);
    ASSERT_TRUE(event.ok()) << event.error().message;
    b_records.push_back(
        RawRecord{std::string(event->session_id()), std::string(bytes->begin(), bytes->end()), {}, std::nullopt});
  }
  std::jthread producing([&] {
    // Each chunk is acknowledged before the next is sent, so every session's events stay in order.
    constexpr std::size_t kChunk = 200;
    for (std::size_t i = 0; i < b_records.size(); i += kChunk) {
      const auto end = b_records.begin() + static_cast<std::ptrdiff_t>(std::min(b_records.size(), i + kChunk));
      produce(brokers(), topic, std::vector<RawRecord>(b_records.begin() + static_cast<std::ptrdiff_t>(i), end));
      std::this_thread::sleep_for(milliseconds(150));
    }
  });
  ASSERT_TRUE(wait_for_summary(live, [&](const Summary& s) { return s.total() > a_end; }, minutes(3), serve));
  auto created = snapshot("create", live, {"--http-address", address, "--format", "json"});
  ASSERT_TRUE(created.status.exited_with(kOk)) << describe(created);
  auto created_manifests = manifests_of(created.out);
  ASSERT_TRUE(created_manifests && created_manifests->size() == 1u) << created.out;
  const Manifest second = created_manifests->front();
  EXPECT_EQ(second.schema_version, fold::kStateSchemaVersion);
  EXPECT_GT(sum(second.offsets), static_cast<std::int64_t>(a_end)) << created.out;
  EXPECT_LT(sum(second.offsets), static_cast<std::int64_t>(g.lines.size()))
      << "the snapshot was meant to be taken while B was being folded: " << created.out;
  EXPECT_NE(second.id, first.id);
  std::cerr << "[          ] snapshot under load at " << sum(second.offsets) << " of " << g.lines.size()
            << " records\n";
  producing.join();
  ASSERT_FALSE(HasFailure()) << "producing B failed";
  auto full = wait_for_summary(live, [&](const Summary& s) { return s.total() >= g.lines.size(); }, minutes(3), serve);
  ASSERT_TRUE(full);
  ASSERT_EQ(full->total(), g.lines.size()) << full->json;

  // The API lists both, newest first.
  HttpReply listed = http.get("/v1/snapshots");
  ASSERT_EQ(listed.status, 200) << listed.describe();
  std::vector<Manifest> from_api;
  for (const auto& v : listed.json().at("snapshots").as_array()) from_api.push_back(manifest_of(v));
  EXPECT_EQ(ids_of(from_api), (std::vector<std::string>{second.id, first.id})) << listed.body;

  // restore refuses while serve holds the store, and leaves it alone.
  auto refused = snapshot("restore", live, {"--id", first.id});
  EXPECT_TRUE(refused.status.exited_with(kFailure)) << describe(refused);
  EXPECT_TRUE(contains(refused.err, "in use")) << refused.err;
  auto still = inspect_summary(live);
  ASSERT_TRUE(still);
  EXPECT_EQ(still->json, full->json);

  const ExitStatus stopped = serve->stop();
  ASSERT_TRUE(stopped.exited_with(kOk)) << stopped.describe();
  // The uninterrupted run: its summary and sampled sessions, and the reference fold of every line.
  const auto uninterrupted = inspect_summary(live);
  ASSERT_TRUE(uninterrupted);
  ASSERT_EQ(uninterrupted->json, full->json);
  auto ends = end_offsets(brokers(), topic);
  ASSERT_TRUE(ends);
  ASSERT_EQ(uninterrupted->offsets, *ends);
  ReferenceFold reference;
  reference.fold(g.lines);
  EXPECT_EQ(uninterrupted->json, view::summary_json(reference.kv(), *ends));
  std::map<std::string, std::string> sessions;
  for (std::uint64_t i = 0; i < g.stats.sessions_opened; i += 10) {
    const std::string id = workload::session_id(g.options, i);
    auto shown = inspect_session(live, id, 1000);
    ASSERT_TRUE(shown) << id;
    sessions[id] = *shown;
  }
  ASSERT_FALSE(sessions.empty());

  // `snapshot list`, text and JSON: both, newest first, with offsets, schema version and store hash.
  const std::vector<Manifest> manifests = list(live);
  ASSERT_EQ(ids_of(manifests), (std::vector<std::string>{second.id, first.id}));
  expect_manifest_is(manifests[1], *at_a);
  EXPECT_EQ(manifests[0].store_hash, second.store_hash);
  EXPECT_EQ(manifests[0].offsets, second.offsets);
  auto text = snapshot("list", live);
  ASSERT_TRUE(text.status.exited_with(kOk)) << describe(text);
  const std::string schema = "schema v" + std::to_string(fold::kStateSchemaVersion);
  std::string first_offsets = "offsets";
  for (const auto& [p, o] : first.offsets) first_offsets += " " + std::to_string(p) + ":" + std::to_string(o);
  const auto at_second = text.out.find(second.id + "  ");
  const auto at_first = text.out.find(first.id + "  ");
  ASSERT_NE(at_second, std::string::npos) << text.out;
  ASSERT_NE(at_first, std::string::npos) << text.out;
  EXPECT_LT(at_second, at_first) << "newest first:\n" << text.out;
  const std::string first_text = text.out.substr(at_first);
  EXPECT_TRUE(contains(first_text, schema)) << text.out;
  EXPECT_TRUE(contains(first_text, first_offsets + "\n")) << text.out;
  EXPECT_TRUE(contains(first_text, "store hash " + first.store_hash)) << text.out;
  EXPECT_TRUE(contains(first_text, "events " + std::to_string(at_a->events_applied))) << text.out;

  // The snapshot under load is a consistent cut: state and offsets of one instant, which is what a replay up to its
  // offsets rebuilds.
  auto replayed = statefold({"replay", "--brokers", brokers(), "--topic", topic, "--data-dir", data_dir("cut"),
                             "--until-offset", offsets_arg(second.offsets), "--format", "json"});
  ASSERT_TRUE(replayed.status.exited_with(kOk)) << describe(replayed);
  const Summary cut = parse_summary(replayed.out);
  expect_manifest_is(second, cut);

  // Restore snapshot 1: exactly the state after A again, the uninterrupted store moved aside, not deleted.
  const std::set<std::string> before_restore = entries(live);
  auto restored = snapshot("restore", live, {"--id", first.id});
  ASSERT_TRUE(restored.status.exited_with(kOk)) << describe(restored);
  EXPECT_TRUE(contains(restored.out, "restored snapshot " + first.id)) << restored.out;
  auto after_restore = inspect_summary(live);
  ASSERT_TRUE(after_restore);
  EXPECT_EQ(after_restore->json, at_a->json) << "a restored store is the snapshot's state and offsets";
  std::vector<std::string> added;
  for (const auto& name : entries(live)) {
    if (!before_restore.contains(name)) added.push_back(name);
  }
  ASSERT_EQ(added.size(), 1u) << "restore adds only the moved-aside store";
  EXPECT_EQ(added[0].rfind("store.before-restore-", 0), 0u) << added[0];
  {
    store::Options options;
    options.path = live + "/" + added[0];
    options.read_only = true;
    options.create_if_missing = false;
    options.memory_budget_bytes = 8ull << 20;
    auto aside = store::Store::open(options);
    ASSERT_TRUE(aside) << aside.error().message;
    EXPECT_EQ(view::summary_json(**aside, (*aside)->offsets()), uninterrupted->json)
        << "the store moved aside is the one restore replaced";
  }
  EXPECT_EQ(list(live).size(), 2u) << "restore keeps the snapshot";

  // Serve again: it continues from the snapshot's offsets and folds B, reaching the uninterrupted state.
  Serve& again = start_serve(serve_options(topic, live, {"--snapshot-interval-s", "0"}));
  auto caught_up =
      wait_for_summary(live, [&](const Summary& s) { return s.total() >= g.lines.size(); }, minutes(3), &again);
  ASSERT_TRUE(caught_up);
  const ExitStatus stopped_again = again.stop();
  ASSERT_TRUE(stopped_again.exited_with(kOk)) << stopped_again.describe();
  auto final_summary = inspect_summary(live);
  ASSERT_TRUE(final_summary);
  EXPECT_EQ(final_summary->json, uninterrupted->json);
  EXPECT_EQ(final_summary->store_hash, reference.store_hash());
  for (const auto& [id, want] : sessions) {
    SCOPED_TRACE("session " + id);
    auto got = inspect_session(live, id, 1000);
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, want);
  }
  // It started each partition at the restored offsets, not at the group's committed ones (the end of the topic).
  const std::string again_log = again.log();
  for (const auto& [p, o] : first.offsets) {
    const std::string start = std::to_string(p) + "@" + std::to_string(o);
    EXPECT_TRUE(contains(again_log, "start=" + start) || contains(again_log, "," + start)) << start << "\n"
                                                                                            << tail(again.log_path());
  }
}

// A snapshot whose manifest names another state schema version (older or newer than this build's) is refused with
// a message naming replay, exit 1, and the current store, newer than the snapshot, is left exactly as it was. The
// way out the message names works: a replay of the topic gives the current state.
TEST_F(SnapshotTest, RestoreRefusesAnotherSchemaVersionAndLeavesTheStore) {
  const Generated g = generate(20, 1200, 93);
  const std::size_t half = g.lines.size() / 2;
  const std::string topic = unique_name("events");
  const std::string live = data_dir("live");
  ASSERT_NO_FATAL_FAILURE(append_lines(topic, g.lines, 0, half));
  auto at_half = fold_live(topic, live, half);
  ASSERT_TRUE(at_half);

  // No engine holds the store: `create` opens it itself.
  auto created = snapshot("create", live, {"--format", "json"});
  ASSERT_TRUE(created.status.exited_with(kOk)) << describe(created);
  auto created_manifests = manifests_of(created.out);
  ASSERT_TRUE(created_manifests && created_manifests->size() == 1u) << created.out;
  const Manifest taken = created_manifests->front();
  expect_manifest_is(taken, *at_half);

  ASSERT_NO_FATAL_FAILURE(append_lines(topic, g.lines, half, g.lines.size()));
  auto current = fold_live(topic, live, g.lines.size());
  ASSERT_TRUE(current);
  ASSERT_NE(current->store_hash, taken.store_hash);

  const std::string manifest_path = live + "/snapshots/" + taken.id + "/manifest.json";
  const std::string original = read_file(manifest_path);
  ASSERT_FALSE(original.empty()) << manifest_path;
  for (const std::uint64_t version : {std::uint64_t{fold::kStateSchemaVersion} - 1,
                                      std::uint64_t{fold::kStateSchemaVersion} + 1}) {
    SCOPED_TRACE("manifest schema_version " + std::to_string(version));
    json::object manifest = json::parse(original).as_object();
    manifest["schema_version"] = version;
    write_file(manifest_path, json::serialize(manifest) + "\n");
    const std::set<std::string> before = entries(live);

    auto r = snapshot("restore", live, {"--id", taken.id});
    EXPECT_TRUE(r.status.exited_with(kFailure)) << describe(r);
    EXPECT_TRUE(contains(r.err, "schema version " + std::to_string(version))) << r.err;
    EXPECT_TRUE(contains(r.err, "statefold replay")) << "the refusal names the way out: " << r.err;
    auto after = inspect_summary(live);
    ASSERT_TRUE(after);
    EXPECT_EQ(after->json, current->json) << "a refused restore must not touch the store";
    EXPECT_EQ(entries(live), before) << "a refused restore moves nothing aside and leaves no staging copy";

    // list still shows it, with the version that makes it unusable here.
    auto listed = snapshot("list", live);
    ASSERT_TRUE(listed.status.exited_with(kOk)) << describe(listed);
    EXPECT_TRUE(contains(listed.out, taken.id + "  ")) << listed.out;
    EXPECT_TRUE(contains(listed.out, "schema v" + std::to_string(version) + "  ")) << listed.out;
  }

  auto missing = snapshot("restore", live, {"--id", "no-such-snapshot"});
  EXPECT_TRUE(missing.status.exited_with(kFailure)) << describe(missing);
  EXPECT_TRUE(contains(missing.err, "no snapshot no-such-snapshot")) << missing.err;

  // The way out: replay rebuilds the current state from the topic.
  auto replayed = statefold(
      {"replay", "--brokers", brokers(), "--topic", topic, "--data-dir", data_dir("rebuilt"), "--format", "json"});
  ASSERT_TRUE(replayed.status.exited_with(kOk)) << describe(replayed);
  EXPECT_EQ(parse_summary(replayed.out).json, current->json);

  // With its own version back, the same snapshot restores: the refusal was the version, nothing else.
  write_file(manifest_path, original);
  auto restored = snapshot("restore", live, {"--id", taken.id});
  ASSERT_TRUE(restored.status.exited_with(kOk)) << describe(restored);
  auto after = inspect_summary(live);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->json, at_half->json);
}

// serve --snapshot-interval-s 1 --snapshot-retention 2 while three chunks are folded: more snapshots are taken than
// kept, and after serve stops exactly the newest two are left (the last two the log reports), the newest one being
// the final state.
TEST_F(SnapshotTest, PeriodicSnapshotsKeepTheNewestRetention) {
  constexpr std::size_t kRetention = 2;
  const Generated g = generate(30, 3000, 95);
  const std::string topic = unique_name("events");
  const std::string live = data_dir("live");
  Serve& serve = start_serve(serve_options(
      topic, live, {"--snapshot-interval-s", "1", "--snapshot-retention", std::to_string(kRetention)}));
  const std::regex taken_line(R"(snapshot taken id=(\S+) events_applied=(\d+) pruned=(\d+))");
  struct Taken {
    std::string id;
    std::uint64_t events_applied = 0;
    std::uint64_t pruned = 0;
  };
  auto taken_so_far = [&] {
    std::vector<Taken> all;
    const std::string log = serve.log();
    for (std::sregex_iterator it(log.begin(), log.end(), taken_line), end; it != end; ++it) {
      all.push_back({(*it)[1].str(), std::stoull((*it)[2].str()), std::stoull((*it)[3].str())});
    }
    return all;
  };

  std::optional<Summary> folded;
  for (std::size_t chunk = 0; chunk < 3; ++chunk) {
    const std::size_t end = (chunk + 1) * g.lines.size() / 3;
    ASSERT_NO_FATAL_FAILURE(append_lines(topic, g.lines, chunk * g.lines.size() / 3, end));
    folded = wait_for_summary(live, [&](const Summary& s) { return s.total() >= end; }, minutes(3), &serve);
    ASSERT_TRUE(folded);
  }
  ASSERT_EQ(folded->total(), g.lines.size()) << folded->json;
  // Enough snapshots to have pruned some, the last of them after the final fold.
  const bool enough = wait_until(
      [&] {
        auto all = taken_so_far();
        return all.size() >= kRetention + 2 && all.back().events_applied == folded->events_applied;
      },
      minutes(1), milliseconds(100));
  ASSERT_TRUE(enough) << "serve did not take " << kRetention + 2 << " snapshots, the last with "
                      << folded->events_applied << " events applied:\n" << tail(serve.log_path());
  const ExitStatus stopped = serve.stop();
  ASSERT_TRUE(stopped.exited_with(kOk)) << stopped.describe();

  // Read after the stop: a snapshot may have been taken between the wait and SIGTERM.
  const std::vector<Taken> all = taken_so_far();
  ASSERT_GE(all.size(), kRetention + 2);
  std::uint64_t pruned = 0;
  for (const auto& t : all) pruned += t.pruned;
  EXPECT_EQ(pruned, all.size() - kRetention) << "every snapshot beyond the retention is deleted once";
  const std::vector<Manifest> kept = list(live);
  EXPECT_EQ(ids_of(kept), (std::vector<std::string>{all[all.size() - 1].id, all[all.size() - 2].id}));
  EXPECT_EQ(entries(live + "/snapshots").size(), kRetention) << "no partial or pruned snapshot is left on disk";
  ASSERT_FALSE(kept.empty());
  expect_manifest_is(kept.front(), *folded);
}

}  // namespace
}  // namespace statefold::testing
