// The sessions HTTP API of `statefold serve` (docs/api.md, spec sections 3, 4 and 7) against a real broker, through a
// real HTTP client: appends answer once folded (read-your-writes) with versions and offsets, optimistic concurrency
// under contention, idempotency keys, paginated history and listing, validation that names the field and changes
// nothing, /metrics that promtool accepts, health and readiness, 504 for an append the engine cannot fold in time,
// the ownership answer (421), an instance that keeps its partitions under a sustained stream, and SIGTERM in the
// middle of a stream of appends losing none that were answered 200.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "api/http_client.h"
#include "engine/base/hex.h"
#include "engine/log/log.h"
#include "engine/store/store.h"
#include "support/cluster.h"

namespace statefold::testing {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

// ------------------------------------------------------------------------------------------------ helpers

std::string events_path(const std::string& session) { return "/v1/sessions/" + session + "/events"; }
std::string session_path(const std::string& session) { return "/v1/sessions/" + session; }

// Event bodies as the API takes them: without session_id, event_id, occurred_at_us and source.
std::string opened_body(const std::string& model = "echo-1") {
  return json::serialize(json::object{{"payload_type", "SessionOpened"},
                                      {"payload", json::object{{"model", model}, {"system_prompt", "Be brief."}}}});
}

json::object message_object(const std::string& role, const std::string& text) {
  json::object payload{{"role", role}, {"content", json::array{json::object{{"text", text}}}}};
  if (role == "tool") payload["tool_call_id"] = "call_1";
  return json::object{{"payload_type", "Message"}, {"payload", std::move(payload)}};
}

std::string message_body(const std::string& role, const std::string& text) {
  return json::serialize(message_object(role, text));
}

std::string hex_id(std::uint64_t hi, std::uint64_t lo) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(hi),
                static_cast<unsigned long long>(lo));
  return buf;
}

// Event ids compare as 16 bytes: case and UUID hyphens do not matter.
std::string normal_id(std::string_view id) {
  std::string out;
  for (char c : id) {
    if (c == '-') continue;
    out.push_back(c >= 'A' && c <= 'F' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  return out;
}

std::string str(const json::value& v) { return v.is_string() ? std::string(v.as_string()) : json::serialize(v); }
std::uint64_t u64(const json::value& v) { return v.to_number<std::uint64_t>(); }
std::int64_t i64(const json::value& v) { return v.to_number<std::int64_t>(); }

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

// The value of the first sample line of `text` that starts with `series` (name and labels exactly as rendered).
std::optional<double> sample(const std::string& text, const std::string& series) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + pos, end - pos);
    if (line.starts_with(series) && line.size() > series.size() && line[series.size()] == ' ') {
      return std::stod(std::string(line.substr(series.size() + 1)));
    }
    pos = end + 1;
  }
  return std::nullopt;
}

// The sum of every sample of `name` whose labels contain all of `labels` (each `key="value"`).
double sum_samples(const std::string& text, const std::string& name, const std::vector<std::string>& labels) {
  double total = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.starts_with(name + "{")) continue;
    const std::size_t close = line.find("} ");
    if (close == std::string::npos) continue;
    const std::string label_text = line.substr(name.size(), close - name.size() + 1);
    if (std::all_of(labels.begin(), labels.end(), [&](const std::string& l) { return contains(label_text, l); })) {
      total += std::stod(line.substr(close + 2));
    }
  }
  return total;
}

// A Kafka transaction left open on purpose: one JSON record keyed `key`, produced and flushed but neither committed
// nor aborted, so read_committed consumers (the engine) stop at it on its partition until abort(). librdkafka
// directly: statefold's producer fixes transaction.timeout.ms at 10 s, and the broker must not end it first.
class OpenTransaction {
 public:
  OpenTransaction(const std::string& brokers, const std::string& topic, const std::string& key,
                  const std::string& value) {
    char text[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    for (const auto& [name, v] : std::vector<std::pair<std::string, std::string>>{
             {"bootstrap.servers", brokers},
             {"transactional.id", unique_name("open-tx")},
             {"transaction.timeout.ms", "120000"},
             {"partitioner", "murmur2_random"},
             {"log_level", "3"}}) {
      if (rd_kafka_conf_set(conf, name.c_str(), v.c_str(), text, sizeof text) != RD_KAFKA_CONF_OK) {
        error = name + ": " + text;
        rd_kafka_conf_destroy(conf);
        return;
      }
    }
    _rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, text, sizeof text);
    if (_rk == nullptr) {
      error = text;
      return;
    }
    if (!check(rd_kafka_init_transactions(_rk, 60000)) || !check(rd_kafka_begin_transaction(_rk))) return;
    rd_kafka_headers_t* headers = rd_kafka_headers_new(1);
    rd_kafka_header_add(headers, "content-type", -1, "application/json", -1);
    rd_kafka_vu_t vus[5];
    vus[0].vtype = RD_KAFKA_VTYPE_TOPIC;
    vus[0].u.cstr = topic.c_str();
    vus[1].vtype = RD_KAFKA_VTYPE_KEY;
    vus[1].u.mem.ptr = const_cast<char*>(key.data());
    vus[1].u.mem.size = key.size();
    vus[2].vtype = RD_KAFKA_VTYPE_VALUE;
    vus[2].u.mem.ptr = const_cast<char*>(value.data());
    vus[2].u.mem.size = value.size();
    vus[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vus[3].u.i = RD_KAFKA_MSG_F_COPY;
    vus[4].vtype = RD_KAFKA_VTYPE_HEADERS;
    vus[4].u.headers = headers;
    if (rd_kafka_error_t* e = rd_kafka_produceva(_rk, vus, 5)) {
      rd_kafka_headers_destroy(headers);
      check(e);
      return;
    }
    if (rd_kafka_flush(_rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) error = "flush timed out";
  }
  OpenTransaction(const OpenTransaction&) = delete;
  OpenTransaction& operator=(const OpenTransaction&) = delete;
  ~OpenTransaction() {
    if (_rk == nullptr) return;
    if (!_ended) abort();
    rd_kafka_destroy(_rk);
  }

  bool abort() {
    _ended = true;
    return check(rd_kafka_abort_transaction(_rk, 60000));
  }

  std::string error;

 private:
  bool check(rd_kafka_error_t* e) {
    if (e == nullptr) return true;
    error = rd_kafka_error_string(e);
    rd_kafka_error_destroy(e);
    return false;
  }

  rd_kafka_t* _rk = nullptr;
  bool _ended = false;
};

// One `statefold serve` with its HTTP API, and a client on it.
struct Instance {
  Serve* serve = nullptr;
  std::uint16_t port = 0;
  std::string topic;
  std::string group;
  std::string data_dir;
  std::unique_ptr<HttpClient> client;

  HttpClient& http() { return *client; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
};

class ApiTest : public ClusterTest {
 protected:
  // Starts serve on `topic` with its HTTP API on a free port and waits for /readyz to answer 200 (partitions assigned
  // and caught up). `group` empty: the topic's own.
  Instance start_api(const std::string& topic, const std::string& data, std::vector<std::string> extra = {},
                     const std::string& group = {}, bool wait_ready = true) {
    Instance instance;
    instance.topic = topic;
    instance.data_dir = data;
    for (int attempt = 0; attempt < 3; ++attempt) {
      instance.port = free_port();
      ServeOptions options = serve_options(topic, data, extra);
      options.http_address = instance.address();
      if (!group.empty()) options.group = group;
      instance.group = options.group;
      instance.serve = &start_serve(options);
      const bool listening = wait_until(
          [&] { return !instance.serve->running() || contains(instance.serve->log(), "HTTP API listening"); },
          minutes(2), milliseconds(20));
      if (listening && instance.serve->running()) break;
      // Someone took the port between free_port() and serve's bind: try another one.
      const std::string log = instance.serve->log();
      if (!contains(log, "cannot listen") || attempt == 2) {
        ADD_FAILURE() << "serve did not start its HTTP API; log:\n" << tail(instance.serve->log_path());
        return instance;
      }
    }
    EXPECT_TRUE(contains(instance.serve->log(), "HTTP API listening address=" + instance.address()))
        << tail(instance.serve->log_path());
    instance.client = std::make_unique<HttpClient>("127.0.0.1", instance.port);
    if (wait_ready) {
      HttpReply last;
      const bool ready = wait_until(
          [&] {
            if (!instance.serve->running()) return true;
            last = instance.http().get("/readyz");
            return last.status == 200;
          },
          minutes(2), milliseconds(50));
      EXPECT_TRUE(ready && instance.serve->running())
          << "not ready within 2 minutes; last /readyz: " << last.describe() << "\nlog:\n"
          << tail(instance.serve->log_path());
    }
    return instance;
  }

  Instance start_api(std::vector<std::string> extra = {}) {
    return start_api(unique_name("api"), data_dir("store-" + std::to_string(++_stores)), std::move(extra));
  }

  // GET /v1/sessions/{id} as JSON (a JSON null when it is not 200).
  static json::value session(Instance& instance, const std::string& id) {
    HttpReply r = instance.http().get(session_path(id));
    EXPECT_EQ(r.status, 200) << r.describe();
    return r.status == 200 ? r.json() : json::value();
  }

  // The partitions an instance has, from the keys of /readyz's "lag".
  static std::set<std::int32_t> owned_partitions(Instance& instance) {
    std::set<std::int32_t> partitions;
    HttpReply r = instance.http().get("/readyz");
    if (r.json().is_object() && r.json().as_object().contains("lag")) {
      for (const auto& [p, lag] : r.json().at("lag").as_object()) partitions.insert(std::stoi(std::string(p)));
    }
    return partitions;
  }

  // Every history entry of a session, page by page, checking each page's shape on the way.
  static std::vector<json::object> full_history(Instance& instance, const std::string& id, std::uint64_t limit = 100) {
    std::vector<json::object> out;
    std::uint64_t from = 1;
    for (int pages = 0; pages < 100000; ++pages) {
      HttpReply r = instance.http().get(events_path(id) + "?from_version=" + std::to_string(from) +
                                        "&limit=" + std::to_string(limit));
      EXPECT_EQ(r.status, 200) << r.describe();
      if (r.status != 200) return out;
      const json::object page = r.json().as_object();
      EXPECT_EQ(str(page.at("session_id")), id);
      const auto& events = page.at("events").as_array();
      EXPECT_LE(events.size(), limit);
      for (const auto& e : events) out.push_back(e.as_object());
      if (page.at("next_from_version").is_null()) return out;
      EXPECT_EQ(events.size(), limit) << "a page before the last must be full";
      const std::uint64_t next = u64(page.at("next_from_version"));
      EXPECT_GT(next, from);
      if (next <= from) return out;
      from = next;
    }
    ADD_FAILURE() << "history of " << id << " never ended";
    return out;
  }

 private:
  int _stores = 0;
};

// ------------------------------------------------------------------------------------------------ 1. read-your-writes

TEST_F(ApiTest, AnAppendIsVisibleToTheNextRead) {
  Instance api = start_api();
  ASSERT_FALSE(HasFailure());
  const std::string id = "chat-1";

  // Two events in one request: one Kafka transaction, answered once both are folded.
  const std::string body = "[" + opened_body() + "," + message_body("user", "What is the weather in Paris?") + "]";
  HttpReply r = api.http().post(events_path(id), body);
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_TRUE(contains(r.headers["content-type"], "application/json")) << r.headers["content-type"];
  const json::object answer = r.json().as_object();
  EXPECT_EQ(str(answer.at("session_id")), id);
  EXPECT_EQ(u64(answer.at("version")), 2u);
  const auto& events = answer.at("events").as_array();
  ASSERT_EQ(events.size(), 2u) << r.body;
  const std::int32_t partition = log::partition_for_key(id, 4);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& e = events[i].as_object();
    EXPECT_EQ(str(e.at("status")), "accepted") << r.body;
    EXPECT_EQ(u64(e.at("version")), i + 1) << r.body;
    EXPECT_EQ(i64(e.at("partition")), partition) << r.body;
    EXPECT_GE(i64(e.at("offset")), 0) << r.body;
    EXPECT_EQ(normal_id(str(e.at("event_id"))).size(), 32u) << r.body;
  }
  EXPECT_GT(i64(events[1].at("offset")), i64(events[0].at("offset")));

  // The very next read shows it: no polling.
  json::value state = session(api, id);
  ASSERT_TRUE(state.is_object());
  EXPECT_EQ(u64(state.at("version")), 2u) << state;
  EXPECT_EQ(str(state.at("status")), "open") << state;
  EXPECT_EQ(str(state.at("model")), "echo-1") << state;
  const auto& messages = state.at("messages").as_array();
  ASSERT_EQ(messages.size(), 1u) << state;
  EXPECT_EQ(str(messages[0].at("role")), "user");
  EXPECT_EQ(str(messages[0].at("content")), "What is the weather in Paris?");
  EXPECT_EQ(u64(messages[0].at("version")), 2u);

  // A single event (the idempotent, non-transactional path) is read back at once too, and the API state is what
  // `inspect --format json` prints.
  r = api.http().post(events_path(id), message_body("assistant", "21 C and sunny."));
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(u64(r.json().at("version")), 3u) << r.body;
  EXPECT_EQ(u64(r.json().at("events").at(0).at("version")), 3u) << r.body;
  EXPECT_EQ(i64(r.json().at("events").at(0).at("offset")), i64(events[1].at("offset")) + 2)
      << "after a transaction's commit marker: " << r.body;
  HttpReply read = api.http().get(session_path(id) + "?messages=100");
  ASSERT_EQ(read.status, 200) << read.describe();
  EXPECT_EQ(u64(read.json().at("version")), 3u) << read.body;
  EXPECT_EQ(str(read.json().at("messages").at(1).at("content")), "21 C and sunny.") << read.body;
  auto inspected = inspect_session(api.data_dir, id, 100);
  ASSERT_TRUE(inspected);
  EXPECT_EQ(json::parse(*inspected), read.json());
}

// ------------------------------------------------------------------------------------------------ 2. concurrency

TEST_F(ApiTest, ConcurrentAppendsWithTheSameExpectedVersionHaveOneWinner) {
  Instance api = start_api();
  ASSERT_FALSE(HasFailure());
  const std::string id = "race-1";
  HttpReply r = api.http().post(events_path(id), "[" + opened_body() + "," + message_body("user", "hi") + "]");
  ASSERT_EQ(r.status, 200) << r.describe();
  ASSERT_EQ(u64(r.json().at("version")), 2u);

  constexpr int kThreads = 8;
  std::vector<HttpReply> replies(kThreads);
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      HttpClient client("127.0.0.1", api.port);
      client.get("/healthz");  // connected before the start line
      start.arrive_and_wait();
      replies[t] =
          client.post(events_path(id) + "?expected_version=2", message_body("user", "writer " + std::to_string(t)));
    });
  }
  for (auto& t : threads) t.join();

  int winners = 0;
  int losers = 0;
  std::string winner_text;
  for (int t = 0; t < kThreads; ++t) {
    const HttpReply& reply = replies[t];
    if (reply.status == 200) {
      ++winners;
      winner_text = "writer " + std::to_string(t);
      EXPECT_EQ(u64(reply.json().at("version")), 3u) << reply.body;
      EXPECT_EQ(str(reply.json().at("events").at(0).at("status")), "accepted") << reply.body;
    } else {
      ASSERT_EQ(reply.status, 409) << reply.describe();
      ++losers;
      const json::value answer = reply.json();
      EXPECT_EQ(u64(answer.at("current_version")), 3u) << reply.body;
      EXPECT_FALSE(str(answer.at("error").at("message")).empty()) << reply.body;
      EXPECT_EQ(str(answer.at("events").at(0).at("status")), "rejected") << reply.body;
      EXPECT_FALSE(str(answer.at("events").at(0).at("reason")).empty()) << reply.body;
    }
  }
  EXPECT_EQ(winners, 1);
  EXPECT_EQ(losers, kThreads - 1);

  json::value state = session(api, id);
  ASSERT_TRUE(state.is_object());
  EXPECT_EQ(u64(state.at("version")), 3u) << state;
  EXPECT_EQ(u64(state.at("counts").at("rejections")), static_cast<std::uint64_t>(losers)) << state;
  EXPECT_EQ(u64(state.at("counts").at("messages")), 2u) << state;
  EXPECT_EQ(str(state.at("messages").at(1).at("content")), winner_text) << state;
}

// expected_version on an array conditions the whole append: when the first event is rejected, no event of the
// request may be accepted (the client is told 409 and must be able to retry the whole request).
TEST_F(ApiTest, AStaleExpectedVersionOnAnArrayAppendsNothing) {
  Instance api = start_api();
  ASSERT_FALSE(HasFailure());
  const std::string id = "stale-array";
  HttpReply r = api.http().post(events_path(id), "[" + opened_body() + "," + message_body("user", "one") + "]");
  ASSERT_EQ(r.status, 200) << r.describe();
  const json::value before = session(api, id);

  r = api.http().post(events_path(id) + "?expected_version=1",
                      "[" + message_body("user", "two") + "," + message_body("assistant", "three") + "]");
  EXPECT_EQ(r.status, 409) << r.describe();
  EXPECT_EQ(u64(r.json().at("current_version")), 2u) << r.body;
  const json::value after = session(api, id);
  EXPECT_EQ(after.at("version"), before.at("version")) << "part of a rejected append was accepted: " << after;
  // The refusals are recorded (counts, so the state hash moves); the history and its chain do not.
  EXPECT_EQ(after.at("chain_hash"), before.at("chain_hash")) << after;
  EXPECT_EQ(after.at("counts").at("rejections").to_number<std::uint64_t>(), 2u) << after;
}

// ------------------------------------------------------------------------------------------------ 3. idempotency

TEST_F(ApiTest, AnIdempotencyKeyReplayIsADuplicate) {
  Instance api = start_api();
  ASSERT_FALSE(HasFailure());
  const std::string id = "idem-1";
  ASSERT_EQ(api.http().post(events_path(id), opened_body()).status, 200);

  const HttpHeaders key = {{"Idempotency-Key", "checkout-7f3a"}};
  HttpReply first = api.http().post(events_path(id), message_body("user", "pay"), key);
  ASSERT_EQ(first.status, 200) << first.describe();
  const json::object a = first.json().at("events").at(0).as_object();
  EXPECT_EQ(str(a.at("status")), "accepted") << first.body;
  EXPECT_EQ(u64(a.at("version")), 2u) << first.body;
  const json::value state_before = session(api, id);

  // The same request again (a client retry after a lost answer): the same event, reported as a duplicate.
  HttpReply second = api.http().post(events_path(id), message_body("user", "pay"), key);
  ASSERT_EQ(second.status, 200) << second.describe();
  const json::object b = second.json().at("events").at(0).as_object();
  EXPECT_EQ(str(b.at("status")), "duplicate") << second.body;
  EXPECT_EQ(u64(b.at("version")), 2u) << second.body;
  EXPECT_EQ(str(b.at("event_id")), str(a.at("event_id")));
  EXPECT_NE(i64(b.at("offset")), i64(a.at("offset"))) << "a replay is a new record on the topic";
  // Even with a different body: the key names the event.
  HttpReply third = api.http().post(events_path(id), message_body("user", "pay twice"), key);
  ASSERT_EQ(third.status, 200) << third.describe();
  EXPECT_EQ(str(third.json().at("events").at(0).at("status")), "duplicate") << third.body;

  // Nothing was appended: same version, same chain over the accepted events, same messages. (The state hash moves:
  // it covers the duplicates counter.)
  const json::value state_after = session(api, id);
  EXPECT_EQ(state_after.at("version"), state_before.at("version")) << state_after;
  EXPECT_EQ(state_after.at("chain_hash"), state_before.at("chain_hash")) << state_after;
  EXPECT_EQ(state_after.at("messages"), state_before.at("messages")) << state_after;
  EXPECT_EQ(u64(state_after.at("counts").at("duplicates")), 2u) << state_after;
  EXPECT_EQ(u64(state_after.at("counts").at("messages")), 1u) << state_after;

  // A key that is already an event id (a UUID here) is the event id; another key gives another event.
  const std::string uuid = "0F8FAD5B-D9CB-469F-A165-70867728950E";
  HttpReply u = api.http().post(events_path(id), message_body("user", "x"), {{"Idempotency-Key", uuid}});
  ASSERT_EQ(u.status, 200) << u.describe();
  EXPECT_EQ(str(u.json().at("events").at(0).at("event_id")), normal_id(uuid)) << u.body;
  HttpReply other =
      api.http().post(events_path(id), message_body("user", "pay"), {{"Idempotency-Key", "checkout-7f3b"}});
  ASSERT_EQ(other.status, 200) << other.describe();
  EXPECT_EQ(str(other.json().at("events").at(0).at("status")), "accepted") << other.body;

  // An array under one key: each element gets its own id, and a replay of the array is all duplicates.
  const std::string batch = "[" + message_body("user", "a") + "," + message_body("assistant", "b") + "]";
  HttpReply batch1 = api.http().post(events_path(id), batch, {{"Idempotency-Key", "batch-1"}});
  ASSERT_EQ(batch1.status, 200) << batch1.describe();
  HttpReply batch2 = api.http().post(events_path(id), batch, {{"Idempotency-Key", "batch-1"}});
  ASSERT_EQ(batch2.status, 200) << batch2.describe();
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(str(batch1.json().at("events").at(i).at("status")), "accepted") << batch1.body;
    EXPECT_EQ(str(batch2.json().at("events").at(i).at("status")), "duplicate") << batch2.body;
    EXPECT_EQ(batch2.json().at("events").at(i).at("event_id"), batch1.json().at("events").at(i).at("event_id"));
    EXPECT_EQ(batch2.json().at("events").at(i).at("version"), batch1.json().at("events").at(i).at("version"));
  }
  EXPECT_NE(batch1.json().at("events").at(0).at("event_id"), batch1.json().at("events").at(1).at("event_id"));
  EXPECT_EQ(u64(session(api, id).at("version")), 6u);
}

// ------------------------------------------------------------------------------------------------ 4. history, listing

TEST_F(ApiTest, PagedHistoryIsExactlyTheAppendedEvents) {
  Instance api = start_api();
  ASSERT_FALSE(HasFailure());
  const std::string id = "long-1";
  constexpr std::size_t kEvents = 250;

  struct Expected {
    std::string event_id;
    std::string payload_type;
    std::string role;
    std::string text;
    std::int32_t partition = -1;
    std::int64_t offset = -1;
  };
  std::vector<Expected> expected;
  auto record = [&](const HttpReply& reply, const std::vector<json::object>& sent) {
    ASSERT_EQ(reply.status, 200) << reply.describe();
    const auto& events = reply.json().at("events").as_array();
    ASSERT_EQ(events.size(), sent.size()) << reply.body;
    for (std::size_t i = 0; i < sent.size(); ++i) {
      const auto& e = events[i].as_object();
      ASSERT_EQ(str(e.at("status")), "accepted") << reply.body;
      ASSERT_EQ(u64(e.at("version")), expected.size() + 1) << reply.body;
      Expected x;
      x.event_id = normal_id(str(e.at("event_id")));
      x.payload_type = str(sent[i].at("payload_type"));
      if (x.payload_type == "Message") {
        x.role = str(sent[i].at("payload").at("role"));
        x.text = str(sent[i].at("payload").at("content").at(0).at("text"));
      }
      x.partition = static_cast<std::int32_t>(i64(e.at("partition")));
      x.offset = i64(e.at("offset"));
      expected.push_back(std::move(x));
    }
  };

  const json::object opened = json::parse(opened_body()).as_object();
  record(api.http().post(events_path(id), opened_body()), {opened});
  ASSERT_FALSE(HasFailure());
  // Singles and arrays of 2..9, alternating roles, with a memory block now and then.
  const char* roles[] = {"user", "assistant"};
  std::size_t n = 1;
  for (std::size_t round = 0; expected.size() < kEvents; ++round) {
    const std::size_t size = std::min<std::size_t>(round % 3 == 0 ? 1 : 2 + round % 8, kEvents - expected.size());
    std::vector<json::object> sent;
    for (std::size_t i = 0; i < size; ++i, ++n) {
      if (n % 17 == 0) {
        sent.push_back(json::object{{"payload_type", "MemorySet"},
                                    {"payload", json::object{{"label", "note." + std::to_string(n)}, {"value", "v"}}}});
      } else {
        sent.push_back(message_object(roles[n % 2], "message " + std::to_string(n) + " \u00e9\"\\"));
      }
    }
    std::string body;
    if (size == 1 && round % 2 == 0) {
      body = json::serialize(sent[0]);
    } else {
      json::array array;
      for (const auto& s : sent) array.push_back(s);
      body = json::serialize(array);
    }
    // Half the requests say which version they expect: all of them hold, there is one writer.
    const std::string query = round % 2 == 0 ? "?expected_version=" + std::to_string(expected.size()) : "";
    record(api.http().post(events_path(id) + query, body), sent);
    ASSERT_FALSE(HasFailure());
  }
  ASSERT_EQ(expected.size(), kEvents);

  const std::vector<json::object> history = full_history(api, id, 100);
  ASSERT_EQ(history.size(), kEvents);
  for (std::size_t i = 0; i < kEvents; ++i) {
    const json::object& h = history[i];
    const Expected& x = expected[i];
    SCOPED_TRACE("version " + std::to_string(i + 1));
    EXPECT_EQ(u64(h.at("version")), i + 1);
    EXPECT_EQ(str(h.at("payload_type")), x.payload_type);
    EXPECT_EQ(i64(h.at("partition")), x.partition);
    EXPECT_EQ(i64(h.at("offset")), x.offset);
    EXPECT_EQ(str(h.at("chain_hash")).size(), 64u);
    const json::object& event = h.at("event").as_object();
    EXPECT_EQ(normal_id(str(event.at("event_id"))), x.event_id);
    EXPECT_EQ(str(event.at("session_id")), id);
    EXPECT_EQ(str(event.at("source")), "http");
    if (x.payload_type == "Message") {
      EXPECT_EQ(str(event.at("payload").at("role")), x.role);
      EXPECT_EQ(str(event.at("payload").at("content").at(0).at("text")), x.text);
    }
  }

  // Page boundaries: 1..100, 101..200, 201..250 then the end; a page from the middle; past the end is empty.
  HttpReply page = api.http().get(events_path(id) + "?from_version=201&limit=100");
  ASSERT_EQ(page.status, 200) << page.describe();
  EXPECT_EQ(page.json().at("events").as_array().size(), 50u);
  EXPECT_TRUE(page.json().at("next_from_version").is_null()) << page.body;
  page = api.http().get(events_path(id) + "?from_version=1&limit=100");
  EXPECT_EQ(u64(page.json().at("next_from_version")), 101u) << page.body;
  page = api.http().get(events_path(id) + "?from_version=137&limit=5");
  ASSERT_EQ(page.status, 200) << page.describe();
  EXPECT_EQ(u64(page.json().at("events").at(0).at("version")), 137u);
  EXPECT_EQ(u64(page.json().at("next_from_version")), 142u);
  page = api.http().get(events_path(id) + "?from_version=251");
  ASSERT_EQ(page.status, 200) << page.describe();
  EXPECT_TRUE(page.json().at("events").as_array().empty()) << page.body;
  EXPECT_TRUE(page.json().at("next_from_version").is_null()) << page.body;
  EXPECT_EQ(api.http().get(events_path(id) + "?limit=0").status, 400);
  EXPECT_EQ(api.http().get(events_path(id) + "?limit=abc").status, 400);
  EXPECT_EQ(api.http().get(events_path(id) + "?from_version=-1").status, 400);

  // The state agrees with the history.
  json::value state = session(api, id);
  EXPECT_EQ(u64(state.at("version")), kEvents);
  EXPECT_EQ(str(state.at("chain_hash")), str(history.back().at("chain_hash")));
}

TEST_F(ApiTest, SessionListingFiltersByPrefixAndPagesWithACursor) {
  Instance api = start_api();
  ASSERT_FALSE(HasFailure());
  std::vector<std::string> team_a;
  for (int i = 1; i <= 7; ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "team-a-%02d", i);
    team_a.emplace_back(buf);
  }
  const std::vector<std::string> others = {"team-b-01", "team-b-02", "team-", "zeta"};
  // Out of order on purpose: the listing is in id order whatever the order of arrival.
  for (auto it = team_a.rbegin(); it != team_a.rend(); ++it) {
    ASSERT_EQ(api.http().post(events_path(*it), opened_body()).status, 200);
  }
  for (const auto& id : others) ASSERT_EQ(api.http().post(events_path(id), message_body("user", "x")).status, 200);
  ASSERT_EQ(api.http().post(events_path("team-a-03"), message_body("user", "more")).status, 200);

  std::vector<std::string> listed;
  std::string cursor;
  int pages = 0;
  for (; pages < 10; ++pages) {
    HttpReply r = api.http().get("/v1/sessions?prefix=team-a-&limit=3" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(r.status, 200) << r.describe();
    const json::object o = r.json().as_object();
    const auto& sessions = o.at("sessions").as_array();
    EXPECT_LE(sessions.size(), 3u);
    for (const auto& s : sessions) {
      listed.push_back(str(s.at("session_id")));
      EXPECT_EQ(str(s.at("status")), "open") << r.body;
      EXPECT_EQ(u64(s.at("version")), str(s.at("session_id")) == "team-a-03" ? 2u : 1u) << r.body;
    }
    if (o.at("next_cursor").is_null()) break;
    cursor = str(o.at("next_cursor"));
    EXPECT_EQ(cursor, listed.back());
  }
  EXPECT_EQ(pages, 2) << "7 sessions in pages of 3";
  EXPECT_EQ(listed, team_a);

  HttpReply all = api.http().get("/v1/sessions?limit=1000");
  ASSERT_EQ(all.status, 200) << all.describe();
  std::vector<std::string> every;
  const json::array listing = all.json().at("sessions").as_array();
  for (const auto& s : listing) every.push_back(str(s.at("session_id")));
  std::vector<std::string> want = team_a;
  want.insert(want.end(), others.begin(), others.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(every, want);
  EXPECT_TRUE(all.json().at("next_cursor").is_null());
  // "team-" is a session and a prefix of others: the prefix "team-b" lists only team-b-*.
  HttpReply b = api.http().get("/v1/sessions?prefix=team-b");
  ASSERT_EQ(b.status, 200) << b.describe();
  EXPECT_EQ(b.json().at("sessions").as_array().size(), 2u) << b.body;
  EXPECT_EQ(api.http().get("/v1/sessions?prefix=nobody").json().at("sessions").as_array().size(), 0u);
  EXPECT_EQ(api.http().get("/v1/sessions?limit=0").status, 400);
}

// ------------------------------------------------------------------------------------------------ 5. validation

TEST_F(ApiTest, InvalidBodiesAreRefusedNamingTheFieldAndChangeNothing) {
  Instance api = start_api();
  ASSERT_FALSE(HasFailure());
  const std::string id = "strict-1";
  ASSERT_EQ(api.http().post(events_path(id), "[" + opened_body() + "," + message_body("user", "hi") + "]").status, 200);
  const json::value before = session(api, id);
  ASSERT_TRUE(before.is_object());

  auto tool_without_id = json::parse(message_body("user", "42")).as_object();
  tool_without_id["payload"].as_object()["role"] = "tool";
  struct Case {
    std::string what;
    std::string query;
    std::string body;
    std::vector<std::string> error_parts;  // each must appear in the "error" text
  };
  const std::vector<Case> cases = {
      {"not JSON", "", "{\"payload_type\": \"Message\", ", {"body", "JSON"}},
      {"a JSON number", "", "42", {"body", "expected an event object or an array"}},
      {"a JSON string", "", "\"hello\"", {"body"}},
      {"an empty array", "", "[]", {"body", "no events"}},
      {"an unknown field", "",
       R"({"payload_type":"Message","payload":{"role":"user","content":[{"text":"x"}],"mood":"happy"}})",
       {"payload.mood", "unknown field"}},
      {"an unknown envelope field", "", R"({"colour":"red","payload_type":"Message","payload":{}})", {"colour"}},
      {"a bad role", "", R"({"payload_type":"Message","payload":{"role":"wizard","content":[{"text":"x"}]}})",
       {"role"}},
      {"a session_id that differs from the path", "",
       R"({"session_id":"someone-else","payload_type":"Message","payload":{"content":[{"text":"x"}]}})",
       {"session_id", "does not match"}},
      {"a tool message without tool_call_id", "", json::serialize(tool_without_id),
       {"payload.tool_call_id", "required"}},
      {"an array with one bad element", "",
       "[" + message_body("user", "fine") + "," + json::serialize(tool_without_id) + "," +
           message_body("user", "fine too") + "]",
       {"events[1].payload.tool_call_id", "required"}},
      {"an array with a non-object", "", "[" + message_body("user", "fine") + ",7]", {"events[1]"}},
      {"a bad event_id", "", R"({"event_id":"xyz","payload_type":"Message","payload":{}})", {"event_id"}},
      {"no payload", "", R"({"payload_type":"Message"})", {"payload"}},
      {"a bad expected_version", "?expected_version=two", message_body("user", "x"), {"expected_version"}},
      {"a negative expected_version", "?expected_version=-1", message_body("user", "x"), {"expected_version"}},
      {"a bad wait", "?wait=maybe", message_body("user", "x"), {"wait"}},
      // Issue 9, defect 8: FlatBuffers' parser took this; the JSON form does not.
      {"expected_version as a string", "",
       R"({"expected_version":"3","payload_type":"Message","payload":{"content":[{"text":"x"}]}})",
       {"expected_version", "must be a number"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    HttpReply r = api.http().post(events_path(id) + c.query, c.body);
    ASSERT_EQ(r.status, 400) << r.describe();
    const json::value answer = r.json();
    ASSERT_TRUE(answer.is_object() && answer.as_object().contains("error")) << r.body;
    // OpenAI's error shape, as on the gateway's routes: the SDKs keep the message, type and code from it.
    EXPECT_EQ(str(answer.at("error").at("type")), "invalid_request_error") << r.body;
    EXPECT_TRUE(answer.at("error").at("param").is_null() && answer.at("error").at("code").is_null()) << r.body;
    const std::string error = str(answer.at("error").at("message"));
    for (const auto& part : c.error_parts) EXPECT_TRUE(contains(error, part)) << "\"" << part << "\" not in: " << error;
  }

  // Too large: a body over --max-body-bytes (default 1 MiB), and more events than one append takes.
  HttpReply big = api.http().post(events_path(id), message_body("user", std::string(1100 * 1024, 'x')));
  EXPECT_EQ(big.status, 413) << big.describe().substr(0, 300);
  json::array many;
  for (int i = 0; i < 1001; ++i) many.push_back(json::parse(message_body("user", "m")));
  HttpReply too_many = api.http().post(events_path(id), json::serialize(many));
  EXPECT_EQ(too_many.status, 413) << too_many.describe().substr(0, 300);
  EXPECT_TRUE(contains(str(too_many.json().at("error").at("message")), "1000")) << too_many.body;

  // Nothing reached the session, and nothing reached the dead-letter topic either.
  const json::value after = session(api, id);
  EXPECT_EQ(after.at("version"), before.at("version")) << after;
  EXPECT_EQ(after.at("state_hash"), before.at("state_hash")) << after;
  EXPECT_EQ(after.at("counts"), before.at("counts")) << after;
  const std::string metrics = api.http().get("/metrics").body;
  EXPECT_EQ(sample(metrics, "statefold_dead_letter_records_total"), 0.0) << metrics;
  EXPECT_EQ(sample(metrics, "statefold_records_total"), 2.0) << metrics;
  // A valid append still works on the same connection.
  HttpReply ok = api.http().post(events_path(id), message_body("user", "still here"));
  EXPECT_EQ(ok.status, 200) << ok.describe();
}

// ------------------------------------------------------------------------------------------------ 6. operations

TEST_F(ApiTest, MetricsPassPromtoolAndCountTheAppends) {
  ASSERT_EQ(::access("/usr/bin/promtool", X_OK), 0)
      << "/usr/bin/promtool is missing: tools/setup.sh installs it (Debian package prometheus)";
  Instance api = start_api();
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(api.http().get("/healthz").status, 200);
  HttpReply ready = api.http().get("/readyz");
  EXPECT_EQ(ready.status, 200) << ready.describe();
  EXPECT_EQ(ready.json().at("ready"), json::value(true)) << ready.body;
  EXPECT_EQ(ready.json().at("lag").as_object().size(), 4u) << "all 4 partitions assigned: " << ready.body;

  // 3 sessions x (open + 4 messages) accepted, 2 duplicates, 1 rejection, 1 invalid body.
  for (int s = 0; s < 3; ++s) {
    const std::string id = "m-" + std::to_string(s);
    ASSERT_EQ(api.http().post(events_path(id), opened_body()).status, 200);
    const std::string pair = "[" + message_body("user", "a") + "," + message_body("assistant", "b") + "]";
    ASSERT_EQ(api.http().post(events_path(id), pair).status, 200);
    ASSERT_EQ(api.http().post(events_path(id), message_body("user", "c"), {{"Idempotency-Key", "k-" + id}}).status,
              200);
    ASSERT_EQ(api.http().post(events_path(id), message_body("assistant", "d")).status, 200);
  }
  ASSERT_EQ(api.http().post(events_path("m-0"), message_body("user", "c"), {{"Idempotency-Key", "k-m-0"}}).status, 200);
  ASSERT_EQ(api.http().post(events_path("m-1"), message_body("user", "c"), {{"Idempotency-Key", "k-m-1"}}).status, 200);
  ASSERT_EQ(api.http().post(events_path("m-2") + "?expected_version=1", message_body("user", "late")).status, 409);
  ASSERT_EQ(api.http().post(events_path("m-2"), "nope").status, 400);
  ASSERT_EQ(api.http().get(session_path("m-2")).status, 200);

  HttpReply m = api.http().get("/metrics");
  ASSERT_EQ(m.status, 200) << m.describe();
  EXPECT_TRUE(contains(m.headers["content-type"], "text/plain")) << m.headers["content-type"];
  const std::string file = path("metrics.txt");
  write_file(file, m.body);
  auto checked = run({"bash", "-c", "/usr/bin/promtool check metrics < '" + file + "'"}, minutes(1));
  EXPECT_TRUE(checked.status.exited_with(0)) << "promtool check metrics: " << checked.status.describe() << "\n"
                                             << checked.out << checked.err << "\n" << m.body;

  const std::string& text = m.body;
  EXPECT_EQ(sample(text, "statefold_events_folded_total{outcome=\"accepted\"}"), 15.0) << text;
  EXPECT_EQ(sample(text, "statefold_events_folded_total{outcome=\"duplicate\"}"), 2.0) << text;
  EXPECT_EQ(sample(text, "statefold_events_folded_total{outcome=\"rejected\"}"), 1.0) << text;
  EXPECT_EQ(sample(text, "statefold_records_total"), 18.0) << text;
  EXPECT_EQ(sample(text, "statefold_store_sessions"), 3.0) << text;
  EXPECT_EQ(sample(text, "statefold_store_events_applied"), 15.0) << text;
  EXPECT_EQ(sample(text, "statefold_assigned_partitions"), 4.0) << text;
  const std::string append_route = "route=\"POST /v1/sessions/{id}/events\"";
  EXPECT_EQ(sum_samples(text, "statefold_http_requests_total", {append_route, "code=\"200\""}), 14.0) << text;
  EXPECT_EQ(sum_samples(text, "statefold_http_requests_total", {append_route, "code=\"409\""}), 1.0) << text;
  EXPECT_EQ(sum_samples(text, "statefold_http_requests_total", {append_route, "code=\"400\""}), 1.0) << text;
  EXPECT_GE(sum_samples(text, "statefold_http_requests_total", {"route=\"GET /v1/sessions/{id}\"", "code=\"200\""}),
            1.0)
      << text;
  EXPECT_EQ(sum_samples(text, "statefold_http_request_duration_seconds_count", {append_route}), 16.0) << text;

  // Unknown routes and methods.
  EXPECT_EQ(api.http().get("/v2/nothing").status, 404);
  EXPECT_EQ(api.http().request("DELETE", session_path("m-0"), {}).status, 405);
  EXPECT_EQ(api.http().get("/healthz").status, 200);
}

TEST_F(ApiTest, ReadyzWaitsUntilThePartitionsAreCaughtUp) {
  // A backlog written before serve starts: /readyz says 503 while it is more than --ready-max-lag behind.
  const std::string topic = unique_name("api");
  std::vector<RawRecord> records;
  constexpr int kBacklog = 100000;
  for (int i = 0; i < kBacklog; ++i) {
    const std::string session = "backlog-" + std::to_string(i % 50);
    json::object event = message_object("user", "old " + std::to_string(i));
    event["event_id"] = hex_id(7, static_cast<std::uint64_t>(i));
    event["session_id"] = session;
    records.push_back({session, json::serialize(event), {{"content-type", "application/json"}}, std::nullopt});
  }
  ASSERT_TRUE(log::ensure_topic(brokers(), topic, 4).ok());
  produce(brokers(), topic, records);
  ASSERT_FALSE(HasFailure());

  Instance api = start_api(topic, data_dir("backlog"), {"--ready-max-lag", "10", "--max-batch", "100"}, {}, false);
  ASSERT_FALSE(HasFailure());
  std::set<std::string> seen;  // the reasons given with the 503s
  HttpReply last;
  ASSERT_TRUE(wait_until(
      [&] {
        last = api.http().get("/readyz");
        if (last.status == 503) seen.insert(str(last.json().at("reason")));
        EXPECT_TRUE(last.status == 200 || last.status == 503) << last.describe();
        EXPECT_EQ(api.http().get("/healthz").status, 200) << "healthz is about the process, not the lag";
        return last.status == 200;
      },
      minutes(3), milliseconds(20)))
      << last.describe();
  std::string reasons;
  for (const auto& r : seen) reasons += " \"" + r + "\"";
  std::printf("readyz: 503 reasons seen:%s\n", reasons.c_str());
  EXPECT_TRUE(std::any_of(seen.begin(), seen.end(), [](const std::string& r) { return r.starts_with("partitions are behind"); }))
      << "a backlog of " << kBacklog << " records read in batches of 100 was never seen as behind; seen:" << reasons;
  json::value state = session(api, "backlog-0");
  EXPECT_GE(u64(state.at("version")), kBacklog / 50 - 10u) << "ready with lag <= 10 per partition";
}

// An append the engine cannot fold in time is answered 504 with where its record is, and is not lost: it is folded
// once the engine gets there. The engine is held back without timing anything: a transaction left open on the
// session's partition stops a read_committed consumer at its first record until it is aborted.
TEST_F(ApiTest, AnAppendNotFoldedInTimeIs504AndIsFoldedLater) {
  const std::string topic = unique_name("api");
  const std::string id = "held";
  Instance api = start_api(topic, data_dir("held"), {"--append-timeout-ms", "200"});
  ASSERT_FALSE(HasFailure());
  HttpReply r = api.http().post(events_path(id), opened_body());
  ASSERT_EQ(r.status, 200) << r.describe();

  json::object held = message_object("user", "in an open transaction");
  held["event_id"] = hex_id(0x0dd, 1);
  held["session_id"] = id;
  OpenTransaction open(brokers(), topic, id, json::serialize(held));
  ASSERT_TRUE(open.error.empty()) << open.error;

  const auto sent = std::chrono::steady_clock::now();
  r = api.http().post(events_path(id), message_body("user", "behind the transaction"), {{"Idempotency-Key", "held-1"}});
  const double waited_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent).count();
  std::printf("504 after %.0f ms with --append-timeout-ms 200\n", waited_ms);
  ASSERT_EQ(r.status, 504) << r.describe();
  EXPECT_TRUE(contains(str(r.json().at("error").at("message")), "not folded")) << r.body;
  EXPECT_EQ(str(r.json().at("session_id")), id) << r.body;
  const json::object e = r.json().at("events").at(0).as_object();
  // In Kafka, not folded: what a 202 says of its events.
  EXPECT_EQ(str(e.at("status")), "appended") << r.body;
  EXPECT_FALSE(e.contains("version")) << "not folded, so no version yet: " << r.body;
  EXPECT_EQ(i64(e.at("partition")), log::partition_for_key(id, 4)) << r.body;
  EXPECT_GE(i64(e.at("offset")), 2) << r.body;
  const std::string event_id = str(e.at("event_id"));
  EXPECT_EQ(u64(session(api, id).at("version")), 1u) << "not folded yet";

  // The transaction aborts: its record is never folded, and the append behind it is.
  ASSERT_TRUE(open.abort()) << open.error;
  ASSERT_TRUE(wait_until([&] { return u64(session(api, id).at("version")) == 2u; }, minutes(2), milliseconds(100)));
  HttpReply last = api.http().get(events_path(id) + "?from_version=2");
  ASSERT_EQ(last.status, 200) << last.describe();
  ASSERT_EQ(last.json().at("events").as_array().size(), 1u) << last.body;
  EXPECT_EQ(str(last.json().at("events").at(0).at("event").at("event_id")), event_id) << last.body;
  // The client's retry with the same key: the event it could not be sure of is there, once.
  r = api.http().post(events_path(id), message_body("user", "behind the transaction"), {{"Idempotency-Key", "held-1"}});
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(str(r.json().at("events").at(0).at("status")), "duplicate") << r.body;
  EXPECT_EQ(u64(r.json().at("events").at(0).at("version")), 2u) << r.body;
}

// The only instance of a group keeps its partitions, and so keeps answering 200, under a steady stream of appends
// that lasts longer than the consumer's session timeout (10 s): whatever the engine does per batch must not starve
// the group's heartbeats.
TEST_F(ApiTest, ASingleInstanceKeepsServingASustainedStreamOfAppends) {
  Instance api = start_api();
  ASSERT_FALSE(HasFailure());
  constexpr int kWriters = 4;
  constexpr int kSessions = 64;
  const auto until = std::chrono::steady_clock::now() + seconds(25);
  std::mutex mutex;
  std::map<std::string, int> answers;              // status (or "no answer") -> count
  std::map<std::string, std::string> first_answer;  // the first body of each status that is not 200
  std::vector<std::uint64_t> accepted(kSessions, 0);
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      HttpClient client("127.0.0.1", api.port, seconds(30));
      for (std::uint64_t n = 0; std::chrono::steady_clock::now() < until; ++n) {
        const int s = static_cast<int>((n * kWriters + static_cast<std::uint64_t>(w)) % kSessions);
        HttpReply r = client.post(events_path("steady-" + std::to_string(s)), message_body("user", "m"));
        std::unique_lock lock(mutex);
        const std::string key = r.answered() ? std::to_string(r.status) : "no answer";
        ++answers[key];
        if (r.status == 200) {
          ++accepted[static_cast<std::size_t>(s)];
          continue;
        }
        if (!first_answer.contains(key)) first_answer[key] = r.describe();
        lock.unlock();
        std::this_thread::sleep_for(milliseconds(5));  // do not spin on quick refusals
      }
    });
  }
  for (auto& t : writers) t.join();
  std::string summary;
  for (const auto& [what, count] : answers) summary += " " + what + " x" + std::to_string(count);
  std::printf("sustained stream, 25 s:%s\n", summary.c_str());
  EXPECT_EQ(answers.size(), 1u) << "every append should be answered 200:" << summary;
  for (const auto& [what, body] : first_answer) ADD_FAILURE() << "first " << what << ": " << body;
  // And every 200 was true.
  for (int s = 0; s < kSessions; ++s) {
    if (accepted[static_cast<std::size_t>(s)] == 0) continue;
    HttpReply r = api.http().get(session_path("steady-" + std::to_string(s)) + "?messages=0");
    ASSERT_EQ(r.status, 200) << r.describe();
    EXPECT_EQ(u64(r.json().at("version")), accepted[static_cast<std::size_t>(s)]) << "steady-" << s;
  }
}

// ------------------------------------------------------------------------------------------------ 7. SIGTERM

TEST_F(ApiTest, SigtermDuringAppendsLosesNothingThatWasAnswered200) {
  const std::string topic = unique_name("api");
  const std::string data = data_dir("sigterm");
  Instance api = start_api(topic, data);
  ASSERT_FALSE(HasFailure());

  struct Answered {
    std::string session;
    std::string event_id;
    std::uint64_t version = 0;
  };
  std::mutex mutex;
  std::vector<Answered> answered;
  std::map<std::string, int> other_answers;  // what the stream got besides 200s, for the record
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> ok{0};
  constexpr int kWriters = 3;
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      HttpClient client("127.0.0.1", api.port, seconds(30));
      for (std::uint64_t n = 0; !stop.load(); ++n) {
        const std::string sid = "term-" + std::to_string((n * kWriters + w) % 8);
        json::object event =
            message_object(n % 2 ? "assistant" : "user", "w" + std::to_string(w) + " #" + std::to_string(n));
        const std::string event_id = hex_id(0x5160000 + w, n);
        event["event_id"] = event_id;
        HttpReply r = client.post(events_path(sid), json::serialize(event));
        {
          std::lock_guard lock(mutex);
          if (r.status == 200) {
            const auto& e = r.json().at("events").at(0);
            EXPECT_EQ(str(e.at("status")), "accepted") << r.body;
            EXPECT_EQ(str(e.at("event_id")), event_id) << r.body;
            answered.push_back({sid, event_id, u64(e.at("version"))});
            ok.fetch_add(1);
            continue;
          }
          ++other_answers[r.answered() ? std::to_string(r.status) : "no answer"];
        }
        std::this_thread::sleep_for(milliseconds(5));  // refused or shutting down: do not spin
      }
    });
  }
  // SIGTERM once the stream is well under way.
  const bool streaming = wait_until([&] { return ok.load() >= 300 || !api.serve->running(); }, minutes(2));
  EXPECT_TRUE(streaming && api.serve->running()) << "the stream never got going; " << ok.load() << " answered";
  const std::uint64_t at_sigterm = ok.load();
  const auto sigterm = std::chrono::steady_clock::now();
  const ExitStatus status = api.serve->stop(minutes(2));
  const double stop_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sigterm).count();
  std::this_thread::sleep_for(milliseconds(200));  // the writers see the refusals
  stop = true;
  for (auto& t : writers) t.join();
  EXPECT_TRUE(status.exited_with(0)) << status.describe() << "\n" << tail(api.serve->log_path());
  EXPECT_TRUE(contains(api.serve->log(), "engine stopped")) << tail(api.serve->log_path());
  std::string others;
  for (const auto& [what, count] : other_answers) others += " " + what + " x" + std::to_string(count);
  std::printf("sigterm: %llu answered 200 before SIGTERM, %zu in all; exited %.0f ms after SIGTERM; other answers:%s\n",
              static_cast<unsigned long long>(at_sigterm), answered.size(), stop_ms, others.c_str());
  ASSERT_FALSE(answered.empty());

  // A 200 is a promise: after a restart on the same data dir, each such event is in its session at its version.
  Instance again = start_api(topic, data, {}, api.group);
  ASSERT_FALSE(HasFailure());
  // Ready means "within ready_max_lag", so the restarted instance may still be folding what the first one left on
  // the log: a session's history and version are read until they agree, without a fold in between.
  std::map<std::string, std::vector<json::object>> histories;
  std::map<std::string, std::uint64_t> versions;
  for (int s = 0; s < 8; ++s) {
    const std::string sid = "term-" + std::to_string(s);
    for (int attempt = 0; attempt < 100; ++attempt) {
      const std::uint64_t before = u64(session(again, sid).at("version"));
      histories[sid] = full_history(again, sid, 1000);
      versions[sid] = u64(session(again, sid).at("version"));
      if (before == versions[sid] && histories[sid].size() == versions[sid]) break;
      std::this_thread::sleep_for(milliseconds(100));
    }
  }
  std::size_t missing = 0;
  for (const Answered& a : answered) {
    const auto& history = histories[a.session];
    const bool present = a.version >= 1 && a.version <= history.size() &&
                         normal_id(str(history[a.version - 1].at("event").at("event_id"))) == a.event_id;
    if (!present && ++missing <= 10) {
      ADD_FAILURE() << "answered 200 at " << a.session << " v" << a.version << " but not there: " << a.event_id;
    }
  }
  EXPECT_EQ(missing, 0u) << "of " << answered.size() << " answered 200";
  // And nothing is in twice: each session's history has distinct ids at consecutive versions.
  for (const auto& [sid, history] : histories) {
    std::set<std::string> ids;
    for (std::size_t i = 0; i < history.size(); ++i) {
      EXPECT_EQ(u64(history[i].at("version")), i + 1) << sid;
      EXPECT_TRUE(ids.insert(normal_id(str(history[i].at("event").at("event_id")))).second)
          << sid << " v" << i + 1 << " repeats an event id";
    }
    EXPECT_EQ(versions[sid], history.size()) << sid;
  }
}

// ------------------------------------------------------------------------------------------------ 8. 404, 202, 421

TEST_F(ApiTest, UnknownSessionsAre404AndWaitFalseIs202) {
  Instance api = start_api();
  ASSERT_FALSE(HasFailure());
  HttpReply r = api.http().get(session_path("nobody"));
  EXPECT_EQ(r.status, 404) << r.describe();
  EXPECT_TRUE(contains(str(r.json().at("error").at("message")), "nobody")) << r.body;
  EXPECT_EQ(api.http().get(events_path("nobody")).status, 404);

  // wait=false: answered once Kafka has the event, before it is folded; it is folded all the same.
  r = api.http().post(events_path("later") + "?wait=false", opened_body(), {{"Idempotency-Key", "later-1"}});
  ASSERT_EQ(r.status, 202) << r.describe();
  const json::object e = r.json().at("events").at(0).as_object();
  EXPECT_EQ(str(e.at("status")), "appended") << r.body;
  EXPECT_EQ(i64(e.at("partition")), log::partition_for_key("later", 4)) << r.body;
  EXPECT_GE(i64(e.at("offset")), 0) << r.body;
  ASSERT_TRUE(wait_until([&] { return api.http().get(session_path("later")).status == 200; }, minutes(1)));
  EXPECT_EQ(u64(session(api, "later").at("version")), 1u);
  // The same key with wait (the default): the event is already there.
  r = api.http().post(events_path("later"), opened_body(), {{"Idempotency-Key", "later-1"}});
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(str(r.json().at("events").at(0).at("status")), "duplicate") << r.body;
  EXPECT_EQ(u64(r.json().at("events").at(0).at("version")), 1u) << r.body;

  // A session id with characters that need percent-encoding in the path.
  r = api.http().post("/v1/sessions/a%20b%2Fc/events", message_body("user", "x"));
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(str(r.json().at("session_id")), "a b/c") << r.body;
  r = api.http().get("/v1/sessions/a%20b%2Fc");
  EXPECT_EQ(r.status, 200) << r.describe();
  // Ids that end like a route (issue 9, defect 8): routes match the path as sent, so y%2Fcontext is a session id,
  // not the context route of session y (nor y%2Fevents the events of y).
  for (const std::string id : {"y/context", "y/events", "y/fork"}) {
    const std::string encoded = "/v1/sessions/y%2F" + id.substr(2);
    r = api.http().post(encoded + "/events", message_body("user", "for " + id));
    ASSERT_EQ(r.status, 200) << id << ": " << r.describe();
    EXPECT_EQ(str(r.json().at("session_id")), id) << r.body;
    r = api.http().get(encoded);
    ASSERT_EQ(r.status, 200) << id << ": " << r.describe();
    EXPECT_EQ(str(r.json().at("session_id")), id) << r.body;
    EXPECT_EQ(u64(r.json().at("version")), 1u) << r.body;
  }
}

// Two instances in one consumer group share the partitions. A request for a session on the other instance's
// partition is forwarded there (reads, appends with read-your-writes, forks, streamed gateway turns); a client that
// asks not to be forwarded gets 421 naming the partition and the owner's address.
TEST_F(ApiTest, ARequestToAnInstanceThatDoesNotOwnThePartitionIsForwardedToItsOwner) {
  const std::string topic = unique_name("api");
  const std::string group = topic + ".group";
  Instance a = start_api(topic, data_dir("a"), {}, group);
  ASSERT_FALSE(HasFailure());
  Instance b = start_api(topic, data_dir("b"), {}, group, false);
  ASSERT_FALSE(HasFailure());
  auto owned = [](Instance& instance) { return owned_partitions(instance); };
  std::set<std::int32_t> of_a, of_b;
  ASSERT_TRUE(wait_until(
      [&] {
        of_a = owned(a);
        of_b = owned(b);
        return of_a.size() + of_b.size() == 4 && !of_a.empty() && !of_b.empty() &&
               a.http().get("/readyz").status == 200 && b.http().get("/readyz").status == 200;
      },
      minutes(3), milliseconds(100)))
      << "partitions never split between the two instances";
  // A session on one of b's partitions.
  std::string id;
  for (int i = 0; id.empty(); ++i) {
    const std::string candidate = "owned-" + std::to_string(i);
    if (of_b.contains(log::partition_for_key(candidate, 4))) id = candidate;
  }
  const std::int32_t partition = log::partition_for_key(id, 4);
  // What each instance knows of the group: both, with the partitions each folds and its address.
  HttpReply cluster = a.http().get("/v1/cluster");
  ASSERT_EQ(cluster.status, 200) << cluster.describe();
  std::map<std::string, std::set<std::int32_t>> announced;
  for (const auto& m : cluster.json().at("members").as_array()) {
    auto& partitions = announced[str(m.at("url"))];
    for (const auto& p : m.at("partitions").as_array()) partitions.insert(static_cast<std::int32_t>(p.as_int64()));
  }
  EXPECT_EQ(announced["http://" + a.address()], of_a) << cluster.body;
  EXPECT_EQ(announced["http://" + b.address()], of_b) << cluster.body;
  const HttpHeaders no_forward = {{"X-Statefold-No-Forward", "1"}};
  HttpReply r = a.http().post(events_path(id), opened_body(), no_forward);
  ASSERT_EQ(r.status, 421) << r.describe();
  EXPECT_EQ(i64(r.json().at("partition")), partition) << r.body;
  EXPECT_TRUE(contains(str(r.json().at("error").at("message")), std::to_string(partition))) << r.body;
  EXPECT_EQ(r.headers["x-statefold-partition"], std::to_string(partition));
  EXPECT_EQ(r.headers["x-statefold-owner"], "http://" + b.address()) << "the owner's announced address";
  EXPECT_EQ(b.http().get(session_path(id)).status, 404) << "a 421 appends nothing";

  // Through a: forwarded to b, answered once b folded it (read-your-writes through either instance).
  r = a.http().post(events_path(id), opened_body());
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(i64(r.json().at("events").at(0).at("partition")), partition) << r.body;
  EXPECT_EQ(u64(session(a, id).at("version")), 1u);
  EXPECT_EQ(u64(session(b, id).at("version")), 1u);
  r = a.http().post(events_path(id), message_body("user", "through a"), {{"Idempotency-Key", "fw-1"}});
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(u64(r.json().at("version")), 2u) << r.body;
  r = a.http().post(events_path(id), message_body("user", "through a"), {{"Idempotency-Key", "fw-1"}});
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_EQ(str(r.json().at("events").at(0).at("status")), "duplicate") << "a forwarded retry is still one event";
  EXPECT_EQ(full_history(a, id).size(), 2u);
  // a's store holds nothing of it: every answer above came from b.
  EXPECT_EQ(a.http().get(session_path(id), no_forward).status, 421);

  // A fork through a runs where the parent is folded; its child, named by statefold, lands on the same partition.
  r = a.http().post("/v1/sessions/" + id + "/fork", "{}");
  ASSERT_EQ(r.status, 201) << r.describe();
  const std::string child = str(r.json().at("session_id"));
  EXPECT_EQ(log::partition_for_key(child, 4), partition) << child;
  EXPECT_EQ(u64(session(a, child).at("version")), 2u) << "the parent's two events, the first opening the child";

  // A streamed gateway turn (the offline echo endpoint) through a: b runs it, a relays the stream as it comes.
  r = a.http().post("/v1/chat/completions",
                    R"({"model":"echo","stream":true,"messages":[{"role":"user","content":"streamed through a"}]})",
                    {{"X-Session-Id", id}});
  ASSERT_EQ(r.status, 200) << r.describe();
  EXPECT_TRUE(contains(r.headers["content-type"], "text/event-stream")) << r.headers["content-type"];
  EXPECT_TRUE(contains(r.body, "data: [DONE]")) << r.body;
  EXPECT_EQ(r.headers["x-session-id"], id);
  EXPECT_EQ(u64(session(b, id).at("version")), 5u) << "the turn's input, receipt and reply, on b";
}

// ------------------------------------------------------------------------------------------------ 5. time travel,
// fork and erasure (spec sections 4 and 5)

// The session JSON without the time-travel annotation, for comparing a past read with what was read back then.
json::value without_as_of(json::value v) {
  if (v.is_object()) v.as_object().erase("as_of");
  return v;
}

json::object memory_object(const std::string& label, const std::string& value, bool pinned = false) {
  return json::object{{"payload_type", "MemorySet"},
                      {"payload", json::object{{"label", label}, {"value", value}, {"pinned", pinned}}}};
}

TEST_F(ApiTest, TimeTravelEqualsWhatTheSessionWasAtEachVersion) {
  Instance api = start_api();
  ASSERT_FALSE(HasFailure());
  const std::string id = "travel-1";
  // 150 versions (past two checkpoints), with memory changes, a summary, duplicates and a stale expected version
  // between them: each past read must equal the read made right after that version was accepted.
  std::map<std::uint64_t, json::value> seen;
  ASSERT_EQ(api.http().post(events_path(id), opened_body()).status, 200);
  seen[1] = session(api, id);
  for (std::uint64_t i = 2; i <= 150; ++i) {
    json::object event = i % 7 == 0   ? memory_object("k" + std::to_string(i % 3), "value " + std::to_string(i), i % 2)
                         : i == 120 ? json::object{{"payload_type", "Summary"},
                                                   {"payload", json::object{{"text", "so far"}, {"through_version", 100}}}}
                                    : message_object(i % 2 ? "user" : "assistant", "turn " + std::to_string(i));
    HttpReply r = api.http().post(events_path(id), json::serialize(event),
                                  {{"Idempotency-Key", "travel-" + std::to_string(i)}});
    ASSERT_EQ(r.status, 200) << r.describe();
    ASSERT_EQ(u64(r.json().at("version")), i) << r.body;
    seen[i] = session(api, id);  // version i as it was accepted: before the refusals below
    if (i % 10 == 0) {  // refusals change the counters of the state that follows
      ASSERT_EQ(api.http().post(events_path(id), json::serialize(event), {{"Idempotency-Key", "travel-" + std::to_string(i)}})
                    .status, 200);
      ASSERT_EQ(api.http().post(events_path(id) + "?expected_version=1", message_body("user", "stale")).status, 409);
    }
  }
  for (const auto& [version, expected] : seen) {
    HttpReply r = api.http().get(session_path(id) + "?version=" + std::to_string(version));
    ASSERT_EQ(r.status, 200) << r.describe();
    EXPECT_EQ(u64(r.json().at("as_of").at("version")), version);
    EXPECT_EQ(u64(r.json().at("as_of").at("current_version")), 150u);
    ASSERT_EQ(without_as_of(r.json()), expected) << "version " << version;
  }
  // ?at= picks the last version whose record time is at or before the time.
  const auto history = full_history(api, id);
  ASSERT_EQ(history.size(), 150u);
  for (std::size_t k : {0u, 41u, 99u, 149u}) {
    const std::int64_t t = i64(history[k].at("log_time_ms"));
    std::uint64_t expected = 0;
    for (const auto& e : history) {
      if (i64(e.at("log_time_ms")) <= t) expected = u64(e.at("version"));
    }
    HttpReply r = api.http().get(session_path(id) + "?at=" + std::to_string(t));
    ASSERT_EQ(r.status, 200) << r.describe();
    EXPECT_EQ(u64(r.json().at("as_of").at("version")), expected);
  }
  EXPECT_EQ(api.http().get(session_path(id) + "?at=2000-01-01T00:00:00Z").status, 404);
  HttpReply beyond = api.http().get(session_path(id) + "?version=151");
  EXPECT_EQ(beyond.status, 400);
  EXPECT_TRUE(contains(beyond.body, "1..150")) << beyond.body;
  EXPECT_EQ(api.http().get(session_path(id) + "?at=yesterday").status, 400);
  EXPECT_EQ(api.http().get(session_path("nobody") + "?version=1").status, 404);

  // The command line reads the same past from the store serve is using.
  RunResult inspected = statefold({"inspect", "--data-dir", api.data_dir, "--session", id, "--at-version", "77",
                                   "--messages", "100", "--format", "json"});
  ASSERT_TRUE(inspected.status.exited_with(0)) << inspected.err;
  EXPECT_EQ(without_as_of(json::parse(inspected.out)), seen[77]);
  RunResult out_of_range = statefold({"inspect", "--data-dir", api.data_dir, "--session", id, "--at-version", "999"});
  EXPECT_TRUE(out_of_range.status.exited_with(4)) << out_of_range.status.describe();
  EXPECT_TRUE(contains(out_of_range.err, "1..150")) << out_of_range.err;
}

TEST_F(ApiTest, AForkEqualsItsParentAtTheVersion) {
  Instance api = start_api();
  ASSERT_FALSE(HasFailure());
  const std::string parent = "parent-1";
  ASSERT_EQ(api.http().post(events_path(parent), opened_body("gpt-x")).status, 200);
  for (int i = 2; i <= 90; ++i) {
    json::object event = i % 9 == 0 ? memory_object("m" + std::to_string(i % 4), "v" + std::to_string(i), true)
                                    : message_object(i % 2 ? "user" : "assistant", "parent turn " + std::to_string(i));
    ASSERT_EQ(api.http().post(events_path(parent), json::serialize(event)).status, 200);
  }
  HttpReply r = api.http().post(session_path(parent) + "/fork", R"({"version":70,"session_id":"child-70"})");
  ASSERT_EQ(r.status, 201) << r.describe();
  EXPECT_EQ(str(r.json().at("session_id")), "child-70");
  EXPECT_EQ(u64(r.json().at("parent").at("version")), 70u);
  EXPECT_EQ(u64(r.json().at("version")), 70u) << "versions line up when the parent opened explicitly";

  auto same_content = [&](const std::string& child, std::uint64_t version) {
    json::object at = api.http().get(session_path(parent) + "?version=" + std::to_string(version) + "&messages=1000")
                          .json().as_object();
    json::object forked = api.http().get(session_path(child) + "?messages=1000").json().as_object();
    for (const char* field : {"version", "model", "system_prompt", "policy", "metadata", "memory", "messages",
                              "messages_shown", "usage", "status"}) {
      EXPECT_EQ(forked.at(field), at.at(field)) << child << ": " << field;
    }
    json::object counts = at.at("counts").as_object();
    counts["duplicates"] = 0;
    counts["rejections"] = 0;
    EXPECT_EQ(forked.at("counts"), json::value(counts)) << child;
    EXPECT_EQ(forked.at("parent"), json::value(json::object{{"session_id", parent}, {"version", version}}));
    EXPECT_NE(forked.at("chain_hash"), at.at("chain_hash")) << "a fork's chain is its own";
  };
  same_content("child-70", 70);

  // The command line does the same through serve.
  RunResult cli = statefold({"fork", "--http-address", api.address(), "--session", parent, "--version", "33",
                             "--new-session", "child-33", "--format", "json"});
  ASSERT_TRUE(cli.status.exited_with(0)) << cli.err;
  same_content("child-33", 33);
  // The fork lives on: it takes events of its own, and the parent is unchanged.
  ASSERT_EQ(api.http().post(events_path("child-33"), message_body("user", "only in the fork")).status, 200);
  EXPECT_EQ(u64(session(api, parent).at("version")), 90u);

  HttpReply taken = api.http().post(session_path(parent) + "/fork", R"({"version":10,"session_id":"child-70"})");
  EXPECT_EQ(taken.status, 409) << taken.describe();
  EXPECT_EQ(api.http().post(session_path("nobody") + "/fork", "{}").status, 404);
  EXPECT_EQ(api.http().post(session_path(parent) + "/fork", R"({"version":91})").status, 400);
  RunResult missing = statefold({"fork", "--http-address", api.address(), "--session", "nobody"});
  EXPECT_TRUE(missing.status.exited_with(4)) << missing.status.describe() << " " << missing.err;
}

TEST_F(ApiTest, AnErasedSessionShowsNoErasedContentAnywhere) {
  Instance api = start_api();
  ASSERT_FALSE(HasFailure());
  const std::string id = "erase-me";
  const std::string other = "keep-me";
  for (const std::string& sid : {id, other}) {
    ASSERT_EQ(api.http().post(events_path(sid), opened_body()).status, 200);
    for (int i = 0; i < 70; ++i) {
      ASSERT_EQ(api.http().post(events_path(sid), message_body("user", "SECRET-" + sid + "-" + std::to_string(i))).status,
                200);
    }
    ASSERT_EQ(api.http().post(events_path(sid), json::serialize(memory_object("address", "SECRET-" + sid + "-memory")))
                  .status, 200);
    json::object call{{"payload_type", "Message"},
                      {"payload", json::object{{"role", "assistant"},
                                               {"content", json::array()},
                                               {"tool_calls", json::array{json::object{
                                                                  {"id", "call_1"},
                                                                  {"name", "lookup"},
                                                                  {"arguments", "{\"q\":\"SECRET-" + sid + "-args\"}"}}}}}}};
    ASSERT_EQ(api.http().post(events_path(sid), json::serialize(call)).status, 200);
    ASSERT_EQ(api.http().post(events_path(sid), message_body("tool", "SECRET-" + sid + "-result")).status, 200);
    json::object summary{{"payload_type", "Summary"},
                         {"payload", json::object{{"text", "SECRET-" + sid + "-summary"}, {"through_version", 50}}}};
    ASSERT_EQ(api.http().post(events_path(sid), json::serialize(summary)).status, 200);
  }
  const std::string secret = "SECRET-" + id;
  ASSERT_TRUE(contains(api.http().get(session_path(id)).body, secret));

  HttpReply erased = api.http().post(
      events_path(id), R"({"payload_type":"ErasureRequest","payload":{"reason":"art. 17","requested_by":"dpo"}})");
  ASSERT_EQ(erased.status, 200) << erased.describe();
  const std::uint64_t version = u64(erased.json().at("version"));

  // Every read the product offers.
  HttpReply state = api.http().get(session_path(id) + "?messages=1000");
  EXPECT_FALSE(contains(state.body, secret)) << state.body;
  EXPECT_EQ(state.json().at("erased"), json::value(true));
  EXPECT_EQ(u64(state.json().at("counts").at("messages")), 72u) << "the structure stays";
  for (std::uint64_t v : std::vector<std::uint64_t>{2, 64, 71, version - 1}) {
    HttpReply past = api.http().get(session_path(id) + "?version=" + std::to_string(v) + "&messages=1000");
    ASSERT_EQ(past.status, 200) << past.describe();
    EXPECT_FALSE(contains(past.body, secret)) << "version " << v << ": " << past.body;
    EXPECT_EQ(past.json().at("as_of").at("redacted"), json::value(true));
  }
  std::string history;
  for (const auto& e : full_history(api, id)) history += json::serialize(e);
  EXPECT_FALSE(contains(history, secret));
  EXPECT_TRUE(contains(history, "art. 17")) << "the erasure itself is recorded";
  // Later events are refused; the other session keeps its content.
  EXPECT_EQ(api.http().post(events_path(id), message_body("user", "more")).status, 409);
  EXPECT_TRUE(contains(api.http().get(session_path(other) + "?messages=1000").body, "SECRET-" + other + "-memory"));
  EXPECT_EQ(api.http().post(session_path(id) + "/fork", "{}").status, 409) << "an erased session cannot be forked";

  // audit still verifies the chain against the records in Kafka, and prints no content.
  RunResult audit = statefold({"audit", "--brokers", brokers(), "--topic", api.topic, "--data-dir", api.data_dir,
                               "--session", id, "--format", "json"});
  EXPECT_TRUE(audit.status.exited_with(0)) << audit.status.describe() << "\n" << audit.out << audit.err;
  EXPECT_FALSE(contains(audit.out, secret));

  // Nothing in the store itself: every key and value serve reads from, once serve has stopped.
  ASSERT_TRUE(api.serve->stop().exited_with(0));
  store::Options options;
  options.path = api.data_dir + "/store";
  options.read_only = true;
  auto opened = store::Store::open(options);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  std::uint64_t values = 0;
  std::uint64_t kept = 0;
  (*opened)->scan("", [&](std::string_view key, std::string_view value) {
    ++values;
    EXPECT_EQ(value.find(secret), std::string_view::npos) << "key " << base::to_hex(std::span(
        reinterpret_cast<const std::uint8_t*>(key.data()), key.size()));
    if (value.find("SECRET-" + other) != std::string_view::npos) ++kept;
    return true;
  });
  EXPECT_GT(values, 150u);
  EXPECT_GT(kept, 70u);
  EXPECT_TRUE(contains(api.serve->log(), "erased session compacted out of the store files"));
}

// ------------------------------------------------------------------------------------------------ 6. the gateway's
// receipts (spec sections 5 and 6); the openai SDK tests in tests/gateway cover the client side

TEST_F(ApiTest, AuditReRendersGatewayReceiptsAndNamesAForgedOne) {
  Instance api = start_api();
  ASSERT_FALSE(HasFailure());
  const std::string id = "gateway-audit";
  std::string last_hash;
  for (const char* text : {"My name is Ada.", "What is my name?", "And what do I like?"}) {
    json::object body{{"model", "echo"},
                      {"messages", json::array{json::object{{"role", "user"}, {"content", text}}}}};
    HttpReply r = api.http().post("/v1/chat/completions", json::serialize(body), {{"X-Session-Id", id}});
    ASSERT_EQ(r.status, 200) << r.describe();
    EXPECT_TRUE(contains(str(r.json().at("choices").at(0).at("message").at("content")), text)) << r.body;
    last_hash = r.headers["x-statefold-request-hash"];
    ASSERT_EQ(last_hash.size(), 64u);
  }
  // The context the third call was sent held all three user messages: the echo reply counts them.
  const auto history = full_history(api, id);
  std::vector<json::object> receipts;
  for (const auto& e : history) {
    if (str(e.at("payload_type")) == "InferenceReceipt") receipts.push_back(e.at("event").at("payload").as_object());
  }
  ASSERT_EQ(receipts.size(), 3u);
  EXPECT_EQ(str(receipts.back().at("request_hash")), last_hash);
  EXPECT_EQ(str(receipts.back().at("provider")), "echo");

  RunResult clean = statefold({"audit", "--brokers", brokers(), "--topic", api.topic, "--data-dir", api.data_dir,
                               "--session", id, "--format", "json"});
  ASSERT_TRUE(clean.status.exited_with(0)) << clean.out << clean.err;
  const json::value report = json::parse(clean.out);
  EXPECT_EQ(u64(report.at("receipts_verified")), 3u) << clean.out;

  // A receipt appended by someone else that claims a request the state never rendered.
  json::object forged = receipts.front();
  forged["request_hash"] = std::string(64, 'a');
  HttpReply appended = api.http().post(
      events_path(id), json::serialize(json::object{{"payload_type", "InferenceReceipt"}, {"payload", forged}}));
  ASSERT_EQ(appended.status, 200) << appended.describe();
  const std::uint64_t forged_version = u64(appended.json().at("version"));
  RunResult caught = statefold({"audit", "--brokers", brokers(), "--topic", api.topic, "--data-dir", api.data_dir,
                                "--session", id, "--format", "json"});
  EXPECT_TRUE(caught.status.exited_with(5)) << caught.status.describe() << "\n" << caught.out << caught.err;
  const json::value bad = json::parse(caught.out);
  EXPECT_EQ(u64(bad.at("first_bad_version")), forged_version) << caught.out;
  EXPECT_TRUE(contains(str(bad.at("problem")), "re-rendered request hashes to")) << caught.out;
}

}  // namespace
}  // namespace statefold::testing
