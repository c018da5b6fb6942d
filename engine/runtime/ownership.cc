#include "engine/runtime/ownership.h"

#include "engine/base/hex.h"
#include "engine/base/json_writer.h"
#include "engine/base/text.h"

namespace statefold::runtime {

http::Response refusal(const Ownership& owner, std::string_view message, std::string route) {
  const bool elsewhere = owner.state == Ownership::State::elsewhere;
  const int status = elsewhere ? 421 : 503;
  const std::string_view code = elsewhere                                ? "misdirected_request"
                                : owner.state == Ownership::State::moving ? "partition_moving"
                                                                          : "";
  // OpenAI's error shape (the session API and the gateway share /v1 with OpenAI's SDKs), the partition beside it.
  std::string body = R"({"error":{"message":)";
  base::json::str(body, base::valid_utf8(message));  // it echoes a session id as the client sent it
  body += R"(,"type":)";
  base::json::str(body, elsewhere ? "invalid_request_error" : "server_error");
  body += R"(,"param":null,"code":)";
  if (code.empty()) {
    body += "null";
  } else {
    base::json::str(body, code);
  }
  body += R"(},"partition":)";
  base::json::inum(body, owner.partition);
  body += '}';
  http::Response refused = http::json_response(status, std::move(body), std::move(route));
  if (!elsewhere) refused.headers.emplace_back("Retry-After", "1");
  // Nothing was done: a 503 is safe to retry once Retry-After has passed, while a 421 sent again to the same
  // address gets the same answer. Said outright, as the gateway says x-should-retry: false on its other errors.
  refused.headers.emplace_back("x-should-retry", elsewhere ? "false" : "true");
  refused.headers.emplace_back(kPartitionHeader, std::to_string(owner.partition));
  return refused;
}

std::optional<http::Response> refuse_unless_owned(const Ownership& owner, std::string_view session_id,
                                                  std::string route) {
  if (owner.state == Ownership::State::owned) return std::nullopt;
  return refusal(owner, not_here_message(owner, session_id), std::move(route));
}

std::string random_session_id(std::string_view prefix, std::size_t random_bytes,
                              const std::function<Ownership(std::string_view)>& ownership_of,
                              std::optional<std::int32_t> partition) {
  auto lands = [&](const std::string& id) {
    const Ownership owner = ownership_of(id);
    return partition ? owner.partition == *partition : owner.state != Ownership::State::elsewhere;
  };
  std::string id;
  for (int tries = partition ? 4096 : 64; tries > 0; --tries) {
    id.assign(prefix);
    id += base::random_hex(random_bytes);
    if (lands(id)) break;
  }
  return id;
}

}  // namespace statefold::runtime
