// append: the envelope Batch writes (ids, chaining, what add_json keeps of the client's JSON), the outcome helpers
// and the SettleTracker reads wait on. No Kafka: KafkaAppender is covered by the integration tests.
#include "engine/append/append.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "engine/codec/codec.h"
#include "statefold/schema/events_generated.h"

namespace statefold::append {
namespace {

using namespace std::chrono_literals;

codec::Event decoded(const std::vector<std::uint8_t>& bytes) {
  auto ev = codec::decode(bytes, codec::Encoding::flatbuffers);
  EXPECT_TRUE(ev.ok()) << (ev.ok() ? "" : ev.error().message);
  if (!ev.ok()) throw std::runtime_error("does not decode");
  return std::move(*ev);
}

std::string previous_id(const codec::Event& ev) {
  const auto* previous = ev.root().expected_previous_event_id();
  return previous == nullptr ? "" : previous->str();
}

codec::Message user(const std::string& text) {
  return codec::Message{.role = codec::Role::user, .content = std::vector<codec::ContentPart>{{.text = text}}};
}

constexpr std::string_view kClientMessage = R"({"payload_type":"Message","payload":{"role":"user","content":[{"text":"hi"}]}})";

TEST(AppendBatch, ChainsAConditionalBatch) {
  Batch batch("chat-42", "gateway", 7);
  // Both ways of adding, each at the third place or later, where chaining on the wrong event would show.
  ASSERT_TRUE(batch.add(user("one")).ok());
  ASSERT_TRUE(batch.add(user("two")).ok());
  ASSERT_TRUE(batch.add(user("three")).ok());
  ASSERT_TRUE(batch.add_json(kClientMessage).ok());
  ASSERT_TRUE(batch.add_json(kClientMessage).ok());
  ASSERT_EQ(batch.size(), 5u);
  auto events = batch.take();
  ASSERT_EQ(events.size(), 5u);

  auto first = decoded(events[0].second);
  EXPECT_EQ(first.expected_version(), std::optional<std::uint64_t>(7));
  EXPECT_EQ(previous_id(first), "");
  for (std::size_t i = 1; i < events.size(); ++i) {
    auto ev = decoded(events[i].second);
    EXPECT_EQ(ev.expected_version(), std::nullopt) << i;
    EXPECT_EQ(previous_id(ev), events[i - 1].first) << i;
  }
  for (const auto& [id, bytes] : events) {
    auto ev = decoded(bytes);
    EXPECT_EQ(codec::event_id_to_string(ev.id()), id);
    EXPECT_EQ(ev.session_id(), "chat-42");
    ASSERT_NE(ev.root().source(), nullptr);
    EXPECT_EQ(ev.root().source()->str(), "gateway");
    EXPECT_GT(ev.root().occurred_at_us(), 0);
  }
  // Fresh ids, all different.
  EXPECT_NE(events[0].first, events[1].first);
  EXPECT_NE(events[3].first, events[4].first);
  EXPECT_EQ(events[0].first.size(), 32u);
}

TEST(AppendBatch, ZeroIsACondition) {
  Batch batch("new", "gateway", 0);
  ASSERT_TRUE(batch.add(codec::SessionOpened{.model = "m"}).ok());
  auto ev = decoded(batch.take()[0].second);
  EXPECT_EQ(ev.expected_version(), std::optional<std::uint64_t>(0));
}

TEST(AppendBatch, NoConditionWithoutAnExpectedVersion) {
  Batch batch("chat-42", "api", std::nullopt);
  ASSERT_TRUE(batch.add(user("one")).ok());
  ASSERT_TRUE(batch.add_json(kClientMessage).ok());
  ASSERT_TRUE(batch.add(user("three")).ok());
  for (const auto& [id, bytes] : batch.take()) {
    auto ev = decoded(bytes);
    EXPECT_EQ(ev.expected_version(), std::nullopt) << id;
    EXPECT_EQ(previous_id(ev), "") << id;
  }
}

TEST(AppendBatch, UsesTheEventIdGiven) {
  const std::string id = "0123456789abcdef0123456789abcdef";
  Batch batch("chat-42", "fork", 3);
  ASSERT_TRUE(batch.add(user("one"), id).ok());
  ASSERT_TRUE(batch.add_json(kClientMessage, "fedcba9876543210fedcba9876543210").ok());
  auto events = batch.take();
  EXPECT_EQ(events[0].first, id);
  EXPECT_EQ(codec::event_id_to_string(decoded(events[0].second).id()), id);
  EXPECT_EQ(events[1].first, "fedcba9876543210fedcba9876543210");
  EXPECT_EQ(previous_id(decoded(events[1].second)), id);
}

TEST(AppendBatch, AddJsonKeepsTheClientsOwnFields) {
  const std::string own_id = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  const std::string own_previous = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
  Batch batch("chat-42", "api", 5);
  // The first event names its own condition, time and source; the batch must not overwrite them.
  ASSERT_TRUE(batch
                  .add_json(R"({"event_id":")" + own_id +
                            R"(","session_id":"chat-42","expected_version":9,"occurred_at_us":1234,"source":"client",)"
                            R"("payload_type":"Message","payload":{"role":"user","content":[{"text":"a"}]}})")
                  .ok());
  // The second names its own predecessor and nothing else.
  ASSERT_TRUE(batch
                  .add_json(R"({"expected_previous_event_id":")" + own_previous +
                            R"(","payload_type":"Message","payload":{"role":"user","content":[{"text":"b"}]}})")
                  .ok());
  // The third says nothing: the batch fills everything, chained on the client's id of the first.
  ASSERT_TRUE(batch.add_json(kClientMessage).ok());
  auto events = batch.take();
  ASSERT_EQ(events.size(), 3u);

  auto first = decoded(events[0].second);
  EXPECT_EQ(events[0].first, own_id);
  EXPECT_EQ(codec::event_id_to_string(first.id()), own_id);
  EXPECT_EQ(first.expected_version(), std::optional<std::uint64_t>(9));
  EXPECT_EQ(first.root().occurred_at_us(), 1234);
  EXPECT_EQ(first.root().source()->str(), "client");

  auto second = decoded(events[1].second);
  EXPECT_EQ(previous_id(second), own_previous);
  EXPECT_EQ(second.expected_version(), std::nullopt);
  EXPECT_EQ(second.session_id(), "chat-42");
  EXPECT_EQ(second.root().source()->str(), "api");
  EXPECT_GT(second.root().occurred_at_us(), 1234);
  EXPECT_EQ(events[1].first.size(), 32u);
  EXPECT_NE(events[1].first, own_id);

  auto third = decoded(events[2].second);
  EXPECT_EQ(previous_id(third), events[1].first);
  EXPECT_EQ(third.expected_version(), std::nullopt);
  EXPECT_EQ(third.root().source()->str(), "api");
  const auto* message = third.root().payload_as_Message();
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(message->role(), schema::Role::user);
  EXPECT_EQ(message->content()->Get(0)->text()->str(), "hi");
}

TEST(AppendBatch, ErrorsNameTheFieldAndAddNothing) {
  Batch batch("chat-42", "api", 1);
  auto bad_role = batch.add_json(R"({"payload_type":"Message","payload":{"role":"tool"}})");
  ASSERT_FALSE(bad_role.ok());
  EXPECT_EQ(bad_role.error().code, base::ErrorCode::invalid_argument);
  EXPECT_EQ(bad_role.error().message, "payload.tool_call_id: required when role is tool");

  auto other_session = batch.add_json(
      R"({"session_id":"chat-43","payload_type":"Message","payload":{"role":"user","content":[{"text":"a"}]}})");
  ASSERT_FALSE(other_session.ok());
  EXPECT_NE(other_session.error().message.find("session_id"), std::string::npos) << other_session.error().message;

  auto unknown = batch.add_json(R"({"payload_type":"Message","payload":{"bogus":1}})");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("payload.bogus"), std::string::npos) << unknown.error().message;

  auto bad_typed = batch.add(codec::Message{.role = codec::Role::tool});
  ASSERT_FALSE(bad_typed.ok());
  EXPECT_EQ(bad_typed.error().code, base::ErrorCode::invalid_argument);
  EXPECT_EQ(bad_typed.error().message, "payload.tool_call_id: required when role is tool");

  auto bad_id = batch.add(user("x"), "42");
  ASSERT_FALSE(bad_id.ok());
  EXPECT_NE(bad_id.error().message.find("event_id"), std::string::npos) << bad_id.error().message;

  EXPECT_EQ(batch.size(), 0u);
  // The failures left no trace: the next event is still the first, with the condition.
  ASSERT_TRUE(batch.add(user("ok")).ok());
  auto ev = decoded(batch.take()[0].second);
  EXPECT_EQ(ev.expected_version(), std::optional<std::uint64_t>(1));
  EXPECT_EQ(previous_id(ev), "");
}

TEST(AppendBatch, SessionIdMustBeValid) {
  Batch batch(std::string(300, 's'), "api", std::nullopt);
  auto added = batch.add(user("x"));
  ASSERT_FALSE(added.ok());
  EXPECT_EQ(added.error().message, "session_id: must be 1..256 bytes of UTF-8, got 300 bytes");
}

TEST(AppendIds, RandomEventIdsAreHexAndDistinct) {
  const auto a = random_event_id();
  const auto b = random_event_id();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos) << a;
  EXPECT_NE(a, b);
  EXPECT_TRUE(codec::parse_event_id(a).has_value());
}

TEST(AppendStatus, Names) {
  EXPECT_EQ(status_name(Status::pending), "pending");
  EXPECT_EQ(status_name(Status::appended), "appended");
  EXPECT_EQ(status_name(Status::accepted), "accepted");
  EXPECT_EQ(status_name(Status::duplicate), "duplicate");
  EXPECT_EQ(status_name(Status::rejected), "rejected");
  EXPECT_EQ(status_of(fold::Outcome::accepted), Status::accepted);
  EXPECT_EQ(status_of(fold::Outcome::duplicate), Status::duplicate);
  EXPECT_EQ(status_of(fold::Outcome::rejected), Status::rejected);
}

EventOutcome outcome(const std::string& id, Status status) {
  EventOutcome e;
  e.event_id = id;
  e.status = status;
  return e;
}

TEST(AppendOutcome, AllAccepted) {
  Outcome o;
  EXPECT_FALSE(o.all_accepted()) << "nothing folded is not all accepted";
  o.events = {outcome("a", Status::accepted), outcome("b", Status::accepted)};
  EXPECT_TRUE(o.all_accepted());
  EXPECT_EQ(o.first_rejected(), nullptr);

  o.events[1].status = Status::duplicate;
  EXPECT_FALSE(o.all_accepted());
  EXPECT_EQ(o.first_rejected(), nullptr);

  o.events[1].status = Status::accepted;
  o.kind = Outcome::Kind::appended;
  EXPECT_FALSE(o.all_accepted()) << "appended is not folded";
  o.kind = Outcome::Kind::timed_out;
  EXPECT_FALSE(o.all_accepted());
  o.kind = Outcome::Kind::unavailable;
  EXPECT_FALSE(o.all_accepted());
}

TEST(AppendOutcome, FirstRejected) {
  Outcome o;
  o.events = {outcome("a", Status::accepted), outcome("b", Status::rejected), outcome("c", Status::rejected)};
  o.events[1].reason = "expected version 3";
  const auto* rejected = o.first_rejected();
  ASSERT_NE(rejected, nullptr);
  EXPECT_EQ(rejected->event_id, "b");
  EXPECT_EQ(rejected->reason, "expected version 3");
  EXPECT_FALSE(o.all_accepted());
}

TEST(AppendSettle, ReturnsAtOnceWithNothingOpen) {
  SettleTracker tracker;
  const auto start = std::chrono::steady_clock::now();
  tracker.wait("chat-42", 10s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  // Another session's open append does not hold this one, nor does an append that ended.
  tracker.begin("other");
  tracker.begin("chat-42");
  tracker.end("chat-42");
  tracker.end("never-begun");  // ignored
  const auto again = std::chrono::steady_clock::now();
  tracker.wait("chat-42", 10s);
  EXPECT_LT(std::chrono::steady_clock::now() - again, 1s);
}

TEST(AppendSettle, WaitsForEveryEnd) {
  SettleTracker tracker;
  tracker.begin("chat-42");
  tracker.begin("chat-42");
  std::thread ender([&] {
    std::this_thread::sleep_for(50ms);
    tracker.end("chat-42");
    std::this_thread::sleep_for(150ms);
    tracker.end("chat-42");
  });
  const auto start = std::chrono::steady_clock::now();
  tracker.wait("chat-42", 10s);
  const auto waited = std::chrono::steady_clock::now() - start;
  ender.join();
  EXPECT_GE(waited, 200ms) << "returned before the second end";
  EXPECT_LT(waited, 5s) << "did not wake on the last end";
}

TEST(AppendSettle, TimesOutAfterPatience) {
  SettleTracker tracker;
  tracker.begin("chat-42");
  const auto start = std::chrono::steady_clock::now();
  tracker.wait("chat-42", 100ms);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 100ms);
  EXPECT_LT(waited, 5s);
}

}  // namespace
}  // namespace statefold::append
