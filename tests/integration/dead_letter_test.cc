// Bad records never block a partition (spec section 3.6): each undecodable or invalid record goes to the dead-letter
// topic with its original bytes, its source topic, partition and offset and a reason that says what is wrong, is
// counted, and the good events around it, before and after, on the same partition, are folded.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/base/hex.h"
#include "engine/base/sha256.h"
#include "support/cluster.h"

namespace statefold::testing {
namespace {

using std::chrono::minutes;
using namespace std::string_literals;

std::string id_hex(std::uint64_t n) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%032llx", static_cast<unsigned long long>(n));
  return buf;
}

std::string envelope(std::uint64_t id, const std::string& session, const std::string& payload_type,
                     const std::string& payload) {
  return R"({"event_id":")" + id_hex(id) + R"(","session_id":")" + session + R"(","occurred_at_us":)" +
         std::to_string(1767225600000000ull + id) + R"(,"payload_type":")" + payload_type + R"(","payload":)" +
         payload + "}";
}

std::string open_json(std::uint64_t id, const std::string& session) {
  return envelope(id, session, "SessionOpened", R"({"model":"echo-1","system_prompt":"Be brief."})");
}

std::string message_json(std::uint64_t id, const std::string& session, const std::string& text) {
  return envelope(id, session, "Message", R"({"role":"user","content":[{"text":")" + text + R"("}]})");
}

std::string canonical(const std::string& json) {
  auto bytes = codec::json_to_flatbuffers(json);
  if (!bytes) {
    ADD_FAILURE() << bytes.error().message << " in " << json;
    return {};
  }
  return std::string(bytes->begin(), bytes->end());
}

const std::vector<log::Header> kJson = {{"content-type", "application/json"}};

struct Sent {
  RawRecord record;
  bool good = true;
  std::string what;                       // for messages
  // A bad record's reason must contain each of these (any case); "x|y" accepts either.
  std::vector<std::string> reason_words;
  std::string good_json;                  // a good record's JSON form, for the reference fold
};

bool contains_icase(std::string_view text, std::string_view words) {
  auto lower = [](std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  const std::string haystack = lower(text);
  for (std::size_t start = 0;;) {
    const std::size_t bar = words.find('|', start);
    if (haystack.find(lower(words.substr(start, bar - start))) != std::string::npos) return true;
    if (bar == std::string_view::npos) return false;
    start = bar + 1;
  }
}

class DeadLetter : public ClusterTest {};

TEST_F(DeadLetter, BadRecordsGoToTheDeadLetterTopicAndThePartitionMovesOn) {
  const std::string topic = unique_name("events");
  const std::string dlq = topic + ".dlq";
  ASSERT_TRUE(log::ensure_topic(brokers(), topic, 2).ok());
  const std::string a = "dl-a";  // everything on partition 0
  const std::string b = "dl-b";  // partition 1

  auto good_fb = [&](const std::string& json, const std::string& session, std::int32_t partition) {
    return Sent{{session, canonical(json), {}, partition}, true, "good", {}, json};
  };
  auto good_json = [&](const std::string& json, const std::string& session, std::int32_t partition) {
    return Sent{{session, json, kJson, partition}, true, "good JSON", {}, json};
  };
  auto bad = [&](RawRecord record, std::string what, std::vector<std::string> words) {
    return Sent{std::move(record), false, std::move(what), std::move(words), {}};
  };

  const std::string half = canonical(message_json(13, a, "cut in half"));
  std::string unknown_field = message_json(15, a, "has a mood");
  unknown_field.insert(unknown_field.find(R"("role")"), R"("mood":"cheerful",)");
  std::vector<Sent> sent = {
      good_fb(open_json(10, a), a, 0),
      bad({a, "\x00\xff garbage, not an event \x01\x02\x03\x04 at all"s, {}, 0}, "garbage bytes",
          {"flatbuffers"}),
      good_fb(message_json(12, a, "after the garbage"), a, 0),
      bad({a, half.substr(0, half.size() / 2), {}, 0}, "a truncated FlatBuffers event",
          {"truncated|out of bounds|malformed"}),
      good_json(message_json(14, a, "as JSON"), a, 0),
      bad({a, unknown_field, kJson, 0}, "JSON with a field the schema does not have", {"unknown field", "mood"}),
      good_fb(message_json(16, a, "after the unknown field"), a, 0),
      bad({a, message_json(17, "dl-someone-else", "wrong key"), kJson, 0}, "JSON whose session_id is not the key",
          {"key", "session_id", "dl-someone-else"}),
      good_fb(message_json(18, a, "after the wrong key"), a, 0),
      bad({a, "", {}, 0}, "an empty value", {"0 bytes"}),
      good_fb(message_json(20, a, "after all the bad ones"), a, 0),
      good_fb(open_json(30, b), b, 1),
      bad({b, "{\"not\":\"flatbuffers\"}", {}, 1}, "JSON without its content-type", {"flatbuffers"}),
      good_fb(message_json(32, b, "b after its bad one"), b, 1),
      // Valid events away from their session's home partition (a producer with a CRC32 partitioner): refused the
      // same way live and in a replay, so the session's order never depends on which partition is read first.
      bad({a, canonical(message_json(40, a, "a on b's partition")), {}, 1}, "a valid event on another partition",
          {"belongs on partition 0", "murmur2"}),
      bad({b, canonical(message_json(41, b, "b on a's partition")), {}, 0}, "a valid event on another partition",
          {"belongs on partition 1", "murmur2"}),
  };
  std::vector<RawRecord> records;
  std::vector<std::string> good_lines;
  std::size_t bad_count = 0;
  for (const auto& s : sent) {
    records.push_back(s.record);
    if (s.good) {
      good_lines.push_back(s.good_json);
    } else {
      ++bad_count;
    }
  }
  const auto deliveries = produce(brokers(), topic, records);
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(deliveries.size(), sent.size());

  ReferenceFold reference;
  reference.fold(good_lines);

  const std::string data = data_dir("store");
  Serve& serve = start_serve(serve_options(topic, data));
  auto summary =
      wait_for_summary(data, [&](const Summary& s) { return s.total() >= sent.size(); }, minutes(3), &serve);
  ASSERT_TRUE(summary);
  const ExitStatus stopped = serve.stop();
  EXPECT_TRUE(stopped.exited_with(0)) << stopped.describe();

  summary = inspect_summary(data);
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->dlq_records, bad_count);
  EXPECT_EQ(summary->events_applied, good_lines.size());
  EXPECT_EQ(summary->duplicates + summary->rejections, 0u);
  EXPECT_EQ(summary->sessions, 2u);
  EXPECT_EQ(summary->store_hash, reference.store_hash()) << "the good events fold as if the bad ones were not there";
  // Both partitions moved past their last record, bad ones included.
  for (const auto& d : deliveries) EXPECT_GE(summary->offsets[d.partition], d.offset + 1);

  // The good event after every bad one on partition 0 was folded: the partition did not stop.
  auto session_a = inspect_session(data, a, 100);
  ASSERT_TRUE(session_a);
  EXPECT_EQ(*session_a, reference.session_json(a, 100).value_or(""));
  const auto parsed = boost::json::parse(*session_a).as_object();
  EXPECT_EQ(parsed.at("version").to_number<std::uint64_t>(), 6u);
  const auto& messages = parsed.at("messages").as_array();
  ASSERT_FALSE(messages.empty());
  EXPECT_EQ(messages.back().as_object().at("content").as_string(), "after all the bad ones");
  EXPECT_EQ(inspect_session(data, b, 100).value_or(""), reference.session_json(b, 100).value_or(""));

  // The dead-letter topic: each bad record once, with its bytes, key, source position and a reason.
  const auto dead = consume_all(brokers(), dlq);
  EXPECT_EQ(dead.size(), bad_count);
  for (std::size_t i = 0; i < sent.size(); ++i) {
    const Sent& s = sent[i];
    const log::Delivery& d = deliveries[i];
    const ConsumedRecord* found = nullptr;
    int copies = 0;
    for (const auto& r : dead) {
      if (r.header("statefold-source-partition") == std::to_string(d.partition) &&
          r.header("statefold-source-offset") == std::to_string(d.offset)) {
        found = &r;
        ++copies;
      }
    }
    SCOPED_TRACE(s.what + " at " + std::to_string(d.partition) + "@" + std::to_string(d.offset));
    if (s.good) {
      EXPECT_EQ(copies, 0) << "a good record was dead-lettered: " << found->header("statefold-reason").value_or("");
      continue;
    }
    ASSERT_EQ(copies, 1);
    EXPECT_EQ(found->value.value_or(""), s.record.value) << "the original bytes, unchanged";
    EXPECT_EQ(found->key, s.record.key);
    EXPECT_EQ(found->header("statefold-source-topic"), topic);
    const std::string reason = found->header("statefold-reason").value_or("");
    for (const auto& word : s.reason_words) {
      EXPECT_TRUE(contains_icase(reason, word)) << "reason \"" << reason << "\" does not mention \"" << word << "\"";
    }
    for (const auto& h : s.record.headers) {
      EXPECT_EQ(found->header(h.name), h.value) << "header " << h.name << " of the original record";
    }
    std::printf("dead_letter_test: %-45s -> %s\n", s.what.c_str(), reason.c_str());
  }
}

// Issue 9, defect 1: records the broker took but that cannot be sent again whole (5 MB of zeros that arrived
// zstd-compressed, 1,040,000 random bytes just under the broker's limit) are dead-lettered cut, with their size
// and SHA-256, and the partition moves on. Before, serve exited on "Message size too large" at every restart.
TEST_F(DeadLetter, OversizedRecordsAreDeadLetteredCutAndThePartitionMovesOn) {
  const std::string topic = unique_name("events");
  const std::string dlq = topic + ".dlq";
  ASSERT_TRUE(log::ensure_topic(brokers(), topic, 1).ok());
  const std::string s = "dl-big";
  std::string zeros(5 * 1000 * 1000, '\0');
  std::string noise(1040000, '\0');
  std::uint64_t x = 88172645463325252ull;
  for (char& c : noise) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x & 0xff);
  }
  const std::vector<RawRecord> records = {{s, canonical(open_json(50, s)), {}, std::nullopt},
                                          {s, zeros, {}, std::nullopt},
                                          {s, noise, {}, std::nullopt},
                                          {s, canonical(message_json(53, s, "after the big ones")), {}, std::nullopt}};
  const auto deliveries =
      produce(brokers(), topic, records, {{"compression.type", "zstd"}, {"message.max.bytes", "10000000"}});
  ASSERT_FALSE(HasFailure());

  const std::string data = data_dir("store");
  Serve& serve = start_serve(serve_options(topic, data));
  auto summary = wait_for_summary(data, [&](const Summary& now) { return now.total() >= records.size(); }, minutes(3), &serve);
  ASSERT_TRUE(summary) << tail(serve.log_path());
  EXPECT_TRUE(serve.running()) << "serve stopped on an oversized record:\n" << tail(serve.log_path());
  EXPECT_EQ(summary->dlq_records, 2u);
  EXPECT_EQ(summary->events_applied, 2u) << "the event after the big ones was folded";
  EXPECT_TRUE(serve.stop().exited_with(0));

  const auto dead = consume_all(brokers(), dlq);
  ASSERT_EQ(dead.size(), 2u);
  for (std::size_t i = 0; i < dead.size(); ++i) {
    const std::string& original = records[i + 1].value;
    const auto& d = dead[i];
    EXPECT_EQ(d.header("statefold-source-offset"), std::to_string(deliveries[i + 1].offset));
    EXPECT_EQ(d.header("statefold-original-size"), std::to_string(original.size()));
    EXPECT_EQ(d.header("statefold-original-sha256"), base::to_hex(base::sha256(original)));
    ASSERT_TRUE(d.value.has_value());
    EXPECT_LT(d.value->size(), original.size());
    EXPECT_EQ(*d.value, original.substr(0, d.value->size())) << "the first bytes of the original";
    EXPECT_FALSE(d.header("statefold-reason").value_or("").empty());
  }
}

}  // namespace
}  // namespace statefold::testing
