#include "engine/base/sha256.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace statefold::base {

namespace {
// Fetched once: OpenSSL 3 otherwise looks the algorithm up in its provider tables on every hash.
const EVP_MD* sha256_md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}
}  // namespace

Sha256::Sha256() : _ctx(EVP_MD_CTX_new()) {
  if (_ctx == nullptr || sha256_md() == nullptr ||
      EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(_ctx), sha256_md(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL: cannot initialise SHA-256");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(_ctx)); }

Sha256& Sha256::update(std::span<const std::uint8_t> bytes) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(_ctx), bytes.data(), bytes.size());
  return *this;
}

Sha256& Sha256::update(std::string_view text) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(_ctx), text.data(), text.size());
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
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(_ctx), out.data(), &len);
  return out;
}

Digest sha256(std::span<const std::uint8_t> bytes) { return Sha256().update(bytes).finish(); }
Digest sha256(std::string_view text) { return Sha256().update(text).finish(); }

}  // namespace statefold::base
