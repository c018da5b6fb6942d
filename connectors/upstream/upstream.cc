// The pure parts of upstream.h: base URLs, auth styles, redaction. The client itself is in client.cc.
#include "connectors/upstream/upstream.h"

#include <charconv>

#include "connectors/context/render.h"

namespace statefold::upstream {

std::optional<std::string_view> Response::header(std::string_view lower_case_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_case_name) return std::string_view(value);
  }
  return std::nullopt;
}

base::Result<BaseUrl> parse_base_url(std::string_view url) {
  const auto fail = [&](std::string_view why) {
    return base::make_error("base URL '" + std::string(url) + "': " + std::string(why));
  };
  BaseUrl out;
  std::string_view rest = url;
  if (rest.substr(0, 8) == "https://") {
    out.tls = true;
    out.port = 443;
    rest.remove_prefix(8);
  } else if (rest.substr(0, 7) == "http://") {
    out.port = 80;
    rest.remove_prefix(7);
  } else {
    return fail("must start with http:// or https://");
  }
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) return fail("user info is not allowed (keys go in api_key_env)");
  if (path.find_first_of("?#") != std::string_view::npos) return fail("no query or fragment allowed");
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return fail("unclosed '[' in the host");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail("junk after the IPv6 address");
      port = after.substr(1);
      if (port.empty()) return fail("empty port");
    }
  } else {
    const std::size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return fail("empty port");
    }
  }
  if (out.host.empty()) return fail("no host");
  for (char c : out.host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '.' || c == ':' || c == '_';
    if (!ok) return fail("bad character in the host");
  }
  if (!port.empty()) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      return fail("bad port '" + std::string(port) + "'");
    }
    out.port = static_cast<std::uint16_t>(value);
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  for (char c : path) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7F) {
      return fail("bad character in the path");
    }
  }
  out.prefix = std::string(path);
  return out;
}

Auth effective_auth(const Endpoint& endpoint) {
  if (endpoint.auth != Auth::automatic) return endpoint.auth;
  const auto provider = context::parse_provider(endpoint.provider);
  if (provider == context::Provider::anthropic) return Auth::x_api_key;
  if (provider == context::Provider::bedrock_converse) return Auth::aws_sigv4;
  return Auth::bearer;
}

std::string default_base_url(const Endpoint& endpoint) {
  if (endpoint.region.empty() || context::parse_provider(endpoint.provider) != context::Provider::bedrock_converse) {
    return {};
  }
  std::string url = "https://bedrock-runtime.";
  url += endpoint.region;
  url += ".amazonaws.com";
  return url;
}

std::string redact(std::string text, std::string_view secret) {
  if (secret.size() < 4) return text;
  static constexpr std::string_view kMark = "[redacted]";
  for (std::size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at + kMark.size())) {
    text.replace(at, secret.size(), kMark);
  }
  return text;
}

}  // namespace statefold::upstream
