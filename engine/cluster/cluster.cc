#include "engine/cluster/cluster.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <variant>

#include "engine/base/json_read.h"
#include "engine/base/logging.h"
#include "engine/base/text.h"
#include "engine/runtime/ownership.h"

namespace statefold::cluster {

namespace json = boost::json;

namespace {

constexpr std::chrono::milliseconds kAnnounceTimeout{5000};
constexpr std::chrono::milliseconds kTailPoll{200};

// An instance's address as announced.
struct Address {
  std::string host;
  std::uint16_t port = 0;
  bool tls = false;
};

// http://HOST:PORT or https://HOST:PORT (a trailing slash allowed); nullopt for anything else.
std::optional<Address> parse_url(std::string_view url) {
  Address out;
  if (url.starts_with("https://")) {
    out.tls = true;
    url.remove_prefix(8);
  } else if (url.starts_with("http://")) {
    url.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  if (url.ends_with('/')) url.remove_suffix(1);
  const std::size_t colon = url.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == url.size()) return std::nullopt;
  out.host = std::string(url.substr(0, colon));
  if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']') {
    out.host = out.host.substr(1, out.host.size() - 2);
  }
  unsigned port = 0;
  for (char c : url.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) return std::nullopt;
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port == 0 || port > 65535) return std::nullopt;
  out.port = static_cast<std::uint16_t>(port);
  return out;
}

bool has_header(const http::Request& request, std::string_view lower_case_name) {
  return request.header(lower_case_name).has_value();
}

std::optional<std::int32_t> partition_of(const http::Response& refused) {
  for (const auto& [name, value] : refused.headers) {
    if (name != runtime::kPartitionHeader) continue;
    try {
      return static_cast<std::int32_t>(std::stoi(value));
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

http::Response moving(std::int32_t partition, std::string_view why) {
  std::string message = "partition ";
  message += std::to_string(partition);
  message += ' ';
  message += why;
  message += "; retry shortly";
  return runtime::refusal({runtime::Ownership::State::moving, partition}, message);
}

}  // namespace

std::string encode_announcement(const Member& member) {
  json::array partitions;
  for (std::int32_t p : member.partitions) partitions.push_back(p);
  return json::serialize(json::object{{"group", member.group},
                                      {"topic", member.events_topic},
                                      {"url", member.url},
                                      {"partitions", std::move(partitions)},
                                      {"state", member.left ? "left" : "serving"}});
}

base::Result<Member> decode_announcement(std::string_view instance, std::string_view value) {
  auto parsed = base::json::parse(value, "membership record of " + std::string(instance));
  if (!parsed) return parsed.error();
  if (!parsed->is_object()) return base::make_error("membership record of " + std::string(instance) + ": not an object");
  const json::object& o = parsed->as_object();
  Member m;
  m.instance = std::string(instance);
  m.group = base::json::string_or(o, "group");
  m.events_topic = base::json::string_or(o, "topic");
  m.url = base::json::string_or(o, "url");
  m.left = base::json::string_or(o, "state") == "left";
  if (const json::array* partitions = base::json::array_member(o, "partitions")) {
    for (const json::value& p : *partitions) {
      if (!p.is_int64()) return base::make_error("membership record of " + std::string(instance) + ": partitions: not integers");
      m.partitions.push_back(static_cast<std::int32_t>(p.as_int64()));
    }
  }
  return m;
}

struct Cluster::Impl {
  Options options;
  std::unique_ptr<log::Producer> producer;
  std::unique_ptr<log::Tail> tail;
  mutable std::mutex mutex;
  mutable std::mutex tls_mutex;  // guards options.forward_tls, replaced on a certificate reload
  std::map<std::string, Member> members;
  std::mutex announce_mutex;  // one announcement at a time, in order
  std::optional<std::vector<std::int32_t>> announced;  // the last one, under announce_mutex
  std::atomic<bool> stopping{false};
  std::atomic<bool> left{false};
  std::thread reader;

  void publish(const Member& me) {
    const std::string value = encode_announcement(me);
    auto sent = producer->send(options.topic, options.instance,
                               std::span(reinterpret_cast<const std::uint8_t*>(value.data()), value.size()),
                               {{"content-type", "application/json"}});
    if (sent) sent = producer->flush(kAnnounceTimeout);
    if (!sent) {
      // Others keep the previous announcement until a later one lands; forwards to a partition this instance gave
      // up are answered 503 here meanwhile, never folded twice (the consumer group decides who folds).
      base::log_error("cluster: announcement not written", {{"topic", options.topic}, {"error", sent.error().message}});
      return;
    }
    base::log_info("cluster: announced", {{"instance", options.instance}, {"url", options.url},
                                          {"partitions", base::join(me.partitions)}, {"state", me.left ? "left" : "serving"}});
  }

  void read_loop() {
    while (!stopping.load()) {
      for (const log::StoredRecord& r : tail->poll(kTailPoll)) {
        if (!r.key) continue;
        const std::string value(r.value.begin(), r.value.end());
        if (value.empty()) {  // a tombstone: the instance is forgotten
          std::lock_guard lock(mutex);
          members.erase(*r.key);
          continue;
        }
        auto member = decode_announcement(*r.key, value);
        if (!member) {
          base::log_warn("cluster: membership record ignored", {{"offset", std::to_string(r.offset)},
                                                                {"error", member.error().message}});
          continue;
        }
        if (member->group != options.group || member->events_topic != options.events_topic) continue;
        member->announced_ms = r.timestamp_ms;
        member->offset = r.offset;
        std::lock_guard lock(mutex);
        members[member->instance] = std::move(*member);
      }
    }
  }
};

Cluster::Cluster(std::unique_ptr<Impl> impl) : _impl(std::move(impl)) {}

Cluster::~Cluster() {
  leave();
  _impl->stopping.store(true);
  if (_impl->reader.joinable()) _impl->reader.join();
}

base::Result<std::unique_ptr<Cluster>> Cluster::start(const Options& options) {
  if (options.instance.empty()) return base::make_error("cluster: the instance needs a name");
  if (!options.url.empty() && !parse_url(options.url)) {
    return base::make_error("advertised URL \"" + options.url + "\": expected http://HOST:PORT or https://HOST:PORT");
  }
  // Compacted: the newest announcement of each instance is all anyone needs, and the topic stays small.
  if (auto made = log::ensure_topic(options.brokers, options.topic, 1, options.kafka_properties,
                                    {{"cleanup.policy", "compact"}});
      !made) {
    return made.error();
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  log::ProducerOptions producer_options;
  producer_options.brokers = options.brokers;
  producer_options.client_id = "statefold-cluster";
  producer_options.extra = options.kafka_properties;
  auto producer = log::Producer::create(producer_options);
  if (!producer) return producer.error();
  impl->producer = std::move(*producer);
  auto tail = log::Tail::open(options.brokers, options.topic, options.kafka_properties);
  if (!tail) return tail.error();
  impl->tail = std::move(*tail);
  Impl* raw = impl.get();
  impl->reader = std::thread([raw] { raw->read_loop(); });
  return std::unique_ptr<Cluster>(new Cluster(std::move(impl)));
}

void Cluster::announce(const std::vector<std::int32_t>& owned) {
  if (_impl->left.load()) return;
  std::lock_guard lock(_impl->announce_mutex);
  // The group reports every rebalance, most of which change nothing here.
  if (_impl->announced && *_impl->announced == owned) return;
  _impl->announced = owned;
  const Options& o = _impl->options;
  _impl->publish({o.instance, o.group, o.events_topic, o.url, owned, false, 0, -1});
}

void Cluster::set_url(std::string url) {
  std::lock_guard lock(_impl->announce_mutex);
  _impl->options.url = std::move(url);
  _impl->announced.reset();
}

void Cluster::set_forward_tls(std::shared_ptr<const http::ClientTls> tls) {
  std::lock_guard lock(_impl->tls_mutex);
  _impl->options.forward_tls = std::move(tls);
}

std::shared_ptr<const http::ClientTls> Cluster::forward_tls() const {
  std::lock_guard lock(_impl->tls_mutex);
  if (!_impl->options.forward_tls) {
    // None given: the system's trusted CAs, loaded the first time an owner serves HTTPS.
    auto loaded = http::ClientTls::load({});
    if (!loaded) {
      base::log_error("cluster: cannot forward over TLS", {{"error", loaded.error().message}});
      return nullptr;
    }
    _impl->options.forward_tls = std::move(*loaded);
  }
  return _impl->options.forward_tls;
}

void Cluster::leave() {
  std::lock_guard lock(_impl->announce_mutex);
  if (_impl->left.exchange(true)) return;
  const Options& o = _impl->options;
  _impl->publish({o.instance, o.group, o.events_topic, o.url, {}, true, 0, -1});
}

std::optional<Member> Cluster::owner(std::int32_t partition) const {
  std::lock_guard lock(_impl->mutex);
  const Member* best = nullptr;
  for (const auto& [instance, m] : _impl->members) {
    if (m.left || std::find(m.partitions.begin(), m.partitions.end(), partition) == m.partitions.end()) continue;
    if (best == nullptr || m.offset > best->offset) best = &m;
  }
  if (best == nullptr || best->instance == _impl->options.instance) return std::nullopt;
  return *best;
}

std::map<std::int32_t, const Member*> partition_owners(const std::vector<Member>& members) {
  std::map<std::int32_t, const Member*> owner;
  for (const Member& m : members) {
    if (m.left) continue;
    for (std::int32_t p : m.partitions) {
      auto& o = owner[p];
      if (o == nullptr || m.offset > o->offset) o = &m;
    }
  }
  return owner;
}

PartitionSplit split_partitions(const std::vector<Member>& members, std::string_view self, int partitions) {
  const auto owners = partition_owners(members);
  PartitionSplit split;
  for (std::int32_t p = 0; p < partitions; ++p) {
    auto it = owners.find(p);
    if (it == owners.end()) {
      split.unowned.push_back(p);
    } else if (it->second->instance == self) {
      split.mine.push_back(p);
    } else {
      split.theirs.try_emplace(it->second->instance, *it->second, std::vector<std::int32_t>())
          .first->second.second.push_back(p);
    }
  }
  return split;
}

std::vector<std::int32_t> standby_partitions(const std::vector<Member>& members, std::string_view self, int replicas) {
  std::vector<const Member*> live;
  for (const Member& m : members) {
    if (!m.left) live.push_back(&m);
  }
  const auto owner = partition_owners(members);
  std::sort(live.begin(), live.end(), [](const Member* a, const Member* b) { return a->instance < b->instance; });
  std::vector<std::int32_t> out;
  if (replicas <= 0 || live.size() < 2) return out;
  for (const auto& [p, o] : owner) {
    const auto at = std::find(live.begin(), live.end(), o) - live.begin();
    const int n = std::min<int>(replicas, static_cast<int>(live.size()) - 1);
    for (int k = 1; k <= n; ++k) {
      if (live[(at + k) % live.size()]->instance == self) {
        out.push_back(p);
        break;
      }
    }
  }
  return out;
}

std::vector<Member> Cluster::members() const {
  std::lock_guard lock(_impl->mutex);
  std::vector<Member> out;
  for (const auto& [instance, m] : _impl->members) out.push_back(m);
  return out;
}

std::string Cluster::members_json() const {
  json::array all;
  for (const Member& m : members()) {
    json::array partitions;
    for (std::int32_t p : m.partitions) partitions.push_back(p);
    all.push_back(json::object{{"instance", m.instance},
                               {"url", m.url},
                               {"partitions", std::move(partitions)},
                               {"state", m.left ? "left" : "serving"},
                               {"announced_at_ms", m.announced_ms}});
  }
  return json::serialize(json::object{{"instance", _impl->options.instance}, {"members", std::move(all)}});
}

void Cluster::route(http::Request request, http::Response refused, const http::Respond& respond) const {
  const auto partition = partition_of(refused);
  if (!partition || (refused.status != 421 && refused.status != 503)) return respond(std::move(refused));
  const std::optional<Member> to = owner(*partition);
  if (has_header(request, base::ascii_lower(kNoForwardHeader))) {
    if (to && refused.status == 421) refused.headers.emplace_back(kOwnerHeader, to->url);
    return respond(std::move(refused));
  }
  if (has_header(request, base::ascii_lower(kForwardedByHeader))) {
    // Forwarded here by an instance whose view of the owners is ahead of or behind this one's.
    return respond(moving(*partition, "is changing owners (this instance was named as its owner but does not fold it)"));
  }
  if (!to) {
    if (refused.status == 503) return respond(std::move(refused));
    return respond(moving(*partition, "has no owner right now (its instance stopped or it is being reassigned)"));
  }
  auto target = target_of(*to);
  if (const auto* why = std::get_if<std::string>(&target)) {
    return respond(moving(*partition, "is owned by instance " + to->instance + ", which " + *why));
  }
  http::forward(std::move(request), std::move(std::get<http::ForwardTarget>(target)),
                {{kForwardedByHeader, _impl->options.instance}}, _impl->options.forward_timeout, respond);
}

std::variant<http::ForwardTarget, std::string> Cluster::target_of(const Member& member) const {
  const auto address = parse_url(member.url);
  if (!address) return std::string("announced no usable address");
  http::ForwardTarget target{address->host, address->port, nullptr};
  if (address->tls) {
    target.tls = forward_tls();
    if (!target.tls) return std::string("serves HTTPS, and this instance has no usable CA to check it");
  }
  return target;
}

void Cluster::ask(const Member& member, http::Request request, std::chrono::milliseconds timeout,
                  const http::Respond& respond) const {
  auto target = target_of(member);
  if (const auto* why = std::get_if<std::string>(&target)) {
    return respond(http::error_response(503, "instance " + member.instance + " cannot be asked: it " + *why));
  }
  http::forward(std::move(request), std::move(std::get<http::ForwardTarget>(target)),
                {{kForwardedByHeader, _impl->options.instance}}, timeout, respond);
}

const std::string& Cluster::instance() const { return _impl->options.instance; }

}  // namespace statefold::cluster
