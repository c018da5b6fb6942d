// SHA-256 for hash chains and state hashes. Pure computation (OpenSSL's libcrypto), safe from any thread. The state
// lives in the object: a hash allocates nothing (the fold computes several per event).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

namespace statefold::base {

using Digest = std::array<std::uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  Sha256& update(std::span<const std::uint8_t> bytes);
  Sha256& update(std::string_view text);
  Sha256& update_u64(std::uint64_t v);  // big-endian, fixed width: unambiguous framing
  // Length-prefixed, so that ("ab","c") and ("a","bc") hash differently.
  Sha256& update_framed(std::string_view text);
  Digest finish();

 private:
  alignas(8) unsigned char _ctx[112];  // OpenSSL's SHA256_CTX (sha256.cc checks the size)
};

Digest sha256(std::span<const std::uint8_t> bytes);
Digest sha256(std::string_view text);

// HMAC-SHA-256 of `data` under `key` (RFC 2104): what instances of one group sign their requests to each other with.
Digest hmac_sha256(std::string_view key, std::string_view data);
// Whether two byte strings are equal, in a time that depends on their length only (for comparing MACs).
bool equal_in_constant_time(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);

}  // namespace statefold::base
