// http: a small HTTP/1.1 server (Boost.Beast inside http.cc only) that hands each request to a Handler and writes
// the Response the handler gives back, possibly later and from another thread (an append answers once its events
// are folded). Keep-alive, body size limit (413), timeouts, graceful stop.
//
//   auto server = http::Server::start({.address = "127.0.0.1", .port = 8080},
//       [](http::Request request, http::Respond respond) { respond({.status = 200, .body = "ok"}); });
//
// Thread-safety: the handler runs on the server's I/O threads, concurrently, and must not block them. `respond` may be
// called from any thread, once (later calls are ignored), even after the connection or the server is gone (then it
// does nothing). `stop` must not be called from a handler or an observer.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/base/result.h"

namespace statefold::http {

struct Request {
  std::string method;                              // "GET", "POST", ...
  std::string path;                                // percent-decoded path, without the query
  // The path as sent (percent-encoded). Route on this, then decode the parts (decode_path_part): a session id
  // "y/context" sent as y%2Fcontext must not look like the route /v1/sessions/y/context.
  std::string raw_path;
  std::map<std::string, std::string> query;        // percent-decoded query parameters (last one wins)
  std::string raw_query;                           // the query as sent (after '?', still encoded), for forwarding
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::optional<std::string_view> header(std::string_view lower_case_name) const;
};

// A response body produced piece by piece while it is sent (Server-Sent Events). The handler makes one, puts it in
// the Response it gives to `respond`, and keeps writing to it from its own thread: the head goes out at once
// (Transfer-Encoding: chunked, Connection: close), each write() as it comes, close() ends the body.
// Thread-safety: write() and close() from any thread.
class BodyStream {
 public:
  static std::shared_ptr<BodyStream> make();
  virtual ~BodyStream() = default;
  // Queues a piece; false once the client is gone (the producer may stop) or after close().
  virtual bool write(std::string piece) = 0;
  // Ends the body after the pieces queued so far. Idempotent.
  virtual void close() = 0;
  // True once the client went away or the server stopped.
  virtual bool abandoned() const = 0;
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string route;  // the route template that answered ("/v1/sessions/{id}"), for metrics; empty = unmatched
  std::shared_ptr<BodyStream> stream;  // set: the body comes from here, `body` is ignored
};

using Respond = std::function<void(Response)>;
using Handler = std::function<void(Request, Respond)>;
// Told about every answered request once its response is written (for metrics and access logs), on an I/O thread,
// with the time from the request fully read to the response written. The Request has no body (it went to the handler).
// Answers the server gives by itself (400, 413, 431, 503) are reported too, with an empty route.
using Observer = std::function<void(const Request&, const Response&, std::chrono::nanoseconds latency)>;

// TLS on the listener: PEM files, read at start and again by Server::reload_tls().
struct TlsOptions {
  std::string cert_file;       // the certificate, then any intermediates
  std::string key_file;        // its private key (unencrypted)
  std::string client_ca_file;  // set: clients must present a certificate this CA signed (mutual TLS)
};

// Whether the files make a working TLS setup (readable, PEM, the key matching the certificate); the error names the
// file and what is wrong. Server::start checks the same; this lets a program check before it starts anything else.
base::Result<void> check_tls(const TlsOptions& tls);

struct ServerOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;                       // 0: any free port (see Server::port())
  int threads = 2;
  std::size_t max_body_bytes = 1 << 20;            // larger bodies get 413 without reaching the handler
  std::chrono::seconds read_timeout{30};           // from a request's first byte to its last; also per response write
  std::chrono::seconds idle_timeout{60};           // a keep-alive connection waiting for its next request
  std::chrono::seconds handler_timeout{30};        // a request not answered by then gets 503 and the connection closes
  // Open connections at most; one more is answered 503 (Retry-After) and closed, so clients cannot take the file
  // descriptors the store and Kafka need. 0: the soft RLIMIT_NOFILE less a reserve of 512, at least 16.
  std::size_t max_connections = 0;
  std::optional<TlsOptions> tls;  // set: HTTPS only (TLS 1.2 or later); plain HTTP otherwise
};

class Server {
 public:
  static base::Result<std::unique_ptr<Server>> start(const ServerOptions& options, Handler handler,
                                                      Observer observer = {});
  virtual ~Server() = default;
  virtual std::uint16_t port() const = 0;
  // Reads the TLS files again; new connections get the new certificate, open ones keep theirs. On an error
  // (a missing or mismatched file) the old certificate stays in use.
  virtual base::Result<void> reload_tls() = 0;
  // Stops accepting and closes idle connections, lets in-flight requests finish (up to `grace`), then closes the rest
  // and joins the I/O threads. Idempotent; the destructor calls it with the default grace.
  virtual void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000)) = 0;
};

// A blocking HTTP/1.1 client call, for tools that talk to a running serve (e.g. `snapshot create`).
struct ClientResponse {
  int status = 0;
  std::string body;
};
base::Result<ClientResponse> call(const std::string& host, std::uint16_t port, const std::string& method,
                                  const std::string& target, const std::string& body = {},
                                  std::chrono::milliseconds timeout = std::chrono::milliseconds(60000));

// The client side of TLS for forwarding to instances that serve HTTPS: the CA their certificates must chain to, and
// the certificate this instance presents when one asks for it (mutual TLS). Loaded once, shared by every forward.
// It keeps the last TLS session of each owner, so that the next forward to it resumes that session (no certificate
// exchange or signature) instead of a full handshake; a new ClientTls (SIGHUP) starts with none.
struct ClientTlsOptions {
  std::string ca_file;    // PEM; empty: the system's trusted CAs
  std::string cert_file;  // PEM certificate (then intermediates) to present; empty: none
  std::string key_file;   // its private key
};
class ClientTls {
 public:
  // The error names the file and what is wrong with it.
  static base::Result<std::shared_ptr<const ClientTls>> load(const ClientTlsOptions& options);
  virtual ~ClientTls() = default;
};

// Where a request is forwarded: an instance at http://host:port, or https:// when `tls` is set. Over TLS the owner's
// certificate must chain to `tls`'s CA and name `host` (a DNS name, or an IP address in its subjectAltName).
struct ForwardTarget {
  std::string host;
  std::uint16_t port = 0;
  std::shared_ptr<const ClientTls> tls;
};

// Forwards `request` to another instance (scale-out: the instance that folds the session), as it came: method, path
// and query as sent, its headers (but hop-by-hop ones and Host) plus `extra_headers`, its body. The owner's answer
// goes to `respond` whole, or piece by piece for an event stream (text/event-stream). Runs on a thread of its own and
// returns at once. When the owner cannot be reached (or its certificate is refused), the answer is 503 with
// Retry-After (nothing reached it: retrying is safe); when it fails after the request went out, 502 (the outcome is
// unknown). `timeout` bounds the connection and each wait for the owner's next bytes.
void forward(Request request, ForwardTarget target, std::vector<std::pair<std::string, std::string>> extra_headers,
             std::chrono::milliseconds timeout, Respond respond);
// Forwards in flight (for metrics and tests).
std::size_t forwards_in_flight();
// TLS forwards that resumed the owner's session instead of a full handshake, since the process started (for tests).
std::size_t forwards_resumed();

// Helpers for handlers.
Response json_response(int status, std::string body, std::string route = {});
Response error_response(int status, std::string_view message, std::string route = {});  // {"error": message}
// One request read from `bytes` by the server's own rules (its parser and limits, target decoding, header names): the
// Request a handler would get, or the status the server would answer itself (400, 413, 431) with the reason, or
// status 0 when the bytes end before the request does (a client gone mid-request: nobody to answer). A bytes-in
// door to the reading code, for the fuzzer and tests; the server reads from its connections.
struct ParsedRequest {
  std::optional<Request> request;
  int status = 0;
  std::string error;
  std::size_t consumed = 0;  // bytes of `bytes` the request took (a pipelined next request would follow)
};
ParsedRequest parse_request(std::string_view bytes, std::size_t max_body_bytes = 1 << 20);

// A part of Request::raw_path, percent-decoded; nullopt when its encoding is malformed or it holds NUL.
std::optional<std::string> decode_path_part(std::string_view part);

// The one mapping of error kinds to HTTP statuses (unknown and internal: 500).
int status_for(base::ErrorCode code);
// error_response with the status the error's code maps to.
Response error_response(const base::Error& error, std::string route = {});

}  // namespace statefold::http
