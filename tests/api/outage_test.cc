// A broker outage (issue 9, defects 2 and 6): with a broker of its own (tools/kafka.sh on a free port), killed with
// SIGKILL while array appends are in flight and started again on the same data. During the outage writes answer
// 503 with Retry-After (or 504), /healthz keeps answering at once (the transaction runs on no HTTP thread), and
// /readyz says writes are failing; once the broker is back every write path works again within seconds, with no
// restart of serve. Before the fix the transactional producer stayed wedged on "Conflicting commit_transaction API
// call is already in progress" until serve restarted. A gateway turn whose model call is under way when the broker
// dies keeps sending its reply and receipt until the broker is back (the gateway's record patience, 30 s), and the
// client gets the reply that is in its session: serve used to pass a patience of 0 and answered 503 at once.
#include <gtest/gtest.h>


#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "api/http_client.h"
#include "support/cluster.h"
#include "support/fake_upstream.h"
#include "support/own_broker.h"

namespace statefold::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

std::string array_of_two(const std::string& tag) {
  return R"([{"payload_type":"Message","payload":{"role":"user","content":[{"text":"first )" + tag +
         R"("}]}},{"payload_type":"Message","payload":{"role":"assistant","content":[{"text":"second )" + tag +
         R"("}]}}])";
}

class OutageTest : public ProcessTest {
 protected:
  void SetUp() override { ASSERT_TRUE(_broker.start()) << "the test's broker"; }
  std::string brokers() const { return _broker.brokers(); }

  // serve on the test's broker, a topic of one partition, its HTTP API on `http_port`.
  ServeOptions serve_options(const std::string& topic, std::uint16_t http_port, std::vector<std::string> extra = {}) {
    ServeOptions options;
    options.brokers = brokers();
    options.topic = topic;
    options.dead_letter_topic = topic + ".dlq";
    options.group = topic;
    options.data_dir = data_dir("store");
    options.http_address = "127.0.0.1:" + std::to_string(http_port);
    options.extra = {"--partitions", "1", "--append-timeout-ms", "5000"};
    options.extra.insert(options.extra.end(), extra.begin(), extra.end());
    return options;
  }

  OwnBroker _broker{path("kafka")};
};

TEST_F(OutageTest, WritesFailFastDuringABrokerOutageAndRecoverWhenItReturns) {
  const std::uint16_t http_port = free_port();
  Serve& serve = start_serve(serve_options("outage", http_port));
  ASSERT_TRUE(wait_until([&] { return !serve.running() || contains(serve.log(), "HTTP API listening"); },
                         std::chrono::minutes(2), milliseconds(20)));
  HttpClient http("127.0.0.1", http_port);
  ASSERT_TRUE(wait_until([&] { return http.get("/readyz").status == 200; }, std::chrono::minutes(2), milliseconds(50)))
      << tail(serve.log_path());
  {
    HttpReply r = http.post("/v1/sessions/a/events", array_of_two("before"));
    ASSERT_EQ(r.status, 200) << r.describe();
  }

  // Array appends in flight from other clients while the broker dies.
  std::atomic<bool> stop{false};
  std::atomic<int> answered{0};
  std::thread writer([&] {
    HttpClient own("127.0.0.1", http_port);
    for (int i = 0; !stop.load(); ++i) {
      HttpReply r = own.post("/v1/sessions/w/events", array_of_two(std::string("w").append(std::to_string(i))));
      if (r.answered()) ++answered;
      if (r.status != 200) std::this_thread::sleep_for(milliseconds(100));
    }
  });
  std::this_thread::sleep_for(milliseconds(300));
  ASSERT_TRUE(_broker.kill());

  // During the outage: a write fails (503 with Retry-After, or 504) in bounded time, and /healthz answers at once
  // while writes wait on Kafka.
  HttpReply during;
  const auto tried = Clock::now();
  ASSERT_TRUE(wait_until(
      [&] {
        during = http.post("/v1/sessions/a/events", array_of_two("during"));
        return during.status == 503 || during.status == 504;
      },
      seconds(60), milliseconds(200)))
      << "last: " << during.describe();
  EXPECT_LT(Clock::now() - tried, seconds(45));
  if (during.status == 503) {
    EXPECT_TRUE(during.headers.contains("retry-after")) << during.describe();
  }
  for (int i = 0; i < 5; ++i) {
    const auto start = Clock::now();
    HttpReply health = http.get("/healthz");
    EXPECT_EQ(health.status, 200);
    EXPECT_LT(Clock::now() - start, seconds(1)) << "/healthz waited on Kafka";
  }
  HttpReply ready;
  EXPECT_TRUE(wait_until([&] { return (ready = http.get("/readyz")).status == 503; }, seconds(30), milliseconds(200)))
      << "/readyz during the outage: " << ready.describe();

  // The broker comes back on the same data: writes work again within seconds, without restarting serve.
  ASSERT_TRUE(_broker.start());
  const auto back = Clock::now();
  HttpReply after;
  ASSERT_TRUE(wait_until(
      [&] {
        after = http.post("/v1/sessions/b/events", array_of_two("after"));
        return after.status == 200;
      },
      seconds(90), milliseconds(250)))
      << "array appends still failing after the broker returned: " << after.describe() << "\n"
      << tail(serve.log_path());
  const double recovery_s = std::chrono::duration<double>(Clock::now() - back).count();
  std::printf("outage: array appends recovered %.1f s after the broker was started again\n", recovery_s);
  stop = true;
  writer.join();
  EXPECT_GT(answered.load(), 0);

  // Every write path: a single append, another array, a fork.
  EXPECT_EQ(http.post("/v1/sessions/b/events",
                      R"({"payload_type":"Message","payload":{"role":"user","content":[{"text":"single"}]}})")
                .status,
            200);
  EXPECT_EQ(http.post("/v1/sessions/c/events", array_of_two("again")).status, 200);
  HttpReply fork = http.post("/v1/sessions/b/fork", R"({"session_id":"b-fork"})");
  EXPECT_EQ(fork.status, 201) << fork.describe();
  EXPECT_TRUE(wait_until([&] { return http.get("/readyz").status == 200; }, seconds(60), milliseconds(200)))
      << http.get("/readyz").describe();
  EXPECT_TRUE(serve.running());
  serve.stop();
}

TEST_F(OutageTest, ATurnWhoseReplyMeetsABrokerOutageIsRecordedOnceTheBrokerReturns) {
  // The model takes 4 s to answer: the broker is killed and started again meanwhile.
  const std::string script = path("script.json");
  write_file(script, R"({"actions":[{"delay_ms":4000,"reply":"answered across the outage"}]})");
  FakeUpstreamProcess fake(dir(), {"--script", script});
  ::setenv("STATEFOLD_OUTAGE_UPSTREAM_KEY", "sk-outage", 1);
  const std::string config = path("serve.toml");
  write_file(config, "[upstream]\ndefault_endpoint = \"fake\"\n\n[[upstream.endpoints]]\nname = \"fake\"\n"
                     "provider = \"openai_chat\"\nbase_url = \"http://127.0.0.1:" +
                         std::to_string(fake.port()) +
                         "/v1\"\napi_key_env = \"STATEFOLD_OUTAGE_UPSTREAM_KEY\"\nmodel = \"gpt-4o\"\n"
                         "models = [\"*\"]\nmax_retries = 0\n");
  const std::uint16_t http_port = free_port();
  Serve& serve = start_serve(serve_options("patience", http_port, {"--config", config}));
  HttpClient http("127.0.0.1", http_port, seconds(90));
  ASSERT_TRUE(wait_until([&] { return !serve.running() || http.get("/readyz").status == 200; },
                         std::chrono::minutes(2), milliseconds(50)))
      << tail(serve.log_path());

  HttpReply turn;
  std::thread client([&] {
    HttpClient own("127.0.0.1", http_port, seconds(90));
    turn = own.post("/v1/chat/completions", R"({"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]})",
                    {{"X-Session-Id", "patient"}});
  });
  // The input is recorded at once; then the model call waits 4 s, in which the broker goes down and comes back.
  ASSERT_TRUE(wait_until([&] { return http.get("/v1/sessions/patient").status == 200; }, seconds(10),
                         milliseconds(20)));
  ASSERT_TRUE(_broker.kill());
  std::this_thread::sleep_for(seconds(4));
  const auto restarted = Clock::now();
  ASSERT_TRUE(_broker.start());
  std::printf("outage: the broker answered again %.1f s after its start\n",
              std::chrono::duration<double>(Clock::now() - restarted).count());
  client.join();

  ASSERT_EQ(turn.status, 200) << turn.describe() << "\n" << tail(serve.log_path());
  EXPECT_TRUE(contains(turn.body, "answered across the outage")) << turn.body;
  // What the client was shown is in the session: the input, the receipt and the reply, once each (the reply and
  // receipt sent again keep their event ids, so a copy that did reach the log is a duplicate, not history).
  // (The group rebalanced when the broker came back: the partition may still be on its way back to serve.)
  HttpReply history;
  ASSERT_TRUE(wait_until([&] { return (history = http.get("/v1/sessions/patient/events")).status == 200; },
                         seconds(60), milliseconds(100)))
      << history.describe();
  std::map<std::string, int> kinds;
  for (const auto& e : history.json().at("events").as_array()) {
    const auto& event = e.as_object();
    std::string kind(event.at("payload_type").as_string());
    if (kind == "Message") kind += std::string(" ") + event.at("event").at("payload").at("role").as_string().c_str();
    ++kinds[kind];
  }
  EXPECT_EQ(kinds["Message user"], 1) << history.body;
  EXPECT_EQ(kinds["InferenceReceipt"], 1) << history.body;
  EXPECT_EQ(kinds["Message assistant"], 1) << history.body;
  EXPECT_TRUE(contains(history.body, "answered across the outage")) << history.body;
  serve.stop();
}

}  // namespace
}  // namespace statefold::testing
