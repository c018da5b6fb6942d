// Tests for the workload generator: determinism, shape of every line, and a recount of the stream with the
// engine's own rules (dedupe by event id, optimistic concurrency by expected_version) against the returned Stats.
#include "engine/workload/workload.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace statefold::workload {
namespace {

namespace json = boost::json;

constexpr std::int64_t kBaseTimeUs = 1767225600000000;  // 2026-01-01T00:00:00Z

struct Output {
  std::vector<std::string> lines;
  Stats stats;
};

Output run(const Options& options) {
  Output out;
  out.stats = generate(options, [&](std::string_view line) { out.lines.emplace_back(line); });
  return out;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string all;
  for (const auto& l : lines) all.append(l).push_back('\n');
  return all;
}

bool is_hex(std::string_view s, std::size_t n) {
  if (s.size() != n) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string_view str(const json::object& o, std::string_view k) {
  const json::value* v = o.if_contains(k);
  if (v == nullptr || !v->is_string()) return {};
  return v->get_string();
}

std::uint64_t u64(const json::value& v) {
  if (v.is_uint64()) return v.get_uint64();
  EXPECT_TRUE(v.is_int64()) << json::serialize(v);
  EXPECT_GE(v.get_int64(), 0);
  return static_cast<std::uint64_t>(v.get_int64());
}

// What a careful engine would compute from the stream, plus everything the checks below collect.
struct Recount {
  std::uint64_t accepted = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t stale = 0;
  std::uint64_t expected_version_ok = 0;
  std::uint64_t sessions_opened = 0;
  std::uint64_t sessions_closed = 0;
  std::map<std::string, std::uint64_t, std::less<>> accepted_by_type;
  std::map<std::string, std::uint64_t> final_versions;
  std::uint64_t tool_calls = 0;
  std::uint64_t failed_receipts = 0;
  std::uint64_t pinned = 0;
  std::uint64_t interleaved = 0;  // lines whose session differs from the previous line's
  std::set<std::string> strings;  // every decoded string in message content, memory and tool arguments
};

struct SessionModel {
  std::uint64_t version = 0;
  std::unordered_map<std::string, std::string> accepted;  // event_id -> the line that was accepted
  bool closed = false;
  std::vector<std::string> pending_tool_calls;            // ids still owed a tool result, in order
  std::set<std::string> memory;
};

void collect_content(const json::object& payload, Recount& r) {
  if (const json::value* content = payload.if_contains("content")) {
    for (const auto& part : content->as_array()) {
      const json::object& p = part.as_object();
      r.strings.emplace(str(p, "text"));
      if (str(p, "kind") == "json") {
        EXPECT_NO_THROW(json::parse(str(p, "text"))) << str(p, "text");
      }
    }
  }
}

// Parses and checks every line, replaying it through the engine's rules. Fails the test on the first problem of
// each kind (gtest EXPECT) and returns the recount.
void check_stream_into(const Options& options, const std::vector<std::string>& lines, Recount& r) {
  std::unordered_map<std::string, SessionModel> sessions;
  std::unordered_set<std::string> fresh_ids;  // every id of a non-duplicate line
  std::int64_t last_time = 0;
  std::string previous_session;
  const std::set<std::string_view> types = {"SessionOpened", "Message",       "MemorySet", "MemoryDelete",
                                            "Summary",       "InferenceReceipt", "SessionClosed", "Custom"};

  for (std::size_t i = 0; i < lines.size(); ++i) {
    SCOPED_TRACE("line " + std::to_string(i) + ": " + lines[i].substr(0, 300));
    json::value doc;
    ASSERT_NO_THROW(doc = json::parse(lines[i]));
    ASSERT_TRUE(doc.is_object());
    const json::object& ev = doc.as_object();

    const std::string event_id(str(ev, "event_id"));
    const std::string session(str(ev, "session_id"));
    const std::string_view type = str(ev, "payload_type");
    ASSERT_TRUE(is_hex(event_id, 32)) << event_id;
    ASSERT_EQ(session.rfind(options.session_prefix, 0), 0u);
    ASSERT_TRUE(types.contains(type)) << type;
    ASSERT_TRUE(ev.contains("occurred_at_us") && ev.at("occurred_at_us").is_int64());
    ASSERT_EQ(str(ev, "source"), options.source);
    ASSERT_TRUE(ev.contains("payload") && ev.at("payload").is_object());
    const json::object& payload = ev.at("payload").as_object();
    const std::int64_t at = ev.at("occurred_at_us").as_int64();
    ASSERT_GE(at, kBaseTimeUs);
    if (session != previous_session) ++r.interleaved;
    previous_session = session;

    SessionModel& s = sessions[session];
    ASSERT_FALSE(s.closed) << "event after SessionClosed";

    // Duplicate: an id the session accepted, re-sent byte for byte.
    if (auto it = s.accepted.find(event_id); it != s.accepted.end()) {
      EXPECT_EQ(it->second, lines[i]) << "a duplicate must re-send the accepted line verbatim";
      EXPECT_FALSE(ev.contains("expected_version"));
      EXPECT_TRUE(s.pending_tool_calls.empty()) << "duplicate inside a tool call block";
      ++r.duplicates;
      continue;
    }
    ASSERT_TRUE(fresh_ids.insert(event_id).second) << "event id reused outside a duplicate";
    ASSERT_GT(at, last_time) << "occurred_at_us must increase";
    last_time = at;

    if (i == 0 || s.version == 0) {
      ASSERT_EQ(type, "SessionOpened") << "a session must begin with SessionOpened";
    }
    if (const json::value* ev_version = ev.if_contains("expected_version")) {
      const std::uint64_t expected = u64(*ev_version);
      ASSERT_LE(expected, s.version) << "an expected_version ahead of the session";
      if (expected < s.version) {
        EXPECT_TRUE(s.pending_tool_calls.empty()) << "stale write inside a tool call block";
        ++r.stale;
        continue;  // rejected: changes nothing, and its id is not accepted
      }
      ++r.expected_version_ok;
    }

    // Accepted.
    if (type == "SessionOpened") {
      EXPECT_EQ(s.version, 0u) << "SessionOpened twice";
      EXPECT_FALSE(str(payload, "model").empty());
      EXPECT_FALSE(str(payload, "system_prompt").empty());
      const json::object& policy = payload.at("policy").as_object();
      EXPECT_GT(u64(policy.at("token_budget")), 0u);
      EXPECT_TRUE(str(policy, "tokenizer") == "o200k_base" || str(policy, "tokenizer") == "cl100k_base");
      EXPECT_FALSE(str(policy, "provider").empty());
      EXPECT_GE(payload.at("metadata").as_array().size(), 2u);
      ++r.sessions_opened;
    }
    const std::string_view role = type == "Message" ? str(payload, "role") : std::string_view{};
    if (!s.pending_tool_calls.empty()) {
      ASSERT_EQ(role, "tool") << "a tool call must be followed by its results";
      ASSERT_EQ(str(payload, "tool_call_id"), s.pending_tool_calls.front());
      s.pending_tool_calls.erase(s.pending_tool_calls.begin());
    } else {
      ASSERT_NE(role, "tool") << "a tool result without its call";
    }
    if (type == "Message") {
      EXPECT_TRUE(role == "user" || role == "assistant" || role == "tool" || role == "developer") << role;
      collect_content(payload, r);
      if (const json::value* calls = payload.if_contains("tool_calls")) {
        EXPECT_EQ(role, "assistant");
        const json::array& list = calls->as_array();
        EXPECT_GE(list.size(), 1u);
        EXPECT_LE(list.size(), 3u);
        for (const auto& call : list) {
          const json::object& c = call.as_object();
          EXPECT_FALSE(str(c, "name").empty());
          ASSERT_FALSE(str(c, "id").empty());
          s.pending_tool_calls.emplace_back(str(c, "id"));
          r.strings.emplace(str(c, "arguments"));
          EXPECT_NO_THROW(json::parse(str(c, "arguments"))) << str(c, "arguments");
          ++r.tool_calls;
        }
      }
    } else if (type == "MemorySet") {
      ASSERT_FALSE(str(payload, "label").empty());
      s.memory.emplace(str(payload, "label"));
      r.strings.emplace(str(payload, "value"));
      if (payload.contains("pinned") && payload.at("pinned").as_bool()) ++r.pinned;
    } else if (type == "MemoryDelete") {
      EXPECT_EQ(s.memory.erase(std::string(str(payload, "label"))), 1u) << "MemoryDelete of a label not set";
    } else if (type == "Summary") {
      EXPECT_EQ(u64(payload.at("through_version")), s.version);
      EXPECT_FALSE(str(payload, "text").empty());
    } else if (type == "InferenceReceipt") {
      EXPECT_TRUE(is_hex(str(payload, "request_hash"), 64));
      EXPECT_LE(u64(payload.at("state_version")), s.version);
      EXPECT_GE(u64(payload.at("state_version")), 1u);
      EXPECT_FALSE(str(payload, "provider").empty());
      EXPECT_FALSE(str(payload, "endpoint").empty());
      EXPECT_FALSE(str(payload, "model").empty());
      const json::object& usage = payload.at("usage").as_object();
      EXPECT_LE(u64(usage.at("cached_tokens")), u64(usage.at("input_tokens")));
      const std::uint64_t status = u64(payload.at("status"));
      if (status == 200) {
        EXPECT_FALSE(payload.contains("error"));
      } else {
        EXPECT_TRUE(status == 429 || status == 500) << status;
        EXPECT_FALSE(str(payload, "error").empty());
        ++r.failed_receipts;
      }
    } else if (type == "SessionClosed") {
      s.closed = true;
      ++r.sessions_closed;
    } else if (type == "Custom") {
      EXPECT_FALSE(str(payload, "type_name").empty());
      for (const auto& b : payload.at("data").as_array()) EXPECT_LT(u64(b), 256u);
    }
    s.accepted.emplace(event_id, lines[i]);
    ++s.version;
    ++r.accepted;
    ++r.accepted_by_type[std::string(type)];
  }
  for (const auto& [id, s] : sessions) {
    EXPECT_TRUE(s.pending_tool_calls.empty()) << id << " ends owing tool results";
    r.final_versions[id] = s.version;
  }
}

Recount check_stream(const Options& options, const std::vector<std::string>& lines) {
  Recount r;
  check_stream_into(options, lines, r);
  return r;
}

void expect_stats_match(const Options& options, const Output& out, const Recount& r) {
  const Stats& st = out.stats;
  EXPECT_EQ(st.lines, out.lines.size());
  EXPECT_EQ(st.accepted, r.accepted);
  EXPECT_EQ(st.duplicates, r.duplicates);
  EXPECT_EQ(st.stale, r.stale);
  EXPECT_EQ(st.expected_version_ok, r.expected_version_ok);
  EXPECT_EQ(st.sessions_opened, r.sessions_opened);
  EXPECT_EQ(st.sessions_closed, r.sessions_closed);
  EXPECT_EQ(st.accepted + st.duplicates + st.stale, st.lines);
  EXPECT_EQ(st.accepted_by_type, r.accepted_by_type);
  ASSERT_EQ(st.final_versions.size(), st.sessions_opened);
  ASSERT_EQ(r.final_versions.size(), st.sessions_opened);
  for (std::uint64_t k = 0; k < st.sessions_opened; ++k) {
    const std::string id = session_id(options, k);
    ASSERT_TRUE(r.final_versions.contains(id)) << id << " did not appear";
    EXPECT_EQ(st.final_versions[k], r.final_versions.at(id)) << id;
  }
}

TEST(Workload, SameOptionsSameBytesAndSeedMatters) {
  const Options options{.sessions = 40, .events = 3000, .seed = 11};
  const Output a = run(options);
  const Output b = run(options);
  ASSERT_EQ(a.lines.size(), 3000u);
  EXPECT_EQ(joined(a.lines), joined(b.lines));
  EXPECT_EQ(a.stats.accepted, b.stats.accepted);
  EXPECT_EQ(a.stats.final_versions, b.stats.final_versions);

  Options other = options;
  other.seed = 12;
  const Output c = run(other);
  EXPECT_NE(joined(a.lines), joined(c.lines));
  // Event ids derive from the seed: the two runs share none.
  std::unordered_set<std::string> ids;
  for (const auto& l : a.lines) ids.insert(std::string(str(json::parse(l).as_object(), "event_id")));
  for (const auto& l : c.lines) EXPECT_FALSE(ids.contains(std::string(str(json::parse(l).as_object(), "event_id"))));
}

TEST(Workload, ExactLineCount) {
  for (const auto& [sessions, events] : std::vector<std::pair<std::uint64_t, std::uint64_t>>{
           {1, 1}, {1, 500}, {3, 7}, {100, 1000}, {10, 10}, {7, 5000}, {500, 600}}) {
    const Options options{.sessions = sessions, .events = events, .seed = sessions * 31 + events};
    const Output out = run(options);
    EXPECT_EQ(out.lines.size(), events) << sessions << "/" << events;
    EXPECT_EQ(out.stats.lines, events);
    EXPECT_EQ(out.stats.sessions_opened, std::min(sessions, events));
    const Recount r = check_stream(options, out.lines);
    EXPECT_EQ(r.sessions_opened, std::min(sessions, events));
    expect_stats_match(options, out, r);
  }
  EXPECT_TRUE(run({.sessions = 5, .events = 0}).lines.empty());
}

TEST(Workload, FewerEventsThanSessionsOpensTheFirstSessions) {
  const Options options{.sessions = 50, .events = 20, .seed = 3};
  const Output out = run(options);
  ASSERT_EQ(out.lines.size(), 20u);
  std::set<std::string> seen;
  for (const auto& l : out.lines) {
    const json::object ev = json::parse(l).as_object();
    EXPECT_EQ(str(ev, "payload_type"), "SessionOpened");
    seen.emplace(str(ev, "session_id"));
  }
  std::set<std::string> first;
  for (std::uint64_t k = 0; k < 20; ++k) first.insert(session_id(options, k));
  EXPECT_EQ(seen, first);
}

TEST(Workload, StreamFollowsTheEngineRulesAndStatsMatch) {
  const Options options{.sessions = 60, .events = 20000, .seed = 7, .duplicate_rate = 0.02, .stale_rate = 0.02};
  const Output out = run(options);
  ASSERT_EQ(out.lines.size(), options.events);
  const Recount r = check_stream(options, out.lines);
  expect_stats_match(options, out, r);

  // The faults and the variety are really there.
  EXPECT_GT(r.duplicates, options.events * 0.02 * 0.5);
  EXPECT_LT(r.duplicates, options.events * 0.02 * 1.5);
  EXPECT_GT(r.stale, options.events * 0.02 * 0.5);
  EXPECT_LT(r.stale, options.events * 0.02 * 1.5);
  const double ok_share = static_cast<double>(r.expected_version_ok) / static_cast<double>(r.accepted);
  EXPECT_GT(ok_share, 0.15);
  EXPECT_LT(ok_share, 0.25);
  EXPECT_GT(r.sessions_closed, 0u);
  EXPECT_LT(r.sessions_closed, options.sessions / 2);
  EXPECT_GT(r.tool_calls, 0u);
  EXPECT_GT(r.failed_receipts, 0u);
  EXPECT_GT(r.pinned, 0u);
  EXPECT_GT(r.interleaved, options.events / 2) << "sessions should interleave";
  for (const char* type : {"SessionOpened", "Message", "MemorySet", "MemoryDelete", "Summary", "InferenceReceipt",
                           "SessionClosed", "Custom"}) {
    EXPECT_GT(r.accepted_by_type.count(type) ? r.accepted_by_type.at(type) : 0, 0u) << type;
  }
}

TEST(Workload, HeavyFaultRatesStillConsistent) {
  const Options options{.sessions = 5, .events = 5000, .seed = 99, .duplicate_rate = 0.3, .stale_rate = 0.3,
                        .session_prefix = "t/\"q\"-", .source = "bench", .duplicate_lookback = 16};
  const Output out = run(options);
  ASSERT_EQ(out.lines.size(), options.events);
  const Recount r = check_stream(options, out.lines);
  expect_stats_match(options, out, r);
  EXPECT_GT(r.duplicates, 1000u);
  EXPECT_GT(r.stale, 1000u);
}

TEST(Workload, DuplicatesStayInsideTheLookback) {
  const Options options{.sessions = 3, .events = 4000, .seed = 5, .duplicate_rate = 0.1, .duplicate_lookback = 10};
  const Output out = run(options);
  std::unordered_map<std::string, std::size_t> first_line;
  std::uint64_t duplicates = 0;
  for (std::size_t i = 0; i < out.lines.size(); ++i) {
    const auto [it, fresh] = first_line.emplace(str(json::parse(out.lines[i]).as_object(), "event_id"), i);
    if (!fresh) {
      EXPECT_LE(i - it->second, 10u);
      ++duplicates;
    }
  }
  EXPECT_EQ(duplicates, out.stats.duplicates);
  EXPECT_GT(duplicates, 100u);
}

TEST(Workload, NoFaultsWhenRatesAreZero) {
  const Options options{.sessions = 20, .events = 3000, .seed = 2, .duplicate_rate = 0, .stale_rate = 0};
  const Output out = run(options);
  const Recount r = check_stream(options, out.lines);
  expect_stats_match(options, out, r);
  EXPECT_EQ(r.duplicates, 0u);
  EXPECT_EQ(r.stale, 0u);
  EXPECT_EQ(r.accepted, options.events);
}

TEST(Workload, ContentIsVariedAndEscapedCorrectly) {
  const Options options{.sessions = 30, .events = 6000, .seed = 4};
  const Output out = run(options);
  const Recount r = check_stream(options, out.lines);
  bool accent = false, cjk = false, emoji = false, quote = false, backslash = false, newline = false, tab = false,
       control = false;
  std::size_t shortest = SIZE_MAX, longest = 0;
  for (const auto& s : r.strings) {
    accent |= s.find("é") != std::string::npos || s.find("ü") != std::string::npos;
    cjk |= s.find("東京") != std::string::npos || s.find("你好") != std::string::npos ||
           s.find("日本語") != std::string::npos;
    for (std::size_t k = 0; k < s.size(); ++k) emoji |= static_cast<unsigned char>(s[k]) >= 0xf0;  // 4-byte UTF-8
    quote |= s.find('"') != std::string::npos;
    backslash |= s.find('\\') != std::string::npos;
    newline |= s.find('\n') != std::string::npos;
    tab |= s.find('\t') != std::string::npos;
    control |= s.find('\x1b') != std::string::npos;
    shortest = std::min(shortest, s.size());
    longest = std::max(longest, s.size());
  }
  EXPECT_TRUE(accent);
  EXPECT_TRUE(cjk);
  EXPECT_TRUE(emoji);
  EXPECT_TRUE(quote);
  EXPECT_TRUE(backslash);
  EXPECT_TRUE(newline);
  EXPECT_TRUE(tab);
  EXPECT_TRUE(control);
  EXPECT_LT(shortest, 40u);
  EXPECT_GT(longest, 1000u) << "a few paragraphs";
  // Raw lines are one per event: escaping keeps newlines out of them.
  for (const auto& l : out.lines) ASSERT_EQ(l.find('\n'), std::string::npos);
}

TEST(Workload, ExampleShapeOfTheFirstLine) {
  const Output out = run({.sessions = 1, .events = 1, .seed = 1});
  ASSERT_EQ(out.lines.size(), 1u);
  const json::object ev = json::parse(out.lines[0]).as_object();
  EXPECT_EQ(str(ev, "session_id"), "session-000001");
  EXPECT_EQ(str(ev, "payload_type"), "SessionOpened");
  EXPECT_GT(ev.at("occurred_at_us").as_int64(), kBaseTimeUs);
  EXPECT_LT(ev.at("occurred_at_us").as_int64(), kBaseTimeUs + 1'000'000);
  // payload_type precedes payload, as FlatBuffers' JSON writes it.
  EXPECT_LT(out.lines[0].find("\"payload_type\""), out.lines[0].find("\"payload\""));
}

TEST(Workload, SessionIds) {
  EXPECT_EQ(session_id({}, 41), "session-000042");
  EXPECT_EQ(session_id({.sessions = 1234567}, 0), "session-0000001");
  EXPECT_EQ(session_id({.session_prefix = "s"}, 999999), "s1000000");
}

TEST(Workload, RejectsImpossibleOptions) {
  const auto sink = [](std::string_view) {};
  EXPECT_THROW(generate({.sessions = 0, .events = 1}, sink), std::invalid_argument);
  EXPECT_THROW(generate({.duplicate_rate = 1.0}, sink), std::invalid_argument);
  EXPECT_THROW(generate({.stale_rate = -0.1}, sink), std::invalid_argument);
  EXPECT_THROW(generate({.duplicate_rate = 0.6, .stale_rate = 0.5}, sink), std::invalid_argument);
  EXPECT_THROW(generate({.duplicate_rate = 0.1, .duplicate_lookback = 0}, sink), std::invalid_argument);
  const std::string long_prefix(300, 'x');
  EXPECT_THROW(generate({.session_prefix = long_prefix}, sink), std::invalid_argument);
  EXPECT_NO_THROW(generate({.sessions = 0, .events = 0}, sink));
}

}  // namespace
}  // namespace statefold::workload
