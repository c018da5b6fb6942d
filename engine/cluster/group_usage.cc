#include "engine/cluster/group_usage.h"

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <future>
#include <mutex>
#include <set>
#include <vector>

#include "engine/base/hex.h"
#include "engine/base/json_read.h"
#include "engine/base/logging.h"
#include "engine/base/sha256.h"
#include "engine/base/text.h"

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

// The signing key is derived from the id secret, which also seals ids (AES-256-SIV): one secret, two keys.
std::string signing_key(std::string_view secret) {
  const base::Digest key = base::hmac_sha256(secret, "statefold peer signing key v1");
  return std::string(reinterpret_cast<const char*>(key.data()), key.size());
}

std::string signed_text(std::string_view instance, std::int64_t unix_ms, std::string_view body) {
  std::string text("statefold peer usage v1\n");
  text.append(instance).append("\n").append(std::to_string(unix_ms)).append("\n").append(body);
  return text;
}

// The signature header's value under a key signing_key() made.
std::string signature(std::string_view key, std::string_view instance, std::int64_t unix_ms, std::string_view body) {
  const base::Digest mac = base::hmac_sha256(key, signed_text(instance, unix_ms, body));
  std::string header(instance);
  header.append(" ").append(std::to_string(unix_ms)).append(" ").append(base::to_hex(mac));
  return header;
}

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

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
  return signature(signing_key(secret), instance, unix_ms, body);
}

struct GroupUsage::Impl {
  Impl(const Cluster& c, GroupUsageOptions o) : cluster(c), options(std::move(o)), key(signing_key(options.secret)) {}

  const Cluster& cluster;
  const GroupUsageOptions options;
  const std::string key;  // signing_key(options.secret)

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
    http::Request request;
    request.method = "POST";
    request.path = request.raw_path = std::string(kPeerUsagePath);
    request.headers = {{"content-type", "application/json"},
                       {base::ascii_lower(kPeerSignatureHeader),
                        signature(_impl->key, _impl->cluster.instance(), unix_ms_now(), body)}};
    request.body = body;
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
  if (request.method != "POST") return refused(405, "use POST");
  const auto header = request.header(base::ascii_lower(kPeerSignatureHeader));
  if (!header) return refused(401, std::string("no ") + kPeerSignatureHeader + " header");
  std::vector<std::string_view> parts;
  for (std::string_view rest = *header; !rest.empty();) {
    const std::size_t space = rest.find(' ');
    parts.push_back(rest.substr(0, space));
    rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
  }
  std::int64_t unix_ms = 0;
  const auto mac = parts.size() == 3 ? base::from_hex(parts[2]) : std::nullopt;
  if (parts.size() != 3 || !parse_int(parts[1], unix_ms) || !mac) {
    return refused(401, std::string(kPeerSignatureHeader) + ": expected \"<instance> <unix ms> <hex MAC>\"");
  }
  const auto skew = std::chrono::milliseconds(std::abs(unix_ms_now() - unix_ms));
  if (skew > _impl->options.clock_skew) {
    return refused(401, "signed " + std::to_string(skew.count() / 1000) +
                            " s away from this instance's clock: a replay, or the group's clocks disagree");
  }
  const base::Digest expected = base::hmac_sha256(_impl->key, signed_text(parts[0], unix_ms, request.body));
  if (_impl->options.secret.empty() || !base::equal_in_constant_time(expected, *mac)) {
    return refused(401, "the signature of instance " + std::string(parts[0]) +
                            " does not match: every instance of a group needs the same --id-secret-file");
  }
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
