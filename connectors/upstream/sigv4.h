// AWS Signature Version 4 (the `aws-sigv4` auth style of the client) and the standard AWS credential sources.
// Debian 12 packages no SigV4 library for C++ (no aws-c-auth, no aws-sdk-cpp), so the signer is here: HMAC-SHA256
// through OpenSSL, checked against AWS's published test suite (tests/upstream/sigv4_test.cc) and, end to end,
// against botocore's signer (tests/support/fake_bedrock.py).
//
//   upstream::SigningRequest r{"POST", "/model/m/converse", headers, body};   // headers include host
//   auto credentials = upstream::aws_credentials(endpoint.aws_profile);      // env, then ~/.aws/credentials
//   auto signed_headers = upstream::sigv4_sign(r, *credentials, {"us-east-1", "bedrock"}, upstream::amz_date(now));
//   // x-amz-date, x-amz-content-sha256, x-amz-security-token (with a session token) and authorization
//
// Everything here but aws_credentials() is pure. Secrets: credentials are read at each call and never logged; the
// caller redacts the secret key and the session token from anything it reports.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/upstream/upstream.h"
#include "engine/base/result.h"

namespace statefold::upstream {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // "" for long-term keys
  std::string source;         // where they came from, for messages: "environment", "profile 'x' in FILE"
};

struct SigningScope {
  std::string_view region;   // "us-east-1"
  std::string_view service;  // "bedrock"
};

struct SigningRequest {
  std::string_view method;  // "POST"
  std::string_view target;  // the path as sent on the wire, with its query if any: "/model/a%3A1/converse"
  Headers headers;          // every header to sign, host included; names in any case, repeated names allowed
  std::string_view body;
};

// The pieces of one signature, so each can be checked against the test suite.
struct Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "content-type;host;x-amz-date"
  std::string signature;       // hex
  std::string authorization;   // the Authorization header value
};

// Signs `request` as it stands (its headers must already hold x-amz-date, and x-amz-security-token when the
// credentials have a session token). The canonical URI is the target's path URI-encoded once more, as every
// service but S3 wants (a model id "a:1" travels as "a%3A1" and is signed as "a%253A1"); the query's parameters are
// decoded, encoded again and sorted. Header values are trimmed and inner runs of spaces folded.
Signature sigv4_signature(const SigningRequest& request, const AwsCredentials& credentials, const SigningScope& scope,
                          std::string_view amz_date);

// The headers a signed request adds, in this order: x-amz-date, x-amz-content-sha256, x-amz-security-token (with a
// session token), authorization. They are signed along with `request.headers`.
Headers sigv4_sign(const SigningRequest& request, const AwsCredentials& credentials, const SigningScope& scope,
                   std::string_view amz_date);

// "20150830T123600Z": a time as x-amz-date writes it (UTC).
std::string amz_date(std::chrono::system_clock::time_point at);

// The profile `profile` of a shared credentials file's text (INI: [name], key = value, '#' and ';' comments):
// aws_access_key_id, aws_secret_access_key and aws_session_token. nullopt when the profile is absent; an error when
// it lacks a key. `file` only names the file in messages.
base::Result<std::optional<AwsCredentials>> parse_credentials_file(std::string_view text, std::string_view profile,
                                                                   std::string_view file);

// The standard credential sources, read now (the environment, then a file; nothing is cached):
//  - a profile named by the endpoint (`aws_profile`): that profile of the shared credentials file, and nothing else;
//  - otherwise AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN) when set;
//  - otherwise profile AWS_PROFILE (default "default") of the shared credentials file.
// The file is AWS_SHARED_CREDENTIALS_FILE, else $HOME/.aws/credentials. The error says what was looked for, never a
// secret.
base::Result<AwsCredentials> aws_credentials(std::string_view endpoint_profile);

}  // namespace statefold::upstream
