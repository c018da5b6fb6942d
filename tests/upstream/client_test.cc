// upstream::Client against tests/support/fake_upstream.py (a child process): plain calls, keep-alive, retries and
// Retry-After, timeouts, refused connections, SSE streams (incremental delivery, cuts, early stop), the API key's
// handling, and TLS with a certificate made by the openssl CLI.
#include "connectors/upstream/upstream.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "engine/base/hex.h"
#include "engine/base/logging.h"
#include "engine/base/sha256.h"
#include "engine/http/http.h"
#include "support/fake_upstream.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace statefold::upstream {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace json = boost::json;

constexpr const char* kKeyEnv = "STATEFOLD_UPSTREAM_TEST_KEY";
constexpr const char* kKey = "sk-test-4f9c2b7e1d8a6035";


std::int64_t ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// The fake upstream as a child process, and its control endpoints (plain HTTP only).
class Fake {
 public:
  explicit Fake(const std::string& dir, std::vector<std::string> extra = {})
      : _process(dir, std::move(extra)) {
    port = _process.port();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }

  json::value control(const std::string& method, const std::string& target, const std::string& body = {}) {
    auto reply = http::call("127.0.0.1", port, method, target, body, 10s);
    if (!reply || reply->status != 200) {
      ADD_FAILURE() << "fake upstream " << target << ": " << (reply ? reply->body : reply.error().message);
      return {};
    }
    return json::parse(reply->body);
  }
  void script(const std::string& actions) {
    control("POST", "/__script", "{\"replace\":true,\"actions\":" + actions + "}");
  }
  void reset() { control("POST", "/__reset"); }
  json::array requests() {
    json::value v = control("GET", "/__requests");
    return v.is_object() ? v.at("requests").as_array() : json::array{};
  }

  std::uint16_t port = 0;

 private:
  testing::FakeUpstreamProcess _process;
};

class ClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    _dir = new testing::TempDir();
    _fake = new Fake(_dir->path());
  }
  static void TearDownTestSuite() {
    delete _fake;
    delete _dir;
  }
  void SetUp() override {
    ::setenv(kKeyEnv, kKey, 1);
    _fake->reset();
  }

  static Endpoint endpoint(std::string provider = "openai_chat") {
    Endpoint e;
    e.name = "fake";
    e.provider = std::move(provider);
    e.base_url = _fake->url();
    e.api_key_env = kKeyEnv;
    e.connect_ms = 2000;
    e.read_ms = 10000;
    e.backoff_base_ms = 10;
    e.backoff_cap_ms = 50;
    return e;
  }
  static Request chat(bool stream = false, std::string text = "hello there") {
    Request r;
    r.path = "/v1/chat/completions";
    r.body = std::string("{\"model\":\"gpt-4o\",") + (stream ? "\"stream\":true," : "") +
             "\"messages\":[{\"role\":\"user\",\"content\":\"" + text + "\"}]}";
    return r;
  }

  static testing::TempDir* _dir;
  static Fake* _fake;
  Client _client;
};

testing::TempDir* ClientTest::_dir = nullptr;
Fake* ClientTest::_fake = nullptr;

std::string key_sha256() { return base::to_hex(base::sha256(std::string_view(kKey))); }

TEST_F(ClientTest, PlainCall) {
  const Response r = _client.call(endpoint(), chat());
  ASSERT_TRUE(r.ok()) << r.status << " " << r.error << " " << r.body;
  EXPECT_EQ(r.attempts, 1);
  const json::value body = json::parse(r.body);
  EXPECT_EQ(body.at("choices").at(0).at("message").at("content").as_string(), "echo: hello there");
  EXPECT_EQ(r.header("content-type").value_or(""), "application/json");

  const json::array seen = _fake->requests();
  ASSERT_EQ(seen.size(), 1u);
  const json::object& got = seen[0].as_object();
  EXPECT_EQ(got.at("path").as_string(), "/v1/chat/completions");
  EXPECT_EQ(got.at("body").as_string(), chat().body);  // byte for byte
  const json::object& headers = got.at("headers").as_object();
  EXPECT_EQ(headers.at("authorization").as_string(), "REDACTED");
  EXPECT_EQ(headers.at("content-type").as_string(), "application/json");
  EXPECT_EQ(headers.at("host").as_string(), "127.0.0.1:" + std::to_string(_fake->port));
  EXPECT_EQ(got.at("auth").at("header").as_string(), "authorization");
  EXPECT_EQ(got.at("auth").at("sha256").as_string(), key_sha256());  // "Bearer <key>", the key exact
}

TEST_F(ClientTest, BasePrefixEndpointAndRequestHeaders) {
  Endpoint e = endpoint();
  e.base_url += "/openai/";
  e.headers = {{"OpenAI-Organization", "org-1"}};
  Request request = chat();
  request.headers = {{"X-Request-Tag", "t1"}, {"Content-Length", "999"}};  // framing headers are the client's
  const Response r = _client.call(e, request);
  ASSERT_TRUE(r.ok()) << r.error;
  const json::array seen = _fake->requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].at("path").as_string(), "/openai/v1/chat/completions");
  EXPECT_EQ(seen[0].at("headers").at("openai-organization").as_string(), "org-1");
  EXPECT_EQ(seen[0].at("headers").at("x-request-tag").as_string(), "t1");
  EXPECT_EQ(seen[0].at("headers").at("content-length").as_string(), std::to_string(request.body.size()));
}

TEST_F(ClientTest, KeepAliveReusesOneConnection) {
  for (int i = 0; i < 3; ++i) {
    const Response r = _client.call(endpoint(), chat());
    ASSERT_TRUE(r.ok()) << r.error;
  }
  const json::array seen = _fake->requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].at("connection"), seen[1].at("connection"));
  EXPECT_EQ(seen[1].at("connection"), seen[2].at("connection"));
  EXPECT_EQ(_client.stats().connections_opened, 1u);
  EXPECT_EQ(_client.stats().connections_reused, 2u);
}

TEST_F(ClientTest, ConnectionClosedWhileIdleIsReplacedSilently) {
  _fake->script(R"([{"drop_after": true}])");
  ASSERT_TRUE(_client.call(endpoint(), chat()).ok());
  std::this_thread::sleep_for(200ms);  // the fake closes it after answering
  const Response r = _client.call(endpoint(), chat());
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.attempts, 1);
  const json::array seen = _fake->requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_NE(seen[0].at("connection"), seen[1].at("connection"));
  EXPECT_EQ(_client.stats().connections_opened, 2u);
}

TEST_F(ClientTest, RetriesA429AfterItsRetryAfter) {
  _fake->script(R"([{"status": 429, "headers": {"Retry-After": "1"}}])");
  const auto start = Clock::now();
  const Response r = _client.call(endpoint(), chat());
  ASSERT_TRUE(r.ok()) << r.status << " " << r.error;
  EXPECT_EQ(r.attempts, 2);
  EXPECT_GE(ms_since(start), 1000);  // it waited what the server asked, not its own 10 ms backoff
  EXPECT_GE(r.latency_ms, 1000);
  EXPECT_EQ(_fake->requests().size(), 2u);
  EXPECT_EQ(_client.stats().retries, 1u);
}

TEST_F(ClientTest, RetryAfterMsAndHttpDate) {
  _fake->script(R"([{"status": 429, "headers": {"retry-after-ms": "300", "Retry-After": "1"}},
                    {"status": 503, "headers": {"Retry-After": "Sun, 06 Nov 1994 08:49:37 GMT"}}])");
  const auto start = Clock::now();
  const Response r = _client.call(endpoint(), chat());
  ASSERT_TRUE(r.ok()) << r.status << " " << r.error;
  EXPECT_EQ(r.attempts, 3);
  EXPECT_GE(ms_since(start), 300);  // retry-after-ms wins over Retry-After; a past date means now
  EXPECT_LT(ms_since(start), 1250);  // not the 1 s of Retry-After
}

TEST_F(ClientTest, RetryAfterBeyondTheCapIsNotWaitedFor) {
  _fake->script(R"([{"status": 429, "headers": {"Retry-After": "30"}}])");
  Endpoint e = endpoint();
  e.max_retry_after_ms = 2000;
  const auto start = Clock::now();
  const Response r = _client.call(e, chat());
  EXPECT_EQ(r.status, 429);
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.header("retry-after").value_or(""), "30");  // the caller can tell its own client
  EXPECT_LT(ms_since(start), 2000);
}

TEST_F(ClientTest, Retries5xxThenSucceeds) {
  _fake->script(R"([{"status": 500}, {"status": 502}])");
  const Response r = _client.call(endpoint(), chat());
  ASSERT_TRUE(r.ok()) << r.status << " " << r.error;
  EXPECT_EQ(r.attempts, 3);
  EXPECT_EQ(_fake->requests().size(), 3u);
}

TEST_F(ClientTest, NoRetryOnOther4xx) {
  _fake->script(R"([{"status": 400}])");
  const Response r = _client.call(endpoint(), chat());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_TRUE(r.error.empty());
  EXPECT_NE(r.body.find("scripted status 400"), std::string::npos) << r.body;
  EXPECT_EQ(_fake->requests().size(), 1u);
}

TEST_F(ClientTest, RetryBudgetExhaustedReturnsTheLastStatus) {
  _fake->script(R"([{"status": 500}, {"status": 502}, {"status": 503}, {"reply": "too late"}])");
  Endpoint e = endpoint();
  e.max_retries = 2;
  const Response r = _client.call(e, chat());
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.attempts, 3);
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(_fake->requests().size(), 3u);
}

TEST_F(ClientTest, ReadTimeoutIsNotRetried) {
  _fake->script(R"([{"delay_ms": 3000}])");
  Endpoint e = endpoint();
  e.read_ms = 300;
  const auto start = Clock::now();
  const Response r = _client.call(e, chat());
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_NE(r.error.find("no response within 300 ms (read timeout)"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("upstream 'fake' POST http://127.0.0.1:"), std::string::npos) << r.error;
  EXPECT_LT(ms_since(start), 2500);
  // The client is still usable, on a new connection.
  EXPECT_TRUE(_client.call(endpoint(), chat()).ok());
}

std::uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST_F(ClientTest, ConnectRefusedIsRetriedThenReported) {
  Endpoint e = endpoint();
  e.base_url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/v1";
  e.max_retries = 2;
  const Response r = _client.call(e, chat());
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.attempts, 3);
  EXPECT_NE(r.error.find("connecting: Connection refused"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("(3 attempts)"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("/v1/v1/chat/completions"), std::string::npos) << r.error;
}

TEST_F(ClientTest, ConnectTimeout) {
  // A listener that never accepts, its backlog filled: the kernel leaves further SYNs unanswered.
  const testing::Listener listener = testing::listen_loopback(0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(listener.port);
  std::vector<int> fillers;
  for (int i = 0; i < 8; ++i) {
    fillers.push_back(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    ::connect(fillers.back(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  std::this_thread::sleep_for(100ms);
  Endpoint e = endpoint();
  e.base_url = "http://127.0.0.1:" + std::to_string(listener.port);
  e.connect_ms = 300;
  e.read_ms = 300;
  e.max_retries = 1;
  const auto start = Clock::now();
  const Response r = _client.call(e, chat());
  const auto elapsed = ms_since(start);
  for (int fd : fillers) ::close(fd);
  ::close(listener.fd);
  if (r.error.find("read timeout") != std::string::npos) GTEST_SKIP() << "this kernel accepted past the backlog";
  EXPECT_EQ(r.attempts, 2);  // a connect timeout is retried: the request never left
  EXPECT_NE(r.error.find("connecting: timed out after 300 ms (connect timeout)"), std::string::npos) << r.error;
  EXPECT_GE(elapsed, 600);
  EXPECT_LT(elapsed, 3000);
}

TEST_F(ClientTest, MissingKeyAndEchoAreRefusedWithoutACall) {
  Endpoint e = endpoint();
  e.api_key_env = "STATEFOLD_UPSTREAM_TEST_UNSET";
  ::unsetenv(e.api_key_env.c_str());
  Response r = _client.call(e, chat());
  EXPECT_EQ(r.error,
            "upstream 'fake': the environment variable STATEFOLD_UPSTREAM_TEST_UNSET (its API key) is not set");
  r = _client.call(endpoint("echo"), chat());
  EXPECT_NE(r.error.find("offline echo provider"), std::string::npos);
  e = endpoint();
  e.auth = Auth::none;  // a local vLLM: no key sent even though the variable is set
  ASSERT_TRUE(_client.call(e, chat()).ok());
  const json::array seen = _fake->requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_FALSE(seen[0].at("auth").at("present").as_bool());
}

TEST_F(ClientTest, AnthropicAuthAndStream) {
  Request request;
  request.path = "/v1/messages";
  request.body = R"({"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,)"
                 R"("messages":[{"role":"user","content":"hi there"}]})";
  std::vector<std::string> names;
  std::string text;
  const Response r = _client.stream(endpoint("anthropic"), request, [&](const SseEvent& event) {
    names.push_back(event.event);
    const json::value data = json::parse(event.data);
    if (event.event == "content_block_delta") text += data.at("delta").at("text").as_string().c_str();
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(r.body.empty());
  ASSERT_GE(names.size(), 5u);
  EXPECT_EQ(names.front(), "message_start");
  EXPECT_EQ(names.back(), "message_stop");
  EXPECT_EQ(text, "echo: hi there");
  EXPECT_EQ(r.events, names.size());
  const json::array seen = _fake->requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].at("auth").at("header").as_string(), "x-api-key");
  EXPECT_EQ(seen[0].at("auth").at("sha256").as_string(), key_sha256());
  EXPECT_EQ(seen[0].at("headers").at("anthropic-version").as_string(), "2023-06-01");
  EXPECT_EQ(seen[0].at("headers").at("accept").as_string(), "text/event-stream");
  EXPECT_FALSE(seen[0].at("headers").as_object().contains("authorization"));
}

TEST_F(ClientTest, ResponsesStreamAndAzureAuth) {
  Endpoint e = endpoint("openai_responses");
  e.auth = Auth::api_key;
  Request request;
  request.path = "/v1/responses";
  request.body = R"({"model":"gpt-4o","stream":true,"input":"say hi"})";
  std::vector<std::string> names;
  const Response r = _client.stream(e, request, [&](const SseEvent& event) {
    names.push_back(event.event);
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names.front(), "response.created");
  EXPECT_EQ(names.back(), "response.completed");
  EXPECT_NE(std::find(names.begin(), names.end(), "response.output_text.delta"), names.end());
  EXPECT_EQ(_fake->requests()[0].at("auth").at("header").as_string(), "api-key");
}

TEST_F(ClientTest, StreamDeliversEventsAsTheyArrive) {
  _fake->script(R"([{"chunks": ["one ", "two ", "three ", "four"], "chunk_delay_ms": 150}])");
  const auto start = Clock::now();
  std::vector<std::int64_t> at;
  std::string text;
  bool done = false;
  const Response r = _client.stream(endpoint(), chat(true), [&](const SseEvent& event) {
    at.push_back(ms_since(start));
    if (event.done()) {
      done = true;
    } else {
      const json::value data = json::parse(event.data);
      const json::object& delta = data.at("choices").at(0).at("delta").as_object();
      if (auto* content = delta.if_contains("content"); content && content->is_string()) {
        text += content->as_string().c_str();
      }
    }
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_TRUE(done);
  EXPECT_EQ(text, "one two three four");
  ASSERT_EQ(at.size(), 7u);  // role, 4 deltas, finish, [DONE]
  // The fake sleeps 150 ms before each event: a client that buffered the body would see them all at once.
  EXPECT_GE(at.back() - at.front(), 6 * 150 * 9 / 10);
  EXPECT_GE(r.latency_ms, at.back());
}

TEST_F(ClientTest, StreamCutMidwayIsAnErrorAndNotRetried) {
  _fake->script(R"([{"cut_after": 3}])");
  int seen = 0;
  const Response r = _client.stream(endpoint(), chat(true), [&](const SseEvent&) {
    ++seen;
    return true;
  });
  EXPECT_EQ(seen, 3);
  EXPECT_EQ(r.events, 3u);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_NE(r.error.find("the connection closed in the middle of the response after 3 events"), std::string::npos)
      << r.error;
  EXPECT_EQ(_fake->requests().size(), 1u);
}

TEST_F(ClientTest, StreamRetriedBeforeTheFirstEvent) {
  _fake->script(R"([{"status": 429, "headers": {"Retry-After": "0"}}, {"status": 500}])");
  int seen = 0;
  const Response r = _client.stream(endpoint(), chat(true), [&](const SseEvent&) {
    ++seen;
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.status << " " << r.error;
  EXPECT_EQ(r.attempts, 3);
  EXPECT_GT(seen, 3);
}

TEST_F(ClientTest, StreamStoppedByTheCallbackDropsTheConnection) {
  int seen = 0;
  Response r = _client.stream(endpoint(), chat(true), [&](const SseEvent&) { return ++seen < 2; });
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(seen, 2);
  EXPECT_EQ(r.events, 2u);
  r = _client.call(endpoint(), chat());
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(_client.stats().connections_opened, 2u);  // the half-read one was not pooled
}

TEST_F(ClientTest, StreamErrorStatusLandsInTheBody) {
  _fake->script(R"([{"status": 401}])");
  int seen = 0;
  const Response r = _client.stream(endpoint(), chat(true), [&](const SseEvent&) {
    ++seen;
    return true;
  });
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(seen, 0);
  EXPECT_NE(r.body.find("scripted status 401"), std::string::npos) << r.body;
}

// Whatever fails, neither errors nor log lines (at debug level) carry the key.
TEST_F(ClientTest, TheKeyNeverAppearsInErrorsOrLogs) {
  base::set_log_level(base::LogLevel::debug);
  ::testing::internal::CaptureStderr();
  std::vector<std::string> errors;
  _fake->script(R"([{"status": 400}, {"delay_ms": 1500}, {"cut_after": 1}, {"status": 500}, {"status": 500}])");
  errors.push_back(_client.call(endpoint(), chat()).error);
  Endpoint slow = endpoint();
  slow.read_ms = 200;
  errors.push_back(_client.call(slow, chat()).error);
  errors.push_back(_client.stream(endpoint(), chat(true), [](const SseEvent&) { return true; }).error);
  Endpoint one_retry = endpoint();
  one_retry.max_retries = 1;
  errors.push_back(_client.call(one_retry, chat()).error);
  Endpoint refused = endpoint();
  refused.base_url = "http://127.0.0.1:" + std::to_string(closed_port());
  errors.push_back(_client.call(refused, chat()).error);
  Endpoint bad_header = endpoint();
  bad_header.headers = {{"X-Bad", "a\r\nb"}};
  errors.push_back(_client.call(bad_header, chat()).error);
  const std::string logs = ::testing::internal::GetCapturedStderr();
  base::set_log_level(base::LogLevel::info);

  EXPECT_NE(logs.find("upstream call"), std::string::npos) << "debug logging did not run";
  EXPECT_EQ(logs.find(kKey), std::string::npos) << logs;
  for (const std::string& error : errors) EXPECT_EQ(error.find(kKey), std::string::npos) << error;
  EXPECT_FALSE(errors[1].empty());
  EXPECT_FALSE(errors[2].empty());
  EXPECT_FALSE(errors[4].empty());
  EXPECT_FALSE(errors[5].empty());
  // And the fake never stored it either.
  for (const json::value& request : _fake->requests()) {
    EXPECT_EQ(json::serialize(request).find(kKey), std::string::npos);
  }
}

// Issue 9, defect 7: an upstream that quotes the key back (in its body and a header) must not get it stored: the
// response the client returns (which the gateway turns into errors and receipts) has it redacted.
TEST_F(ClientTest, AKeyTheUpstreamEchoesIsRedactedFromTheResponse) {
  _fake->script(R"([{"status": 401, "echo_auth": true}, {"status": 200, "echo_auth": true}])");
  for (int i = 0; i < 2; ++i) {
    const Response r = _client.call(endpoint(), chat());
    EXPECT_EQ(r.status, i == 0 ? 401 : 200);
    EXPECT_NE(r.body.find("invalid credentials"), std::string::npos) << r.body;
    EXPECT_EQ(r.body.find(kKey), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("[redacted]"), std::string::npos) << r.body;
    ASSERT_TRUE(r.header("x-echo").has_value());
    EXPECT_EQ(r.header("x-echo")->find(kKey), std::string::npos);
    EXPECT_EQ(r.error.find(kKey), std::string::npos) << r.error;
  }
}

// The same in a stream: each event is scrubbed before the caller (and so the client and the receipt) sees it.
TEST_F(ClientTest, AKeyTheUpstreamEchoesInAStreamIsRedactedFromEveryEvent) {
  _fake->script(R"([{"echo_auth": true}])");
  std::string seen;
  const Response r = _client.stream(endpoint(), chat(true), [&](const SseEvent& event) {
    seen += event.data;
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_NE(seen.find("credentials: "), std::string::npos) << seen;
  EXPECT_EQ(seen.find(kKey), std::string::npos) << seen;
  EXPECT_NE(seen.find("[redacted]"), std::string::npos) << seen;
}

TEST_F(ClientTest, ConcurrentCallsFromManyThreads) {
  constexpr int kThreads = 4, kCalls = 5;
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        // Appended, not "t" + std::to_string(t) + ...: GCC 12 -O3 false -Wrestrict (GCC bug 105651).
        std::string text = "t";
        text.append(std::to_string(t)).append("c").append(std::to_string(i));
        const Response r = _client.call(endpoint(), chat(false, text));
        if (r.ok() && r.body.find("echo: " + text) != std::string::npos) ++good;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(good.load(), kThreads * kCalls);
  EXPECT_LE(_client.stats().connections_opened, static_cast<std::uint64_t>(kThreads));
}

// TLS: a certificate for "localhost" made by the openssl CLI, the fake serving HTTPS with it.
class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto made = testing::run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                                    "-addext", "subjectAltName=DNS:localhost", "-keyout", _dir.path() + "/key.pem",
                                    "-out", _dir.path() + "/cert.pem"},
                                   60s);
    if (!made.status.exited_with(0)) GTEST_SKIP() << "openssl req failed: " << made.err;
    std::ofstream(_dir.path() + "/script.json") << R"([{"reply": "over tls"}])";
    _fake.emplace(_dir.path(), std::vector<std::string>{"--tls-cert", _dir.path() + "/cert.pem", "--tls-key",
                                                        _dir.path() + "/key.pem", "--script",
                                                        _dir.path() + "/script.json"});
    ::setenv(kKeyEnv, kKey, 1);
  }
  Endpoint endpoint(const std::string& host) {
    Endpoint e;
    e.name = "tls";
    e.provider = "openai_chat";
    e.base_url = "https://" + host + ":" + std::to_string(_fake->port);
    e.api_key_env = kKeyEnv;
    e.ca_file = _dir.path() + "/cert.pem";
    e.max_retries = 0;
    return e;
  }

  testing::TempDir _dir;
  std::optional<Fake> _fake;
  Client _client;
};

TEST_F(TlsTest, CallsAndStreamsOverVerifiedTls) {
  Request request;
  request.path = "/v1/chat/completions";
  request.body = R"({"model":"m","messages":[{"role":"user","content":"hi"}]})";
  const Response r = _client.call(endpoint("localhost"), request);
  ASSERT_TRUE(r.ok()) << r.status << " " << r.error;
  EXPECT_NE(r.body.find("over tls"), std::string::npos) << r.body;

  request.body = R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]})";
  int seen = 0;
  const Response s = _client.stream(endpoint("localhost"), request, [&](const SseEvent&) {
    ++seen;
    return true;
  });
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_GT(seen, 2);
  EXPECT_EQ(_client.stats().connections_opened, 1u);  // keep-alive over TLS too
  EXPECT_EQ(_client.stats().connections_reused, 1u);
}

Request empty_chat() {
  Request r;
  r.path = "/v1/chat/completions";
  r.body = "{}";
  return r;
}

TEST_F(TlsTest, UntrustedOrMismatchedCertificatesAreRefused) {
  Endpoint system_cas = endpoint("localhost");
  system_cas.ca_file.clear();  // the self-signed certificate is not among the system's CAs
  const Response a = _client.call(system_cas, empty_chat());
  EXPECT_EQ(a.status, 0);
  EXPECT_NE(a.error.find("TLS handshake"), std::string::npos) << a.error;
  EXPECT_NE(a.error.find("certificate"), std::string::npos) << a.error;

  const Response b = _client.call(endpoint("127.0.0.1"), empty_chat());
  EXPECT_EQ(b.status, 0);  // the certificate names localhost, not 127.0.0.1
  EXPECT_NE(b.error.find("TLS handshake"), std::string::npos) << b.error;
  EXPECT_NE(b.error.find("mismatch"), std::string::npos) << b.error;

  Endpoint missing_ca = endpoint("localhost");
  missing_ca.ca_file = _dir.path() + "/nope.pem";
  const Response c = _client.call(missing_ca, empty_chat());
  EXPECT_NE(c.error.find("cannot load ca_file"), std::string::npos) << c.error;
}

}  // namespace
}  // namespace statefold::upstream
