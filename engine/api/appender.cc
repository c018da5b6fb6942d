#include "api/appender.h"

namespace statefold::api {

namespace {
constexpr std::size_t kRecentCapacity = 100000;
}

struct Appender::Pending {
  std::string session_id;
  std::vector<EventOutcome> events;
  std::size_t remaining = 0;
  bool wait = true;
  bool completed = false;
  std::string error;
  AppendResult::Kind failure = AppendResult::Kind::folded;
  std::chrono::steady_clock::time_point deadline;
  std::function<void(AppendResult)> done;
  std::function<void()> on_acknowledged;
  std::size_t acknowledged = 0;
};

Appender::Appender(Options options) : _options(std::move(options)) {}

Appender::~Appender() {
  _stop = true;
  if (_poller.joinable()) _poller.join();
  // Destroying a producer flushes it, which runs delivery callbacks that use this object's maps and mutex: destroy
  // the producers while those members still exist (they are declared after the producers, so die before them).
  _transactional.reset();
  _single.reset();
}

base::Result<std::unique_ptr<Appender>> Appender::create(const Options& options) {
  std::unique_ptr<Appender> appender(new Appender(options));
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
    auto transactional = log::Producer::create(tx);
    if (!transactional) return transactional.error();
    appender->_transactional = std::move(*transactional);
  }
  appender->_poller = std::thread([self = appender.get()] {
    while (!self->_stop.load()) {
      self->_single->poll(std::chrono::milliseconds(20));
      if (self->_transactional) self->_transactional->poll();
      self->expire();
    }
  });
  return appender;
}

void Appender::append(std::string session_id, std::vector<std::pair<std::string, std::vector<std::uint8_t>>> events,
                      bool wait, std::function<void(AppendResult)> done) {
  AppendOptions options;
  options.wait = wait;
  append(std::move(session_id), std::move(events), std::move(options), std::move(done));
}

void Appender::append(std::string session_id, std::vector<std::pair<std::string, std::vector<std::uint8_t>>> events,
                      AppendOptions options, std::function<void(AppendResult)> done) {
  const bool wait = options.wait;
  auto pending = std::make_shared<Pending>();
  pending->session_id = session_id;
  pending->wait = wait;
  pending->on_acknowledged = std::move(options.on_acknowledged);
  pending->remaining = events.size();
  // Until Kafka acknowledges, the producer's own timeout applies; from the acknowledgement on, the fold timeout.
  pending->deadline = std::chrono::steady_clock::now() + _options.produce_timeout + _options.fold_timeout;
  pending->done = std::move(done);
  for (const auto& [event_id, bytes] : events) pending->events.push_back({event_id, "pending", 0, -1, -1, {}});
  {
    std::lock_guard lock(_mutex);
    _in_flight.push_back(pending);
  }

  auto on_delivery = [this, pending](std::size_t index) {
    return [this, pending, index](const log::Delivery& d) {
      std::function<void()> acknowledged;
      {
        std::lock_guard lock(_mutex);
        if (d.error.empty() && ++pending->acknowledged == pending->events.size() && pending->failure ==
                                                                                        AppendResult::Kind::folded) {
          acknowledged = std::move(pending->on_acknowledged);
        }
        auto& outcome = pending->events[index];
        if (!d.error.empty()) {
          pending->failure = AppendResult::Kind::unavailable;
          pending->error = "Kafka did not take the event: " + d.error;
        } else {
          outcome.partition = d.partition;
          outcome.offset = d.offset;
          outcome.status = "appended";  // on the log; folded below or later
          pending->deadline = std::min(pending->deadline, std::chrono::steady_clock::now() + _options.fold_timeout);
          const auto key = std::make_pair(d.partition, d.offset);
          if (!pending->wait) {
            --pending->remaining;
          } else if (auto it = _recent.find(key); it != _recent.end()) {
            // The engine folded it before Kafka's acknowledgement reached us.
            const auto& folded = it->second;
            outcome.status = std::string(fold::outcome_name(folded.applied.outcome));
            outcome.version = folded.applied.outcome == fold::Outcome::duplicate ? folded.applied.duplicate_of
                                                                                  : folded.applied.version;
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
  };

  base::Result<void> sent;
  if (events.size() == 1 || !options.all_or_nothing) {
    // In order on one partition (same key), each exactly once: the idempotent producer keeps both promises.
    for (std::size_t i = 0; i < events.size() && sent; ++i) {
      sent = _single->send(_options.topic, session_id, events[i].second, {}, on_delivery(i));
    }
  } else {
    // Several events: one transaction, so a broker failure leaves none of them visible to the engine.
    std::lock_guard tx_lock(_transaction_mutex);
    if (!_transactional) {
      sent = base::make_error("multi-event appends need a transactional producer");
    } else if (sent = _transactional->begin_transaction(); sent) {
      for (std::size_t i = 0; i < events.size() && sent; ++i) {
        sent = _transactional->send(_options.topic, session_id, events[i].second, {}, on_delivery(i));
      }
      if (sent) sent = _transactional->commit_transaction(_options.produce_timeout);
      if (!sent) _transactional->abort_transaction(_options.produce_timeout);
    }
  }
  if (!sent) {
    std::lock_guard lock(_mutex);
    pending->failure = AppendResult::Kind::unavailable;
    pending->error = sent.error().message;
    for (auto it = _waiting.begin(); it != _waiting.end();) {
      it = it->second.first == pending ? _waiting.erase(it) : std::next(it);
    }
  }
  resolve_if_complete(pending);
}

void Appender::resolve_if_complete(const std::shared_ptr<Pending>& pending) {
  AppendResult result;
  {
    std::lock_guard lock(_mutex);
    if (pending->completed) return;
    if (pending->failure == AppendResult::Kind::folded && pending->remaining > 0) return;
    pending->completed = true;
    std::erase(_in_flight, pending);
    result.kind = pending->failure != AppendResult::Kind::folded
                      ? pending->failure
                      : (pending->wait ? AppendResult::Kind::folded : AppendResult::Kind::appended);
    result.events = pending->events;
    result.error = pending->error;
  }
  pending->done(std::move(result));
}

void Appender::folded(const std::vector<runtime::FoldedRecord>& records) {
  std::vector<std::shared_ptr<Pending>> touched;
  {
    std::lock_guard lock(_mutex);
    for (const auto& r : records) {
      const auto key = std::make_pair(r.partition, r.offset);
      if (auto it = _waiting.find(key); it != _waiting.end()) {
        auto [pending, index] = it->second;
        auto& outcome = pending->events[index];
        outcome.status = r.dead_letter ? "rejected" : std::string(fold::outcome_name(r.applied.outcome));
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
      if (p->remaining == 0 || p->failure != AppendResult::Kind::folded) touched.push_back(p);
    }
  }
  for (const auto& p : touched) resolve_if_complete(p);
}

void Appender::shutdown(const std::string& why) {
  std::vector<std::shared_ptr<Pending>> all;
  {
    std::lock_guard lock(_mutex);
    for (const auto& p : _in_flight) {
      if (p->completed) continue;
      p->failure = AppendResult::Kind::unavailable;
      p->error = why;
      all.push_back(p);
    }
    _waiting.clear();
  }
  for (const auto& p : all) resolve_if_complete(p);
}

void Appender::expire() {
  std::vector<std::shared_ptr<Pending>> ready;
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(_mutex);
    for (const auto& p : _in_flight) {
      if (p->completed) continue;
      if (p->remaining == 0 || p->failure != AppendResult::Kind::folded) {
        ready.push_back(p);
      } else if (now > p->deadline) {
        p->failure = AppendResult::Kind::timed_out;
        p->error = "appended, but not folded within " + std::to_string(_options.fold_timeout.count()) + " ms";
        for (auto it = _waiting.begin(); it != _waiting.end();) {
          it = it->second.first == p ? _waiting.erase(it) : std::next(it);
        }
        ready.push_back(p);
      }
    }
  }
  for (const auto& p : ready) resolve_if_complete(p);
}

}  // namespace statefold::api
