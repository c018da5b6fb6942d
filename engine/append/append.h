// append: the write path. Events of one session go to Kafka (one transaction when they must be all or nothing),
// and each event's outcome is reported once the engine has folded it (read-your-writes), with its version,
// partition and offset. The HTTP API and the gateway write only through the Sink port, so they can be tested over
// an in-process fold and never reach into each other.
//
//   auto appender = append::KafkaAppender::create({.brokers = b, .topic = t, .transactional_id = id}).value();
//   engine.on_committed([&](const auto& records) { appender->folded(records); });
//   appender->append("chat-42", std::move(events), {}, [](append::Outcome o) { if (o.all_accepted()) ... });
//
// Thread-safety: append() and settle() from any thread; folded() from the engine thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "engine/base/result.h"
#include "engine/codec/build.h"
#include "engine/log/log.h"
#include "engine/runtime/engine.h"

namespace statefold::append {

// (event id, canonical FlatBuffers bytes), all of one session, in order.
using Events = std::vector<std::pair<std::string, std::vector<std::uint8_t>>>;

// Where one event is: sent (pending), on the log (appended), or what the fold made of it.
enum class Status : std::uint8_t { pending, appended, accepted, duplicate, rejected };
std::string_view status_name(Status status);

struct EventOutcome {
  std::string event_id;
  Status status = Status::pending;
  std::uint64_t version = 0;  // accepted: its version; duplicate: the version that took the id; rejected: current
  std::int32_t partition = -1;
  std::int64_t offset = -1;
  std::string reason;
};

struct Outcome {
  enum class Kind {
    folded,       // every event folded (each one's status says how)
    appended,     // on the log, not waited for (Options::wait false)
    unavailable,  // Kafka did not take them (or serve is stopping): 503
    timed_out,    // on the log but not folded in time: 504
  } kind = Kind::folded;
  std::vector<EventOutcome> events;
  std::string error;

  bool all_accepted() const;
  const EventOutcome* first_rejected() const;  // nullptr when none was
};

struct Options {
  bool wait = true;  // done() once folded; false: once Kafka acknowledged them
  // Several events as one Kafka transaction (none visible unless all are). false: sent in order on the
  // idempotent producer, which is quicker (no transaction round trips, no shared transaction lock) but may leave
  // a prefix of them on the log if this process dies between two sends.
  bool all_or_nothing = true;
  // Reads of the session settle() on these events until they are folded: for writes answered before their fold
  // (a gateway reply goes out while its events are still on the way), so a read that follows sees them.
  bool settle_reads = false;
  // Called once, before done(), when Kafka has acknowledged every event (not when one failed).
  std::function<void()> on_acknowledged;
};

// The port writers use. KafkaAppender in serve; an in-process fold in tests.
class Sink {
 public:
  virtual ~Sink() = default;
  // Sends the events (canonical FlatBuffers, all of `session_id`) and calls `done` once, from some thread: after
  // they are folded when `options.wait`, else after Kafka acknowledged them.
  virtual void append(std::string session_id, Events events, Options options, std::function<void(Outcome)> done) = 0;
  // Returns once every append of the session made with `settle_reads` is done, or after `patience`.
  virtual void settle(std::string_view session_id, std::chrono::milliseconds patience) = 0;
  // Why writes are failing now (/readyz says so), or nullopt when they are not known to fail.
  virtual std::optional<std::string> health() const { return std::nullopt; }
};

// Counts the appends of each session that reads must wait for (Options::settle_reads). For Sink implementations.
class SettleTracker {
 public:
  void begin(const std::string& session_id);
  void end(const std::string& session_id);
  void wait(std::string_view session_id, std::chrono::milliseconds patience);

 private:
  std::mutex _mutex;
  std::condition_variable _done;
  std::map<std::string, int, std::less<>> _open;
};

class KafkaAppender final : public Sink {
 public:
  struct Config {
    std::string brokers;
    std::string topic;
    std::string transactional_id;  // for multi-event appends (all or nothing)
    std::chrono::milliseconds fold_timeout{10000};
    std::chrono::milliseconds produce_timeout{10000};
    // Why writes are refused before they reach Kafka (the engine paused folding for lack of disk: they would only
    // time out), or nullopt. Called on every append; must be cheap and thread-safe.
    std::function<std::optional<std::string>()> writes_refused;
  };
  static base::Result<std::unique_ptr<KafkaAppender>> create(const Config& config);
  ~KafkaAppender() override;

  void append(std::string session_id, Events events, Options options, std::function<void(Outcome)> done) override;
  void settle(std::string_view session_id, std::chrono::milliseconds patience) override;
  std::optional<std::string> health() const override;

  // The engine committed these records.
  void folded(const std::vector<runtime::FoldedRecord>& records);

  // The engine stopped: every append still waiting is answered as unavailable (503) with `why`.
  void shutdown(const std::string& why);

 private:
  struct Pending;
  struct TxJob {
    std::string session_id;
    Events events;
    std::shared_ptr<Pending> pending;
  };
  explicit KafkaAppender(Config config);
  log::Producer::DeliveryCallback on_delivery(const std::shared_ptr<Pending>& pending, std::size_t index);
  void fail(const std::shared_ptr<Pending>& pending, const std::string& why);
  void resolve_if_complete(const std::shared_ptr<Pending>& pending);
  void expire();
  void run_transactions();
  void run_transaction(std::vector<TxJob>& jobs);
  base::Result<void> replace_transactional_if_broken();

  Config _config;
  SettleTracker _settling;
  mutable std::mutex _health_mutex;
  std::string _transactions_failing;       // the last transaction's error; empty once one commits
  std::string _deliveries_failing;         // the last single append's delivery error; empty once one is delivered
  std::unique_ptr<log::Producer> _single;  // idempotent: one event, nothing to half-write
  // Several events: one transaction. Only the transaction thread touches it (and replaces it when fatal).
  log::ProducerOptions _tx_options;
  std::unique_ptr<log::Producer> _transactional;
  std::mutex _tx_mutex;
  std::condition_variable _tx_wake;
  std::deque<TxJob> _tx_queue;
  std::thread _tx_thread;

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

// The events of one append, with their envelope: ids, the session, the time, the source and, for a conditional
// batch (an expected version), the chaining that makes it fold whole or not at all: the first event names the
// version, each later one the event before it. The one place that writes an envelope; the HTTP API, the gateway
// and fork all append through it.
//
//   append::Batch batch("chat-42", "gateway", header.version);
//   if (auto added = batch.add(codec::Message{...}); !added) return refuse(added.error());
//   sink.append("chat-42", batch.take(), {}, done);
class Batch {
 public:
  Batch(std::string session_id, std::string source, std::optional<std::uint64_t> expected_version);
  // A statefold event, built directly; `event_id` empty: a fresh random id.
  base::Result<void> add(const codec::Payload& payload, std::string event_id = {});
  // A client's event in the JSON form: what it does not say itself (its id, the session, the condition, the time,
  // the source) comes from the batch. Errors name the field.
  base::Result<void> add_json(std::string_view json, std::string event_id = {});
  std::size_t size() const { return _events.size(); }
  Events take() { return std::move(_events); }

 private:
  std::string _session_id;
  std::string _source;
  std::optional<std::uint64_t> _expected_version;
  Events _events;
};

// A fresh random event id (32 hex digits).
std::string random_event_id();
std::int64_t now_us();

// What the fold's outcome is as an append status.
Status status_of(fold::Outcome outcome);

}  // namespace statefold::append
