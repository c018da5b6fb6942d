// Helpers for tests that run statefold against a real Kafka broker (or its embedded mock): the broker address from
// STATEFOLD_BROKERS, unique topic and group names, the statefold binary as a child process (serve, append, inspect),
// polling with a deadline, raw produce and consume with headers, the reference fold of JSON lines in memory, and the
// log check every serve must pass (no unsupported compression).
//
//   class MyTest : public statefold::testing::ClusterTest {};
//   TEST_F(MyTest, Folds) {
//     auto topic = unique_name("events");
//     auto serve = start_serve({.topic = topic, .data_dir = data_dir("a")});
//     ASSERT_TRUE(wait_for_summary(data_dir("a"), [](const Summary& s) { return s.total() == 10; }));
//     ASSERT_TRUE(serve->stop().exited_with(0));
//   }
//
// Thread-safety: none; one test thread.
#pragma once

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>
#include <vector>

#include "engine/codec/codec.h"
#include "engine/fold/fold.h"
#include "engine/log/log.h"
#include "engine/view/view.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace statefold::testing {

// ------------------------------------------------------------------------------------------------ environment

// The statefold binary: $STATEFOLD_BIN (ctest sets it), else the one this test was built with.
inline std::string statefold_bin() {
  if (const char* bin = std::getenv("STATEFOLD_BIN"); bin != nullptr && *bin != '\0') return bin;
#ifdef STATEFOLD_BIN_DEFAULT
  return STATEFOLD_BIN_DEFAULT;
#else
  return "statefold";
#endif
}

// The source tree (for tools/kafka.sh).
inline std::string source_dir() {
#ifdef STATEFOLD_SOURCE_DIR
  return STATEFOLD_SOURCE_DIR;
#else
  return ".";
#endif
}

// A name no other test (nor another run of this one) uses: "<prefix>-<suite>-<test>-<pid>-<n>", legal as a Kafka topic
// and group name.
inline std::string unique_name(std::string_view prefix) {
  static int counter = 0;
  std::string name(prefix);
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info(); info != nullptr) {
    name += std::string("-") + info->test_suite_name() + "-" + info->name();
  }
  name += "-" + std::to_string(::getpid()) + "-" +
          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count() %
                         100000000) +
          "-" + std::to_string(++counter);
  for (char& c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) c = '_';
  }
  if (name.size() > 200) name.erase(0, name.size() - 200);
  return name;
}

// Polls `done` until it returns true or `timeout` passes; true if it did. Checks once more at the deadline.
inline bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds interval = std::chrono::milliseconds(50)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

inline void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

inline void write_lines(const std::string& path, const std::vector<std::string>& lines, std::size_t begin = 0,
                        std::size_t end = std::string::npos) {
  std::string content;
  end = std::min(end, lines.size());
  for (std::size_t i = begin; i < end; ++i) content.append(lines[i]).push_back('\n');
  write_file(path, content);
}

// The last `n` lines of a file, for failure messages.
inline std::string tail(const std::string& path, std::size_t n = 40) {
  const std::string all = read_file(path);
  std::size_t pos = all.size();
  for (std::size_t lines = 0; pos > 0 && lines <= n;) {
    --pos;
    if (all[pos] == '\n' && pos + 1 != all.size()) ++lines;
    if (lines > n) {
      ++pos;
      break;
    }
  }
  return all.substr(pos);
}

// ------------------------------------------------------------------------------------------------ the binary

// `statefold <args...>` to completion.
inline RunResult statefold(const std::vector<std::string>& args,
                           std::chrono::milliseconds timeout = std::chrono::minutes(5)) {
  std::vector<std::string> argv{statefold_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, timeout);
}

// `inspect --summary --format json`, parsed.
struct Summary {
  std::uint64_t sessions = 0;
  std::uint64_t events_applied = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t rejections = 0;
  std::uint64_t unknown_events = 0;
  std::uint64_t dlq_records = 0;
  std::map<std::int32_t, std::int64_t> offsets;
  std::string store_hash;
  std::string json;  // as printed

  // Records the store has taken in: every record ends up applied, a duplicate, a rejection or a dead letter.
  std::uint64_t total() const { return events_applied + duplicates + rejections + dlq_records; }
  std::int64_t offsets_sum() const {
    std::int64_t sum = 0;
    for (const auto& [p, o] : offsets) sum += o;
    return sum;
  }
};

inline Summary parse_summary(std::string_view text) {
  namespace json = boost::json;
  const json::object o = json::parse(text).as_object();
  Summary s;
  s.sessions = o.at("sessions").to_number<std::uint64_t>();
  s.events_applied = o.at("events_applied").to_number<std::uint64_t>();
  s.duplicates = o.at("duplicates").to_number<std::uint64_t>();
  s.rejections = o.at("rejections").to_number<std::uint64_t>();
  s.unknown_events = o.at("unknown_events").to_number<std::uint64_t>();
  s.dlq_records = o.at("dlq_records").to_number<std::uint64_t>();
  for (const auto& [partition, offset] : o.at("offsets").as_object()) {
    s.offsets[std::stoi(std::string(partition))] = offset.to_number<std::int64_t>();
  }
  s.store_hash = std::string(o.at("store_hash").as_string());
  s.json = std::string(text);
  while (!s.json.empty() && (s.json.back() == '\n' || s.json.back() == '\r')) s.json.pop_back();
  return s;
}

// The summary of a (running or stopped) engine's data dir; nullopt while there is no store yet, or if inspect
// failed (it is read-only and may race a starting engine).
inline std::optional<Summary> inspect_summary(const std::string& data_dir, std::string* error = nullptr) {
  auto r = statefold({"inspect", "--data-dir", data_dir, "--summary", "--format", "json"}, std::chrono::seconds(60));
  if (!r.status.exited_with(0)) {
    if (error != nullptr) *error = r.status.describe() + ": " + r.err;
    return std::nullopt;
  }
  try {
    return parse_summary(r.out);
  } catch (const std::exception& e) {
    if (error != nullptr) *error = std::string("unparsable summary: ") + e.what() + ": " + r.out;
    return std::nullopt;
  }
}

// `inspect --session ID --format json` (all messages up to `messages`); nullopt and the exit status in `status` when
// it fails (4: unknown session).
inline std::optional<std::string> inspect_session(const std::string& data_dir, const std::string& session_id,
                                                  std::uint64_t messages, ExitStatus* status = nullptr) {
  auto r = statefold({"inspect", "--data-dir", data_dir, "--session", session_id, "--format", "json", "--messages",
                      std::to_string(messages)},
                     std::chrono::seconds(60));
  if (status != nullptr) *status = r.status;
  if (!r.status.exited_with(0)) return std::nullopt;
  while (!r.out.empty() && (r.out.back() == '\n' || r.out.back() == '\r')) r.out.pop_back();
  return r.out;
}

// The pattern tools/kafka.sh check-logs uses for a client or broker without a codec, plus librdkafka's error name
// (UNSUPPORTED_COMPRESSION_TYPE), which the script's pattern does not catch.
inline const std::regex& unsupported_compression_pattern() {
  static const std::regex pattern(
      "UnsupportedCompressionType|unsupported[ _]compression|compression[^\\n]*not supported",
                                  std::regex::icase | std::regex::ECMAScript);
  return pattern;
}

// Every line of `files` that reports an unsupported compression type.
inline std::vector<std::string> unsupported_compression_lines(const std::vector<std::string>& files) {
  std::vector<std::string> hits;
  for (const auto& file : files) {
    std::istringstream in(read_file(file));
    std::string line;
    for (std::size_t n = 1; std::getline(in, line); ++n) {
      if (std::regex_search(line, unsupported_compression_pattern())) {
        hits.push_back(file + ":" + std::to_string(n) + ": " + line);
      }
    }
  }
  return hits;
}

// How to start `statefold serve`; empty fields leave serve's defaults.
struct ServeOptions {
  std::string brokers;      // empty with embedded_kafka
  std::string topic;
  std::string dead_letter_topic;
  std::string group;
  std::string data_dir;
  std::string log_path;     // stderr; stdout goes next to it with .out
  std::vector<std::string> extra;  // e.g. {"--max-batch", "500"}
  bool embedded_kafka = false;
  // serve's HTTP API. Off unless a test needs it: a fixed port would collide between the serves of one test, and
  // with whatever else on the machine holds it. Empty: serve's default.
  std::string http_address = "off";
  // Runs serve through another program, e.g. {"prlimit", "--nofile=1024:1024", "--"}.
  std::vector<std::string> launcher;
};

// A running `statefold serve`: its stderr (the log) in a file, SIGKILLed if still running when destroyed.
class Serve {
 public:
  explicit Serve(ServeOptions options) : _options(std::move(options)), _process(spawn(_options)) {}

  const ServeOptions& options() const { return _options; }
  const std::string& log_path() const { return _options.log_path; }
  std::string log() const { return read_file(_options.log_path); }
  Process& process() { return _process; }
  bool running() { return _process.running(); }

  // SIGTERM, then wait for the exit (the batch in hand is committed first).
  ExitStatus stop(std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
    _process.signal(SIGTERM);
    if (auto status = _process.wait_for(timeout)) return *status;
    ADD_FAILURE() << "statefold serve did not exit within " << timeout.count() << " ms of SIGTERM; killing it. Log:\n"
                  << tail(_options.log_path);
    return _process.kill();
  }
  ExitStatus kill() { return _process.kill(); }

 private:
  static Process spawn(const ServeOptions& o) {
    std::vector<std::string> argv = o.launcher;
    argv.insert(argv.end(), {statefold_bin(), "serve", "--data-dir", o.data_dir});
    if (o.embedded_kafka) {
      argv.push_back("--embedded-kafka");
    } else {
      argv.insert(argv.end(), {"--brokers", o.brokers});
    }
    if (!o.topic.empty()) argv.insert(argv.end(), {"--topic", o.topic});
    if (!o.dead_letter_topic.empty()) argv.insert(argv.end(), {"--dead-letter-topic", o.dead_letter_topic});
    if (!o.group.empty()) argv.insert(argv.end(), {"--group", o.group});
    if (!o.http_address.empty()) argv.insert(argv.end(), {"--http-address", o.http_address});
    argv.insert(argv.end(), o.extra.begin(), o.extra.end());
    return Process::spawn(argv, o.log_path + ".out", o.log_path);
  }

  ServeOptions _options;
  Process _process;
};

// ------------------------------------------------------------------------------------------------ raw Kafka

struct RawRecord {
  std::optional<std::string> key;
  std::string value;
  std::vector<log::Header> headers;
  std::optional<std::int32_t> partition;
};

// Produces `records` in order with statefold's idempotent producer and waits for every acknowledgement. Returns each
// record's delivery (partition and offset); a failed delivery fails the test.
inline std::vector<log::Delivery> produce(const std::string& brokers, const std::string& topic,
                                          const std::vector<RawRecord>& records, log::Properties extra = {}) {
  log::ProducerOptions options;
  options.brokers = brokers;
  options.client_id = "statefold-test";
  options.extra = std::move(extra);
  auto producer = log::Producer::create(options);
  if (!producer) {
    ADD_FAILURE() << "cannot create a producer: " << producer.error().message;
    return {};
  }
  std::vector<log::Delivery> deliveries(records.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    std::optional<std::string_view> key;
    if (r.key) key = *r.key;
    auto sent = (*producer)->send(
        topic, key,
        std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(r.value.data()), r.value.size()),
        r.headers, [&deliveries, i](const log::Delivery& d) { deliveries[i] = d; }, r.partition);
    if (!sent) ADD_FAILURE() << "send #" << i << " to " << topic << ": " << sent.error().message;
  }
  if (auto flushed = (*producer)->flush(std::chrono::seconds(60)); !flushed) {
    ADD_FAILURE() << "flush: " << flushed.error().message;
  }
  for (std::size_t i = 0; i < deliveries.size(); ++i) {
    EXPECT_TRUE(deliveries[i].error.empty() && deliveries[i].offset >= 0)
        << "record #" << i << " not delivered: " << deliveries[i].error;
  }
  return deliveries;
}

// log::end_offsets, retried for up to `timeout`. Right after a topic is created the broker may answer "Not leader for
// partition" for a partition whose leader has not settled, and log::end_offsets reports that at once as an error.
// nullopt (and a test failure) if it still fails at the deadline.
inline std::optional<std::map<std::int32_t, std::int64_t>> end_offsets(
    const std::string& brokers, const std::string& topic,
    std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  std::optional<std::map<std::int32_t, std::int64_t>> out;
  std::string error;
  wait_until(
      [&] {
        auto ends = log::end_offsets(brokers, topic);
        if (ends) out = std::move(*ends);
        if (!ends) error = ends.error().message;
        return out.has_value();
      },
      timeout, std::chrono::milliseconds(100));
  if (!out) ADD_FAILURE() << "end offsets of " << topic << ": " << error;
  return out;
}

struct ConsumedRecord {
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;  // nullopt: a null value
  std::vector<std::pair<std::string, std::string>> headers;

  // The last header named `name`, if any.
  std::optional<std::string> header(std::string_view name) const {
    std::optional<std::string> found;
    for (const auto& [n, v] : headers) {
      if (n == name) found = v;
    }
    return found;
  }
};

// Every record of `topic` from the beginning up to its end offsets at the time of the call, in partition then offset
// order. Reads with librdkafka directly: statefold's log::Consumer is a group consumer that hides headers.
inline std::vector<ConsumedRecord> consume_all(const std::string& brokers, const std::string& topic,
                                               std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  std::vector<ConsumedRecord> out;
  auto ends = end_offsets(brokers, topic);
  if (!ends) return out;
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  const std::vector<std::pair<std::string, std::string>> settings = {
      {"bootstrap.servers", brokers},
      {"group.id", unique_name("reader")},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"enable.partition.eof", "false"},
      {"log_level", "3"},
  };
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error, sizeof error) != RD_KAFKA_CONF_OK) {
      ADD_FAILURE() << name << ": " << error;
      rd_kafka_conf_destroy(conf);
      return out;
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
  if (rk == nullptr) {
    ADD_FAILURE() << "cannot create a consumer: " << error;
    rd_kafka_conf_destroy(conf);
    return out;
  }
  std::unique_ptr<rd_kafka_t, void (*)(rd_kafka_t*)> handle(rk, [](rd_kafka_t* h) {
    rd_kafka_consumer_close(h);
    rd_kafka_destroy(h);
  });
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(ends->size()));
  std::map<std::int32_t, std::int64_t> remaining;
  for (const auto& [p, end] : *ends) {
    if (end <= 0) continue;
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    remaining[p] = end;
  }
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  std::map<std::int32_t, std::vector<ConsumedRecord>> by_partition;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!remaining.empty() && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 200);
    if (m == nullptr) continue;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      ADD_FAILURE() << "consuming " << topic << ": " << rd_kafka_message_errstr(m);
      rd_kafka_message_destroy(m);
      continue;
    }
    ConsumedRecord r;
    r.partition = m->partition;
    r.offset = m->offset;
    if (m->key != nullptr) r.key = std::string(static_cast<const char*>(m->key), m->key_len);
    if (m->payload != nullptr) r.value = std::string(static_cast<const char*>(m->payload), m->len);
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name = nullptr;
      const void* value = nullptr;
      std::size_t size = 0;
      for (std::size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
           ++i) {
        r.headers.emplace_back(name,
                               value == nullptr ? std::string() : std::string(static_cast<const char*>(value), size));
      }
    }
    const std::int32_t partition = m->partition;
    const std::int64_t offset = m->offset;
    rd_kafka_message_destroy(m);
    by_partition[partition].push_back(std::move(r));
    if (auto it = remaining.find(partition); it != remaining.end() && offset + 1 >= it->second) remaining.erase(it);
  }
  if (!remaining.empty()) ADD_FAILURE() << "timed out reading " << topic << " to its end";
  for (auto& [p, records] : by_partition) {
    for (auto& r : records) out.push_back(std::move(r));
  }
  return out;
}

// ------------------------------------------------------------------------------------------------ reference fold

// JSON lines folded in memory, in order, exactly as the engine folds records: json_to_flatbuffers -> decode ->
// fold::Folder over a MemoryKv. Positions never enter the state hash, so the partitions the engine read the lines
// from do not matter as long as each session's lines keep their order.
class ReferenceFold {
 public:
  // Folds `lines` in batches of `batch` (batching does not change the state). A line that does not decode fails the
  // test and is skipped, as the engine would dead-letter it.
  void fold(const std::vector<std::string>& lines, std::size_t batch = 1000) {
    for (std::size_t i = 0; i < lines.size(); i += batch) {
      fold::Folder folder(_kv);
      for (std::size_t j = i; j < std::min(lines.size(), i + batch); ++j) {
        auto bytes = codec::json_to_flatbuffers(lines[j]);
        if (!bytes) {
          ADD_FAILURE() << "reference fold: line " << j << ": " << bytes.error().message;
          continue;
        }
        auto event = codec::decode(*bytes, codec::Encoding::flatbuffers);
        if (!event) {
          ADD_FAILURE() << "reference fold: line " << j << ": " << event.error().message;
          continue;
        }
        const std::string session(event->session_id());
        const fold::Applied applied = folder.apply(*event, {0, _next_offset++, 0});
        switch (applied.outcome) {
          case fold::Outcome::accepted: ++_accepted[session]; break;
          case fold::Outcome::duplicate: ++_duplicates; break;
          case fold::Outcome::rejected: ++_rejected; break;
        }
        _sessions.try_emplace(session, 0);
      }
      _kv.apply(folder.finish());
    }
  }

  const fold::MemoryKv& kv() const { return _kv; }
  std::string store_hash() const { return view::store_hash_hex(_kv); }
  state::StoreSummaryT summary() const { return fold::load_summary(_kv); }
  std::optional<std::string> session_json(const std::string& session_id, std::uint64_t messages) const {
    return view::session_json(_kv, session_id, view::SessionOptions{messages});
  }
  // Accepted events per session, counted from the fold's own outcomes.
  std::uint64_t accepted(const std::string& session_id) const {
    auto it = _accepted.find(session_id);
    return it == _accepted.end() ? 0 : it->second;
  }
  std::uint64_t duplicates() const { return _duplicates; }
  std::uint64_t rejected() const { return _rejected; }
  // Every session a line named, in id order.
  std::vector<std::string> sessions() const {
    std::vector<std::string> out;
    for (const auto& [s, unused] : _sessions) out.push_back(s);
    return out;
  }

 private:
  fold::MemoryKv _kv;
  std::int64_t _next_offset = 0;
  std::map<std::string, std::uint64_t> _accepted;
  std::map<std::string, int> _sessions;
  std::uint64_t _duplicates = 0;
  std::uint64_t _rejected = 0;
};

// ------------------------------------------------------------------------------------------------ fixture

// A test that runs statefold processes: a temp dir for data and logs, numbered serve logs that TearDown checks for
// unsupported compression (and prints on failure), and no child left behind (Serve and Process kill theirs).
class ProcessTest : public ::testing::Test {
 protected:
  void TearDown() override {
    _serves.clear();  // kill anything still running before reading the logs
    if (!_logs.empty()) {
      auto hits = unsupported_compression_lines(_logs);
      std::string joined;
      for (const auto& h : hits) joined += h + "\n";
      EXPECT_TRUE(hits.empty()) << "unsupported compression reported:\n" << joined;
      check_logs_with_kafka_sh(_logs);
    }
    if (HasFailure()) {
      for (const auto& path : _logs) std::cerr << "---- last lines of " << path << " ----\n" << tail(path) << "\n";
    }
  }

  const std::string& dir() const { return _dir.path(); }
  std::string data_dir(std::string_view name) const { return dir() + "/" + std::string(name); }
  std::string path(std::string_view name) const { return dir() + "/" + std::string(name); }

  // Starts serve; its log goes to <dir>/serve-<n>.log and is checked at the end of the test.
  Serve& start_serve(ServeOptions options) {
    if (options.log_path.empty()) options.log_path = path("serve-" + std::to_string(_logs.size() + 1) + ".log");
    _logs.push_back(options.log_path);
    _serves.push_back(std::make_unique<Serve>(std::move(options)));
    return *_serves.back();
  }

  // Polls the summary of `data_dir` until `done` holds; returns the last summary read (nullopt if none could be
  // read). Stops early, failing, if `serve` (when given) exits.
  std::optional<Summary> wait_for_summary(const std::string& data_dir, const std::function<bool(const Summary&)>& done,
                                          std::chrono::milliseconds timeout, Serve* serve = nullptr) {
    std::optional<Summary> last;
    std::string error;
    bool died = false;
    const bool ok = wait_until(
        [&] {
          if (auto s = inspect_summary(data_dir, &error)) last = std::move(s);
          if (last && done(*last)) return true;
          if (serve != nullptr && !serve->running()) {
            died = true;
            return true;
          }
          return false;
        },
        timeout, std::chrono::milliseconds(100));
    if (died) {
      const ExitStatus status = *serve->process().status();
      ADD_FAILURE() << "statefold serve exited before the test stopped it (" << status.describe() << ")"
                    << (status.exited_with(0) ? ": a clean exit means something else sent it SIGTERM or SIGINT" : "")
                    << "; log:\n"
                    << tail(serve->log_path());
      return std::nullopt;
    }
    if (!ok) {
      ADD_FAILURE() << "timed out after " << timeout.count() << " ms waiting on the summary of " << data_dir
                    << "; last: " << (last ? last->json : "none (" + error + ")");
      return std::nullopt;
    }
    return last;
  }

  // Log files of this test's serves (plus any the test adds) that TearDown checks.
  void add_log(std::string path) { _logs.push_back(std::move(path)); }

 private:
  // The same check through tools/kafka.sh, the project's one definition of it. `--dir` points at this test's own
  // directory so only this test's logs are read: the shared broker's log is test.sh's to check, once, at the end.
  void check_logs_with_kafka_sh(const std::vector<std::string>& logs) {
    const std::string script = source_dir() + "/tools/kafka.sh";
    if (::access(script.c_str(), R_OK) != 0) return;
    std::vector<std::string> argv{"bash", script, "check-logs", "--dir", dir()};
    bool any = false;
    for (const auto& l : logs) {
      if (::access(l.c_str(), R_OK) != 0) continue;
      argv.push_back(l);
      any = true;
    }
    if (!any) return;
    auto r = run(argv, std::chrono::seconds(60));
    EXPECT_TRUE(r.status.exited_with(0)) << "tools/kafka.sh check-logs: " << r.status.describe() << "\n" << r.err;
  }

  TempDir _dir;
  std::vector<std::string> _logs;
  std::vector<std::unique_ptr<Serve>> _serves;
};

// A ProcessTest against the real broker in STATEFOLD_BROKERS. Fails (never skips) when it is unset: an integration
// run without a broker is a broken setup, not a pass.
class ClusterTest : public ProcessTest {
 protected:
  void SetUp() override {
    const char* brokers = std::getenv("STATEFOLD_BROKERS");
    ASSERT_TRUE(brokers != nullptr && *brokers != '\0')
        << "STATEFOLD_BROKERS is not set. Integration tests need a real Kafka broker: run tools/test.sh, or start one "
           "with `bash tools/kafka.sh start --port 19092 --dir /tmp/statefold-test-kafka` and export "
           "STATEFOLD_BROKERS=127.0.0.1:19092 STATEFOLD_KAFKA_DIR=/tmp/statefold-test-kafka";
    _brokers = brokers;
  }

  const std::string& brokers() const { return _brokers; }

  // Serve options on this broker with a fresh topic, dead-letter topic and group unless given.
  ServeOptions serve_options(const std::string& topic, const std::string& data_dir_path,
                             std::vector<std::string> extra = {}) const {
    ServeOptions o;
    o.brokers = _brokers;
    o.topic = topic;
    o.dead_letter_topic = topic + ".dlq";
    o.group = topic + ".group";
    o.data_dir = data_dir_path;
    o.extra = std::move(extra);
    return o;
  }

  // `statefold append --brokers B --topic T FILE [extra...]`.
  RunResult append(const std::string& topic, const std::string& file, std::vector<std::string> extra = {}) const {
    std::vector<std::string> args{"append", "--brokers", _brokers, "--topic", topic, file};
    args.insert(args.end(), extra.begin(), extra.end());
    return statefold(args, std::chrono::minutes(5));
  }

 private:
  std::string _brokers;
};

}  // namespace statefold::testing
