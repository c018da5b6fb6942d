// Token budgets across a group (engine/cluster/group_usage): two members on a membership topic of the real broker,
// each behind a real HTTP server, ask each other for a key's tokens per partition with signed queries. Checked: the
// sum covers every owner's partitions and takes each partition's largest figure once; a member is asked again only
// after `refresh`; an answer that comes after the caller stopped waiting counts from the next call; one that stops
// answering counts at its last figures; queries for other keys or windows are their own; a member refuses queries
// that are unsigned, signed with another secret, too old, or malformed.
#include "engine/cluster/group_usage.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "engine/base/hex.h"
#include "engine/cluster/cluster.h"
#include "engine/http/http.h"

namespace statefold::cluster {
namespace {

using namespace std::chrono_literals;

constexpr char kSecret[] = "a group secret of thirty-two b..";

// One instance: its membership, its HTTP server answering peers, and the figures its store would give.
struct Instance {
  std::unique_ptr<Cluster> cluster;
  std::unique_ptr<http::Server> server;
  std::unique_ptr<GroupUsage> usage;
  std::atomic<GroupUsage*> answering{nullptr};
  std::atomic<int> answer_after_ms{0};  // a slow member
  std::mutex mutex;
  std::map<std::string, PartitionTokens> by_key;  // what `local` gives, per key name
  std::vector<UsageQuery> asked;                  // the queries `local` was given

  void set(const std::string& key, PartitionTokens tokens) {
    std::lock_guard lock(mutex);
    by_key[key] = std::move(tokens);
  }
  std::function<base::Result<PartitionTokens>(const UsageQuery&)> local() {
    return [this](const UsageQuery& q) -> base::Result<PartitionTokens> {
      std::lock_guard lock(mutex);
      asked.push_back(q);
      return by_key[q.key];
    };
  }
};

class GroupUsageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* brokers = std::getenv("STATEFOLD_BROKERS");
    ASSERT_TRUE(brokers != nullptr && *brokers != '\0')
        << "STATEFOLD_BROKERS is not set: this test needs a real Kafka broker (run tools/test.sh)";
    _brokers = brokers;
    _topic = "members-usage-" + base::random_hex(6);
  }

  void TearDown() override {
    for (auto& i : _instances) {
      if (i->cluster) i->cluster->leave();
    }
  }

  Instance& start(const std::string& name, std::vector<std::int32_t> owned,
                  std::chrono::milliseconds refresh = 60s) {
    auto instance = std::make_unique<Instance>();
    Instance& i = *instance;
    _instances.push_back(std::move(instance));
    Options o;
    o.brokers = _brokers;
    o.topic = _topic;
    o.group = _topic;
    o.events_topic = _topic + ".events";
    o.instance = name;
    auto cluster = Cluster::start(o);
    EXPECT_TRUE(cluster.ok()) << cluster.error().message;
    i.cluster = std::move(*cluster);
    http::ServerOptions server_options;
    server_options.port = 0;
    auto server = http::Server::start(server_options, [&i](http::Request request, http::Respond respond) {
      GroupUsage* usage = i.answering.load();
      if (usage == nullptr || request.path != kPeerUsagePath) return respond(http::error_response(404, "no"));
      std::this_thread::sleep_for(std::chrono::milliseconds(i.answer_after_ms.load()));
      respond(usage->answer(request));
    });
    EXPECT_TRUE(server.ok()) << server.error().message;
    i.server = std::move(*server);
    i.cluster->set_url("http://127.0.0.1:" + std::to_string(i.server->port()));
    i.usage = std::make_unique<GroupUsage>(
        *i.cluster, GroupUsageOptions{.secret = kSecret, .local = i.local(), .refresh = refresh, .timeout = 3s});
    i.answering = i.usage.get();
    i.cluster->announce(owned);
    return i;
  }

  // Waits until `i` sees every instance started so far with the partitions it announced.
  void wait_for_members(Instance& i) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      std::size_t with_partitions = 0;
      for (const Member& m : i.cluster->members()) with_partitions += m.partitions.empty() ? 0 : 1;
      if (with_partitions == _instances.size()) return;
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "the members never saw each other's announcements on " << _topic;
  }

  static UsageQuery query(std::string key = "app") {
    return {std::string("acme"), "2026-12-01", "2026-12-31", std::move(key)};
  }

  static std::uint64_t tokens(Instance& i, const UsageQuery& q = query()) {
    auto n = i.usage->tokens(q, 3s);
    EXPECT_TRUE(n.ok()) << n.error().message;
    return n.ok() ? *n : 0;
  }

  std::string _brokers;
  std::string _topic;
  std::vector<std::unique_ptr<Instance>> _instances;
};

TEST_F(GroupUsageTest, SumsEveryOwnersPartitionsTakingTheLargestFigureOfEach) {
  Instance& a = start("a", {0, 1});
  Instance& b = start("b", {2, 3});
  // a still holds an old figure for partition 2 (a standby's, or from before it moved): b's larger one counts.
  a.set("app", {{0, 10}, {1, 5}, {2, 1}});
  b.set("app", {{2, 7}, {3, 4}});
  wait_for_members(a);
  wait_for_members(b);
  EXPECT_EQ(tokens(a), 26u);
  EXPECT_EQ(tokens(b), 26u);
  // What b was asked is what a was asked, tenant and window included.
  std::lock_guard lock(b.mutex);
  ASSERT_FALSE(b.asked.empty());
  const UsageQuery& seen = b.asked.back();
  EXPECT_EQ(seen.tenant, std::optional<std::string>("acme"));
  EXPECT_EQ(seen.from_day, "2026-12-01");
  EXPECT_EQ(seen.through_day, "2026-12-31");
  EXPECT_EQ(seen.key, "app");
}

TEST_F(GroupUsageTest, AMemberIsAskedAgainOnlyAfterRefreshAndQueriesAreTheirOwn) {
  Instance& a = start("a", {0}, 400ms);
  Instance& b = start("b", {1}, 400ms);
  a.set("app", {{0, 10}});
  b.set("app", {{1, 7}});
  b.set("other", {{1, 100}});
  wait_for_members(a);
  EXPECT_EQ(tokens(a), 17u);
  b.set("app", {{1, 20}});
  EXPECT_EQ(tokens(a), 17u) << "asked again before the refresh interval";
  EXPECT_EQ(tokens(a, query("other")), 100u) << "another key is another query";
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(tokens(a), 30u);
}

TEST_F(GroupUsageTest, AnAnswerThatComesAfterTheWaitCountsFromTheNextCall) {
  Instance& a = start("a", {0});
  Instance& b = start("b", {1});
  a.set("app", {{0, 10}});
  b.set("app", {{1, 7}});
  b.answer_after_ms = 500;
  wait_for_members(a);
  // A report on an I/O thread does not wait: this store's figures only, b's answer still on its way.
  EXPECT_EQ(a.usage->tokens(query(), 0ms).value(), 10u);
  std::this_thread::sleep_for(800ms);
  EXPECT_EQ(a.usage->tokens(query(), 0ms).value(), 17u) << "b's late answer was kept";
  EXPECT_EQ(a.usage->unanswered(), 0u);
}

TEST_F(GroupUsageTest, AMemberThatStopsAnsweringCountsAtItsLastFigures) {
  Instance& a = start("a", {0}, 100ms);
  Instance& b = start("b", {1}, 100ms);
  a.set("app", {{0, 10}});
  b.set("app", {{1, 7}});
  wait_for_members(a);
  EXPECT_EQ(tokens(a), 17u);
  EXPECT_EQ(a.usage->unanswered(), 0u);
  b.server.reset();  // gone without leaving: its announcement still names partition 1
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(tokens(a), 17u);
  EXPECT_EQ(a.usage->unanswered(), 1u);
  // Not asked again at once: a silent member must not hold every budgeted turn for the timeout.
  EXPECT_EQ(tokens(a), 17u);
  EXPECT_EQ(a.usage->unanswered(), 1u);
}

TEST_F(GroupUsageTest, MembersWithAnotherSecretAreNotBelievedAndCountAsSilent) {
  Instance& a = start("a", {0});
  Instance& b = start("b", {1});
  a.set("app", {{0, 10}});
  b.set("app", {{1, 7}});
  wait_for_members(a);
  GroupUsage stranger(*a.cluster, GroupUsageOptions{.secret = "another secret, not the group's", .local = a.local()});
  EXPECT_EQ(stranger.tokens(query(), 3s).value(), 10u);
  EXPECT_EQ(stranger.unanswered(), 1u);
}

TEST_F(GroupUsageTest, AnswersOnlySignedRecentWellFormedQueries) {
  Instance& a = start("a", {0});
  a.set("app", {{0, 10}, {4, 3}});
  const std::string body = R"({"from":"2026-12-01","to":"2026-12-31","key":"app","tenant":"acme"})";
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  auto ask = [&](std::optional<std::string> signature, std::string with_body, std::string method = "POST") {
    http::Request r;
    r.method = std::move(method);
    r.path = r.raw_path = std::string(kPeerUsagePath);
    r.body = std::move(with_body);
    if (signature) r.headers.emplace_back("x-statefold-peer-signature", *signature);
    return a.usage->answer(r);
  };
  auto good = ask(sign_peer_query(kSecret, "b", now_ms, body), body);
  EXPECT_EQ(good.status, 200) << good.body;
  EXPECT_NE(good.body.find(R"("partitions":{"0":10,"4":3})"), std::string::npos) << good.body;
  EXPECT_NE(good.body.find(R"("instance":"a")"), std::string::npos) << good.body;

  auto unsigned_ = ask(std::nullopt, body);
  EXPECT_EQ(unsigned_.status, 401);
  EXPECT_NE(unsigned_.body.find("X-Statefold-Peer-Signature"), std::string::npos) << unsigned_.body;
  auto forged = ask(sign_peer_query("not the group's secret at all", "b", now_ms, body), body);
  EXPECT_EQ(forged.status, 401);
  EXPECT_NE(forged.body.find("--id-secret-file"), std::string::npos) << forged.body;
  auto altered = ask(sign_peer_query(kSecret, "b", now_ms, body), R"({"from":"2026-01-01","to":"2026-12-31","key":"app","tenant":"acme"})");
  EXPECT_EQ(altered.status, 401) << "the signature covers the body";
  auto stale = ask(sign_peer_query(kSecret, "b", now_ms - 120000, body), body);
  EXPECT_EQ(stale.status, 401);
  EXPECT_NE(stale.body.find("120 s"), std::string::npos) << stale.body;
  auto garbled = ask("b 12 zz", body);
  EXPECT_EQ(garbled.status, 401);
  const std::string not_a_query = R"({"from":"2026-12-01"})";
  auto malformed = ask(sign_peer_query(kSecret, "b", now_ms, not_a_query), not_a_query);
  EXPECT_EQ(malformed.status, 400);
  EXPECT_NE(malformed.body.find("to: expected a string"), std::string::npos) << malformed.body;
  EXPECT_EQ(ask(sign_peer_query(kSecret, "b", now_ms, body), body, "GET").status, 405);
}

}  // namespace
}  // namespace statefold::cluster
