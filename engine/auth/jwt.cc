// JWT bearer tokens (RFC 7519) with libjwt: the signature against the configured public key, then the algorithm,
// issuer, audience, expiry and the claims that make the principal.
#include "engine/auth/internal/jwt.h"

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <boost/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>

namespace statefold::auth {

namespace {

struct JwtFree {
  void operator()(jwt_t* jwt) const { jwt_free(jwt); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtFree>;

Refusal unauthorized(std::string message) { return Refusal{401, std::move(message), "invalid_api_key", {}}; }

// A claim as JSON text (libjwt hands strings and numbers out one way, lists another), or "" when absent.
std::string claim_json(jwt_t* jwt, const std::string& name) {
  char* text = jwt_get_grants_json(jwt, name.c_str());
  if (text == nullptr) return {};
  std::string out(text);
  std::free(text);  // libjwt 1.x: the caller frees with free()
  return out;
}

// The strings of a claim that is a string or a list of strings; `split` breaks a string on spaces (OAuth's scope).
std::vector<std::string> claim_strings(jwt_t* jwt, const std::string& name, bool split) {
  std::vector<std::string> out;
  boost::json::error_code ec;
  const auto value = boost::json::parse(claim_json(jwt, name), ec);
  if (ec) return out;
  auto add = [&](std::string_view s) {
    if (!split) return out.emplace_back(s), void();
    std::size_t i = 0;
    while (i < s.size()) {
      const std::size_t end = std::min(s.find(' ', i), s.size());
      if (end > i) out.emplace_back(s.substr(i, end - i));
      i = end + 1;
    }
  };
  if (value.is_string()) add(value.as_string());
  if (value.is_array()) {
    for (const auto& item : value.as_array()) {
      if (item.is_string()) add(item.as_string());
    }
  }
  return out;
}

}  // namespace

base::Result<void> load_jwt_key(JwtConfig& jwt, std::string pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr, EVP_PKEY_free);
  if (!key) {
    return base::make_error("auth.jwt.public_key_file " + jwt.public_key_file +
                            ": not a PEM public key (-----BEGIN PUBLIC KEY-----)");
  }
  jwt.public_key_pem = std::move(pem);
  return {};
}

namespace internal {

bool looks_like_jwt(std::string_view token) { return std::count(token.begin(), token.end(), '.') == 2; }

std::variant<Principal, Refusal> verify_jwt(const JwtConfig& config, std::string_view token,
                                            std::chrono::system_clock::time_point now) {
  jwt_t* raw = nullptr;
  const std::string text(token);
  const auto& key = config.public_key_pem;
  if (jwt_decode(&raw, text.c_str(), reinterpret_cast<const unsigned char*>(key.data()),
                 static_cast<int>(key.size())) != 0 ||
      raw == nullptr) {
    if (raw != nullptr) jwt_free(raw);
    return unauthorized("bearer token: not a JWT signed by the configured key");
  }
  JwtPtr jwt(raw);
  // Only the asymmetric algorithms configured: "none", and HS256 keyed with the public key's text, would let
  // anyone who has the public key sign.
  const char* alg_name = jwt_alg_str(jwt_get_alg(jwt.get()));
  const std::string alg = alg_name != nullptr ? alg_name : "";
  if (std::find(config.algorithms.begin(), config.algorithms.end(), alg) == config.algorithms.end()) {
    return unauthorized("bearer token: algorithm " + (alg.empty() ? std::string("none") : alg) + " is not accepted");
  }
  const char* issuer = jwt_get_grant(jwt.get(), "iss");
  if (issuer == nullptr || config.issuer != issuer) return unauthorized("bearer token: not issued by " + config.issuer);
  const auto audiences = claim_strings(jwt.get(), "aud", false);
  if (std::find(audiences.begin(), audiences.end(), config.audience) == audiences.end()) {
    return unauthorized("bearer token: not meant for audience " + config.audience);
  }
  const auto seconds_now = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  errno = 0;
  const long expires = jwt_get_grant_int(jwt.get(), "exp");
  if (errno == ENOENT) return unauthorized("bearer token: no exp claim (tokens must expire)");
  if (seconds_now > expires + config.leeway.count()) return unauthorized("bearer token: expired");
  errno = 0;
  const long not_before = jwt_get_grant_int(jwt.get(), "nbf");
  if (errno != ENOENT && seconds_now + config.leeway.count() < not_before) {
    return unauthorized("bearer token: not valid yet (nbf)");
  }
  Principal principal;
  const char* name = jwt_get_grant(jwt.get(), config.name_claim.c_str());
  principal.key_name = "jwt:" + std::string(name != nullptr ? name : "?");
  const char* tenant = jwt_get_grant(jwt.get(), config.tenant_claim.c_str());
  if (tenant == nullptr || !valid_tenant(tenant)) {
    return unauthorized("bearer token: claim " + config.tenant_claim + " must name the tenant (A-Z a-z 0-9 . _ -)");
  }
  principal.tenant = tenant;
  for (const auto& role : claim_strings(jwt.get(), config.roles_claim, true)) {
    if (auto parsed = parse_role(role)) principal.roles |= static_cast<unsigned>(*parsed);
  }
  return principal;
}

}  // namespace internal

}  // namespace statefold::auth
