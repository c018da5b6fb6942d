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
#include <map>
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

struct Key {
  std::string name;                // shown in logs and refusals; never the key itself
  base::Digest digest{};           // SHA-256 of the key's text
  unsigned roles = 0;              // bits of Role
  double requests_per_second = 0;  // 0: unlimited; bursts of up to one second's worth
};

struct Config {
  std::vector<Key> keys;
  bool metrics_open = false;  // /metrics without a key (for a scraper on a private network)
};

// The [auth] table of a TOML document:
//   [auth]
//   metrics_open = false
//   [[auth.keys]]
//   name = "app"  digest = "sha256:<64 hex>"  roles = ["read", "write", "chat"]  requests_per_second = 50
// No [auth] table: no keys. Errors name the file, line and field.
base::Result<Config> parse_config(std::string_view toml_text, std::string_view source);

// The role a request needs; nullopt for the routes open to everyone (/healthz, /readyz, and /metrics when open).
std::optional<Role> required_role(std::string_view method, std::string_view path, bool metrics_open);

struct Principal {
  std::string key_name;
  unsigned roles = 0;
};

// Why a request is not admitted: 401 (no or unknown key), 403 (the key lacks the role), 429 (over its rate).
struct Refusal {
  int status = 401;
  std::string message;
  std::string code;                     // OpenAI's error code: invalid_api_key, insufficient_role, rate_limit_exceeded
  std::chrono::seconds retry_after{0};  // 429 only
};

class Gate {
 public:
  explicit Gate(Config config);
  // True when keys are configured: every route but the open ones needs one.
  bool enabled() const { return !_keys.empty(); }
  // An open route, or no keys configured: an anonymous principal with every role.
  std::variant<Principal, Refusal> admit(std::string_view method, std::string_view path,
                                         std::optional<std::string_view> authorization,
                                         std::chrono::steady_clock::time_point now);

 private:
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point refreshed{};
  };
  Config _config;
  std::map<base::Digest, std::size_t> _keys;  // digest -> index in _config.keys
  std::mutex _mutex;
  std::vector<Bucket> _buckets;  // per key
};

// A new random key (256 bits, "sf-" + 64 hex digits) and its digest as the config writes it ("sha256:<hex>").
struct NewKey {
  std::string key;
  std::string digest;
};
NewKey new_key();

}  // namespace statefold::auth
