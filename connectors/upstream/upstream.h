// upstream: the HTTP/1.1 (+TLS) client statefold uses to call model endpoints (OpenAI, Azure OpenAI, Anthropic, AWS
// Bedrock, vLLM). Keep-alive pool per host, connect and read timeouts, retries with jittered backoff on connect
// failures, 429 and 5xx honouring Retry-After, and streamed replies delivered as they arrive: Server-Sent Events, or
// AWS event-stream messages (event_stream.h) in the same shape. Beast, Asio and OpenSSL stay in client.cc.
//
//   upstream::Client client;
//   const upstream::Endpoint* openai = router.route(session_id, "gpt-4o").value();   // routing.h
//   upstream::Request request;
//   request.path = "/v1/chat/completions";
//   request.body = body;
//   upstream::Response reply = client.call(*openai, request);
//   if (!reply.ok()) ...;    // reply.error (transport) or reply.status / reply.body (the provider's error)
//   client.stream(*openai, request,
//                 [&](const upstream::SseEvent& event) { if (!event.done()) forward(event.data); return true; });
//
// Thread-safety: a Client is safe to use from any number of threads at once; each call runs on its caller's thread
// over a connection it alone holds for the call. Endpoint, Request and Response are plain values.
//
// Secrets: the API key is read from the environment variable the endpoint names, at each call, and goes only into the
// auth header; AWS credentials are read at each call from the standard sources (sigv4.h) and only sign the request.
// They are never logged and never part of an error (errors are also scrubbed of them, in case a server echoes one
// back in a place we quote).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "connectors/upstream/sse.h"
#include "engine/base/result.h"

namespace statefold::upstream {

using Headers = std::vector<std::pair<std::string, std::string>>;

// How the key goes on the wire. `automatic`: `x_api_key` (plus `anthropic-version`) for provider "anthropic",
// `aws_sigv4` for "bedrock_converse", `bearer` for every other provider.
enum class Auth {
  automatic,
  bearer,     // Authorization: Bearer KEY  (OpenAI, vLLM, most compatibles)
  x_api_key,  // x-api-key: KEY, anthropic-version: ...  (Anthropic)
  api_key,    // api-key: KEY  (Azure OpenAI)
  none,       // no auth header, even if api_key_env is set
  aws_sigv4,  // AWS Signature Version 4 with the standard AWS credentials (Bedrock); api_key_env is not used
};

struct Endpoint {
  std::string name;           // what routes and receipts call it
  std::string provider;       // a context::provider_name(): openai_chat, anthropic, bedrock_converse, echo...
  std::string base_url;       // http:// or https://host[:port][/prefix]; the request path is appended to the prefix
  std::string api_key_env;    // name of the environment variable holding the key; "" = no key
  Auth auth = Auth::automatic;
  std::string anthropic_version = "2023-06-01";  // sent with Auth::x_api_key
  std::string region;         // Auth::aws_sigv4: the AWS region signed for ("us-east-1")
  std::string aws_profile;    // Auth::aws_sigv4: this profile of the shared credentials file, not the environment
  std::string aws_service = "bedrock";  // Auth::aws_sigv4: the service signed for
  Headers headers;            // extra headers on every call (e.g. OpenAI-Organization); no secrets here
  std::string model;          // the model this endpoint uses unless a request names another
  std::vector<std::string> models;  // further model names routing may resolve to this endpoint
  int max_output_tokens =
      0;  // the most a reply may be (the model's limit): a client's larger cap is lowered to it; 0: none
  std::string ca_file;        // PEM bundle to trust instead of the system CAs (private CA, tests); https only
  int connect_ms = 5000;      // TCP connect + TLS handshake (a DNS lookup also ends at the system resolver's timeout)
  int read_ms = 60000;        // waiting for the response head, then for each further piece of the body
  int max_retries = 2;        // retries after the first attempt
  int backoff_base_ms = 250;  // retry n waits a random time in [d/2, d], d = min(cap, base * 2^(n-1))
  int backoff_cap_ms = 8000;
  int max_retry_after_ms = 60000;  // a Retry-After longer than this is not waited for: the response is returned
};

struct Request {
  std::string method = "POST";
  std::string path;       // "/v1/chat/completions", may carry a query; appended to the base URL's prefix
  Headers headers;        // extra headers; Host, Content-Length and the auth header are the client's
  std::string body;       // JSON unless a content-type header says otherwise
  bool stream = false;    // asks for text/event-stream (Accept header); `stream()` sets it by itself
};

struct Response {
  int status = 0;                // 0: no HTTP response (see `error`)
  Headers headers;               // names lower-cased (retry-after, x-request-id, request-id, openai-processing-ms...)
  std::string body;              // the whole body; for a successful `stream()`, empty (the events went to the callback)
  int attempts = 0;              // HTTP exchanges tried, including the last
  std::int64_t latency_ms = 0;   // the whole call, retries and waits included
  std::size_t events = 0;        // events (SSE events or event-stream messages) delivered to the callback
  std::string error;             // transport failure in words ("" when an HTTP response arrived whole)
  bool timed_out = false;        // that failure was a timeout (connect, send or read): 504 rather than 502

  std::optional<std::string_view> header(std::string_view lower_case_name) const;
  bool ok() const { return error.empty() && status >= 200 && status < 300; }
};

struct ClientOptions {
  std::size_t max_idle_per_host = 8;     // idle keep-alive connections kept per scheme://host:port
  int idle_timeout_ms = 30000;           // an idle connection older than this is closed instead of reused
  std::size_t max_body_bytes = 64 << 20; // a larger non-streamed body is an error
  std::string user_agent = "statefold";
};

struct ClientStats {
  std::uint64_t connections_opened = 0;
  std::uint64_t connections_reused = 0;
  std::uint64_t retries = 0;
};

class Client {
 public:
  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // One HTTP exchange, retried on connect failures, 429, 500, 502, 503 and 504 (never on other 4xx, nor on a read
  // timeout or a connection lost after the request was sent). The last response (or failure) is returned. A pooled
  // connection that turns out closed before any response byte is replaced without counting as an attempt.
  Response call(const Endpoint& endpoint, const Request& request);

  // As `call`, but a 2xx text/event-stream body is parsed as it arrives and each event handed to `on_event` (return
  // false to stop reading; the connection is then closed); so is a 2xx application/vnd.amazon.eventstream body, each
  // message as upstream::as_event() makes it. Other bodies (errors, a JSON reply) land in `body`. Once an event was
  // delivered nothing is retried; a stream that breaks off, ends inside an event, or holds a malformed frame (a bad
  // CRC) sets `error`.
  Response stream(const Endpoint& endpoint, const Request& request,
                  const std::function<bool(const SseEvent&)>& on_event);

  ClientStats stats() const;
  void close_idle();  // drops every pooled connection

 private:
  struct Impl;
  std::unique_ptr<Impl> _impl;
};

// The parts of a base URL.
struct BaseUrl {
  bool tls = false;
  std::string host;      // without brackets for IPv6
  std::uint16_t port = 0;
  std::string prefix;    // "" or "/v1" (no trailing slash)
};
// http(s)://host[:port][/prefix]; no user info, query or fragment.
base::Result<BaseUrl> parse_base_url(std::string_view url);

// The auth style an endpoint uses once `automatic` is resolved.
Auth effective_auth(const Endpoint& endpoint);
// The base URL an endpoint without one gets: https://bedrock-runtime.{region}.amazonaws.com for a bedrock_converse
// endpoint with a region; "" otherwise (a base URL is then required).
std::string default_base_url(const Endpoint& endpoint);

// `text` with every occurrence of `secret` (if at least 4 characters) replaced by "[redacted]".
std::string redact(std::string text, std::string_view secret);

}  // namespace statefold::upstream
