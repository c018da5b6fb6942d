// The membership record every instance writes and reads (engine/cluster): its JSON form round-trips, and a record
// that is not one is refused with a message naming the instance, never read as an instance with no partitions. The
// standby plan every instance derives from the members, and whom a query over the group asks. How a group's listing
// pages and usage reports merge, and what signed peer queries believe.
#include "engine/cluster/cluster.h"
#include "engine/cluster/group_sessions.h"
#include "engine/cluster/group_usage.h"
#include "engine/cluster/group_usage_rows.h"
#include "engine/cluster/peer_signing.h"

#include <gtest/gtest.h>

namespace statefold::cluster {
namespace {

TEST(Announcement, RoundTripsThroughItsJsonForm) {
  Member m;
  m.instance = "prod-0011223344556677";
  m.group = "prod";
  m.events_topic = "statefold.events";
  m.url = "http://10.0.0.2:8080";
  m.partitions = {0, 3, 7};
  const std::string value = encode_announcement(m);
  auto back = decode_announcement(m.instance, value);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->instance, m.instance);
  EXPECT_EQ(back->group, "prod");
  EXPECT_EQ(back->events_topic, "statefold.events");
  EXPECT_EQ(back->url, m.url);
  EXPECT_EQ(back->partitions, m.partitions);
  EXPECT_FALSE(back->left);

  m.left = true;
  m.partitions.clear();
  back = decode_announcement(m.instance, encode_announcement(m));
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->left);
  EXPECT_TRUE(back->partitions.empty());
}

TEST(Announcement, AnythingElseIsRefusedNamingTheInstance) {
  for (const char* bad : {"not json", "[1,2]", R"({"url":"http://h:1","partitions":["0"]})"}) {
    auto r = decode_announcement("i-1", bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message.find("i-1"), std::string::npos) << r.error().message;
  }
}

Member member(std::string instance, std::vector<std::int32_t> partitions, std::int64_t offset, bool left = false) {
  Member m;
  m.instance = std::move(instance);
  m.partitions = std::move(partitions);
  m.offset = offset;
  m.left = left;
  return m;
}

TEST(Standbys, FollowTheOwnerInInstanceOrderAndWrapAround) {
  const std::vector<Member> members = {member("c", {4, 5}, 3), member("a", {0, 1}, 1), member("b", {2, 3}, 2)};
  // One replica: a's partitions to b, b's to c, c's to a.
  EXPECT_EQ(standby_partitions(members, "a", 1), (std::vector<std::int32_t>{4, 5}));
  EXPECT_EQ(standby_partitions(members, "b", 1), (std::vector<std::int32_t>{0, 1}));
  EXPECT_EQ(standby_partitions(members, "c", 1), (std::vector<std::int32_t>{2, 3}));
  // Two (every other instance): each keeps a standby of every partition it does not own; more cannot be had.
  EXPECT_EQ(standby_partitions(members, "a", 2), (std::vector<std::int32_t>{2, 3, 4, 5}));
  EXPECT_EQ(standby_partitions(members, "a", 9), (std::vector<std::int32_t>{2, 3, 4, 5}));
  EXPECT_TRUE(standby_partitions(members, "a", 0).empty());
}

TEST(Standbys, TheLatestClaimOwnsAPartitionAndInstancesThatLeftAreSkipped) {
  // b claimed 1 after a did; c left, so a's successor is b and b's is a.
  const std::vector<Member> members = {member("a", {0, 1}, 1), member("b", {1, 2}, 5), member("c", {}, 6, true)};
  EXPECT_EQ(standby_partitions(members, "a", 1), (std::vector<std::int32_t>{1, 2}));
  EXPECT_EQ(standby_partitions(members, "b", 1), (std::vector<std::int32_t>{0}));
  EXPECT_TRUE(standby_partitions(members, "c", 1).empty());
  EXPECT_TRUE(standby_partitions({member("a", {0}, 1)}, "a", 1).empty()) << "alone, nobody to stand by";
}

// A query over the group asks each partition of the one that owns it now, and no partition twice.
TEST(PartitionSplit, EachPartitionOnceToItsLatestClaimantAndTheUnclaimedApart) {
  // b claimed 1 after a did; c left; nobody claims 4 or 5.
  const std::vector<Member> members = {member("a", {0, 1}, 1), member("b", {1, 2}, 5), member("c", {3}, 6, true)};
  const PartitionSplit split = split_partitions(members, "a", 6);
  EXPECT_EQ(split.mine, (std::vector<std::int32_t>{0}));
  EXPECT_EQ(split.unowned, (std::vector<std::int32_t>{3, 4, 5}));
  ASSERT_EQ(split.theirs.size(), 1u);
  EXPECT_EQ(split.theirs.at("b").first.instance, "b");
  EXPECT_EQ(split.theirs.at("b").second, (std::vector<std::int32_t>{1, 2}));
  EXPECT_TRUE(split_partitions(members, "b", 3).unowned.empty());
  EXPECT_EQ(split_partitions(members, "b", 3).mine, (std::vector<std::int32_t>{1, 2}));
}

// A usage report in a group is each owner's rows added up (GroupUsageRows): the same tenant, day, key and model
// from two partitions is one row.
TEST(UsageReport, RowsOfTheSameTenantDayKeyAndModelAddUpInOrder) {
  UsageRows a;
  a.rows = {{"acme", "2026-12-01", "app", "gpt-4o", 2, 1, 100, 20, 10},
            {"acme", "2026-12-02", "app", "gpt-4o", 1, 0, 5, 1, 0}};
  UsageRows b;
  b.rows = {{"acme", "2026-12-01", "app", "echo", 1, 0, 7, 7, 0},
            {"acme", "2026-12-01", "app", "gpt-4o", 3, 0, 300, 30, 0},
            {"beta", "2026-11-30", "ops", "gpt-4o", 1, 0, 1, 1, 1}};
  b.not_here = {4, 2};
  UsageRows c;
  c.not_here = {2};
  const UsageRows merged = merge_usage_rows({a, b, c});
  ASSERT_EQ(merged.rows.size(), 4u);
  auto row = [&merged](std::size_t i) {
    const UsageRow& r = merged.rows[i];
    return r.tenant + " " + r.day + " " + r.key + " " + r.model + " " + std::to_string(r.calls) + " " +
           std::to_string(r.failed) + " " + std::to_string(r.input_tokens) + " " + std::to_string(r.output_tokens) +
           " " + std::to_string(r.cached_tokens);
  };
  EXPECT_EQ(row(0), "acme 2026-12-01 app echo 1 0 7 7 0");
  EXPECT_EQ(row(1), "acme 2026-12-01 app gpt-4o 5 1 400 50 10");
  EXPECT_EQ(row(2), "acme 2026-12-02 app gpt-4o 1 0 5 1 0");
  EXPECT_EQ(row(3), "beta 2026-11-30 ops gpt-4o 1 0 1 1 1");
  EXPECT_EQ(merged.not_here, (std::vector<std::int32_t>{2, 4}));
  EXPECT_TRUE(merge_usage_rows({}).rows.empty());
}

// A listing in a group is each owner's page merged (GroupSessions): the pages' first `limit` ids in order.
namespace {
cluster::SessionsPage page(std::vector<std::pair<std::string, std::uint64_t>> rows, bool more = false) {
  cluster::SessionsPage p;
  for (auto& [id, version] : rows) p.sessions.push_back({id, version, "open"});
  p.more = more;
  return p;
}
std::vector<std::string> ids(const cluster::SessionsPage& p) {
  std::vector<std::string> out;
  for (const auto& r : p.sessions) out.push_back(r.session_id);
  return out;
}
}  // namespace

TEST(SessionListing, PagesMergeInIdOrderAndTheFirstLimitAreKept) {
  // Each instance gave its first 2 after the cursor; the group's first 2 are among them.
  auto merged = cluster::merge_pages({page({{"s1", 1}, {"s3", 1}}, true), page({{"s2", 1}})}, 2);
  EXPECT_EQ(ids(merged), (std::vector<std::string>{"s1", "s2"}));
  EXPECT_TRUE(merged.more);
  EXPECT_EQ(cluster::sessions_json(merged),
            R"({"sessions":[{"session_id":"s1","version":1,"status":"open"},)"
            R"({"session_id":"s2","version":1,"status":"open"}],"next_cursor":"s2"})");
  // Short pages with nothing after them: the last page.
  merged = cluster::merge_pages({page({{"a1", 1}}), page({{"b2", 1}}), page({})}, 5);
  EXPECT_EQ(ids(merged), (std::vector<std::string>{"a1", "b2"}));
  EXPECT_FALSE(merged.more);
  EXPECT_EQ(cluster::sessions_json(merged).substr(cluster::sessions_json(merged).find("next_cursor")),
            R"(next_cursor":null})");
  // An instance whose page was full has more after its last: the merged page says so though it is not full.
  merged = cluster::merge_pages({page({{"a1", 1}, {"a2", 1}}, true)}, 2);
  EXPECT_TRUE(merged.more);
}

TEST(SessionListing, ASessionInTwoStoresIsListedOnceAtItsHighestVersion) {
  // A partition moving: its old and new owner both hold the session, the new one further on.
  auto merged = cluster::merge_pages({page({{"s", 3}, {"t", 1}}), page({{"s", 5}})}, 10);
  ASSERT_EQ(merged.sessions.size(), 2u);
  EXPECT_EQ(merged.sessions[0].session_id, "s");
  EXPECT_EQ(merged.sessions[0].version, 5u);
  merged = cluster::merge_pages({page({{"s", 5}}), page({{"s", 3}})}, 10);
  EXPECT_EQ(merged.sessions[0].version, 5u);
}

TEST(SessionListing, PartitionsThatCouldNotBeListedAreKeptInOrderOnce) {
  cluster::SessionsPage a = page({{"a", 1}});
  a.not_here = {3, 1};
  cluster::SessionsPage b = page({});
  b.not_here = {1};
  EXPECT_EQ(cluster::merge_pages({a, b}, 10).not_here, (std::vector<std::int32_t>{1, 3}));
}

// Members sign what they ask each other for one purpose: a query signed for usage is not a listing's.
TEST(PeerSigning, OnlyTheGroupsSecretAndTheSamePurposeAreBelieved) {
  const cluster::PeerSigner sessions("the group's secret", "a", "sessions", std::chrono::seconds(60));
  http::Request request = sessions.request(cluster::kPeerSessionsPath, R"({"limit":1})");
  EXPECT_EQ(request.method, "POST");
  EXPECT_FALSE(sessions.refusal(request).has_value());
  const cluster::PeerSigner usage("the group's secret", "a", "usage", std::chrono::seconds(60));
  ASSERT_TRUE(usage.refusal(request).has_value());
  EXPECT_EQ(usage.refusal(request)->first, 401);
  const cluster::PeerSigner usage_rows("the group's secret", "a", "usage-rows", std::chrono::seconds(60));
  EXPECT_TRUE(usage_rows.refusal(request).has_value());
  const cluster::PeerSigner stranger("another secret", "a", "sessions", std::chrono::seconds(60));
  ASSERT_TRUE(stranger.refusal(request).has_value());
  EXPECT_NE(stranger.refusal(request)->second.find("--id-secret-file"), std::string::npos);
  // The body is signed: changing it is refused.
  request.body = R"({"limit":2})";
  EXPECT_TRUE(sessions.refusal(request).has_value());
  // Too old: refused as a replay.
  http::Request old = sessions.request(cluster::kPeerSessionsPath, "{}");
  old.headers.back().second = sessions.sign("{}", cluster::unix_ms_now() - 120000);
  ASSERT_TRUE(sessions.refusal(old).has_value());
  EXPECT_NE(sessions.refusal(old)->second.find("clock"), std::string::npos);
  // And usage's signatures are what sign_peer_query made before (members of an older build agree).
  EXPECT_EQ(cluster::PeerSigner("s", "a", "usage", std::chrono::seconds(60)).sign("{}", 1000),
            cluster::sign_peer_query("s", "a", 1000, "{}"));
}

}  // namespace
}  // namespace statefold::cluster
