// The membership record every instance writes and reads (engine/cluster): its JSON form round-trips, and a record
// that is not one is refused with a message naming the instance, never read as an instance with no partitions.
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

}  // namespace
}  // namespace statefold::cluster
