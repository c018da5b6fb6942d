#include "engine/cluster/peer_signing.h"

#include <charconv>
#include <cstdlib>
#include <vector>

#include "engine/base/hex.h"
#include "engine/base/sha256.h"
#include "engine/base/text.h"

namespace statefold::cluster {

namespace {

// The signing key is derived from the id secret, which also seals ids (AES-256-SIV): one secret, two keys.
std::string signing_key(std::string_view secret) {
  if (secret.empty()) return {};
  const base::Digest key = base::hmac_sha256(secret, "statefold peer signing key v1");
  return std::string(reinterpret_cast<const char*>(key.data()), key.size());
}

std::string signed_text(std::string_view purpose, std::string_view instance, std::int64_t unix_ms,
                        std::string_view body) {
  std::string text("statefold peer ");
  text.append(purpose).append(" v1\n").append(instance).append("\n").append(std::to_string(unix_ms)).append("\n");
  text.append(body);
  return text;
}

bool parse_int(std::string_view text, std::int64_t& out) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size() && !text.empty();
}

}  // namespace

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

PeerSigner::PeerSigner(std::string_view secret, std::string instance, std::string purpose,
                       std::chrono::seconds clock_skew)
    : _key(signing_key(secret)), _instance(std::move(instance)), _purpose(std::move(purpose)), _clock_skew(clock_skew) {}

std::string PeerSigner::sign(std::string_view body) const { return sign(body, unix_ms_now()); }

std::string PeerSigner::sign(std::string_view body, std::int64_t unix_ms) const {
  const base::Digest mac = base::hmac_sha256(_key, signed_text(_purpose, _instance, unix_ms, body));
  std::string header(_instance);
  header.append(" ").append(std::to_string(unix_ms)).append(" ").append(base::to_hex(mac));
  return header;
}

http::Request PeerSigner::request(std::string_view path, std::string body) const {
  http::Request request;
  request.method = "POST";
  request.path = request.raw_path = std::string(path);
  request.headers = {{"content-type", "application/json"},
                     {base::ascii_lower(kPeerSignatureHeader), sign(body)}};
  request.body = std::move(body);
  return request;
}

std::optional<std::pair<int, std::string>> PeerSigner::refusal(const http::Request& request) const {
  if (request.method != "POST") return std::pair{405, std::string("use POST")};
  const auto header = request.header(base::ascii_lower(kPeerSignatureHeader));
  if (!header) return std::pair{401, std::string("no ") + kPeerSignatureHeader + " header"};
  std::vector<std::string_view> parts;
  for (std::string_view rest = *header; !rest.empty();) {
    const std::size_t space = rest.find(' ');
    parts.push_back(rest.substr(0, space));
    rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
  }
  std::int64_t unix_ms = 0;
  const auto mac = parts.size() == 3 ? base::from_hex(parts[2]) : std::nullopt;
  if (parts.size() != 3 || !parse_int(parts[1], unix_ms) || !mac) {
    return std::pair{401, std::string(kPeerSignatureHeader) + ": expected \"<instance> <unix ms> <hex MAC>\""};
  }
  const auto skew = std::chrono::milliseconds(std::abs(unix_ms_now() - unix_ms));
  if (skew > _clock_skew) {
    return std::pair{401, "signed " + std::to_string(skew.count() / 1000) +
                              " s away from this instance's clock: a replay, or the group's clocks disagree"};
  }
  const base::Digest expected = base::hmac_sha256(_key, signed_text(_purpose, parts[0], unix_ms, request.body));
  if (_key.empty() || !base::equal_in_constant_time(expected, *mac)) {
    return std::pair{401, "the signature of instance " + std::string(parts[0]) +
                              " does not match: every instance of a group needs the same --id-secret-file"};
  }
  return std::nullopt;
}

}  // namespace statefold::cluster
