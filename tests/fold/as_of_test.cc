// Time travel (spec section 4, fold/as_of.h): a session read at any past version or time equals the state a fold of
// the events up to that version produced then, whatever the session's length.
#include "engine/fold/as_of.h"

#include <gtest/gtest.h>

#include "engine/fold/fold.h"
#include "engine/view/view.h"
#include "engine/workload/workload.h"

namespace statefold::fold {
namespace {

codec::Event decode_json(std::string_view line) {
  auto event = codec::decode(std::span(reinterpret_cast<const std::uint8_t*>(line.data()), line.size()),
                             codec::Encoding::json);
  EXPECT_TRUE(event.ok()) << (event.ok() ? "" : event.error().message);
  return std::move(event).value();
}

// Folds a generated workload one event per batch and records, right after each accepted event, the session's
// view and state hash: the reference each past version must reproduce.
struct Recorded {
  MemoryKv kv;
  std::map<std::pair<std::string, std::uint64_t>, std::string> views;  // (session, version) -> session_json
  std::map<std::pair<std::string, std::uint64_t>, std::int64_t> times;  // (session, version) -> log time
};

Recorded fold_recording(const workload::Options& options) {
  Recorded r;
  std::int64_t offset = 0;
  workload::generate(options, [&](std::string_view line) {
    auto event = decode_json(line);
    Folder folder(r.kv);
    const std::int64_t log_time = 1'000'000 + offset * 10;
    auto applied = folder.apply(event, {0, offset++, log_time});
    r.kv.apply(folder.finish());
    if (applied.outcome == Outcome::accepted) {
      const std::string sid(event.session_id());
      r.views[{sid, applied.version}] = *view::session_json(r.kv, sid, {.max_messages = 20});
      r.times[{sid, applied.version}] = log_time;
    }
  });
  return r;
}

TEST(TimeTravel, EveryPastVersionEqualsTheFoldOfItsPrefix) {
  // Few sessions, many events: hundreds of versions each, so several checkpoints, with duplicates and stale
  // rejections in between (their counters are part of the state).
  auto r = fold_recording({.sessions = 3, .events = 1500, .seed = 11, .duplicate_rate = 0.05, .stale_rate = 0.05});
  std::size_t checked = 0;
  for (const auto& [at, expected] : r.views) {
    auto past = SessionAsOf::open(r.kv, at.first, at.second);
    ASSERT_TRUE(past.ok()) << past.error().message;
    EXPECT_LT((*past)->refolded(), kCheckpointInterval);
    EXPECT_FALSE((*past)->redacted());
    ASSERT_EQ(*view::session_json(**past, at.first, {.max_messages = 20}), expected)
        << "session " << at.first << " at version " << at.second;
    ++checked;
  }
  EXPECT_GT(checked, 1300u);  // all accepted events: 1,500 lines less about 10% refused
}

TEST(TimeTravel, ATimeSelectsTheLastVersionAtOrBeforeIt) {
  auto r = fold_recording({.sessions = 2, .events = 300, .seed = 5});
  for (const auto& [at, time] : r.times) {
    EXPECT_EQ(version_at_time(r.kv, at.first, time), at.second);
    EXPECT_EQ(version_at_time(r.kv, at.first, time + 1), at.second) << "between records of other sessions";
  }
  const std::string first_session = r.times.begin()->first.first;
  EXPECT_EQ(version_at_time(r.kv, first_session, 0), 0u);
  EXPECT_EQ(version_at_time(r.kv, "no-such-session", 0), std::nullopt);
}

TEST(TimeTravel, OutOfRangeVersionsAndUnknownSessionsAreErrors) {
  auto r = fold_recording({.sessions = 1, .events = 10, .seed = 2, .duplicate_rate = 0, .stale_rate = 0});
  const std::string sid = r.views.begin()->first.first;
  auto zero = SessionAsOf::open(r.kv, sid, 0);
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.error().message.find("has versions 1..10"), std::string::npos) << zero.error().message;
  EXPECT_FALSE(SessionAsOf::open(r.kv, sid, 11).ok());
  auto none = SessionAsOf::open(r.kv, "nobody", 1);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().message, "no session nobody");
}

TEST(TimeTravel, TheWorkIsBoundedByTheCheckpointIntervalNotTheSessionLength) {
  auto r = fold_recording({.sessions = 1, .events = 3000, .seed = 3, .duplicate_rate = 0, .stale_rate = 0});
  const std::string sid = r.views.begin()->first.first;
  for (std::uint64_t v : {10u, 63u, 64u, 65u, 2999u, 3000u}) {
    auto past = SessionAsOf::open(r.kv, sid, v);
    ASSERT_TRUE(past.ok());
    EXPECT_EQ((*past)->refolded(), v % kCheckpointInterval) << "version " << v;
  }
}

}  // namespace
}  // namespace statefold::fold
