// The membership record every instance writes and reads (engine/cluster): its JSON form round-trips, and a record
// that is not one is refused with a message naming the instance, never read as an instance with no partitions. The
// standby plan every instance derives from the members.
#include "engine/cluster/cluster.h"

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

}  // namespace
}  // namespace statefold::cluster
