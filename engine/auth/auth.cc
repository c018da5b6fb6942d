#include "engine/auth/auth.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <stdexcept>

#include "engine/auth/internal/jwt.h"
#include "engine/base/hex.h"
#include "engine/base/text.h"
#include "engine/base/time.h"

namespace statefold::auth {

namespace {

constexpr std::string_view kDigestPrefix = "sha256:";

base::Digest digest_of(std::string_view text) { return base::Sha256().update(text).finish(); }

std::string at(std::string_view source, const toml::node& node) {
  return std::string(source) + ":" + std::to_string(node.source().begin.line);
}

// Routes whose answer covers every tenant: the store's snapshots and the process's metrics.
bool spans_tenants(std::string_view path) {
  return path.starts_with("/v1/snapshots") || path == "/metrics" || path == "/v1/cluster";
}

bool is_turn(std::string_view method, std::string_view path) {
  return method == "POST" && (path == "/v1/chat/completions" || path == "/v1/responses");
}

// 403 when the principal (of a key or a token: `what` says which) lacks the route's role, or belongs to a tenant
// and asks for a route that covers every tenant.
std::optional<Refusal> route_refusal(std::string_view what, const Principal& principal, Role role,
                                     std::string_view method, std::string_view path) {
  const std::string who = std::string(what) + " \"" + principal.key_name + "\"";
  if (!principal.may(role)) {
    return Refusal{403,
                   who + " lacks the " + std::string(role_name(role)) + " role for " + std::string(method) + " " +
                       std::string(path),
                   "insufficient_role",
                   {}};
  }
  if (!principal.tenant.empty() && spans_tenants(path)) {
    return Refusal{403,
                   std::string(path) + " covers every tenant: use a key without a tenant (" + who +
                       " belongs to tenant \"" + principal.tenant + "\")",
                   "insufficient_role",
                   {}};
  }
  return std::nullopt;
}

// [auth.jwt]: issuer, audience and public_key_file are required.
base::Result<JwtConfig> parse_jwt(std::string_view source, const toml::node& node) {
  const toml::table* table = node.as_table();
  if (table == nullptr) return base::make_error(at(source, node) + ": auth.jwt: expected a table");
  JwtConfig jwt;
  for (const auto& [name, value] : *table) {
    const std::string field(name.str());
    const std::string where = at(source, value) + ": auth.jwt." + field;
    auto text = value.value_exact<std::string>();
    if (field == "issuer" || field == "audience" || field == "public_key_file" || field == "tenant_claim" ||
        field == "roles_claim" || field == "name_claim") {
      if (!text || text->empty()) return base::make_error(where + ": expected a non-empty string");
      (field == "issuer"            ? jwt.issuer
       : field == "audience"        ? jwt.audience
       : field == "public_key_file" ? jwt.public_key_file
       : field == "tenant_claim"    ? jwt.tenant_claim
       : field == "roles_claim"     ? jwt.roles_claim
                                    : jwt.name_claim) = *text;
    } else if (field == "leeway_s") {
      auto n = value.value_exact<std::int64_t>();
      if (!n || *n < 0 || *n > 3600) return base::make_error(where + ": expected seconds, 0..3600");
      jwt.leeway = std::chrono::seconds(*n);
    } else if (field == "algorithms") {
      const toml::array* list = value.as_array();
      if (list == nullptr || list->empty()) return base::make_error(where + ": expected a list such as [\"RS256\"]");
      jwt.algorithms.clear();
      for (const toml::node& item : *list) {
        auto alg = item.value_exact<std::string>();
        static constexpr std::string_view kAccepted[] = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"};
        if (!alg || std::find(std::begin(kAccepted), std::end(kAccepted), *alg) == std::end(kAccepted)) {
          return base::make_error(where + ": accepted are RS256, RS384, RS512, ES256, ES384, ES512");
        }
        jwt.algorithms.push_back(*alg);
      }
    } else {
      return base::make_error(where + ": unknown field (known: issuer, audience, public_key_file, algorithms, "
                                      "tenant_claim, roles_claim, name_claim, leeway_s)");
    }
  }
  for (auto [field, value] : {std::pair{"issuer", &jwt.issuer}, std::pair{"audience", &jwt.audience},
                              std::pair{"public_key_file", &jwt.public_key_file}}) {
    if (value->empty()) return base::make_error(at(source, node) + ": auth.jwt: '" + field + "' is required");
  }
  return jwt;
}

}  // namespace

struct Gate::TurnCounts {
  std::mutex mutex;
  std::vector<std::uint32_t> in_progress;
};

bool valid_tenant(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

bool Principal::owns(std::string_view session_id) const {
  if (tenant.empty()) return true;
  return session_id.size() > tenant.size() + 1 && session_id.starts_with(tenant) && session_id[tenant.size()] == '/';
}

std::string Principal::no_such_session(std::string_view session_id) const {
  return "no session " + std::string(session_id) + " (the sessions of tenant " + tenant + " are named " +
         session_prefix() + "...)";
}

Principal unrestricted() { return Principal{"", 0xF, "", 0, Period::day, nullptr}; }

std::string_view period_name(Period period) { return period == Period::day ? "day" : "month"; }

BudgetWindow budget_window(Period period, std::chrono::system_clock::time_point now) {
  using namespace std::chrono;
  const sys_days today = floor<days>(now);
  const year_month_day ymd(today);
  BudgetWindow window;
  window.through_day = base::utc_date(today);
  sys_days next;
  if (period == Period::day) {
    window.from_day = window.through_day;
    next = today + days(1);
  } else {
    const year_month_day first = ymd.year() / ymd.month() / 1;
    window.from_day = base::utc_date(sys_days(first));
    next = sys_days(first + months(1));
  }
  window.until_reset = ceil<seconds>(next - now);
  return window;
}

std::optional<Refusal> over_budget(const Principal& principal, std::uint64_t used, const BudgetWindow& window) {
  if (principal.token_budget == 0 || used < principal.token_budget) return std::nullopt;
  return Refusal{429,
                 "key \"" + principal.key_name + "\" has used " + std::to_string(used) + " of its " +
                     std::to_string(principal.token_budget) + " tokens this " +
                     std::string(period_name(principal.budget_period)) + " (UTC); the budget renews in " +
                     std::to_string(window.until_reset.count()) + " s",
                 "insufficient_quota", window.until_reset};
}

std::string Principal::routing_key(std::string_view session_id) const {
  return tenant.empty() ? std::string(session_id) : session_prefix();
}

std::string_view role_name(Role role) {
  switch (role) {
    case Role::read: return "read";
    case Role::write: return "write";
    case Role::chat: return "chat";
    case Role::admin: return "admin";
  }
  return "?";
}

std::optional<Role> parse_role(std::string_view name) {
  for (Role role : {Role::read, Role::write, Role::chat, Role::admin}) {
    if (role_name(role) == name) return role;
  }
  return std::nullopt;
}

base::Result<Config> parse_config(std::string_view toml_text, std::string_view source) {
  toml::table document;
  try {
    document = toml::parse(toml_text, source);
  } catch (const toml::parse_error& e) {
    return base::make_error(std::string(source) + ":" + std::to_string(e.source().begin.line) + ": " +
                            std::string(e.description()));
  }
  Config config;
  const toml::node* table_node = document.get("auth");
  if (table_node == nullptr) return config;
  const toml::table* table = table_node->as_table();
  if (table == nullptr) return base::make_error(at(source, *table_node) + ": auth: expected a table");
  for (const auto& [name, node] : *table) {
    const std::string key(name.str());
    if (key == "metrics_open") {
      auto open = node.value_exact<bool>();
      if (!open) return base::make_error(at(source, node) + ": auth.metrics_open: expected true or false");
      config.metrics_open = *open;
    } else if (key == "jwt") {
      auto jwt = parse_jwt(source, node);
      if (!jwt) return jwt.error();
      config.jwt = std::move(*jwt);
    } else if (key != "keys") {
      return base::make_error(at(source, node) + ": auth: unknown key '" + key + "' (known: keys, jwt, metrics_open)");
    }
  }
  const toml::node* keys_node = table->get("keys");
  if (keys_node == nullptr) return config;
  const toml::array* keys = keys_node->as_array();
  if (keys == nullptr) return base::make_error(at(source, *keys_node) + ": auth.keys: expected [[auth.keys]] tables");
  std::map<base::Digest, std::string> seen;
  for (const toml::node& entry : *keys) {
    const toml::table* fields = entry.as_table();
    if (fields == nullptr) return base::make_error(at(source, entry) + ": auth.keys: expected [[auth.keys]] tables");
    Key key;
    for (const auto& [field_name, value] : *fields) {
      const std::string field(field_name.str());
      const std::string where = at(source, value) + ": auth.keys." + field;
      if (field == "name") {
        auto s = value.value_exact<std::string>();
        if (!s || s->empty()) return base::make_error(where + ": expected a non-empty string");
        key.name = *s;
      } else if (field == "digest") {
        auto s = value.value_exact<std::string>();
        std::optional<std::vector<std::uint8_t>> bytes;
        if (s && s->starts_with(kDigestPrefix))
          bytes = base::from_hex(std::string_view(*s).substr(kDigestPrefix.size()));
        if (!bytes || bytes->size() != key.digest.size()) {
          return base::make_error(where +
                                  ": expected \"sha256:\" and 64 hex digits (statefold auth new-key prints it)");
        }
        std::copy(bytes->begin(), bytes->end(), key.digest.begin());
      } else if (field == "roles") {
        const toml::array* roles = value.as_array();
        if (roles == nullptr) return base::make_error(where + ": expected a list such as [\"read\", \"chat\"]");
        for (const toml::node& role_node : *roles) {
          auto role_text = role_node.value_exact<std::string>();
          auto role = role_text ? parse_role(*role_text) : std::nullopt;
          if (!role) return base::make_error(where + ": unknown role (known: read, write, chat, admin)");
          key.roles |= static_cast<unsigned>(*role);
        }
      } else if (field == "tenant") {
        auto s = value.value_exact<std::string>();
        if (!s || !valid_tenant(*s)) return base::make_error(where + ": expected 1..64 of A-Z a-z 0-9 . _ -");
        key.tenant = *s;
      } else if (field == "max_concurrent_turns") {
        auto n = value.value_exact<std::int64_t>();
        if (!n || *n < 0 || *n > 1000000) return base::make_error(where + ": expected an integer >= 0 (0: unlimited)");
        key.max_concurrent_turns = static_cast<std::uint32_t>(*n);
      } else if (field == "token_budget") {
        auto n = value.value_exact<std::int64_t>();
        if (!n || *n < 0) return base::make_error(where + ": expected an integer >= 0 (tokens per period; 0: none)");
        key.token_budget = static_cast<std::uint64_t>(*n);
      } else if (field == "budget_period") {
        auto p = value.value_exact<std::string>();
        if (!p || (*p != "day" && *p != "month")) return base::make_error(where + ": expected \"day\" or \"month\"");
        key.budget_period = *p == "day" ? Period::day : Period::month;
      } else if (field == "requests_per_second") {
        auto rate = value.value<double>();
        if (!rate || *rate < 0) return base::make_error(where + ": expected a number >= 0 (0: unlimited)");
        key.requests_per_second = *rate;
      } else {
        return base::make_error(where + ": unknown field (known: name, digest, tenant, roles, requests_per_second, "
                                        "max_concurrent_turns, token_budget, budget_period)");
      }
    }
    const std::string where = at(source, entry) + ": auth.keys";
    if (key.name.empty()) return base::make_error(where + ": a key needs a name");
    if (key.digest == base::Digest{}) return base::make_error(where + " \"" + key.name + "\": a key needs a digest");
    if (key.roles == 0) return base::make_error(where + " \"" + key.name + "\": a key needs at least one role");
    if (auto [it, fresh] = seen.emplace(key.digest, key.name); !fresh) {
      return base::make_error(where + " \"" + key.name + "\": same digest as key \"" + it->second + "\"");
    }
    config.keys.push_back(std::move(key));
  }
  return config;
}

std::optional<Role> required_role(std::string_view method, std::string_view path, bool metrics_open) {
  if (path == "/healthz" || path == "/readyz") return std::nullopt;
  if (path == "/metrics") return metrics_open ? std::nullopt : std::optional(Role::read);
  const bool reads = method == "GET" || method == "HEAD";
  if (path.starts_with("/v1/snapshots") || path == "/v1/cluster") return Role::admin;
  if (path == "/v1/chat/completions" || path == "/v1/responses") return reads ? Role::read : Role::chat;
  if (path.starts_with("/v1/sessions/") && path.ends_with("/fork") && !reads) return Role::admin;
  if (path.starts_with("/v1/sessions/") && !reads) return Role::write;
  if (reads) return Role::read;
  return Role::admin;  // anything else that changes state
}

Gate::Gate(Config config)
    : _config(std::move(config)), _buckets(_config.keys.size()), _turns(std::make_shared<TurnCounts>()) {
  _turns->in_progress.resize(_config.keys.size());
  for (std::size_t i = 0; i < _config.keys.size(); ++i) _keys.emplace(_config.keys[i].digest, i);
}

std::variant<Principal, Refusal> Gate::admit(std::string_view method, std::string_view path,
                                             std::optional<std::string_view> authorization,
                                             std::chrono::steady_clock::time_point now,
                                             std::chrono::system_clock::time_point wall) {
  if (!enabled()) return unrestricted();  // no keys configured: nothing to check per request
  const auto role = required_role(method, path, _config.metrics_open);
  if (!role) return unrestricted();  // the open routes touch no session
  constexpr std::string_view kBearer = "Bearer ";
  if (!authorization) {
    return Refusal{401, "no API key: send Authorization: Bearer <key>", "invalid_api_key", {}};
  }
  std::string_view presented = *authorization;
  if (!base::istarts_with(presented, kBearer)) {
    return Refusal{401, "Authorization: expected \"Bearer <key>\"", "invalid_api_key", {}};
  }
  presented.remove_prefix(kBearer.size());
  // Looked up by digest: the map compares digests, never the key, so its timing tells nothing about a key's text.
  auto found = _keys.find(digest_of(presented));
  if (found == _keys.end() && _config.jwt && internal::looks_like_jwt(presented)) {
    auto verified = internal::verify_jwt(*_config.jwt, presented, wall);
    if (const auto* principal = std::get_if<Principal>(&verified)) {
      if (auto refused = route_refusal("token of", *principal, *role, method, path)) return *refused;
    }
    return verified;
  }
  if (found == _keys.end()) return Refusal{401, "incorrect API key", "invalid_api_key", {}};
  const Key& key = _config.keys[found->second];
  Principal principal{key.name, key.roles, key.tenant, key.token_budget, key.budget_period, nullptr};
  if (auto refused = route_refusal("key", principal, *role, method, path)) return *refused;
  if (key.requests_per_second > 0) {
    // Token bucket: refills at the key's rate, holds at most one second's worth (at least one request).
    const double capacity = std::max(1.0, key.requests_per_second);
    std::lock_guard lock(_mutex);
    Bucket& bucket = _buckets[found->second];
    if (bucket.refreshed == std::chrono::steady_clock::time_point{}) {
      bucket.tokens = capacity;
    } else {
      const double elapsed = std::chrono::duration<double>(now - bucket.refreshed).count();
      bucket.tokens = std::min(capacity, bucket.tokens + std::max(0.0, elapsed) * key.requests_per_second);
    }
    bucket.refreshed = now;
    if (bucket.tokens < 1.0) {
      const double wait = (1.0 - bucket.tokens) / key.requests_per_second;
      const auto seconds = std::chrono::seconds(static_cast<std::int64_t>(wait) + 1);
      return Refusal{429,
                     "key \"" + key.name + "\" is over its limit of " + std::to_string(key.requests_per_second) +
                         " requests per second",
                     "rate_limit_exceeded", seconds};
    }
    bucket.tokens -= 1.0;
  }
  if (key.max_concurrent_turns > 0 && is_turn(method, path)) {
    std::lock_guard lock(_turns->mutex);
    std::uint32_t& in_progress = _turns->in_progress[found->second];
    if (in_progress >= key.max_concurrent_turns) {
      return Refusal{429,
                     "key \"" + key.name + "\" has " + std::to_string(in_progress) +
                         " turns in progress, its limit; retry when one ends",
                     "rate_limit_exceeded", std::chrono::seconds(1)};
    }
    ++in_progress;
    // The slot is freed when the last copy of the principal goes (the gateway holds one until the turn ends).
    principal.turn_slot = std::shared_ptr<void>(nullptr, [counts = _turns, index = found->second](void*) {
      std::lock_guard counted(counts->mutex);
      --counts->in_progress[index];
    });
  }
  return principal;
}

NewKey new_key() {
  std::array<std::uint8_t, 32> random{};
  if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) {
    throw std::runtime_error("OpenSSL RAND_bytes failed: no randomness for a key");
  }
  NewKey made;
  made.key = "sf-" + base::to_hex(std::span<const std::uint8_t>(random));
  const auto digest = digest_of(made.key);
  made.digest = std::string(kDigestPrefix) + base::to_hex(std::span<const std::uint8_t>(digest));
  OPENSSL_cleanse(random.data(), random.size());
  return made;
}

}  // namespace statefold::auth
