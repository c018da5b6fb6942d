#include "engine/cluster/group_usage.h"

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <future>
#include <mutex>
#include <set>
#include <vector>

#include "engine/base/json_read.h"
#include "engine/base/logging.h"

namespace statefold::cluster {

namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

// A member that did not answer is asked again only after this long, so that one gone silent does not hold every
// budgeted turn for `timeout`.
constexpr std::chrono::seconds kUnansweredBackoff{10};
constexpr std::chrono::seconds kWarnEvery{30};
constexpr std::size_t kSweepAbove = 1024;  // queries remembered before old ones are forgotten
constexpr std::chrono::minutes kForgetAfter{10};

std::string encode(const UsageQuery& q) {
  json::object o{{"from", q.from_day}, {"to", q.through_day}, {"key", q.key}};
  o["tenant"] = q.tenant ? json::value(*q.tenant) : json::value(nullptr);
  return json::serialize(o);
}

base::Result<UsageQuery> decode(std::string_view body) {
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return base::make_error("the body is not a JSON object");
  const json::object& o = v.as_object();
  UsageQuery q;
  for (auto [name, out] : {std::pair{"from", &q.from_day}, std::pair{"to", &q.through_day}, std::pair{"key", &q.key}}) {
    const json::value* field = base::json::member(o, name);
    if (field == nullptr || !field->is_string()) return base::make_error(std::string(name) + ": expected a string");
    *out = std::string(field->as_string());
  }
  if (const json::value* tenant = base::json::member(o, "tenant"); tenant != nullptr && !tenant->is_null()) {
    if (!tenant->is_string()) return base::make_error("tenant: expected a string or null");
    q.tenant = std::string(tenant->as_string());
  }
  return q;
}

template <typename Int>
bool parse_int(std::string_view text, Int& out) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size() && !text.empty();
}

std::optional<PartitionTokens> decode_answer(const http::Response& response) {
  if (response.status != 200 || response.stream) return std::nullopt;
  boost::system::error_code ec;
  const json::value v = json::parse(response.body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const json::object* partitions = base::json::object_member(v.as_object(), "partitions");
  if (partitions == nullptr) return std::nullopt;
  PartitionTokens out;
  for (const auto& [name, tokens] : *partitions) {
    std::int32_t partition = 0;
    if (!parse_int(std::string_view(name), partition) || partition < 0 || !tokens.is_number()) {
      return std::nullopt;
    }
    boost::system::error_code as;
    const auto n = tokens.to_number<std::uint64_t>(as);
    if (as) return std::nullopt;
    out[partition] = n;
  }
  return out;
}

// The instances that own at least one partition now (partition_owners), this one left out.
std::vector<Member> owners(const std::vector<Member>& members, std::string_view self) {
  std::set<std::string> seen;
  std::vector<Member> out;
  for (const auto& [p, m] : partition_owners(members)) {
    if (m->instance != self && seen.insert(m->instance).second) out.push_back(*m);
  }
  return out;
}

http::Response refused(int status, std::string message) {
  return http::error_response(status, "peer usage query: " + message, std::string(kPeerUsagePath));
}

}  // namespace

std::string sign_peer_query(std::string_view secret, std::string_view instance, std::int64_t unix_ms,
                            std::string_view body) {
  return PeerSigner(secret, std::string(instance), "usage", std::chrono::seconds(0)).sign(body, unix_ms);
}

struct GroupUsage::Impl {
  Impl(const Cluster& c, GroupUsageOptions o)
      : cluster(c), options(std::move(o)), signer(options.secret, c.instance(), "usage", options.clock_skew) {}

  const Cluster& cluster;
  const GroupUsageOptions options;
  const PeerSigner signer;

  struct Answer {
    SteadyClock::time_point next_ask;  // not asked again before this
    PartitionTokens tokens;            // the last figures it gave (none yet: empty)
  };
  mutable std::mutex mutex;
  std::map<std::string, std::map<std::string, Answer>> answers;  // by encoded query, then by member
  std::map<std::string, SteadyClock::time_point> warned;          // by member
  std::atomic<std::uint64_t> unanswered{0};

  void sweep(SteadyClock::time_point now) {
    if (answers.size() <= kSweepAbove) return;
    std::erase_if(answers, [&](const auto& query) {
      return std::all_of(query.second.begin(), query.second.end(),
                         [&](const auto& a) { return now - a.second.next_ask > kForgetAfter; });
    });
  }

  // A member's answer to `body`: its figures, or (refused, unreachable, not understood) a pause before it is
  // asked again and a warning.
  void record(const std::string& body, const Member& member, const http::Response& response) {
    auto tokens = decode_answer(response);
    const auto now = SteadyClock::now();
    {
      std::lock_guard lock(mutex);
      Answer& known = answers[body][member.instance];
      if (tokens) {
        known.tokens = std::move(*tokens);
        return;
      }
      known.next_ask = now + kUnansweredBackoff;
      unanswered.fetch_add(1, std::memory_order_relaxed);
      auto& last = warned[member.instance];
      if (last != SteadyClock::time_point{} && now - last < kWarnEvery) return;
      last = now;
    }
    base::log_warn("token budgets: a member did not give its usage; its partitions count at what it last said",
                   {{"instance", member.instance},
                    {"url", member.url},
                    {"status", std::to_string(response.status)},
                    {"error", response.body.substr(0, 300)}});
  }
};

GroupUsage::GroupUsage(const Cluster& cluster, GroupUsageOptions options)
    : _impl(std::make_shared<Impl>(cluster, std::move(options))) {}

GroupUsage::~GroupUsage() = default;

base::Result<std::uint64_t> GroupUsage::tokens(const UsageQuery& query, std::chrono::milliseconds wait) {
  auto local = _impl->options.local(query);
  if (!local) return local.error();
  const std::string body = encode(query);
  const auto now = SteadyClock::now();

  // Ask the owners whose figures for this query are older than `refresh`, all at once; reserve the ask first, so
  // that turns arriving meanwhile use the figures already known instead of asking too. Each answer is recorded
  // when it comes, waited for or not.
  std::vector<std::future<void>> asked;
  for (Member& member : owners(_impl->cluster.members(), _impl->cluster.instance())) {
    {
      std::lock_guard lock(_impl->mutex);
      Impl::Answer& known = _impl->answers[body][member.instance];
      if (now < known.next_ask) continue;
      known.next_ask = now + _impl->options.refresh;
    }
    http::Request request = _impl->signer.request(kPeerUsagePath, body);
    auto recorded = std::make_shared<std::promise<void>>();
    asked.push_back(recorded->get_future());
    _impl->cluster.ask(member, std::move(request), _impl->options.timeout,
                       [impl = _impl, body, member, recorded](http::Response response) {
                         impl->record(body, member, response);
                         try {
                           recorded->set_value();
                         } catch (const std::future_error&) {  // answered already
                         }
                       });
  }
  const auto deadline = now + wait;
  for (auto& answer : asked) answer.wait_until(deadline);

  // Per partition, the largest figure seen: each is a lower bound of what the partition holds now.
  PartitionTokens merged = std::move(*local);
  {
    std::lock_guard lock(_impl->mutex);
    for (const auto& [instance, answer] : _impl->answers[body]) {
      for (const auto& [partition, tokens] : answer.tokens) merged[partition] = std::max(merged[partition], tokens);
    }
    _impl->sweep(now);
  }
  std::uint64_t sum = 0;
  for (const auto& [partition, tokens] : merged) sum += tokens;
  return sum;
}

http::Response GroupUsage::answer(const http::Request& request) const {
  if (auto refusal = _impl->signer.refusal(request)) return refused(refusal->first, std::move(refusal->second));
  auto query = decode(request.body);
  if (!query) return refused(400, query.error().message);
  auto tokens = _impl->options.local(*query);
  if (!tokens) return refused(500, tokens.error().message);
  json::object partitions;
  for (const auto& [partition, n] : *tokens) partitions[std::to_string(partition)] = n;
  return http::json_response(
      200, json::serialize(json::object{{"instance", _impl->cluster.instance()}, {"partitions", std::move(partitions)}}),
      std::string(kPeerUsagePath));
}

std::uint64_t GroupUsage::unanswered() const { return _impl->unanswered.load(std::memory_order_relaxed); }

}  // namespace statefold::cluster
