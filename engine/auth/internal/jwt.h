// Private to auth: verifying a JWT bearer token with libjwt, whose types stay in jwt.cc.
#pragma once

#include <chrono>
#include <string_view>
#include <variant>

#include "engine/auth/auth.h"

namespace statefold::auth::internal {

// The principal a token names (its roles, tenant and name; no limits), or why it is refused (401).
std::variant<Principal, Refusal> verify_jwt(const JwtConfig& config, std::string_view token,
                                            std::chrono::system_clock::time_point now);

// Whether `token` has a JWT's shape (three dot-separated parts), so it is checked as one rather than as a key.
bool looks_like_jwt(std::string_view token);

}  // namespace statefold::auth::internal
