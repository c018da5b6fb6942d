// The ids the gateway hands out for what lives inside a session: responses ("resp_..."), conversations
// ("conv_...") and conversation items ("msg_..."). Each seals the session id (and a version) with AES-256-SIV
// under the deployment's secret:
//   - opaque: a session id may name a user or a tenant, and ids travel into client logs and URLs;
//   - deterministic: the same response has the same id on every instance that shares the secret, and after a
//     restart or a rebuild of the store, so nothing maps ids to sessions (and nothing can lose that map);
//   - unforgeable: an id that was not sealed under the secret, or was sealed as another kind, does not open.
//
//   IdSeal seal(secret);
//   std::string id = seal.response_id("acme/chat-42", 7);        // "resp_q3V..."
//   auto at = seal.open_response(id);                            // {"acme/chat-42", 7}; nullopt for anything else
//
// Thread-safety: const methods from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace statefold::gateway::internal {

struct SessionAt {
  std::string session;
  std::uint64_t version = 0;
  std::uint32_t part = 0;  // items: 0 for a message's text (or a tool result), k for its k-th tool call
};

class IdSeal {
 public:
  // Secrets shorter than this are refused (the key is derived from it with HMAC-SHA-512).
  static constexpr std::size_t kMinSecretBytes = 16;
  // `secret` must have kMinSecretBytes or more; throws std::invalid_argument otherwise.
  explicit IdSeal(std::string_view secret);

  std::string response_id(std::string_view session, std::uint64_t version) const;
  std::optional<SessionAt> open_response(std::string_view id) const;

  std::string conversation_id(std::string_view session) const;
  std::optional<std::string> open_conversation(std::string_view id) const;

  // An item of a conversation: the session, the version of its message, and its part of that message.
  std::string item_id(std::string_view session, std::uint64_t version, std::uint32_t part = 0) const;
  std::optional<SessionAt> open_item(std::string_view id) const;

 private:
  std::string seal(std::string_view kind, std::string_view plain) const;
  std::optional<std::string> open(std::string_view kind, std::string_view id) const;
  std::string _key;  // 64 bytes: AES-256-SIV takes two 256-bit keys
};

}  // namespace statefold::gateway::internal
