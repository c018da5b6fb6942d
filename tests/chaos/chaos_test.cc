// The chaos suite (issue 9; spec section 10): clients write through every path while a driver injects faults, and
// at the end every acknowledged event is in its session's history exactly once and `statefold verify` passes.
//
// Writers, each keeping a ledger of what was acknowledged to it: HTTP single appends, HTTP array appends (one Kafka
// transaction each), gateway turns (POST /v1/chat/completions against the scripted fake model endpoint,
// tests/support/fake_upstream.py: the question and the model's answer, one transaction), and a producer writing
// straight to Kafka with statefold's murmur2 partitioner. Every event carries a text of its own, so a doubled event
// shows as a text seen twice. Faults: kill -9 of serve at random
// moments (restarted on the same data dir at once), kill -9 of the broker (started again on its data), and poison
// records on the topic (an incompressible record near the broker's size limit, and garbage bytes), which must go to
// the dead-letter topic without stopping serve; and floods of idle connections past serve's connection limit,
// during which a fresh client must be answered at once. Each fault's recovery time is printed.
//
// The bounded pass (CI) makes 6 serve kills and 1 broker kill; the full campaign is `tools/chaos.sh` (50 and 5).
// Knobs: STATEFOLD_CHAOS_SERVE_KILLS, STATEFOLD_CHAOS_BROKER_KILLS, STATEFOLD_CHAOS_SEED.
// The full disk has its own test (tests/api/disk_full_test.cc: it mounts a small tmpfs, as root); so has serve under
// `ulimit -n 1024` (tests/api/connections_test.cc).
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
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
namespace json = boost::json;

constexpr int kSessionsPerWriter = 6;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string message(const std::string& text) {
  return R"({"payload_type":"Message","payload":{"role":"user","content":[{"text":")" + text + R"("}]}})";
}

// What was acknowledged to the writers: per session, the texts of its events.
class Ledger {
 public:
  void acknowledged(const std::string& session, std::vector<std::string> texts) {
    std::lock_guard lock(_mutex);
    auto& kept = _texts[session];
    kept.insert(kept.end(), texts.begin(), texts.end());
  }
  std::map<std::string, std::vector<std::string>> texts() const {
    std::lock_guard lock(_mutex);
    return _texts;
  }
  std::size_t size() const {
    std::lock_guard lock(_mutex);
    std::size_t n = 0;
    for (const auto& [session, texts] : _texts) n += texts.size();
    return n;
  }

 private:
  mutable std::mutex _mutex;
  std::map<std::string, std::vector<std::string>> _texts;
};

class ChaosTest : public ProcessTest {
 protected:
  ServeOptions serve_options(const std::string& brokers) {
    ServeOptions o;
    o.brokers = brokers;
    o.topic = "chaos";
    o.dead_letter_topic = "chaos.dlq";
    o.group = "chaos";
    o.data_dir = data_dir("store");
    o.http_address = "127.0.0.1:" + std::to_string(_http_port);
    o.extra = {"--partitions", "2", "--append-timeout-ms", "5000", "--memory-budget-mb", "128",
               "--max-connections", "200"};
    if (!_config_path.empty()) o.extra.insert(o.extra.end(), {"--config", _config_path});
    return o;
  }

  // serve's [upstream]: every model to the fake endpoint, one try (a turn that fails is the client's to retry).
  void use_model_endpoint(std::uint16_t port) {
    ::setenv("STATEFOLD_CHAOS_UPSTREAM_KEY", "sk-chaos", 1);
    _config_path = path("serve.toml");
    std::FILE* f = std::fopen(_config_path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fprintf(f,
                 "[upstream]\ndefault_endpoint = \"fake\"\n\n[[upstream.endpoints]]\nname = \"fake\"\n"
                 "provider = \"openai_chat\"\nbase_url = \"http://127.0.0.1:%u/v1\"\n"
                 "api_key_env = \"STATEFOLD_CHAOS_UPSTREAM_KEY\"\nmodel = \"gpt-4o\"\nmodels = [\"*\"]\n"
                 "read_timeout_ms = 5000\nmax_retries = 0\n",
                 static_cast<unsigned>(port));
    std::fclose(f);
  }

  // Starts serve and waits until it is ready; the seconds that took, or a negative number if it did not get there.
  double start_ready(const std::string& brokers) {
    const auto start = Clock::now();
    _serve = &start_serve(serve_options(brokers));
    HttpClient probe("127.0.0.1", _http_port);
    const bool ready = wait_until([&] { return !_serve->running() || probe.get("/readyz").status == 200; },
                                  std::chrono::minutes(2), milliseconds(50));
    if (!ready || !_serve->running()) {
      ADD_FAILURE() << "serve did not get ready: " << tail(_serve->log_path());
      return -1;
    }
    return seconds_since(start);
  }

  // Every text in the session's history, in version order, paging through GET /v1/sessions/{id}/events.
  std::vector<std::string> history(HttpClient& http, const std::string& session) {
    std::vector<std::string> texts;
    std::int64_t from = 1;
    for (;;) {
      HttpReply page = http.get("/v1/sessions/" + session + "/events?limit=1000&from_version=" + std::to_string(from));
      if (page.status == 404) return texts;
      if (page.status != 200) {
        ADD_FAILURE() << "history of " << session << ": " << page.describe();
        return texts;
      }
      for (const auto& e : page.json().at("events").as_array()) {
        const auto* content = e.at("event").at("payload").as_object().if_contains("content");
        if (content == nullptr) continue;  // a gateway turn's receipt, a session's opening
        if (!content->as_array().empty()) texts.emplace_back(content->as_array().at(0).at("text").as_string());
      }
      const auto& next = page.json().at("next_from_version");
      if (next.is_null()) return texts;
      from = next.to_number<std::int64_t>();
    }
  }

  std::uint16_t _http_port = free_port();
  Serve* _serve = nullptr;
  std::string _config_path;
};

TEST_F(ChaosTest, EveryAcknowledgedEventSurvivesKillsOutagesAndPoisonExactlyOnce) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // the figures as they come, also when stdout is a file
  const int serve_kills = env_int("STATEFOLD_CHAOS_SERVE_KILLS", 6);
  const int broker_kills = env_int("STATEFOLD_CHAOS_BROKER_KILLS", 1);
  const auto seed = static_cast<std::uint32_t>(env_int("STATEFOLD_CHAOS_SEED", static_cast<int>(std::random_device{}())));
  std::printf("chaos: %d serve kills, %d broker kills, seed %u (rerun with STATEFOLD_CHAOS_SEED)\n", serve_kills,
              broker_kills, seed);
  std::mt19937 random(seed);

  OwnBroker broker(path("kafka"));
  ASSERT_TRUE(broker.start());
  FakeUpstreamProcess model(dir());  // with nothing scripted it answers "echo: <the question>"
  use_model_endpoint(model.port());
  ASSERT_GE(start_ready(broker.brokers()), 0);

  Ledger ledger;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> attempts{0};  // writes tried (an array append is one)
  std::atomic<std::uint64_t> acknowledged{0};
  std::atomic<std::uint64_t> turns_acknowledged{0};  // gateway turns among them
  std::vector<std::thread> writers;
  // However the driver ends (an assertion, an exception), the writers are stopped and joined, so the failure is
  // reported rather than lost in std::terminate.
  struct StopWriters {
    std::atomic<bool>& stop;
    std::vector<std::thread>& writers;
    ~StopWriters() {
      stop = true;
      for (auto& w : writers) {
        if (w.joinable()) w.join();
      }
    }
  } stop_writers{stop, writers};
  // HTTP single appends and array appends: only a 200 is an acknowledgement.
  for (const bool arrays : {false, true}) {
    writers.emplace_back([&, arrays] {
      HttpClient http("127.0.0.1", _http_port);
      for (std::uint64_t n = 0; !stop.load(); ++n) {
        const std::string session = std::string(arrays ? "chaos-array-" : "chaos-single-") +
                                    std::to_string(n % kSessionsPerWriter);
        const std::string text = std::string(arrays ? "array-" : "single-") + std::to_string(n);
        std::vector<std::string> texts{text};
        std::string body = message(text);
        if (arrays) {
          texts = {text + "-a", text + "-b"};
          body = "[" + message(texts[0]) + "," + message(texts[1]) + "]";
        }
        ++attempts;
        HttpReply r = http.post("/v1/sessions/" + session + "/events", body);
        if (r.status == 200) {
          ++acknowledged;
          ledger.acknowledged(session, texts);
        } else {
          std::this_thread::sleep_for(milliseconds(100));  // serve or the broker is down: as a client backs off
        }
      }
    });
  }
  // Gateway turns: a 200 means the question and the model's answer are both in the session.
  writers.emplace_back([&] {
    HttpClient http("127.0.0.1", _http_port);
    for (std::uint64_t n = 0; !stop.load(); ++n) {
      const std::string session = "chaos-gateway-" + std::to_string(n % kSessionsPerWriter);
      const std::string question = "turn-" + std::to_string(n);
      ++attempts;
      HttpReply r = http.post("/v1/chat/completions",
                              R"({"model":"gpt-4o","messages":[{"role":"user","content":")" + question + R"("}]})",
                              {{"X-Session-Id", session}});
      if (r.status == 200) {
        ++acknowledged;
        ++turns_acknowledged;
        ledger.acknowledged(session, {question, "echo: " + question});
      } else {
        std::this_thread::sleep_for(milliseconds(100));
      }
    }
  });
  // A producer outside statefold, straight to Kafka with the murmur2 partitioner: acknowledged once delivered.
  writers.emplace_back([&] {
    log::ProducerOptions options;
    options.brokers = broker.brokers();
    options.client_id = "chaos-producer";
    options.extra = {{"message.timeout.ms", "5000"}};
    auto producer = log::Producer::create(options);
    if (!producer) {
      ADD_FAILURE() << producer.error().message;
      return;
    }
    const std::vector<log::Header> json_form = {{"content-type", "application/json"}};
    for (std::uint64_t n = 0; !stop.load(); ++n) {
      const std::string session = "chaos-kafka-" + std::to_string(n % kSessionsPerWriter);
      const std::string text = "kafka-" + std::to_string(n);
      char id[33];
      std::snprintf(id, sizeof id, "%016llx%016llx", static_cast<unsigned long long>(seed),
                    static_cast<unsigned long long>(n + 1));
      const std::string value = R"({"event_id":")" + std::string(id) + R"(","session_id":")" + session +
                                R"(","occurred_at_us":)" + std::to_string(1767225600000000ull + n) +
                                R"(,"payload_type":"Message","payload":{"role":"user","content":[{"text":")" + text +
                                R"("}]}})";
      log::Delivery delivery;
      ++attempts;
      auto sent = (*producer)->send(
          "chaos", session,
          std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(value.data()), value.size()), json_form,
          [&delivery](const log::Delivery& d) { delivery = d; });
      if (sent && (*producer)->flush(seconds(10)) && delivery.error.empty() && delivery.offset >= 0) {
        ++acknowledged;
        ledger.acknowledged(session, {text});
      } else {
        std::this_thread::sleep_for(milliseconds(100));
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
  });

  // The faults.
  int poisoned = 0;
  auto poison = [&] {
    std::string big(1040000, '\0');
    for (char& c : big) c = static_cast<char>(random());
    produce(broker.brokers(), "chaos",
            {RawRecord{std::string("chaos-poison"), big, {}, std::nullopt},
             RawRecord{std::string("chaos-poison"), std::string("\x00\xff not an event", 15), {}, std::nullopt}},
            {{"message.max.bytes", "2000000"}});
    poisoned += 2;
  };
  // Descriptor exhaustion: more idle connections than serve may hold (--max-connections 200), held while the writers
  // go on. A fresh client must still be answered at once.
  int floods = 0;
  auto flood = [&] {
    std::vector<int> idle;
    for (int i = 0; i < 600; ++i) {
      if (const int fd = connect_loopback(_http_port); fd >= 0) idle.push_back(fd);
    }
    const auto asked = Clock::now();
    HttpClient fresh("127.0.0.1", _http_port, seconds(5));
    const HttpReply health = fresh.get("/healthz");
    const double answered_ms = seconds_since(asked) * 1000;
    std::this_thread::sleep_for(seconds(2));
    for (int fd : idle) ::close(fd);
    EXPECT_EQ(health.status, 200) << "with " << idle.size() << " idle connections held: " << health.describe();
    std::printf("chaos: flood %d: %zu idle connections held for 2 s; a fresh /healthz answered %d in %.1f ms\n",
                ++floods, idle.size(), health.status, answered_ms);
  };
  std::uniform_int_distribution<int> pause_ms(300, 2500);
  int broker_kills_done = 0;
  for (int kill = 1; kill <= serve_kills && !HasFatalFailure(); ++kill) {
    std::this_thread::sleep_for(milliseconds(pause_ms(random)));
    if (kill == 1 || kill == serve_kills / 2 + 1) {
      poison();
      std::this_thread::sleep_for(seconds(1));  // serve reads them before it is killed: they must not stop it
    }
    if (kill == 2 || kill == serve_kills - 1) flood();
    if (broker_kills_done < broker_kills && kill * broker_kills >= (broker_kills_done + 1) * serve_kills / 2) {
      ASSERT_TRUE(broker.kill());
      std::this_thread::sleep_for(milliseconds(pause_ms(random)));
      const auto restarted = Clock::now();
      ASSERT_TRUE(broker.start());  // returns once the broker answers: the JVM's and KRaft's start is its own
      const double boot_s = seconds_since(restarted);
      const auto up = Clock::now();
      HttpClient probe("127.0.0.1", _http_port);
      ASSERT_TRUE(wait_until([&] { return probe.post("/v1/sessions/chaos-probe/events", message("probe")).status == 200; },
                             std::chrono::minutes(2), milliseconds(100)))
          << tail(_serve->log_path());
      std::printf("chaos: broker kill %d: the broker took %.1f s to start again; writes acknowledged %.1f s after it "
                  "answered\n",
                  ++broker_kills_done, boot_s, seconds_since(up));
    }
    ASSERT_TRUE(_serve->running()) << "serve stopped by itself: " << tail(_serve->log_path());
    _serve->kill();
    const double ready_s = start_ready(broker.brokers());
    ASSERT_GE(ready_s, 0);
    std::printf("chaos: serve kill %d: ready again %.2f s after the restart (%zu events acknowledged so far)\n", kill,
                ready_s, ledger.size());
  }
  std::this_thread::sleep_for(seconds(1));
  stop = true;
  for (auto& w : writers) w.join();
  writers.clear();
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_GT(ledger.size(), 100u) << "too few writes were acknowledged for the test to mean anything";
  ASSERT_GT(turns_acknowledged.load(), 10u) << "too few gateway turns were answered: " << tail(_serve->log_path());

  // Every acknowledged event is in its session's history exactly once (the direct producer's ones may still be
  // on their way into the store), and no event is in it twice.
  HttpClient http("127.0.0.1", _http_port);
  const auto expected = ledger.texts();
  std::size_t missing = 0;
  std::size_t doubled = 0;
  std::string first_problem;
  const bool complete = wait_until(
      [&] {
        missing = doubled = 0;
        first_problem.clear();
        for (const auto& [session, texts] : expected) {
          std::map<std::string, int> seen;
          for (const auto& t : history(http, session)) ++seen[t];
          for (const auto& [t, count] : seen) {
            if (count > 1 && doubled++ == 0) first_problem = session + ": " + t + " twice";
          }
          for (const auto& t : texts) {
            if (seen[t] == 0 && missing++ == 0 && first_problem.empty()) first_problem = session + ": " + t + " missing";
          }
        }
        return (missing == 0 && doubled == 0) || doubled > 0;
      },
      std::chrono::minutes(2), milliseconds(500));
  EXPECT_TRUE(complete && missing == 0 && doubled == 0)
      << missing << " acknowledged events missing, " << doubled << " doubled; first: " << first_problem;
  std::printf("chaos: %llu of %llu writes acknowledged (%llu of them gateway turns; %zu events): %zu missing, %zu "
              "doubled; %d poison records\n",
              static_cast<unsigned long long>(acknowledged.load()), static_cast<unsigned long long>(attempts.load()),
              static_cast<unsigned long long>(turns_acknowledged.load()), ledger.size(), missing, doubled, poisoned);

  ASSERT_TRUE(_serve->stop().exited_with(0)) << tail(_serve->log_path());
  auto summary = inspect_summary(data_dir("store"));
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(summary->dlq_records, static_cast<std::uint64_t>(poisoned)) << summary->json;
  auto verified = statefold({"verify", "--data-dir", data_dir("store"), "--brokers", broker.brokers(), "--topic",
                             "chaos"},
                            std::chrono::minutes(5));
  EXPECT_TRUE(verified.status.exited_with(0)) << verified.out << verified.err;
}

}  // namespace
}  // namespace statefold::testing
