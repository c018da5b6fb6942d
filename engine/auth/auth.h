// auth: who may call serve's HTTP API, and what they may do (spec section 9, docs/security.md).
// Clients send `Authorization: Bearer <key>`, so the OpenAI SDKs' `api_key` works unchanged. Keys are configured as
// SHA-256 digests in the [auth] table of serve's TOML file, never in clear text; `statefold auth new-key` makes one.
//
//   auto config = auth::parse_config(toml_text, "serve.toml");       // the [auth] table; none: no keys
//   auth::Gate gate(std::move(*config));
//   auto admitted = gate.admit("POST", "/v1/chat/completions", request.header("authorization"), now);
//   if (auto* refusal = std::get_if<auth::Refusal>(&admitted)) ... answer refusal->status
//
// Pure: no I/O, the clock is passed in. Thread-safety: Gate::admit from any thread (a mutex guards the rate limits).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/base/result.h"
#include "engine/base/sha256.h"

namespace statefold::auth {

// What a key may do. A route needs one role; admin does not imply the others (give each explicitly).
enum class Role : unsigned {
  read = 1,   // sessions, history, context, stored responses, models, metrics
  write = 2,  // append events
  chat = 4,   // gateway turns (the upstream calls that cost money)
  admin = 8,  // snapshots, forks
};
std::string_view role_name(Role role);
std::optional<Role> parse_role(std::string_view name);

// The period a token budget covers: the UTC day, or the UTC calendar month.
enum class Period { day, month };

struct Key {
  std::string name;                // shown in logs and refusals; never the key itself
  base::Digest digest{};           // SHA-256 of the key's text
  // The tenant whose sessions the key may touch (those named "<tenant>/..."); "": every session (an operator key).
  std::string tenant;
  unsigned roles = 0;                  // bits of Role
  double requests_per_second = 0;      // 0: unlimited; bursts of up to one second's worth
  std::uint32_t max_concurrent_turns = 0;  // gateway turns in progress at once; 0: unlimited
  std::uint64_t token_budget = 0;          // input + output tokens per period, from the receipts; 0: unlimited
  Period budget_period = Period::day;
};

// Whether `name` may name a tenant: 1..64 of [A-Za-z0-9._-] (it prefixes session ids, so no '/').
bool valid_tenant(std::string_view name);

// Bearer tokens from an identity provider, besides keys: JWTs (RFC 7519) signed with RS256/384/512 or ES256/384/512
// by the key in public_key_file, of the configured issuer and audience, unexpired. Claims give the tenant (required),
// the roles (a list, or a space-separated string; names other than statefold's roles are ignored) and the name
// logs, refusals and receipts show ("jwt:" + the claim).
struct JwtConfig {
  std::string issuer;
  std::string audience;
  std::string public_key_file;
  std::string public_key_pem;  // the file's text, read by the caller (auth does no I/O): load_jwt_key
  std::vector<std::string> algorithms{"RS256", "ES256"};
  std::string tenant_claim = "tenant";
  std::string roles_claim = "roles";
  std::string name_claim = "sub";
  std::chrono::seconds leeway{30};  // clock skew allowed on exp and nbf
};

struct Config {
  std::vector<Key> keys;
  bool metrics_open = false;  // /metrics without a key (for a scraper on a private network)
  std::optional<JwtConfig> jwt;
};

// Puts `pem` (the text of jwt.public_key_file) in the config, checked to be a public key; the error names the file.
base::Result<void> load_jwt_key(JwtConfig& jwt, std::string pem);

// The [auth] table of a TOML document:
//   [auth]
//   metrics_open = false
//   [auth.jwt]   issuer, audience, public_key_file, algorithms, tenant_claim, roles_claim, name_claim, leeway_s
//   [[auth.keys]]
//   name = "app"  digest = "sha256:<64 hex>"  tenant = "acme"  roles = ["read", "write", "chat"]
//   requests_per_second = 50  max_concurrent_turns = 4  token_budget = 1000000  budget_period = "day"
// No [auth] table: no keys. Errors name the file, line and field.
base::Result<Config> parse_config(std::string_view toml_text, std::string_view source);

// The role a request needs; nullopt for the routes open to everyone (/healthz, /readyz, and /metrics when open).
std::optional<Role> required_role(std::string_view method, std::string_view path, bool metrics_open);

// Who a request comes from, once admitted: what it may do, and which sessions exist for it.
struct Principal {
  std::string key_name;  // "" without keys configured
  unsigned roles = 0;
  std::string tenant;  // "": every session
  std::uint64_t token_budget = 0;  // 0: none
  Period budget_period = Period::day;
  // Held while one of the key's gateway turns is in progress (its concurrent-turn limit); the gateway keeps the
  // principal until the turn ends.
  std::shared_ptr<void> turn_slot;

  bool may(Role role) const { return (roles & static_cast<unsigned>(role)) != 0; }
  // The session ids the principal may name start with this: "<tenant>/", or "" for every session.
  std::string session_prefix() const { return tenant.empty() ? std::string() : tenant + "/"; }
  // Whether `session_id` is in the principal's namespace. Any other session does not exist for it (404).
  bool owns(std::string_view session_id) const;
  // The 404 message for a session outside the namespace: as for a session that does not exist, plus where the
  // principal's own sessions are (which says nothing about other tenants').
  std::string no_such_session(std::string_view session_id) const;
  // What upstream routes are chosen by for `session_id`: the tenant's namespace ("<tenant>/") for a tenant's key,
  // so that no id a client picks reaches another route; the session id itself otherwise.
  std::string routing_key(std::string_view session_id) const;
};

// Every role, every session: the caller when no keys are configured (and in tests of the routes behind the gate).
Principal unrestricted();

// Why a request is not admitted: 401 (no or unknown key), 403 (the key lacks the role, or a tenant's key asks for a
// route that covers every tenant), 429 (over its rate or its concurrent turns).
struct Refusal {
  int status = 401;
  std::string message;
  std::string code;                     // OpenAI's error code: invalid_api_key, insufficient_role, rate_limit_exceeded
  std::chrono::seconds retry_after{0};  // 429 only
};

// The days a budget period covers at `now` ("YYYY-MM-DD", both included) and how long until the next one starts.
struct BudgetWindow {
  std::string from_day;
  std::string through_day;
  std::chrono::seconds until_reset{0};
};
BudgetWindow budget_window(Period period, std::chrono::system_clock::time_point now);
std::string_view period_name(Period period);

// 429 when `used` tokens (input + output, from the receipts of the principal's key in `window`) reach its budget.
std::optional<Refusal> over_budget(const Principal& principal, std::uint64_t used, const BudgetWindow& window);

// The tokens (input + output) a principal's key used in `window`, from the receipts of the sessions it may spend in
// (its tenant's; every tenant's for an operator's key). In a group, over every instance (cluster::GroupUsage).
using TokensUsed = std::function<base::Result<std::uint64_t>(const Principal&, const BudgetWindow&)>;

class Gate {
 public:
  explicit Gate(Config config);
  // True when keys or tokens are configured: every route but the open ones needs one.
  bool enabled() const { return !_keys.empty() || _config.jwt.has_value(); }
  // An open route, or no keys configured: an anonymous principal with every role and no tenant. A gateway turn
  // (POST /v1/chat/completions or /v1/responses) takes one of the key's concurrent-turn slots (Principal::turn_slot).
  // `wall` is the time tokens' exp and nbf are checked against.
  std::variant<Principal, Refusal> admit(std::string_view method, std::string_view path,
                                         std::optional<std::string_view> authorization,
                                         std::chrono::steady_clock::time_point now,
                                         std::chrono::system_clock::time_point wall = std::chrono::system_clock::now());

 private:
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point refreshed{};
  };
  Config _config;
  std::map<base::Digest, std::size_t> _keys;  // digest -> index in _config.keys
  std::mutex _mutex;
  std::vector<Bucket> _buckets;  // per key
  // Per key: gateway turns in progress. Shared with the slots, which may outlive the gate (a turn finishing late).
  struct TurnCounts;
  std::shared_ptr<TurnCounts> _turns;
};

// A new random key (256 bits, "sf-" + 64 hex digits) and its digest as the config writes it ("sha256:<hex>").
struct NewKey {
  std::string key;
  std::string digest;
};
NewKey new_key();

}  // namespace statefold::auth
