#include "engine/append/append.h"

namespace statefold::append {

namespace {
constexpr std::size_t kRecentCapacity = 100000;
}

struct KafkaAppender::Pending {
  std::string session_id;
  std::vector<EventOutcome> events;
  std::size_t remaining = 0;
  bool wait = true;
  bool completed = false;
  std::string error;
  Outcome::Kind failure = Outcome::Kind::folded;
  std::chrono::steady_clock::time_point deadline;
  std::function<void(Outcome)> done;
  std::function<void()> on_acknowledged;
  std::size_t acknowledged = 0;
};

KafkaAppender::KafkaAppender(Config config) : _config(std::move(config)) {}

KafkaAppender::~KafkaAppender() {
  _stop = true;
  _tx_wake.notify_all();
  if (_tx_thread.joinable()) _tx_thread.join();
  if (_poller.joinable()) _poller.join();
  // Destroying a producer flushes it, which runs delivery callbacks that use this object's maps and mutex: destroy
  // the producers while those members still exist (they are declared after the producers, so die before them).
  _transactional.reset();
  _single.reset();
}

base::Result<std::unique_ptr<KafkaAppender>> KafkaAppender::create(const Config& options) {
  std::unique_ptr<KafkaAppender> appender(new KafkaAppender(options));
  log::ProducerOptions single;
  single.brokers = options.brokers;
  single.client_id = "statefold-api";
  single.delivery_timeout = options.produce_timeout;
  single.extra = {{"linger.ms", "0"}};  // an API append is latency-bound, not throughput-bound
  auto producer = log::Producer::create(single);
  if (!producer) return producer.error();
  appender->_single = std::move(*producer);
  if (!options.transactional_id.empty()) {
    log::ProducerOptions tx = single;
    tx.client_id = "statefold-api-tx";
    tx.transactional_id = options.transactional_id;
    appender->_tx_options = tx;
    auto transactional = log::Producer::create(tx);
    if (!transactional) return transactional.error();
    appender->_transactional = std::move(*transactional);
    appender->_tx_thread = std::thread([self = appender.get()] { self->run_transactions(); });
  }
  appender->_poller = std::thread([self = appender.get()] {
    while (!self->_stop.load()) {
      self->_single->poll(std::chrono::milliseconds(20));
      self->expire();
    }
  });
  return appender;
}

void KafkaAppender::append(std::string session_id, Events events, Options options, std::function<void(Outcome)> done) {
  if (_config.writes_refused) {
    if (auto why = _config.writes_refused()) {
      Outcome refused;
      refused.kind = Outcome::Kind::unavailable;
      refused.error = std::move(*why);
      for (const auto& [event_id, bytes] : events) refused.events.push_back({event_id, Status::pending, 0, -1, -1, {}});
      done(std::move(refused));
      return;
    }
  }
  const bool wait = options.wait;
  if (options.settle_reads) {
    // Reads of the session wait for these events until they are answered, whatever the answer.
    _settling.begin(session_id);
    done = [this, session_id, done = std::move(done)](Outcome outcome) {
      done(std::move(outcome));
      _settling.end(session_id);
    };
  }
  auto pending = std::make_shared<Pending>();
  pending->session_id = session_id;
  pending->wait = wait;
  pending->on_acknowledged = std::move(options.on_acknowledged);
  pending->remaining = events.size();
  // Until Kafka acknowledges, the producer's own timeout applies; from the acknowledgement on, the fold timeout.
  pending->deadline = std::chrono::steady_clock::now() + _config.produce_timeout + _config.fold_timeout;
  pending->done = std::move(done);
  for (const auto& [event_id, bytes] : events) pending->events.push_back({event_id, Status::pending, 0, -1, -1, {}});
  {
    std::lock_guard lock(_mutex);
    _in_flight.push_back(pending);
  }

  if (events.size() > 1 && options.all_or_nothing) {
    // Several events: one transaction, so a broker failure leaves none of them visible to the engine. The
    // transaction thread runs it (never an HTTP thread), together with the others queued meanwhile.
    {
      std::lock_guard lock(_tx_mutex);
      if (!_tx_thread.joinable()) {
        fail(pending, "multi-event appends need a transactional producer");
        return;
      }
      _tx_queue.push_back({std::move(session_id), std::move(events), pending});
    }
    _tx_wake.notify_one();
    return;
  }
  // In order on one partition (same key), each exactly once: the idempotent producer keeps both promises.
  base::Result<void> sent;
  for (std::size_t i = 0; i < events.size() && sent; ++i) {
    sent = _single->send(_config.topic, session_id, events[i].second, {}, on_delivery(pending, i));
  }
  if (!sent) fail(pending, sent.error().message);
  resolve_if_complete(pending);
}

void KafkaAppender::fail(const std::shared_ptr<Pending>& pending, const std::string& why) {
  {
    std::lock_guard lock(_mutex);
    if (pending->failure == Outcome::Kind::folded) {
      pending->failure = Outcome::Kind::unavailable;
      pending->error = why;
    }
    for (auto it = _waiting.begin(); it != _waiting.end();) {
      it = it->second.first == pending ? _waiting.erase(it) : std::next(it);
    }
  }
  resolve_if_complete(pending);
}

log::Producer::DeliveryCallback KafkaAppender::on_delivery(const std::shared_ptr<Pending>& pending, std::size_t index) {
  return [this, pending, index](const log::Delivery& d) {
    {
      std::lock_guard health(_health_mutex);
      _deliveries_failing = d.error;
    }
    std::function<void()> acknowledged;
    {
      std::lock_guard lock(_mutex);
      if (pending->completed) return;  // answered already (failed, timed out): a late delivery changes nothing
      if (d.error.empty() && ++pending->acknowledged == pending->events.size() &&
          pending->failure == Outcome::Kind::folded) {
        acknowledged = std::move(pending->on_acknowledged);
      }
      auto& outcome = pending->events[index];
      if (!d.error.empty()) {
        pending->failure = Outcome::Kind::unavailable;
        pending->error = "Kafka did not take the event: " + d.error;
      } else {
        outcome.partition = d.partition;
        outcome.offset = d.offset;
        outcome.status = Status::appended;  // on the log; folded below or later
        pending->deadline = std::min(pending->deadline, std::chrono::steady_clock::now() + _config.fold_timeout);
        const auto key = std::make_pair(d.partition, d.offset);
        if (!pending->wait) {
          --pending->remaining;
        } else if (auto it = _recent.find(key); it != _recent.end()) {
          // The engine folded it before Kafka's acknowledgement reached us.
          const auto& folded = it->second;
          outcome.status = status_of(folded.applied.outcome);
          outcome.version =
              folded.applied.outcome == fold::Outcome::duplicate ? folded.applied.duplicate_of : folded.applied.version;
          outcome.reason = folded.applied.reason;
          --pending->remaining;
        } else {
          _waiting[key] = {pending, index};
        }
      }
    }
    if (acknowledged) acknowledged();
    resolve_if_complete(pending);
  };
}

void KafkaAppender::run_transactions() {
  constexpr std::size_t kMaxAppendsPerTransaction = 256;
  std::unique_lock lock(_tx_mutex);
  while (true) {
    _tx_wake.wait_for(lock, std::chrono::milliseconds(20), [&] { return _stop.load() || !_tx_queue.empty(); });
    if (_stop.load()) {
      // Stopping: shutdown() has answered what waits; nothing new is sent.
      auto left = std::move(_tx_queue);
      lock.unlock();
      for (auto& job : left) fail(job.pending, "serve is shutting down");
      return;
    }
    if (_tx_queue.empty()) {
      lock.unlock();
      if (_transactional) _transactional->poll();
      lock.lock();
      continue;
    }
    std::vector<TxJob> jobs;
    while (!_tx_queue.empty() && jobs.size() < kMaxAppendsPerTransaction) {
      jobs.push_back(std::move(_tx_queue.front()));
      _tx_queue.pop_front();
    }
    lock.unlock();
    run_transaction(jobs);
    lock.lock();
  }
}

void KafkaAppender::run_transaction(std::vector<TxJob>& jobs) {
  // Queued appends share one transaction: one commit round trip for all of them, each still all or nothing.
  auto sent = replace_transactional_if_broken();
  if (sent) sent = _transactional->begin_transaction();
  bool open = sent.ok();
  for (auto& job : jobs) {
    for (std::size_t i = 0; i < job.events.size() && sent; ++i) {
      sent = _transactional->send(_config.topic, job.session_id, job.events[i].second, {}, on_delivery(job.pending, i));
    }
  }
  if (sent)
    sent = _transactional->commit_transaction(_config.produce_timeout);
  else if (open)
    _transactional->abort_transaction(_config.produce_timeout);
  {
    std::lock_guard lock(_health_mutex);
    _transactions_failing = sent ? std::string() : sent.error().message;
  }
  for (auto& job : jobs) {
    if (!sent) fail(job.pending, sent.error().message);
    resolve_if_complete(job.pending);
  }
}

base::Result<void> KafkaAppender::replace_transactional_if_broken() {
  if (_transactional && !_transactional->fatal()) return {};
  // A fatal producer (fenced, or in a state librdkafka cannot leave) is replaced; the new one fences it and the
  // broker aborts what it left open. Its init waits for the broker, on this thread, not an HTTP one.
  _transactional.reset();
  auto made = log::Producer::create(_tx_options);
  if (!made)
    return base::make_error(base::ErrorCode::unavailable, "the transactional producer: " + made.error().message);
  _transactional = std::move(*made);
  return {};
}

std::optional<std::string> KafkaAppender::health() const {
  if (_config.writes_refused) {
    if (auto why = _config.writes_refused()) return why;
  }
  std::lock_guard lock(_health_mutex);
  if (!_transactions_failing.empty()) return "multi-event appends are failing: " + _transactions_failing;
  if (!_deliveries_failing.empty()) return "appends are failing: " + _deliveries_failing;
  return std::nullopt;
}

void KafkaAppender::settle(std::string_view session_id, std::chrono::milliseconds patience) {
  _settling.wait(session_id, patience);
}

void KafkaAppender::resolve_if_complete(const std::shared_ptr<Pending>& pending) {
  Outcome result;
  {
    std::lock_guard lock(_mutex);
    if (pending->completed) return;
    if (pending->failure == Outcome::Kind::folded && pending->remaining > 0) return;
    pending->completed = true;
    std::erase(_in_flight, pending);
    result.kind = pending->failure != Outcome::Kind::folded
                      ? pending->failure
                      : (pending->wait ? Outcome::Kind::folded : Outcome::Kind::appended);
    result.events = pending->events;
    result.error = pending->error;
  }
  pending->done(std::move(result));
}

void KafkaAppender::folded(const std::vector<runtime::FoldedRecord>& records) {
  std::vector<std::shared_ptr<Pending>> touched;
  {
    std::lock_guard lock(_mutex);
    for (const auto& r : records) {
      const auto key = std::make_pair(r.partition, r.offset);
      if (auto it = _waiting.find(key); it != _waiting.end()) {
        auto [pending, index] = it->second;
        auto& outcome = pending->events[index];
        outcome.status = r.dead_letter ? Status::rejected : status_of(r.applied.outcome);
        outcome.version = r.applied.outcome == fold::Outcome::duplicate ? r.applied.duplicate_of : r.applied.version;
        outcome.reason = r.applied.reason;
        --pending->remaining;
        touched.push_back(pending);
        _waiting.erase(it);
        continue;
      }
      _recent.emplace(key, r);
      _recent_order.push_back(key);
      if (_recent_order.size() > kRecentCapacity) {
        _recent.erase(_recent_order.front());
        _recent_order.pop_front();
      }
    }
    // Deliveries that failed or were not waited for complete from here too.
    for (const auto& p : _in_flight) {
      if (p->remaining == 0 || p->failure != Outcome::Kind::folded) touched.push_back(p);
    }
  }
  for (const auto& p : touched) resolve_if_complete(p);
}

void KafkaAppender::shutdown(const std::string& why) {
  std::vector<std::shared_ptr<Pending>> all;
  {
    std::lock_guard lock(_mutex);
    for (const auto& p : _in_flight) {
      if (p->completed) continue;
      p->failure = Outcome::Kind::unavailable;
      p->error = why;
      all.push_back(p);
    }
    _waiting.clear();
  }
  for (const auto& p : all) resolve_if_complete(p);
}

void KafkaAppender::expire() {
  std::vector<std::shared_ptr<Pending>> ready;
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(_mutex);
    for (const auto& p : _in_flight) {
      if (p->completed) continue;
      if (p->remaining == 0 || p->failure != Outcome::Kind::folded) {
        ready.push_back(p);
      } else if (now > p->deadline) {
        p->failure = Outcome::Kind::timed_out;
        p->error = "appended, but not folded within " + std::to_string(_config.fold_timeout.count()) + " ms";
        for (auto it = _waiting.begin(); it != _waiting.end();) {
          it = it->second.first == p ? _waiting.erase(it) : std::next(it);
        }
        ready.push_back(p);
      }
    }
  }
  for (const auto& p : ready) resolve_if_complete(p);
}

}  // namespace statefold::append
