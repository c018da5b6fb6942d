#include "connectors/gateway/internal/ids.h"

#include <openssl/evp.h>

#include <array>
#include <memory>
#include <stdexcept>

namespace statefold::gateway::internal {

namespace {

constexpr std::size_t kTagBytes = 16;  // the synthetic IV that AES-SIV prepends
constexpr std::string_view kKeyLabel = "statefold gateway ids v1";

struct CipherContextFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
struct CipherFree {
  void operator()(EVP_CIPHER* cipher) const { EVP_CIPHER_free(cipher); }
};
using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, CipherContextFree>;

// Fetched once: a provider lookup per id would cost more than the sealing.
const EVP_CIPHER* aes_siv() {
  static const std::unique_ptr<EVP_CIPHER, CipherFree> cipher(EVP_CIPHER_fetch(nullptr, "AES-256-SIV", nullptr));
  if (!cipher) throw std::runtime_error("OpenSSL has no AES-256-SIV (OpenSSL 3.0 or later is needed)");
  return cipher.get();
}

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }
int length(std::string_view s) { return static_cast<int>(s.size()); }

// base64url without padding: ids go into URL paths.
std::string to_base64url(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes(raw), length(raw));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::optional<std::string> from_base64url(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string padded(text);
  for (char& c : padded) {
    if (c == '-') {
      c = '+';
    } else if (c == '_') {
      c = '/';
    } else if (c == '+' || c == '/' || c == '=') {
      return std::nullopt;  // not ours: only the url-safe alphabet, unpadded
    }
  }
  const std::size_t pad = (4 - padded.size() % 4) % 4;
  padded.append(pad, '=');
  std::string out(padded.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes(padded), length(padded));
  if (n < 0) return std::nullopt;
  out.resize(static_cast<std::size_t>(n) - pad);  // EVP_DecodeBlock counts the padding as zero bytes
  // One spelling per id: a last character that differs only in bits the bytes do not use is not the same id.
  if (to_base64url(out) != text) return std::nullopt;
  return out;
}

void append_be64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

std::optional<SessionAt> split_versioned(std::optional<std::string> plain) {
  if (!plain || plain->size() <= 8) return std::nullopt;
  SessionAt at;
  for (std::size_t i = 0; i < 8; ++i) at.version = at.version << 8 | static_cast<std::uint8_t>((*plain)[i]);
  at.session = plain->substr(8);
  return at;
}

std::string versioned(std::string_view session, std::uint64_t version) {
  std::string plain;
  append_be64(plain, version);
  plain.append(session);
  return plain;
}

}  // namespace

IdSeal::IdSeal(std::string_view secret) {
  if (secret.size() < kMinSecretBytes) {
    throw std::invalid_argument("the id secret has " + std::to_string(secret.size()) + " bytes; at least " +
                                std::to_string(kMinSecretBytes) + " are needed");
  }
  std::array<unsigned char, 64> key{};
  std::size_t key_length = 0;
  // The secret is an operator's text: HMAC-SHA-512 turns it into the 512 bits AES-256-SIV takes.
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA512", nullptr, secret.data(), secret.size(), bytes(kKeyLabel),
                kKeyLabel.size(), key.data(), key.size(), &key_length) == nullptr ||
      key_length != key.size()) {
    throw std::runtime_error("cannot derive the id key (HMAC-SHA-512)");
  }
  _key.assign(reinterpret_cast<const char*>(key.data()), key.size());
}

std::string IdSeal::seal(std::string_view kind, std::string_view plain) const {
  CipherContext ctx(EVP_CIPHER_CTX_new());
  std::string sealed(kTagBytes + plain.size(), '\0');
  auto* out = reinterpret_cast<unsigned char*>(sealed.data());
  int n = 0;
  // No nonce: SIV is deterministic by design, and the kind is the associated data, so a conversation id does not
  // open as a response id.
  const bool ok = ctx && EVP_EncryptInit_ex2(ctx.get(), aes_siv(), bytes(_key), nullptr, nullptr) == 1 &&
                  EVP_EncryptUpdate(ctx.get(), nullptr, &n, bytes(kind), length(kind)) == 1 &&
                  EVP_EncryptUpdate(ctx.get(), out + kTagBytes, &n, bytes(plain), length(plain)) == 1 &&
                  EVP_EncryptFinal_ex(ctx.get(), out + kTagBytes + n, &n) == 1 &&
                  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, kTagBytes, out) == 1;
  if (!ok) throw std::runtime_error("AES-256-SIV sealing failed");
  return std::string(kind) + "_" + to_base64url(sealed);
}

std::optional<std::string> IdSeal::open(std::string_view kind, std::string_view id) const {
  if (id.size() <= kind.size() + 1 || !id.starts_with(kind) || id[kind.size()] != '_') return std::nullopt;
  auto sealed = from_base64url(id.substr(kind.size() + 1));
  if (!sealed || sealed->size() <= kTagBytes) return std::nullopt;
  CipherContext ctx(EVP_CIPHER_CTX_new());
  if (!ctx) throw std::runtime_error("out of memory opening an id");
  std::string plain(sealed->size() - kTagBytes, '\0');
  auto* in = reinterpret_cast<unsigned char*>(sealed->data());
  int n = 0;
  std::array<unsigned char, 16> tail{};  // SIV's final step writes nothing; OpenSSL still wants a buffer
  const bool ok = EVP_DecryptInit_ex2(ctx.get(), aes_siv(), bytes(_key), nullptr, nullptr) == 1 &&
                  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, kTagBytes, in) == 1 &&
                  EVP_DecryptUpdate(ctx.get(), nullptr, &n, bytes(kind), length(kind)) == 1 &&
                  EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &n, in + kTagBytes,
                                    length(plain)) == 1 &&
                  EVP_DecryptFinal_ex(ctx.get(), tail.data(), &n) == 1;
  if (!ok) return std::nullopt;  // forged, damaged, another kind, or sealed under another secret
  return plain;
}

std::string IdSeal::response_id(std::string_view session, std::uint64_t version) const {
  return seal("resp", versioned(session, version));
}
std::optional<SessionAt> IdSeal::open_response(std::string_view id) const {
  return split_versioned(open("resp", id));
}

std::string IdSeal::conversation_id(std::string_view session) const { return seal("conv", session); }
std::optional<std::string> IdSeal::open_conversation(std::string_view id) const {
  auto session = open("conv", id);
  if (session && session->empty()) return std::nullopt;
  return session;
}

std::string IdSeal::item_id(std::string_view session, std::uint64_t version, std::uint32_t part) const {
  std::string plain;
  for (int shift = 24; shift >= 0; shift -= 8) plain.push_back(static_cast<char>((part >> shift) & 0xff));
  plain += versioned(session, version);
  return seal("msg", plain);
}
std::optional<SessionAt> IdSeal::open_item(std::string_view id) const {
  auto plain = open("msg", id);
  if (!plain || plain->size() <= 4) return std::nullopt;
  std::uint32_t part = 0;
  for (std::size_t i = 0; i < 4; ++i) part = part << 8 | static_cast<std::uint8_t>((*plain)[i]);
  auto at = split_versioned(plain->substr(4));
  if (at) at->part = part;
  return at;
}

}  // namespace statefold::gateway::internal
