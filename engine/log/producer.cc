#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "engine/log/internal/config.h"

namespace statefold::log {

namespace {

using internal::HandlePtr;

class KafkaProducer final : public Producer {
 public:
  explicit KafkaProducer(ProducerOptions options) : _options(std::move(options)) {}

  ~KafkaProducer() override {
    // A fatal producer is being replaced: what it still holds cannot be delivered, so waiting for it only delays
    // the replacement.
    if (_rk && !_fatal) rd_kafka_flush(_rk.get(), 10000);
  }

  base::Result<void> init() {
    auto conf = internal::make_conf({
        {"bootstrap.servers", _options.brokers},
        {"client.id", _options.client_id},
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"compression.type", _options.compression},
        {"linger.ms", "5"},
        {"partitioner", "murmur2_random"},
        {"delivery.timeout.ms", std::to_string(_options.delivery_timeout.count())},
    });
    if (!conf) return conf.error();
    for (const auto& [name, value] : _options.extra) {
      if (auto r = internal::set(conf->get(), name, value); !r) return r;
    }
    if (!_options.transactional_id.empty()) {
      if (auto r = internal::set(conf->get(), "transactional.id", _options.transactional_id); !r) return r;
      // An instance that dies mid-transaction blocks read_committed consumers until the broker aborts it.
      if (auto r = internal::set(conf->get(), "transaction.timeout.ms", "10000"); !r) return r;
    }
    internal::route_logs(conf->get());
    rd_kafka_conf_set_dr_msg_cb(conf->get(), &KafkaProducer::delivered);
    rd_kafka_conf_set_opaque(conf->get(), this);
    char error[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf->get(), error, sizeof error);
    if (rk == nullptr) return base::make_error(std::string("cannot create the Kafka producer: ") + error);
    (void)conf->release();
    _rk.reset(rk);
    if (!_options.transactional_id.empty()) {
      if (auto r = check(rd_kafka_init_transactions(_rk.get(), 30000), "init transactions"); !r) return r;
    }
    return {};
  }

  base::Result<void> begin_transaction() override {
    // A previous transaction whose end is still unknown (a commit that timed out while the broker was away) or that
    // must be aborted is settled first: librdkafka refuses any other transactional call until it is.
    if (auto settled = settle_previous(); !settled) return settled;
    auto begun = txn_call(rd_kafka_begin_transaction(_rk.get()), "begin transaction");
    if (begun) _txn = Txn::open;
    return begun;
  }

  base::Result<void> commit_transaction(std::chrono::milliseconds timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      rd_kafka_error_t* e = rd_kafka_commit_transaction(_rk.get(), call_ms(deadline));
      if (e == nullptr) {
        _txn = Txn::idle;
        std::string failure;
        {
          std::lock_guard lock(_mutex);
          failure.swap(_first_failure);
        }
        if (!failure.empty()) return base::make_error(base::ErrorCode::unavailable, "Kafka refused a record: " + failure);
        return {};
      }
      const bool retriable = rd_kafka_error_is_retriable(e) != 0;
      const bool must_abort = rd_kafka_error_txn_requires_abort(e) != 0;
      auto error = txn_call(e, "commit transaction");
      if (_fatal) return error;
      if (must_abort) {
        _txn = Txn::must_abort;
        (void)settle_previous(deadline);
        return error;
      }
      if (retriable && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      // Unknown outcome: the commit goes on in librdkafka, and the next begin_transaction() finishes it.
      _txn = retriable ? Txn::commit_unresolved : Txn::must_abort;
      if (_txn == Txn::commit_unresolved) _unresolved_since = std::chrono::steady_clock::now();
      return error;
    }
  }

  void abort_transaction(std::chrono::milliseconds timeout) override {
    if (_txn == Txn::idle) return;  // nothing open (begin itself failed)
    if (_txn == Txn::open) _txn = Txn::must_abort;  // e.g. a send failed inside it
    (void)settle_previous(std::chrono::steady_clock::now() + timeout);
    std::lock_guard lock(_mutex);
    _first_failure.clear();
  }

  bool fatal() const override { return _fatal.load(); }

  base::Result<void> send(std::string_view topic, std::optional<std::string_view> key,
                          std::span<const std::uint8_t> value, const std::vector<Header>& headers,
                          DeliveryCallback on_delivery, std::optional<std::int32_t> partition) override {
    rd_kafka_headers_t* hdrs = nullptr;
    if (!headers.empty()) {
      hdrs = rd_kafka_headers_new(headers.size());
      for (const auto& h : headers) {
        rd_kafka_header_add(hdrs, h.name.data(), static_cast<ssize_t>(h.name.size()), h.value.data(),
                            static_cast<ssize_t>(h.value.size()));
      }
    }
    auto* callback = on_delivery ? new DeliveryCallback(std::move(on_delivery)) : nullptr;
    const std::string topic_name(topic);
    rd_kafka_vu_t vus[7];
    vus[0].vtype = RD_KAFKA_VTYPE_TOPIC;
    vus[0].u.cstr = topic_name.c_str();
    vus[1].vtype = RD_KAFKA_VTYPE_PARTITION;
    vus[1].u.i32 = partition.value_or(RD_KAFKA_PARTITION_UA);
    vus[2].vtype = RD_KAFKA_VTYPE_VALUE;
    vus[2].u.mem.ptr = const_cast<std::uint8_t*>(value.data());
    vus[2].u.mem.size = value.size();
    vus[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vus[3].u.i = RD_KAFKA_MSG_F_COPY;
    vus[4].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vus[4].u.ptr = callback;
    std::size_t count = 5;
    if (key) {
      vus[count].vtype = RD_KAFKA_VTYPE_KEY;
      vus[count].u.mem.ptr = const_cast<char*>(key->data());
      vus[count].u.mem.size = key->size();
      ++count;
    }
    if (hdrs != nullptr) {
      vus[count].vtype = RD_KAFKA_VTYPE_HEADERS;
      vus[count].u.headers = hdrs;
      ++count;
    }
    rd_kafka_resp_err_t err;
    for (;;) {
      rd_kafka_error_t* error = rd_kafka_produceva(_rk.get(), vus, count);
      err = error == nullptr ? RD_KAFKA_RESP_ERR_NO_ERROR : rd_kafka_error_code(error);
      if (error != nullptr) rd_kafka_error_destroy(error);
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
      rd_kafka_poll(_rk.get(), 50);  // the local queue is full: wait for deliveries to make room
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (hdrs != nullptr) rd_kafka_headers_destroy(hdrs);
      delete callback;
      return base::make_error("cannot send to " + topic_name + ": " + rd_kafka_err2str(err));
    }
    ++_in_flight;
    rd_kafka_poll(_rk.get(), 0);
    return {};
  }

  base::Result<void> flush(std::chrono::milliseconds timeout) override {
    rd_kafka_resp_err_t err = rd_kafka_flush(_rk.get(), static_cast<int>(timeout.count()));
    std::string failure;
    {
      std::lock_guard lock(_mutex);
      failure.swap(_first_failure);
    }
    if (err == RD_KAFKA_RESP_ERR__TIMED_OUT) {
      return base::make_error("Kafka did not acknowledge " + std::to_string(rd_kafka_outq_len(_rk.get())) +
                              " record(s) within " + std::to_string(timeout.count()) + " ms" +
                              (failure.empty() ? "" : "; first failure: " + failure));
    }
    if (!failure.empty()) return base::make_error("Kafka refused a record: " + failure);
    char fatal[512];
    if (rd_kafka_fatal_error(_rk.get(), fatal, sizeof fatal) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return base::make_error(std::string("Kafka producer failed: ") + fatal);
    }
    return {};
  }

  void poll(std::chrono::milliseconds timeout) override { rd_kafka_poll(_rk.get(), static_cast<int>(timeout.count())); }

 private:
  // Where the producer's transaction stands, so a call librdkafka would refuse as conflicting is never made.
  enum class Txn { idle, open, commit_unresolved, must_abort };

  // The timeout of a commit or abort call: what is left until `deadline`, but never under a second. librdkafka
  // 2.0.2 forgets a resumed commit whose first step times out, and when the broker's answer to it arrives later it
  // asserts ("Invalid transaction state transition: CommittingTransaction -> AbortedNotAcked") and ends the process.
  // A chaos run met it when a broker kill left a commit retrying against a deadline already spent.
  static int call_ms(std::chrono::steady_clock::time_point deadline) {
    constexpr std::int64_t kShortestCallMs = 1000;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<std::int64_t>(left.count(), kShortestCallMs));
  }

  // A transactional call's error as a base::Error (unavailable: the broker may come back; internal once fatal, when
  // only a new producer helps); a fatal error is remembered.
  base::Result<void> txn_call(rd_kafka_error_t* error, std::string_view what) {
    if (error == nullptr) return {};
    const bool is_fatal = rd_kafka_error_is_fatal(error) != 0;
    std::string message = std::string("Kafka: ") + std::string(what) + " failed: " + rd_kafka_error_string(error);
    rd_kafka_error_destroy(error);
    if (is_fatal) {
      _fatal = true;
      return base::make_error(base::ErrorCode::internal, message + " (fatal: the producer is replaced)");
    }
    return base::make_error(base::ErrorCode::unavailable, std::move(message));
  }

  // Finishes what an earlier transaction left: a commit whose outcome is unknown is resumed (librdkafka allows
  // calling commit again), a transaction that must be aborted is aborted. Within `deadline` (default: 2 s).
  base::Result<void> settle_previous(std::chrono::steady_clock::time_point deadline =
                                         std::chrono::steady_clock::now() + std::chrono::seconds(2)) {
    while (_txn == Txn::commit_unresolved || _txn == Txn::must_abort) {
      const bool committing = _txn == Txn::commit_unresolved;
      if (committing && std::chrono::steady_clock::now() - _unresolved_since > kUnresolvedCommitLimit) {
        // A coordinator that does not answer keeps the commit unresolved for good (librdkafka resends it every
        // request timeout). The broker has settled the transaction by now (its timeout is 10 s): a new producer
        // fences this one and goes on.
        _fatal = true;
        return base::make_error(base::ErrorCode::internal,
                                "Kafka: a transaction's commit stayed unresolved for " +
                                    std::to_string(kUnresolvedCommitLimit.count()) + " s (the producer is replaced)");
      }
      rd_kafka_error_t* e = committing ? rd_kafka_commit_transaction(_rk.get(), call_ms(deadline))
                                       : rd_kafka_abort_transaction(_rk.get(), call_ms(deadline));
      if (e == nullptr) {
        _txn = Txn::idle;
        std::lock_guard lock(_mutex);
        _first_failure.clear();
        break;
      }
      const bool retriable = rd_kafka_error_is_retriable(e) != 0;
      const bool must_abort = rd_kafka_error_txn_requires_abort(e) != 0;
      auto error = txn_call(e, committing ? "finishing the previous commit" : "aborting the previous transaction");
      if (_fatal) return error;
      if (committing && must_abort) {
        _txn = Txn::must_abort;
        continue;
      }
      if (!retriable) {
        // A state librdkafka will not leave by itself: only a new producer (which fences this one) helps.
        _fatal = true;
        return error;
      }
      if (std::chrono::steady_clock::now() >= deadline) return error;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return {};
  }

  static base::Result<void> check(rd_kafka_error_t* error, std::string_view what) {
    if (error == nullptr) return {};
    std::string message = std::string("Kafka: ") + std::string(what) + " failed: " + rd_kafka_error_string(error);
    rd_kafka_error_destroy(error);
    return base::make_error(std::move(message));
  }

  static void delivered(rd_kafka_t* rk, const rd_kafka_message_t* m, void* opaque) {
    (void)rk;
    auto* self = static_cast<KafkaProducer*>(opaque);
    auto* callback = static_cast<DeliveryCallback*>(m->_private);
    Delivery d;
    d.partition = m->partition;
    d.offset = m->offset;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      d.error = rd_kafka_err2str(m->err);
      if (self != nullptr) {
        std::lock_guard lock(self->_mutex);
        if (self->_first_failure.empty()) self->_first_failure = d.error;
      }
    }
    if (callback != nullptr) {
      (*callback)(d);
      delete callback;
    }
    if (self != nullptr) --self->_in_flight;
  }

  ProducerOptions _options;
  HandlePtr _rk;
  std::atomic<std::int64_t> _in_flight{0};
  std::mutex _mutex;
  std::string _first_failure;
  static constexpr std::chrono::seconds kUnresolvedCommitLimit{15};  // the transaction timeout (10 s), and a margin

  Txn _txn = Txn::idle;  // used by the one thread that runs transactions
  std::chrono::steady_clock::time_point _unresolved_since;
  std::atomic<bool> _fatal{false};
};

}  // namespace

std::int32_t partition_for_key(std::string_view key, int partitions) {
  // librdkafka's murmur2 partitioner reads nothing from the topic handle for a keyed record.
  return rd_kafka_msg_partitioner_murmur2(nullptr, key.data(), key.size(), partitions, nullptr, nullptr);
}

base::Result<std::unique_ptr<Producer>> Producer::create(const ProducerOptions& options) {
  auto producer = std::make_unique<KafkaProducer>(options);
  if (auto r = producer->init(); !r) return r.error();
  return std::unique_ptr<Producer>(std::move(producer));
}

}  // namespace statefold::log
