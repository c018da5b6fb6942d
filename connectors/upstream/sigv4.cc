// AWS Signature Version 4 and the credential sources of sigv4.h. OpenSSL's HMAC stays in this file.
#include "connectors/upstream/sigv4.h"

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "engine/base/hex.h"
#include "engine/base/sha256.h"

namespace statefold::upstream {

namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

std::string hmac(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &size);
  return std::string(reinterpret_cast<const char*>(out), size);
}

std::string sha256_hex(std::string_view text) { return base::to_hex(base::sha256(text)); }

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == '~';
}

// RFC 3986 percent-encoding of everything but the unreserved characters (and '/' when `keep_slash`), upper-case hex.
std::string uri_encode(std::string_view text, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() * 3);
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (unreserved(c) || (keep_slash && c == '/')) {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string uri_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      const int hi = hex_value(text[i + 1]);
      const int lo = hex_value(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

// The query's parameters, each decoded then encoded again, sorted by name and then value.
std::string canonical_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (param.empty()) continue;
    const std::size_t eq = param.find('=');
    const std::string_view name = param.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? std::string_view() : param.substr(eq + 1);
    params.emplace_back(uri_encode(uri_decode(name), false), uri_encode(uri_decode(value), false));
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out += '&';
    out += name;
    out += '=';
    out += value;
  }
  return out;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Trimmed, with every inner run of spaces and tabs folded to one space.
std::string canonical_value(std::string_view value) {
  std::string out;
  bool space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::string_view trim(std::string_view text) {
  const auto start = text.find_first_not_of(" \t\r");
  if (start == std::string_view::npos) return {};
  const auto end = text.find_last_not_of(" \t\r");
  return text.substr(start, end - start + 1);
}

std::optional<std::string> environment(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

}  // namespace

Signature sigv4_signature(const SigningRequest& request, const AwsCredentials& credentials, const SigningScope& scope,
                          std::string_view amz_date) {
  Signature out;
  const std::size_t question = request.target.find('?');
  std::string_view path = request.target.substr(0, question);
  const std::string_view query =
      question == std::string_view::npos ? std::string_view() : request.target.substr(question + 1);
  if (path.empty()) path = "/";

  // Names lower-cased and sorted; a repeated name's values joined by commas in the order they came.
  std::map<std::string, std::string> headers;
  for (const auto& [name, value] : request.headers) {
    auto [it, fresh] = headers.try_emplace(lower(name), canonical_value(value));
    if (!fresh) {
      it->second += ',';
      it->second += canonical_value(value);
    }
  }
  std::string canonical_headers;
  for (const auto& [name, value] : headers) {
    canonical_headers += name;
    canonical_headers += ':';
    canonical_headers += value;
    canonical_headers += '\n';
    if (!out.signed_headers.empty()) out.signed_headers += ';';
    out.signed_headers += name;
  }

  out.canonical_request = std::string(request.method);
  out.canonical_request += '\n';
  out.canonical_request += uri_encode(path, true);
  out.canonical_request += '\n';
  out.canonical_request += canonical_query(query);
  out.canonical_request += '\n';
  out.canonical_request += canonical_headers;
  out.canonical_request += '\n';
  out.canonical_request += out.signed_headers;
  out.canonical_request += '\n';
  out.canonical_request += sha256_hex(request.body);

  const std::string_view date = amz_date.substr(0, 8);
  std::string credential_scope(date);
  credential_scope += '/';
  credential_scope += scope.region;
  credential_scope += '/';
  credential_scope += scope.service;
  credential_scope += "/aws4_request";

  out.string_to_sign = std::string(kAlgorithm);
  out.string_to_sign += '\n';
  out.string_to_sign += amz_date;
  out.string_to_sign += '\n';
  out.string_to_sign += credential_scope;
  out.string_to_sign += '\n';
  out.string_to_sign += sha256_hex(out.canonical_request);

  std::string key = "AWS4" + credentials.secret_access_key;
  key = hmac(key, date);
  key = hmac(key, scope.region);
  key = hmac(key, scope.service);
  key = hmac(key, "aws4_request");
  out.signature = base::to_hex(hmac(key, out.string_to_sign));

  out.authorization = std::string(kAlgorithm);
  out.authorization += " Credential=";
  out.authorization += credentials.access_key_id;
  out.authorization += '/';
  out.authorization += credential_scope;
  out.authorization += ", SignedHeaders=";
  out.authorization += out.signed_headers;
  out.authorization += ", Signature=";
  out.authorization += out.signature;
  return out;
}

Headers sigv4_sign(const SigningRequest& request, const AwsCredentials& credentials, const SigningScope& scope,
                   std::string_view amz_date) {
  Headers added;
  added.emplace_back("x-amz-date", std::string(amz_date));
  added.emplace_back("x-amz-content-sha256", sha256_hex(request.body));
  if (!credentials.session_token.empty()) added.emplace_back("x-amz-security-token", credentials.session_token);
  SigningRequest full = request;
  full.headers.insert(full.headers.end(), added.begin(), added.end());
  added.emplace_back("authorization", sigv4_signature(full, credentials, scope, amz_date).authorization);
  return added;
}

std::string amz_date(std::chrono::system_clock::time_point at) {
  const std::time_t t = std::chrono::system_clock::to_time_t(at);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y%m%dT%H%M%SZ", &utc);
  return text;
}

base::Result<std::optional<AwsCredentials>> parse_credentials_file(std::string_view text, std::string_view profile,
                                                                   std::string_view file) {
  AwsCredentials out;
  bool in_profile = false;
  bool found = false;
  std::size_t line_number = 0;
  while (!text.empty()) {
    const std::size_t newline = text.find('\n');
    const std::string_view raw = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view() : text.substr(newline + 1);
    ++line_number;
    const std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      const std::size_t close = line.find(']');
      in_profile = close != std::string_view::npos && trim(line.substr(1, close - 1)) == profile;
      found = found || in_profile;
      continue;
    }
    if (!in_profile) continue;
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;  // not a key: the SDKs skip it too
    const std::string key = lower(trim(line.substr(0, eq)));
    const std::string_view value = trim(line.substr(eq + 1));
    if (key == "aws_access_key_id") {
      out.access_key_id = std::string(value);
    } else if (key == "aws_secret_access_key") {
      out.secret_access_key = std::string(value);
    } else if (key == "aws_session_token") {
      out.session_token = std::string(value);
    }
  }
  if (!found) return std::optional<AwsCredentials>();
  std::string where = "profile '";
  where += profile;
  where += "' in ";
  where += file;
  if (out.access_key_id.empty() || out.secret_access_key.empty()) {
    return base::make_error(where + " has no aws_access_key_id and aws_secret_access_key");
  }
  out.source = std::move(where);
  return std::optional<AwsCredentials>(std::move(out));
}

base::Result<AwsCredentials> aws_credentials(std::string_view endpoint_profile) {
  if (endpoint_profile.empty()) {
    auto key = environment("AWS_ACCESS_KEY_ID");
    auto secret = environment("AWS_SECRET_ACCESS_KEY");
    if (key && secret) {
      AwsCredentials out{std::move(*key), std::move(*secret), environment("AWS_SESSION_TOKEN").value_or(""),
                         "environment"};
      return out;
    }
    if (key || secret) {
      return base::make_error(std::string("AWS credentials: ") + (key ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID") +
                              " is not set, but " + (key ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY") + " is");
    }
  }
  const std::string profile =
      !endpoint_profile.empty() ? std::string(endpoint_profile) : environment("AWS_PROFILE").value_or("default");
  std::string file;
  if (auto named = environment("AWS_SHARED_CREDENTIALS_FILE")) {
    file = std::move(*named);
  } else if (auto home = environment("HOME")) {
    file = *home + "/.aws/credentials";
  }
  std::string none = "AWS credentials: ";
  if (endpoint_profile.empty()) none += "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, and ";
  if (file.empty())
    return base::make_error(none + "no credentials file (neither AWS_SHARED_CREDENTIALS_FILE nor HOME)");
  std::ifstream in(file, std::ios::binary);
  if (!in) return base::make_error(none + "there is no credentials file " + file);
  std::ostringstream text;
  text << in.rdbuf();
  auto parsed = parse_credentials_file(text.str(), profile, file);
  if (!parsed) return base::make_error("AWS credentials: " + parsed.error().message);
  if (!*parsed) return base::make_error(none + "there is no profile '" + profile + "' in " + file);
  return std::move(**parsed);
}

}  // namespace statefold::upstream
