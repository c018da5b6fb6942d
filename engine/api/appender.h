// Appender: the write path of the API. Sends events to Kafka and completes each request once the engine has
// folded its records (read-your-writes), with each event's outcome, version, partition and offset.
//
// Thread-safety: append() from any thread; folded() from the engine thread (wired to Engine::on_committed).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "log/log.h"
#include "runtime/engine.h"

namespace statefold::api {

struct EventOutcome {
  std::string event_id;
  std::string status;  // accepted | duplicate | rejected | appended (on the log, not folded yet) | pending
  std::uint64_t version = 0;
  std::int32_t partition = -1;
  std::int64_t offset = -1;
  std::string reason;
};

struct AppendResult {
  enum class Kind { folded, appended, unavailable, timed_out } kind = Kind::folded;
  std::vector<EventOutcome> events;
  std::string error;
};

class Appender {
 public:
  struct Options {
    std::string brokers;
    std::string topic;
    std::string transactional_id;                  // for multi-event appends (all or nothing)
    std::chrono::milliseconds fold_timeout{10000};
    std::chrono::milliseconds produce_timeout{10000};
  };
  static base::Result<std::unique_ptr<Appender>> create(const Options& options);
  ~Appender();

  struct AppendOptions {
    bool wait = true;  // done() once folded; false: once Kafka acknowledged them
    // Several events as one Kafka transaction (none visible unless all are). false: sent in order on the
    // idempotent producer, which is quicker (no transaction round trips, no shared transaction lock) but may leave
    // a prefix of them on the log if this process dies between two sends.
    bool all_or_nothing = true;
    // Called once, before done(), when Kafka has acknowledged every event (not when one failed).
    std::function<void()> on_acknowledged;
  };

  // Sends the events (canonical FlatBuffers, all of one session) and calls `done` once, from some thread:
  // after they are folded when `wait`, else after Kafka acknowledged them.
  void append(std::string session_id, std::vector<std::pair<std::string, std::vector<std::uint8_t>>> events,
              bool wait, std::function<void(AppendResult)> done);
  void append(std::string session_id, std::vector<std::pair<std::string, std::vector<std::uint8_t>>> events,
              AppendOptions options, std::function<void(AppendResult)> done);

  // The engine committed these records.
  void folded(const std::vector<runtime::FoldedRecord>& records);

  // The engine stopped: every append still waiting is answered as unavailable (503) with `why`.
  void shutdown(const std::string& why);

 private:
  struct Pending;
  explicit Appender(Options options);
  void resolve_if_complete(const std::shared_ptr<Pending>& pending);
  void expire();

  Options _options;
  std::unique_ptr<log::Producer> _single;        // idempotent: one event, nothing to half-write
  std::unique_ptr<log::Producer> _transactional; // several events: one transaction
  std::mutex _transaction_mutex;

  std::mutex _mutex;
  // Waiting for (partition, offset) to be folded.
  std::map<std::pair<std::int32_t, std::int64_t>, std::pair<std::shared_ptr<Pending>, std::size_t>> _waiting;
  // Recently folded records, for deliveries that are reported after the engine already folded them.
  std::map<std::pair<std::int32_t, std::int64_t>, runtime::FoldedRecord> _recent;
  std::deque<std::pair<std::int32_t, std::int64_t>> _recent_order;
  std::vector<std::shared_ptr<Pending>> _in_flight;
  std::thread _poller;
  std::atomic<bool> _stop{false};
};

}  // namespace statefold::api
