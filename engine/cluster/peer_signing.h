// Queries the members of a group send each other (POST, JSON body) are signed: HMAC-SHA-256 under a key derived from
// the group's shared id secret (serve --id-secret-file), over the purpose, the sending instance, the time and the
// body. Used by GroupUsage and GroupSessions; private to the cluster module.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine/http/http.h"

namespace statefold::cluster {

// "<instance> <unix ms> <hex HMAC-SHA-256 of the request under the group's secret>"
inline constexpr char kPeerSignatureHeader[] = "X-Statefold-Peer-Signature";

class PeerSigner {
 public:
  // `purpose` ("usage", "sessions") is signed too, so a query signed for one route is refused by another.
  PeerSigner(std::string_view secret, std::string instance, std::string purpose, std::chrono::seconds clock_skew);

  // The signature header's value for `body`, sent now.
  std::string sign(std::string_view body) const;
  std::string sign(std::string_view body, std::int64_t unix_ms) const;
  // A POST request to send to a member at `path`, signed.
  http::Request request(std::string_view path, std::string body) const;
  // nullopt when `request` is a POST signed by an instance holding the group's secret within the clock skew; else
  // the status and why not (401 for a signature, 405 for the method).
  std::optional<std::pair<int, std::string>> refusal(const http::Request& request) const;

 private:
  std::string _key;  // derived from the secret; empty when the secret is
  std::string _instance;
  std::string _purpose;
  std::chrono::seconds _clock_skew;
};

std::int64_t unix_ms_now();

}  // namespace statefold::cluster
