// fork: a plan's events, folded, give a child whose state equals its parent's at the version; planning twice gives
// the same events; the errors name the problem. Over a MemoryKv folded in-process.
#include "engine/fork/fork.h"

#include <gtest/gtest.h>

#include "engine/fold/as_of.h"
#include "engine/fold/layout.h"
#include "engine/view/view.h"
#include "support/memory_fold.h"

namespace statefold::fork {
namespace {

using testing::MemoryFold;

MemoryFold folded() {
  MemoryFold f;
  std::vector<std::string> lines = {testing::opened(1, "p")};
  for (std::uint64_t i = 0; i < 6; ++i) {
    std::string text = "m";
    text += std::to_string(i);  // not "m" + std::to_string(i): GCC 12 -O3 false -Wrestrict (GCC bug 105651)
    lines.push_back(testing::message(10 + i, "p", "user", text));
  }
  lines.push_back(testing::memory_set(30, "p", "name", "Ada"));
  lines.push_back(testing::message(40, "implicit", "user", "hi"));
  f.fold(lines);
  return f;
}

std::vector<fold::Applied> fold_plan(MemoryFold& f, const Plan& plan) {
  std::vector<fold::Applied> out;
  fold::Folder folder(f.kv);
  for (const auto& [id, bytes] : plan.events) {
    auto event = codec::decode(bytes, codec::Encoding::flatbuffers);
    EXPECT_TRUE(event.ok()) << id;
    if (event.ok()) out.push_back(folder.apply(*event, {0, f.offset++, 0}));
  }
  f.kv.apply(folder.finish());
  return out;
}

TEST(Fork, TheChildEqualsTheParentAtTheVersion) {
  auto f = folded();
  auto plan = fork::plan(f.kv, {.parent = "p", .version = 5, .child = "c"});
  ASSERT_TRUE(plan.ok()) << plan.error().message;
  EXPECT_EQ(plan->parent_version, 5u);
  ASSERT_EQ(plan->events.size(), 5u) << "its own SessionOpened, then versions 2..5";
  for (const auto& applied : fold_plan(f, *plan)) EXPECT_EQ(applied.outcome, fold::Outcome::accepted) << applied.reason;

  auto child = fold::load_header(f.kv, "c");
  auto parent = fold::SessionAsOf::open(f.kv, "p", 5);
  ASSERT_TRUE(child.has_value());
  ASSERT_TRUE(parent.ok());
  auto then = fold::load_header(**parent, "p");
  EXPECT_EQ(child->version, 5u);
  EXPECT_EQ(child->messages, then->messages);
  EXPECT_EQ(child->model, then->model);
  EXPECT_EQ(child->parent_session_id, "p");
  EXPECT_EQ(child->parent_version, 5u);
  // The same messages in the same order.
  auto child_history = view::history_json(f.kv, "c", 2, 100);
  auto parent_history = view::history_json(f.kv, "p", 2, 4);
  ASSERT_TRUE(child_history && parent_history);
  for (const auto* text : {"m0", "m1", "m2", "m3"}) EXPECT_NE(child_history->find(text), std::string::npos) << text;
  EXPECT_EQ(child_history->find("m4"), std::string::npos) << "nothing past the version";
}

TEST(Fork, MemoryCarriesOverAtTheCurrentVersion) {
  auto f = folded();
  auto plan = fork::plan(f.kv, {.parent = "p", .version = 0, .child = "c"});
  ASSERT_TRUE(plan.ok()) << plan.error().message;
  EXPECT_EQ(plan->parent_version, 8u);
  fold_plan(f, *plan);
  auto memory = view::session_json(f.kv, "c");
  ASSERT_TRUE(memory.has_value());
  EXPECT_NE(memory->find(R"("label":"name","value":"Ada")"), std::string::npos) << *memory;
}

TEST(Fork, PlanningTwiceGivesTheSameEvents) {
  const auto f = folded();
  auto a = fork::plan(f.kv, {.parent = "p", .version = 4, .child = "c", .occurred_at_us = 7});
  auto b = fork::plan(f.kv, {.parent = "p", .version = 4, .child = "c", .occurred_at_us = 7});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->events, b->events);
  auto other = fork::plan(f.kv, {.parent = "p", .version = 4, .child = "d", .occurred_at_us = 7});
  ASSERT_TRUE(other.ok());
  EXPECT_NE(a->events.front().first, other->events.front().first) << "event ids derive from the child";
}

TEST(Fork, ErrorsNameTheProblem) {
  auto f = folded();
  auto missing = fork::plan(f.kv, {.parent = "nobody", .child = "c"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message, "no session nobody");
  EXPECT_FALSE(fork::plan(f.kv, {.parent = "p", .child = "p"}).ok());
  EXPECT_FALSE(fork::plan(f.kv, {.parent = "p", .child = ""}).ok());
  auto beyond = fork::plan(f.kv, {.parent = "p", .version = 9, .child = "c"});
  ASSERT_FALSE(beyond.ok());
  EXPECT_NE(beyond.error().message.find("out of range"), std::string::npos) << beyond.error().message;

  // A damaged history entry is an error, not a fork of misread events.
  f.put_raw(fold::key::history("p", 3), "garbage");
  auto damaged = fork::plan(f.kv, {.parent = "p", .version = 2, .child = "c"});
  EXPECT_TRUE(damaged.ok()) << "entries past the version are not read";
  damaged = fork::plan(f.kv, {.parent = "p", .version = 5, .child = "c"});
  ASSERT_FALSE(damaged.ok());
  EXPECT_NE(damaged.error().message.find("history entry of session p at version 3"), std::string::npos)
      << damaged.error().message;

  auto g = folded();
  g.fold({testing::event(90, "p", "ErasureRequest", R"({"reason":"r","requested_by":"x"})")});
  auto erased = fork::plan(g.kv, {.parent = "p", .child = "c"});
  ASSERT_FALSE(erased.ok());
  EXPECT_NE(erased.error().message.find("erased"), std::string::npos);
}

}  // namespace
}  // namespace statefold::fork
