// cluster: several `serve` instances on one topic, with Kafka as the only coordinator. Each instance announces on a
// compacted membership topic (statefold.members, keyed by instance) which partitions it folds and the HTTP address
// others reach it at; each reads that topic whole, so any instance knows every partition's owner. A request the API
// or the gateway refused because its session is folded elsewhere (421, or 503 while the partition is not here yet)
// is forwarded to that owner, streams included, so a client may talk to any instance.
//
//   auto cluster = cluster::Cluster::start({.brokers = b, .instance = engine.instance_id(), .url = "http://h:8080"});
//   engine.on_assignment([&](const auto& owned) { cluster->announce(owned); });
//   ... in the HTTP handler, for a refused request: cluster->route(std::move(request), std::move(refused), respond);
//
// Thread-safety: every method from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/base/result.h"
#include "engine/http/http.h"
#include "engine/log/log.h"

namespace statefold::cluster {

inline constexpr std::string_view kDefaultTopic = "statefold.members";
// Set on a request one instance forwards to another (its value: the forwarding instance). An instance that is not
// the owner of a forwarded request answers 503 rather than forwarding it again: no loops while views disagree.
inline constexpr char kForwardedByHeader[] = "X-Statefold-Forwarded-By";
// Sent by a client that wants the 421 (and the owner's address) rather than a forwarded answer.
inline constexpr char kNoForwardHeader[] = "X-Statefold-No-Forward";
// On a 421: the owner's address, when known.
inline constexpr char kOwnerHeader[] = "X-Statefold-Owner";

struct Options {
  std::string brokers;
  std::string topic{kDefaultTopic};
  // The consumer group and the events topic this instance folds: groups on one membership topic ignore each other.
  std::string group;
  std::string events_topic;
  std::string instance;  // unique per instance and stable across its restarts (runtime::Engine::instance_id)
  std::string url;  // http(s)://HOST:PORT other instances forward to; empty: this instance forwards but gets none
  // How long a forwarded request may wait for the owner's next bytes (its turn may be a long upstream call).
  std::chrono::milliseconds forward_timeout{120000};
  // For forwarding to owners that announce https://: the CA their certificates chain to and the certificate to show
  // them. Null: the system's trusted CAs and no certificate.
  std::shared_ptr<const http::ClientTls> forward_tls;
  log::Properties kafka_properties;
};

// One instance as its last announcement says.
struct Member {
  std::string instance;
  std::string group;
  std::string events_topic;
  std::string url;
  std::vector<std::int32_t> partitions;
  bool left = false;              // stopped cleanly: it folds nothing any more
  std::int64_t announced_ms = 0;  // when (the record's timestamp)
  std::int64_t offset = -1;       // where on the membership topic: a later announcement wins a disputed partition
};

// Each claimed partition's owner: of the live members (announced, not left) that claim it, the one whose
// announcement came last. Pure; the pointers are into `members`.
std::map<std::int32_t, const Member*> partition_owners(const std::vector<Member>& members);

// Partitions 0..partitions-1 by who folds them now (partition_owners): `self`, each other member, or nobody (a
// partition between owners). What a query over the whole group asks of whom. Pure.
struct PartitionSplit {
  std::vector<std::int32_t> mine;
  std::vector<std::int32_t> unowned;
  std::map<std::string, std::pair<Member, std::vector<std::int32_t>>> theirs;  // by instance
};
PartitionSplit split_partitions(const std::vector<Member>& members, std::string_view self, int partitions);

// Warm standbys: the partitions `self` keeps a standby of, `replicas` per partition. A partition's standbys are the
// `replicas` live instances (announced, not left) that follow its owner (the last to claim it) in instance order,
// wrapping around; partitions nobody claims have none. Pure: the same members give every instance the same plan.
// The group, not this plan, chooses a dead owner's successor, so a standby saves a replay only when the group picks
// it: with replicas = instances - 1 every survivor is one.
std::vector<std::int32_t> standby_partitions(const std::vector<Member>& members, std::string_view self, int replicas);

class Cluster {
 public:
  static base::Result<std::unique_ptr<Cluster>> start(const Options& options);
  ~Cluster();

  // This instance folds `owned` from now on. Returns once the announcement is on the topic (or after a few
  // seconds), so that a partition given up is announced before the group can hand it to another instance.
  void announce(const std::vector<std::int32_t>& owned);
  // The address to announce from now on (a listener on port 0 knows its own only once it listens).
  void set_url(std::string url);
  // Forwards from now on use `tls` (a renewed certificate or CA, read again on SIGHUP).
  void set_forward_tls(std::shared_ptr<const http::ClientTls> tls);
  // Announces that this instance folds nothing any more and stops reading the topic. Idempotent.
  void leave();

  // The instance whose announcement claims `partition` last; nullopt when none does, or it is this instance.
  std::optional<Member> owner(std::int32_t partition) const;
  // Every instance ever announced on the topic, this one included, in instance order.
  std::vector<Member> members() const;
  // GET /v1/cluster: {"instance": this one, "members": [{"instance","url","partitions","state","announced_at_ms"}]}.
  std::string members_json() const;

  // Answers a request the API or the gateway refused with `refused` (421, or 503, carrying the session's partition in
  // runtime::kPartitionHeader): forwards it to the partition's owner when one is known elsewhere, else answers 503
  // with Retry-After (the partition is moving); a client that sent kNoForwardHeader gets the 421 with the owner's
  // address. Any other response is given to `respond` unchanged.
  void route(http::Request request, http::Response refused, const http::Respond& respond) const;
  // Sends `request` to `member` (marked as coming from this instance) and gives its answer to `respond`, on another
  // thread: 503 when the member cannot be reached or announced no usable address.
  void ask(const Member& member, http::Request request, std::chrono::milliseconds timeout,
           const http::Respond& respond) const;
  // This instance's name (Options::instance).
  const std::string& instance() const;

 private:
  std::shared_ptr<const http::ClientTls> forward_tls() const;
  // Where `member` is reached, or why it cannot be (a phrase that follows "which" or "it").
  std::variant<http::ForwardTarget, std::string> target_of(const Member& member) const;
  struct Impl;
  explicit Cluster(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> _impl;
};

// What a membership record holds (the value of the record keyed by the instance): JSON, so any Kafka tool reads it.
std::string encode_announcement(const Member& member);
base::Result<Member> decode_announcement(std::string_view instance, std::string_view value);

}  // namespace statefold::cluster
