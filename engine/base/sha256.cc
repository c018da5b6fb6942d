#include "engine/base/sha256.h"

// OpenSSL's SHA-256 functions rather than EVP: they are deprecated in OpenSSL 3 but kept, and EVP allocates a
// context and dispatches through its provider on every hash, about 5 % of the fold thread's time (three or four
// hashes per event; docs/performance.md). The digests are the same bytes either way.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <stdexcept>

namespace statefold::base {

namespace {
SHA256_CTX* state(unsigned char* ctx) { return reinterpret_cast<SHA256_CTX*>(ctx); }
}  // namespace

Sha256::Sha256() {
  static_assert(sizeof(SHA256_CTX) <= sizeof(_ctx) && alignof(SHA256_CTX) <= 8, "Sha256::_ctx holds a SHA256_CTX");
  if (SHA256_Init(state(_ctx)) != 1) throw std::runtime_error("OpenSSL: cannot initialise SHA-256");
}

Sha256::~Sha256() = default;

Sha256& Sha256::update(std::span<const std::uint8_t> bytes) {
  SHA256_Update(state(_ctx), bytes.data(), bytes.size());
  return *this;
}

Sha256& Sha256::update(std::string_view text) {
  SHA256_Update(state(_ctx), text.data(), text.size());
  return *this;
}

Sha256& Sha256::update_u64(std::uint64_t v) {
  std::uint8_t be[8];
  for (int i = 7; i >= 0; --i) {
    be[i] = static_cast<std::uint8_t>(v & 0xff);
    v >>= 8;
  }
  return update(std::span<const std::uint8_t>(be, 8));
}

Sha256& Sha256::update_framed(std::string_view text) {
  update_u64(text.size());
  return update(text);
}

Digest Sha256::finish() {
  Digest out{};
  SHA256_Final(out.data(), state(_ctx));
  return out;
}

Digest sha256(std::span<const std::uint8_t> bytes) { return Sha256().update(bytes).finish(); }
Digest sha256(std::string_view text) { return Sha256().update(text).finish(); }

Digest hmac_sha256(std::string_view key, std::string_view data) {
  Digest out{};
  unsigned int size = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
           data.size(), out.data(), &size) == nullptr ||
      size != out.size()) {
    throw std::runtime_error("OpenSSL: HMAC-SHA-256 failed");
  }
  return out;
}

bool equal_in_constant_time(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace statefold::base
