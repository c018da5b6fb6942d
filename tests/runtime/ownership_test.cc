// The answer to a request for a session this instance does not fold, as the API, the gateway and engine/cluster
// give it, and the random session ids that land on a partition of this instance's.
#include "engine/runtime/ownership.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <string>

namespace statefold::runtime {
namespace {

namespace json = boost::json;

std::string header_value(const http::Response& response, std::string_view name) {
  for (const auto& [k, v] : response.headers) {
    if (k == name) return v;
  }
  return "";
}

// The body's error object, after checking the body is OpenAI's error shape naming `partition`.
json::object error_of(const http::Response& response, std::int32_t partition) {
  json::error_code ec;
  json::value v = json::parse(response.body, ec);
  EXPECT_FALSE(ec) << response.body;
  if (ec || !v.is_object() || !v.as_object().contains("error")) {
    ADD_FAILURE() << "not an OpenAI error: " << response.body;
    return {};
  }
  EXPECT_EQ(v.at("partition"), json::value(partition)) << response.body;
  const json::object& error = v.at("error").as_object();
  EXPECT_TRUE(error.at("param").is_null()) << response.body;
  return error;
}

TEST(Refusal, AnOwnedSessionIsNotRefused) {
  EXPECT_FALSE(refuse_unless_owned({Ownership::State::owned, 3}, "s-1", "/r"));
}

TEST(Refusal, ElsewhereIs421NotToBeRetried) {
  auto refused = refuse_unless_owned({Ownership::State::elsewhere, 7}, "away-1", "POST /v1/chat/completions");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 421);
  EXPECT_EQ(refused->route, "POST /v1/chat/completions");
  EXPECT_EQ(refused->content_type, "application/json");
  EXPECT_EQ(header_value(*refused, kPartitionHeader), "7");
  EXPECT_EQ(header_value(*refused, "x-should-retry"), "false");
  EXPECT_EQ(header_value(*refused, "Retry-After"), "");
  const json::object error = error_of(*refused, 7);
  EXPECT_EQ(error.at("type"), "invalid_request_error");
  EXPECT_EQ(error.at("code"), "misdirected_request");
  EXPECT_EQ(error.at("message").as_string(), not_here_message({Ownership::State::elsewhere, 7}, "away-1"));
}

// Refused before anything was done: Retry-After invites the retry, and x-should-retry must not forbid OpenAI's SDKs
// to make it (the gateway once said false on every error).
TEST(Refusal, MovingAndUnassignedAre503ToBeRetried) {
  for (const Ownership owner : {Ownership{Ownership::State::moving, 2}, Ownership{Ownership::State::unassigned, -1}}) {
    auto refused = refuse_unless_owned(owner, "s-2", "/r");
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 503);
    EXPECT_EQ(header_value(*refused, "Retry-After"), "1");
    EXPECT_EQ(header_value(*refused, "x-should-retry"), "true");
    EXPECT_EQ(header_value(*refused, kPartitionHeader), std::to_string(owner.partition));
    const json::object error = error_of(*refused, owner.partition);
    EXPECT_EQ(error.at("type"), "server_error");
    EXPECT_EQ(error.at("message").as_string(), not_here_message(owner, "s-2"));
    if (owner.state == Ownership::State::moving) {
      EXPECT_EQ(error.at("code"), "partition_moving");
    } else {
      EXPECT_TRUE(error.at("code").is_null());
    }
  }
}

TEST(Refusal, AMessageOfTheCallersAndInvalidUtf8StayValidJson) {
  auto refused = refusal({Ownership::State::moving, 4}, "partition 4 has no owner right now; retry shortly");
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(error_of(refused, 4).at("message"), "partition 4 has no owner right now; retry shortly");
  auto odd = refuse_unless_owned({Ownership::State::elsewhere, 1}, "bad-\xff\"id", "/r");
  ASSERT_TRUE(odd);
  const std::string message(error_of(*odd, 1).at("message").as_string());
  EXPECT_NE(message.find("bad-\xEF\xBF\xBD\"id"), std::string::npos) << message;
}

// Four partitions by the id's last character; this instance folds partition 2 only.
Ownership by_last_digit(std::string_view id) {
  const std::int32_t partition = (id.back() - '0') & 3;
  return {partition == 2 ? Ownership::State::owned : Ownership::State::elsewhere, partition};
}

TEST(RandomSessionId, LandsOnTheGivenPartition) {
  for (int i = 0; i < 20; ++i) {
    const std::string id = random_session_id("parent~", 4, by_last_digit, 3);
    EXPECT_EQ(id.size(), 7u + 8u) << id;
    EXPECT_EQ(id.rfind("parent~", 0), 0u) << id;
    EXPECT_EQ(by_last_digit(id).partition, 3) << id;
  }
}

TEST(RandomSessionId, ElseOnAnyPartitionFoldedHere) {
  for (int i = 0; i < 20; ++i) {
    const std::string id = random_session_id("resp-", 12, by_last_digit);
    EXPECT_EQ(id.size(), 5u + 24u) << id;
    EXPECT_EQ(by_last_digit(id).state, Ownership::State::owned) << id;
  }
  // Folding none, it gives up after a few draws and returns an id all the same (forwarded to its owner).
  int draws = 0;
  const std::string id = random_session_id("resp-", 12, [&](std::string_view s) {
    ++draws;
    return Ownership{Ownership::State::elsewhere, by_last_digit(s).partition};
  });
  EXPECT_EQ(id.size(), 5u + 24u);
  EXPECT_EQ(draws, 64);
}

}  // namespace
}  // namespace statefold::runtime
