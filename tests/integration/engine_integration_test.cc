// The engine end to end against a real broker (spec sections 2, 3 and 7): `statefold append` puts generated events
// on a fresh topic, `statefold serve` folds them, and `statefold inspect` must show exactly the state an in-memory
// reference fold of the same lines gives, and the counts the generator knows it wrote.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/workload/workload.h"
#include "support/cluster.h"

namespace statefold::testing {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

struct Generated {
  workload::Options options;
  workload::Stats stats;
  std::vector<std::string> lines;
};

Generated generate(std::uint64_t sessions, std::uint64_t events, std::uint64_t seed) {
  Generated g;
  g.options.sessions = sessions;
  g.options.events = events;
  g.options.seed = seed;
  g.stats = workload::generate(g.options, [&](std::string_view line) { g.lines.emplace_back(line); });
  return g;
}

// The summary line inspect prints for `reference`, given the engine's offsets (the only part the reference cannot
// know).
std::string reference_summary_json(const ReferenceFold& reference, const Summary& engine) {
  return view::summary_json(reference.kv(), engine.offsets);
}

std::int64_t sum(const std::map<std::int32_t, std::int64_t>& offsets) {
  std::int64_t total = 0;
  for (const auto& [p, o] : offsets) total += o;
  return total;
}

class EngineIntegration : public ClusterTest {};

// (a) 100,000 events over 1,000 sessions: the folded store equals the reference fold, event for event.
TEST_F(EngineIntegration, FoldsGeneratedEventsExactlyLikeTheReferenceFold) {
  constexpr std::uint64_t kEvents = 100000;
  const Generated g = generate(1000, kEvents, 11);
  ASSERT_EQ(g.lines.size(), kEvents);
  ASSERT_GT(g.stats.duplicates, 0u);
  ASSERT_GT(g.stats.stale, 0u);
  const std::string input = path("events.jsonl");
  write_lines(input, g.lines);

  const std::string topic = unique_name("events");
  auto appended = append(topic, input);
  ASSERT_TRUE(appended.status.exited_with(0)) << appended.status.describe() << "\n" << appended.err;
  EXPECT_NE(appended.out.find("appended " + std::to_string(kEvents) + " event(s)"), std::string::npos)
      << appended.out;
  auto ends = end_offsets(brokers(), topic);
  ASSERT_TRUE(ends);
  ASSERT_EQ(sum(*ends), static_cast<std::int64_t>(kEvents)) << "append must send every line exactly once";

  ReferenceFold reference;
  reference.fold(g.lines);
  ASSERT_FALSE(::testing::Test::HasFailure());

  const std::string data = data_dir("store");
  Serve& serve = start_serve(serve_options(topic, data));
  auto progress = wait_for_summary(data, [&](const Summary& s) { return s.total() >= kEvents; }, minutes(8), &serve);
  ASSERT_TRUE(progress);
  const ExitStatus stopped = serve.stop();
  ASSERT_TRUE(stopped.exited_with(0)) << stopped.describe();

  auto summary = inspect_summary(data);
  ASSERT_TRUE(summary);
  // The generator's own accounting.
  EXPECT_EQ(summary->total(), kEvents);
  EXPECT_EQ(summary->sessions, g.stats.sessions_opened);
  EXPECT_EQ(summary->events_applied, g.stats.accepted);
  EXPECT_EQ(summary->duplicates, g.stats.duplicates);
  EXPECT_EQ(summary->rejections, g.stats.stale);
  EXPECT_EQ(summary->dlq_records, 0u);
  // Every record consumed, none twice: the stored offsets are the topic's end offsets.
  EXPECT_EQ(summary->offsets, *ends);
  // The reference fold, field for field, store hash included.
  EXPECT_EQ(summary->store_hash, reference.store_hash());
  EXPECT_EQ(summary->json, reference_summary_json(reference, *summary));

  // ~20 sessions in full: what inspect shows equals the reference's view, and the version is the number of events
  // the session accepted.
  int compared = 0;
  for (std::uint64_t i = 0; i < g.stats.sessions_opened; i += 50) {
    const std::string id = workload::session_id(g.options, i);
    SCOPED_TRACE("session " + id);
    auto shown = inspect_session(data, id, 1000);
    auto expected = reference.session_json(id, 1000);
    ASSERT_TRUE(shown);
    ASSERT_TRUE(expected);
    EXPECT_EQ(*shown, *expected);
    const auto version = boost::json::parse(*shown).as_object().at("version").to_number<std::uint64_t>();
    EXPECT_EQ(version, g.stats.final_versions[i]);
    EXPECT_EQ(version, reference.accepted(id));
    ++compared;
  }
  EXPECT_EQ(compared, 20);

  ExitStatus unknown;
  EXPECT_FALSE(inspect_session(data, "no-such-session", 10, &unknown));
  EXPECT_TRUE(unknown.exited_with(4)) << unknown.describe();
}

// (b) An invalid file is refused as a whole, with the line and field of each problem; nothing half-sent.
TEST_F(EngineIntegration, AppendRefusesInvalidInputWholeAndNamesEachProblem) {
  const Generated g = generate(2, 20, 3);
  const std::string topic = unique_name("events");

  // A topic with one record already, so "unchanged" is not trivially "empty".
  const std::string first = path("first.jsonl");
  write_lines(first, g.lines, 0, 1);
  auto seeded = append(topic, first);
  ASSERT_TRUE(seeded.status.exited_with(0)) << seeded.err;
  auto before = end_offsets(brokers(), topic);
  ASSERT_TRUE(before);
  ASSERT_EQ(sum(*before), 1);

  // Line 1 is fine, line 2 has a field value the schema does not allow, line 3 is not JSON at all.
  std::size_t message = 1;
  while (message < g.lines.size() && g.lines[message].find("\"role\":\"") == std::string::npos) ++message;
  ASSERT_LT(message, g.lines.size()) << "the workload has no message";
  const std::string& good = g.lines[message == 1 ? 2 : 1];
  std::string bad_field = g.lines[message];
  const auto role = bad_field.find("\"role\":\"");
  bad_field.replace(role, bad_field.find('"', role + 8) + 1 - role, "\"role\":\"robot\"");
  const std::string bad_json = R"({"event_id":"00000000000000000000000000000001","session_id":)";
  const std::string input = path("bad.jsonl");
  write_file(input, good + "\n" + bad_field + "\n" + bad_json + "\n");

  auto refused = append(topic, input);
  EXPECT_TRUE(refused.status.exited_with(3)) << refused.status.describe() << "\n" << refused.err;
  EXPECT_NE(refused.err.find(input + ":2: payload.role"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("robot"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find(input + ":3: "), std::string::npos) << refused.err;
  EXPECT_EQ(refused.err.find(input + ":1:"), std::string::npos) << "line 1 is valid:\n" << refused.err;
  EXPECT_NE(refused.err.find("nothing was sent"), std::string::npos) << refused.err;
  auto after = end_offsets(brokers(), topic);
  ASSERT_TRUE(after);
  EXPECT_EQ(*after, *before) << "an invalid file must not be half-sent";

  // Nor does an invalid file create a topic.
  const std::string untouched = unique_name("never-created");
  auto refused_fresh = append(untouched, input);
  EXPECT_TRUE(refused_fresh.status.exited_with(3)) << refused_fresh.status.describe();
  EXPECT_FALSE(log::partition_count(brokers(), untouched).ok()) << "append created " << untouched;

  // --continue-on-error sends the valid line, and only it; the exit status still says the input was invalid
  // (docs/cli.md: 3).
  auto partial = append(topic, input, {"--continue-on-error"});
  EXPECT_TRUE(partial.status.exited_with(3)) << partial.status.describe() << "\n" << partial.err;
  EXPECT_NE(partial.out.find("appended 1 event(s)"), std::string::npos) << partial.out;
  EXPECT_NE(partial.out.find("2 invalid line(s) skipped"), std::string::npos) << partial.out;
  auto records = consume_all(brokers(), topic);
  ASSERT_EQ(records.size(), 2u);
  auto canonical = codec::json_to_flatbuffers(good);
  ASSERT_TRUE(canonical.ok());
  bool found = false;
  for (const auto& r : records) {
    if (r.value && *r.value == std::string(canonical->begin(), canonical->end())) {
      found = true;
      auto event = codec::decode(*canonical, codec::Encoding::flatbuffers);
      ASSERT_TRUE(event.ok());
      EXPECT_EQ(r.key, std::string(event->session_id()));
    }
  }
  EXPECT_TRUE(found) << "the valid line's canonical FlatBuffers bytes are not on the topic";
}

// (c) The same events as JSON records (content-type application/json) and FlatBuffers records, mixed in one topic,
// fold to the state all-FlatBuffers records give.
TEST_F(EngineIntegration, JsonAndFlatBuffersRecordsFoldToTheSameState) {
  constexpr std::size_t kEvents = 4000;
  constexpr std::size_t kChunk = 500;
  const Generated g = generate(40, kEvents, 21);
  const std::string mixed = unique_name("mixed");
  const std::string canonical = unique_name("flatbuffers");

  // Appended chunk by chunk, alternating encodings: each session's events keep their order and most sessions get
  // both kinds.
  std::size_t json_lines = 0;
  for (std::size_t begin = 0, chunk = 0; begin < kEvents; begin += kChunk, ++chunk) {
    const std::string file = path("chunk-" + std::to_string(chunk) + ".jsonl");
    write_lines(file, g.lines, begin, begin + kChunk);
    const bool json = chunk % 2 == 0;
    if (json) json_lines += std::min(kChunk, kEvents - begin);
    auto r = append(mixed, file, {"--encoding", json ? "json" : "flatbuffers"});
    ASSERT_TRUE(r.status.exited_with(0)) << r.status.describe() << "\n" << r.err;
  }
  const std::string all = path("all.jsonl");
  write_lines(all, g.lines);
  auto r = append(canonical, all);
  ASSERT_TRUE(r.status.exited_with(0)) << r.status.describe() << "\n" << r.err;

  // The mixed topic really carries both forms.
  std::size_t json_records = 0;
  std::size_t flatbuffers_records = 0;
  for (const auto& record : consume_all(brokers(), mixed)) {
    if (record.header("content-type") == "application/json") {
      ++json_records;
      EXPECT_EQ(record.value.value_or("").front(), '{');
    } else {
      ++flatbuffers_records;
    }
  }
  EXPECT_EQ(json_records, json_lines);
  EXPECT_EQ(flatbuffers_records, kEvents - json_lines);

  ReferenceFold reference;
  reference.fold(g.lines);

  Serve& serve_mixed = start_serve(serve_options(mixed, data_dir("mixed")));
  Serve& serve_canonical = start_serve(serve_options(canonical, data_dir("canonical")));
  auto done = [&](const Summary& s) { return s.total() >= kEvents; };
  ASSERT_TRUE(wait_for_summary(data_dir("mixed"), done, minutes(5), &serve_mixed));
  ASSERT_TRUE(wait_for_summary(data_dir("canonical"), done, minutes(5), &serve_canonical));
  ASSERT_TRUE(serve_mixed.stop().exited_with(0));
  ASSERT_TRUE(serve_canonical.stop().exited_with(0));

  auto a = inspect_summary(data_dir("mixed"));
  auto b = inspect_summary(data_dir("canonical"));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->dlq_records, 0u) << "a JSON record was dead-lettered; see the serve log";
  EXPECT_EQ(a->total(), kEvents);
  EXPECT_EQ(a->store_hash, b->store_hash);
  EXPECT_EQ(a->store_hash, reference.store_hash());
  EXPECT_EQ(a->json, reference_summary_json(reference, *a));
  EXPECT_EQ(b->json, reference_summary_json(reference, *b));
  for (const auto& id : reference.sessions()) {
    SCOPED_TRACE("session " + id);
    auto from_mixed = inspect_session(data_dir("mixed"), id, 1000);
    auto from_canonical = inspect_session(data_dir("canonical"), id, 1000);
    ASSERT_TRUE(from_mixed && from_canonical);
    EXPECT_EQ(*from_mixed, *from_canonical);
    EXPECT_EQ(*from_mixed, reference.session_json(id, 1000).value_or(""));
  }
}

// (c, continued) codec::encoding_for_content_type is the contract for the header: the media type decides, its
// case and parameters do not. A JSON record sent as "application/json; charset=utf-8" is JSON.
TEST_F(EngineIntegration, JsonContentTypeIsRecognisedWithParametersAndAnyCase) {
  const Generated g = generate(3, 30, 5);
  const std::string topic = unique_name("events");
  const std::vector<std::string> content_types = {"application/json", "application/json; charset=utf-8",
                                                  "Application/JSON"};
  std::vector<RawRecord> records;
  for (std::size_t i = 0; i < g.lines.size(); ++i) {
    auto event = codec::decode(
        std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(g.lines[i].data()), g.lines[i].size()),
        codec::Encoding::json);
    ASSERT_TRUE(event.ok()) << event.error().message;
    records.push_back({std::string(event->session_id()), g.lines[i],
                       {{"content-type", content_types[i % content_types.size()]}}, std::nullopt});
  }
  ASSERT_TRUE(log::ensure_topic(brokers(), topic, 4).ok());
  produce(brokers(), topic, records);
  ASSERT_FALSE(HasFailure());

  ReferenceFold reference;
  reference.fold(g.lines);
  const std::string data = data_dir("store");
  Serve& serve = start_serve(serve_options(topic, data));
  auto summary = wait_for_summary(data, [&](const Summary& s) { return s.total() >= g.lines.size(); }, minutes(3),
                                  &serve);
  ASSERT_TRUE(summary);
  EXPECT_TRUE(serve.stop().exited_with(0));
  EXPECT_EQ(summary->dlq_records, 0u) << "JSON records whose content-type has parameters or another case were "
                                         "dead-lettered (read as FlatBuffers); serve log:\n"
                                      << tail(serve.log_path(), 10);
  EXPECT_EQ(summary->store_hash, reference.store_hash());
}

// (d) A restart on the same data dir continues from the stored offsets: nothing is folded twice, nothing skipped.
TEST_F(EngineIntegration, RestartContinuesFromTheStoredOffsets) {
  constexpr std::size_t kEvents = 6000;
  constexpr std::size_t kFirst = 3500;
  const Generated g = generate(60, kEvents, 31);
  const std::string topic = unique_name("events");
  const std::string data = data_dir("store");
  const ServeOptions options = serve_options(topic, data);

  const std::string part1 = path("part1.jsonl");
  write_lines(part1, g.lines, 0, kFirst);
  auto r1 = append(topic, part1);
  ASSERT_TRUE(r1.status.exited_with(0)) << r1.err;

  Serve& first = start_serve(options);
  ASSERT_TRUE(wait_for_summary(data, [&](const Summary& s) { return s.total() >= kFirst; }, minutes(5), &first));
  ASSERT_TRUE(first.stop().exited_with(0));
  auto after_first = inspect_summary(data);
  ASSERT_TRUE(after_first);
  ReferenceFold reference_first;
  reference_first.fold(std::vector<std::string>(g.lines.begin(), g.lines.begin() + kFirst));
  EXPECT_EQ(after_first->json, reference_summary_json(reference_first, *after_first));
  EXPECT_EQ(after_first->offsets_sum(), static_cast<std::int64_t>(kFirst));

  const std::string part2 = path("part2.jsonl");
  write_lines(part2, g.lines, kFirst, kEvents);
  auto r2 = append(topic, part2);
  ASSERT_TRUE(r2.status.exited_with(0)) << r2.err;

  Serve& second = start_serve(options);  // same group, same data dir
  auto final_summary =
      wait_for_summary(data, [&](const Summary& s) { return s.total() >= kEvents; }, minutes(5), &second);
  ASSERT_TRUE(final_summary);
  ASSERT_TRUE(second.stop().exited_with(0));

  // It started each partition at the offset the first run stored, not at the beginning.
  const std::string log = second.log();
  for (const auto& [partition, offset] : after_first->offsets) {
    EXPECT_NE(log.find(std::to_string(partition) + "@" + std::to_string(offset)), std::string::npos)
        << "partition " << partition << " should resume at " << offset << "; log:\n" << log;
  }

  auto summary = inspect_summary(data);
  ASSERT_TRUE(summary);
  ReferenceFold reference;
  reference.fold(g.lines);
  EXPECT_EQ(summary->total(), kEvents) << "an event folded twice shows up as an extra duplicate";
  EXPECT_EQ(summary->offsets_sum(), static_cast<std::int64_t>(kEvents));
  EXPECT_EQ(summary->events_applied, g.stats.accepted);
  EXPECT_EQ(summary->duplicates, g.stats.duplicates);
  EXPECT_EQ(summary->rejections, g.stats.stale);
  EXPECT_EQ(summary->json, reference_summary_json(reference, *summary));
  for (std::uint64_t i = 0; i < g.stats.sessions_opened; ++i) {
    const std::string id = workload::session_id(g.options, i);
    SCOPED_TRACE("session " + id);
    auto shown = inspect_session(data, id, 1000);
    ASSERT_TRUE(shown);
    EXPECT_EQ(*shown, reference.session_json(id, 1000).value_or(""));
    const auto version = boost::json::parse(*shown).as_object().at("version").to_number<std::uint64_t>();
    EXPECT_EQ(version, reference.accepted(id));
    EXPECT_EQ(version, g.stats.final_versions[i]);
  }
}

}  // namespace
}  // namespace statefold::testing
