// The Client of upstream.h on Boost.Beast and OpenSSL. Beast, Asio and OpenSSL stay in this file.
//
// Shape: a call runs on its caller's thread. Each connection owns a small io_context that only that call runs, one
// operation at a time, so a blocking call still gets Beast's per-operation timeouts (tcp_stream::expires_after).
// Between calls, connections wait in a pool keyed by scheme://host:port (+ CA file), under one mutex; the I/O itself
// happens outside the lock.
//
// A pooled connection the server closed while it sat idle shows up as an error before the first response byte; the
// request then goes once more over another (eventually a fresh) connection, which does not count as a retry.
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "connectors/upstream/event_stream.h"
#include "connectors/upstream/retry.h"
#include "connectors/upstream/sigv4.h"
#include "connectors/upstream/upstream.h"
#include "engine/base/logging.h"
#include "engine/base/text.h"

namespace statefold::upstream {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;
using OnEvent = std::function<bool(const SseEvent&)>;

constexpr std::uint32_t kHeaderLimitBytes = 64 * 1024;
constexpr std::size_t kReadChunkBytes = 16 * 1024;

struct Connection {
  asio::io_context io{1};  // declared first: destroyed after the streams that use it
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  Clock::time_point idle_since;
  bool reused = false;

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

  // Runs the one pending operation to its end; the stream's expiry bounds it.
  void run() {
    io.restart();
    io.run();
  }

  template <typename F>
  void with_stream(F&& f) {
    if (tls) {
      f(*tls);
    } else {
      f(*plain);
    }
  }
};

// What one HTTP exchange gave.
struct Exchange {
  int status = 0;
  Headers headers;
  std::string body;
  std::string error;
  bool timed_out = false;          // the error is a timeout (connect, send or read)
  bool retryable_failure = false;  // failed before reaching the server (resolve, connect): worth another attempt
  bool stale = false;              // a reused connection failed before any response byte: try another connection
  bool reusable = false;           // the connection may go back to the pool
  bool stopped = false;            // the caller's callback asked to stop
  std::size_t events = 0;
};

bool valid_header(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok || u >= 0x7F) return false;
  }
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

std::string duration_text(Ms ms) { return std::to_string(ms.count()) + " ms"; }

Ms remaining(Clock::time_point deadline) {
  return std::max(Ms(0), std::chrono::duration_cast<Ms>(deadline - Clock::now()));
}

// A connection that sat in the pool: still open, nothing unexpected waiting (a close, a TLS alert).
bool looks_alive(Connection& c) {
  if (c.buffer.size() != 0) return false;
  char byte = 0;
  const ssize_t n = ::recv(c.lowest().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

std::string read_error_text(const beast::error_code& ec, int read_ms) {
  if (ec == beast::error::timeout) return "no data for " + duration_text(Ms(read_ms)) + " (read timeout)";
  if (ec == bhttp::error::partial_message || ec == ssl::error::stream_truncated) {
    return "the connection closed in the middle of the response";
  }
  if (ec == asio::error::eof || ec == bhttp::error::end_of_stream) return "the server closed the connection";
  return ec.message();
}

struct Connected {
  std::unique_ptr<Connection> connection;
  std::string error;
  bool retryable = false;
  bool timed_out = false;
};

// Signs `message` as it will go out (AWS SigV4): every header but those a proxy may change or the framing sets,
// over the body as it stands. A previous attempt's signature is replaced.
void sign_aws(bhttp::request<bhttp::string_body>& message, const AwsCredentials& credentials,
              const Endpoint& endpoint) {
  for (std::string_view name : {"authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}) {
    message.erase(name);
  }
  SigningRequest request;
  request.method = message.method_string();
  request.target = message.target();
  request.body = message.body();
  for (const auto& field : message) {
    const std::string name = base::ascii_lower(field.name_string());
    if (name == "user-agent" || name == "content-length" || name == "transfer-encoding" || name == "connection" ||
        name == "expect") {
      continue;
    }
    request.headers.emplace_back(name, std::string(field.value()));
  }
  const SigningScope scope{endpoint.region, endpoint.aws_service};
  for (auto& [name, value] : sigv4_sign(request, credentials, scope, amz_date(std::chrono::system_clock::now()))) {
    message.set(name, value);
  }
}

}  // namespace

struct Client::Impl {
  explicit Impl(ClientOptions o) : options(std::move(o)) {}

  Response run(const Endpoint& endpoint, const Request& request, const OnEvent* on_event);

  base::Result<ssl::context*> context(const std::string& ca_file);
  Connected connect(const BaseUrl& url, const Endpoint& endpoint);
  Exchange attempt(const std::string& pool_key, const BaseUrl& url, const Endpoint& endpoint,
                   bhttp::request<bhttp::string_body>& message, const OnEvent* on_event);
  Exchange exchange(Connection& c, bhttp::request<bhttp::string_body>& message, const Endpoint& endpoint,
                    const OnEvent* on_event);
  std::unique_ptr<Connection> take(const std::string& key);
  void give_back(const std::string& key, std::unique_ptr<Connection> c);
  double unit_random();

  const ClientOptions options;
  mutable std::mutex mutex;
  std::map<std::string, std::unique_ptr<ssl::context>> contexts;  // before `idle`: outlives the pooled streams
  std::map<std::string, std::vector<std::unique_ptr<Connection>>> idle;
  ClientStats stats;
  std::mt19937_64 rng{std::random_device{}()};
};

base::Result<ssl::context*> Client::Impl::context(const std::string& ca_file) {
  std::lock_guard lock(mutex);
  auto& slot = contexts[ca_file];
  if (slot) return slot.get();
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  beast::error_code ec;
  if (ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
  } else {
    ctx->load_verify_file(ca_file, ec);
  }
  if (ec) {
    contexts.erase(ca_file);
    return base::make_error(ca_file.empty() ? "cannot load the system CA certificates: " + ec.message()
                                            : "cannot load ca_file '" + ca_file + "': " + ec.message());
  }
  ctx->set_verify_mode(ssl::verify_peer);
  slot = std::move(ctx);
  return slot.get();
}

Connected Client::Impl::connect(const BaseUrl& url, const Endpoint& endpoint) {
  Connected out;
  const Ms budget(std::max(endpoint.connect_ms, 1));
  const auto deadline = Clock::now() + budget;
  auto c = std::make_unique<Connection>();
  const auto timed_out = [&](std::string_view what) {
    out.error = std::string(what) + ": timed out after " + duration_text(budget) + " (connect timeout)";
    out.retryable = true;
    out.timed_out = true;
    return std::move(out);
  };

  // Resolve, bounded by the connect budget (the resolver works on a thread of its own; cancel abandons it).
  tcp::resolver resolver(c->io);
  tcp::resolver::results_type results;
  beast::error_code ec;
  bool done = false;
  resolver.async_resolve(url.host, std::to_string(url.port),
                         [&](const beast::error_code& e, tcp::resolver::results_type r) {
                           ec = e;
                           results = std::move(r);
                           done = true;
                         });
  c->io.restart();
  c->io.run_for(remaining(deadline));
  if (!done) {
    resolver.cancel();
    c->run();
    return timed_out("resolving " + url.host);
  }
  if (ec) {
    out.error = "resolving " + url.host + ": " + ec.message();
    out.retryable = true;
    return out;
  }

  if (url.tls) {
    auto ctx = context(endpoint.ca_file);
    if (!ctx) {
      out.error = ctx.error().message;
      return out;
    }
    c->tls.emplace(c->io, **ctx);
  } else {
    c->plain.emplace(c->io);
  }
  c->lowest().expires_after(remaining(deadline));
  c->lowest().async_connect(results, [&](const beast::error_code& e, const tcp::endpoint&) { ec = e; });
  c->run();
  if (ec == beast::error::timeout) return timed_out("connecting");
  if (ec) {
    out.error = "connecting: " + ec.message();
    out.retryable = true;
    return out;
  }
  beast::error_code ignored;
  c->lowest().socket().set_option(tcp::no_delay(true), ignored);

  if (url.tls) {
    SSL* handle = c->tls->native_handle();
    beast::error_code not_ip;
    asio::ip::make_address(url.host, not_ip);
    if (not_ip) {
      // SNI, and the name the certificate must carry.
      SSL_ctrl(handle, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(url.host.c_str()));
      SSL_set1_host(handle, url.host.c_str());
    } else {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(handle), url.host.c_str());
    }
    c->lowest().expires_after(remaining(deadline));
    c->tls->async_handshake(ssl::stream_base::client, [&](const beast::error_code& e) { ec = e; });
    c->run();
    if (ec == beast::error::timeout) return timed_out("TLS handshake");
    if (ec) {
      const long verify = SSL_get_verify_result(handle);
      out.error = "TLS handshake: " + ec.message();
      if (verify != X509_V_OK) {
        out.error += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
      } else {
        out.retryable = true;  // not a certificate problem: maybe a transient one
      }
      return out;
    }
  }
  out.connection = std::move(c);
  return out;
}

Exchange Client::Impl::exchange(Connection& c, bhttp::request<bhttp::string_body>& message, const Endpoint& endpoint,
                                const OnEvent* on_event) {
  Exchange x;
  const Ms read_timeout(std::max(endpoint.read_ms, 1));
  beast::error_code ec;

  c.lowest().expires_after(read_timeout);
  c.with_stream([&](auto& stream) {
    bhttp::async_write(stream, message, [&](const beast::error_code& e, std::size_t) { ec = e; });
  });
  c.run();
  if (ec) {
    x.stale = c.reused && ec != beast::error::timeout;
    x.error = "sending the request: " + (ec == beast::error::timeout ? "timed out" : ec.message());
    x.timed_out = ec == beast::error::timeout;
    return x;
  }

  bhttp::response_parser<bhttp::buffer_body> parser;
  parser.header_limit(kHeaderLimitBytes);
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  c.lowest().expires_after(read_timeout);
  c.with_stream([&](auto& stream) {
    bhttp::async_read_header(stream, c.buffer, parser, [&](const beast::error_code& e, std::size_t) { ec = e; });
  });
  c.run();
  if (ec) {
    x.stale = c.reused && !parser.got_some() && ec != beast::error::timeout;
    x.error = ec == beast::error::timeout ? "no response within " + duration_text(read_timeout) + " (read timeout)"
                                          : "reading the response: " + read_error_text(ec, endpoint.read_ms);
    x.timed_out = ec == beast::error::timeout;
    return x;
  }
  const auto& head = parser.get();
  x.status = static_cast<int>(head.result_int());
  for (const auto& field : head) {
    x.headers.emplace_back(base::ascii_lower(field.name_string()), std::string(field.value()));
  }
  const auto content_type = base::ascii_lower(head[bhttp::field::content_type]);
  const bool success = on_event != nullptr && x.status >= 200 && x.status < 300;
  const bool sse = success && content_type.starts_with("text/event-stream");
  const bool aws_events = success && content_type.starts_with("application/vnd.amazon.eventstream");
  const bool streamed = sse || aws_events;

  SseParser events;
  EventStreamDecoder messages;
  const OnEvent deliver = [&](const SseEvent& event) {
    ++x.events;
    if ((*on_event)(event)) return true;
    x.stopped = true;
    return false;
  };
  const EventStreamDecoder::OnMessage deliver_message = [&](const EventStreamMessage& m) {
    return deliver(as_event(m));
  };
  std::array<char, kReadChunkBytes> chunk;
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    c.lowest().expires_after(read_timeout);
    c.with_stream([&](auto& stream) {
      bhttp::async_read_some(stream, c.buffer, parser, [&](const beast::error_code& e, std::size_t) { ec = e; });
    });
    c.run();
    if (ec == bhttp::error::need_buffer) ec = {};
    const std::size_t got = chunk.size() - parser.get().body().size;
    if (got > 0) {
      const std::string_view bytes(chunk.data(), got);
      if (sse) {
        if (!events.feed(bytes, deliver)) {
          if (events.overflowed()) {
            x.error = "an event-stream line is longer than " + std::to_string(SseParser::kMaxLineBytes) + " bytes";
          }
          return x;  // stopped or broken: the connection is not reused
        }
      } else if (aws_events) {
        auto going_on = messages.feed(bytes, deliver_message);
        if (!going_on) {
          x.error = going_on.error().message + ", after " + std::to_string(x.events) + " events";
          return x;
        }
        if (!*going_on) return x;  // stopped: the connection is not reused
      } else {
        if (x.body.size() + got > options.max_body_bytes) {
          x.error = "the response body is larger than " + std::to_string(options.max_body_bytes) + " bytes";
          return x;
        }
        x.body.append(bytes);
      }
    }
    if (ec) {
      x.error = "reading the response body: " + read_error_text(ec, endpoint.read_ms);
      x.timed_out = ec == beast::error::timeout;
      if (streamed) x.error += " after " + std::to_string(x.events) + " events";
      return x;
    }
  }
  if ((sse && !events.clean_end()) || (aws_events && !messages.clean_end())) {
    x.error = "the event stream ended inside an event, after " + std::to_string(x.events) + " events";
    return x;
  }
  x.reusable = parser.keep_alive();
  return x;
}

std::unique_ptr<Connection> Client::Impl::take(const std::string& key) {
  std::lock_guard lock(mutex);
  const auto it = idle.find(key);
  if (it == idle.end()) return nullptr;
  auto& list = it->second;
  while (!list.empty()) {
    std::unique_ptr<Connection> c = std::move(list.back());
    list.pop_back();
    if (Clock::now() - c->idle_since < Ms(options.idle_timeout_ms) && looks_alive(*c)) {
      c->reused = true;
      ++stats.connections_reused;
      return c;
    }
  }
  return nullptr;
}

void Client::Impl::give_back(const std::string& key, std::unique_ptr<Connection> c) {
  c->idle_since = Clock::now();
  c->lowest().expires_never();
  std::lock_guard lock(mutex);
  auto& list = idle[key];
  if (list.size() < options.max_idle_per_host) list.push_back(std::move(c));
}

double Client::Impl::unit_random() {
  std::lock_guard lock(mutex);
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

Exchange Client::Impl::attempt(const std::string& pool_key, const BaseUrl& url, const Endpoint& endpoint,
                               bhttp::request<bhttp::string_body>& message, const OnEvent* on_event) {
  for (;;) {
    std::unique_ptr<Connection> c = take(pool_key);
    if (!c) {
      Connected made = connect(url, endpoint);
      if (!made.connection) {
        Exchange x;
        x.error = std::move(made.error);
        x.retryable_failure = made.retryable;
        x.timed_out = made.timed_out;
        return x;
      }
      c = std::move(made.connection);
      std::lock_guard lock(mutex);
      ++stats.connections_opened;
    }
    Exchange x = exchange(*c, message, endpoint, on_event);
    if (x.stale) {
      base::log(base::LogLevel::debug, "upstream: a pooled connection was closed by the server; using another",
                {{"endpoint", endpoint.name}});
      continue;  // the pool drains, then a fresh connection is never stale
    }
    if (x.reusable) give_back(pool_key, std::move(c));
    return x;
  }
}

Response Client::Impl::run(const Endpoint& endpoint, const Request& request, const OnEvent* on_event) {
  const auto start = Clock::now();
  Response out;
  std::string key;
  std::optional<AwsCredentials> aws;
  // Every secret of this call: the API key, or the AWS secret key and session token.
  const auto scrub = [&](std::string text) {
    text = redact(std::move(text), key);
    if (aws) {
      text = redact(std::move(text), aws->secret_access_key);
      text = redact(std::move(text), aws->session_token);
    }
    return text;
  };
  const auto finish = [&]() -> Response {
    out.latency_ms = std::chrono::duration_cast<Ms>(Clock::now() - start).count();
    // An upstream may quote the key it was sent (a 401 body echoing the Authorization header): nothing that
    // leaves the client carries it, so it cannot reach a receipt, a log or an answer.
    out.error = scrub(std::move(out.error));
    out.body = scrub(std::move(out.body));
    for (auto& [name, value] : out.headers) value = scrub(std::move(value));
    return std::move(out);
  };
  const std::string who = "upstream '" + endpoint.name + "'";
  if (endpoint.provider == "echo") {
    out.error = who + " is the offline echo provider: there is nothing to call";
    return finish();
  }
  auto url = parse_base_url(endpoint.base_url);
  if (!url) {
    out.error = who + ": " + url.error().message;
    return finish();
  }
  const Auth auth = effective_auth(endpoint);
  if (auth == Auth::aws_sigv4) {
    auto credentials = aws_credentials(endpoint.aws_profile);
    if (!credentials) {
      out.error = who + ": " + credentials.error().message;
      return finish();
    }
    aws = std::move(*credentials);
    if (!valid_header("x", aws->access_key_id) || !valid_header("x", aws->session_token)) {
      out.error = who + ": the AWS credentials from " + aws->source + " hold a line break or NUL";
      return finish();
    }
  } else if (auth != Auth::none && !endpoint.api_key_env.empty()) {
    const char* value = std::getenv(endpoint.api_key_env.c_str());
    if (value == nullptr || *value == '\0') {
      out.error = who + ": the environment variable " + endpoint.api_key_env + " (its API key) is not set";
      return finish();
    }
    key = value;
  }

  // The request, built once for every attempt.
  bhttp::request<bhttp::string_body> message;
  message.version(11);
  const bhttp::verb verb = bhttp::string_to_verb(request.method);
  if (verb == bhttp::verb::unknown) {
    if (request.method.empty() || !valid_header(request.method, "")) {
      out.error = who + ": bad method '" + request.method + "'";
      return finish();
    }
    message.method_string(request.method);
  } else {
    message.method(verb);
  }
  const std::string target = url->prefix + (request.path.empty() || request.path.front() != '/' ? "/" : "") +
                             request.path;
  if (!valid_header("x", target) || target.find(' ') != std::string::npos) {
    out.error = who + ": bad path '" + request.path + "'";
    return finish();
  }
  message.target(target);
  const bool default_port = url->port == (url->tls ? 443 : 80);
  const std::string host = url->host.find(':') != std::string::npos ? "[" + url->host + "]" : url->host;
  const std::string authority = host + (default_port ? "" : ":" + std::to_string(url->port));
  for (const Headers* headers : {&endpoint.headers, &request.headers}) {
    for (const auto& [name, value] : *headers) {
      if (!valid_header(name, value)) {
        out.error = who + ": bad header '" + (valid_header(name, "") ? name : "?") + "'";
        return finish();
      }
      if (base::iequals(name, "host") || base::iequals(name, "content-length") ||
          base::iequals(name, "transfer-encoding") || base::iequals(name, "connection")) {
        continue;  // framing is ours
      }
      message.set(name, value);
    }
  }
  message.set(bhttp::field::host, authority);
  if (message.find(bhttp::field::user_agent) == message.end()) {
    message.set(bhttp::field::user_agent, options.user_agent);
  }
  if (!request.body.empty() && message.find(bhttp::field::content_type) == message.end()) {
    message.set(bhttp::field::content_type, "application/json");
  }
  if ((request.stream || on_event != nullptr) && message.find(bhttp::field::accept) == message.end()) {
    // AWS services stream in their binary event-stream framing, never in SSE.
    message.set(bhttp::field::accept, auth == Auth::aws_sigv4 ? "application/vnd.amazon.eventstream"
                                                               : "text/event-stream");
  }
  if (!valid_header("x", key)) {
    out.error = who + ": the API key in " + endpoint.api_key_env + " holds a line break or NUL";
    return finish();
  }
  if (!key.empty()) {
    switch (auth) {
      case Auth::automatic:
      case Auth::bearer: message.set(bhttp::field::authorization, "Bearer " + key); break;
      case Auth::x_api_key:
        message.set("x-api-key", key);
        if (message.find("anthropic-version") == message.end()) {
          message.set("anthropic-version", endpoint.anthropic_version);
        }
        break;
      case Auth::api_key: message.set("api-key", key); break;
      case Auth::aws_sigv4:
      case Auth::none: break;
    }
  } else if (auth == Auth::x_api_key && message.find("anthropic-version") == message.end()) {
    message.set("anthropic-version", endpoint.anthropic_version);
  }
  message.keep_alive(true);
  message.body() = request.body;
  message.prepare_payload();

  // A streamed reply may quote a secret too: each event is scrubbed before the caller sees it. (A secret split
  // across two events is not caught; the buffered body is scrubbed whole.)
  OnEvent scrubbed;
  if (on_event != nullptr && (!key.empty() || aws)) {
    scrubbed = [&scrub, on_event](const SseEvent& event) {
      SseEvent clean = event;
      clean.data = scrub(std::move(clean.data));
      clean.event = scrub(std::move(clean.event));
      clean.id = scrub(std::move(clean.id));
      return (*on_event)(clean);
    };
    on_event = &scrubbed;
  }

  const std::string where = std::string(url->tls ? "https://" : "http://") + authority + target;
  const std::string pool_key = std::string(url->tls ? "https://" : "http://") + host + ":" +
                               std::to_string(url->port) + (url->tls ? " ca=" + endpoint.ca_file : "");
  for (int attempt = 1;; ++attempt) {
    out.attempts = attempt;
    if (aws) sign_aws(message, *aws, endpoint);  // again for each attempt: a signature is good for minutes only
    Exchange x = this->attempt(pool_key, *url, endpoint, message, on_event);
    out.status = x.status;
    out.headers = std::move(x.headers);
    out.body = std::move(x.body);
    out.events += x.events;
    out.error = std::move(x.error);
    out.timed_out = x.timed_out;
    base::log(base::LogLevel::debug, "upstream call",
              {{"endpoint", endpoint.name},
               {"target", std::string(message.method_string()) + " " + where},
               {"attempt", std::to_string(attempt)},
               {"status", std::to_string(out.status)},
               {"error", scrub(out.error)}});

    const bool retry = x.events == 0 && !x.stopped &&
                       (out.error.empty() ? retryable_status(out.status) : x.retryable_failure);
    if (!retry || attempt > endpoint.max_retries) break;
    std::optional<Ms> asked;
    if (out.error.empty()) {
      if (auto v = out.header("retry-after-ms")) asked = parse_retry_after_ms(*v);
      if (!asked) {
        if (auto v = out.header("retry-after")) asked = parse_retry_after(*v, std::chrono::system_clock::now());
      }
    }
    if (asked && *asked > Ms(endpoint.max_retry_after_ms)) {
      base::log_warn("upstream: Retry-After is longer than max_retry_after_ms; not retrying",
                     {{"endpoint", endpoint.name},
                      {"status", std::to_string(out.status)},
                      {"retry_after_ms", std::to_string(asked->count())}});
      break;
    }
    const Ms wait = asked ? *asked
                          : backoff_delay(attempt, Ms(endpoint.backoff_base_ms), Ms(endpoint.backoff_cap_ms),
                                          unit_random());
    if (out.error.empty()) {
      base::log_info("upstream: retrying", {{"endpoint", endpoint.name},
                                            {"attempt", std::to_string(attempt)},
                                            {"status", std::to_string(out.status)},
                                            {"wait_ms", std::to_string(wait.count())}});
    } else {
      base::log_info("upstream: retrying", {{"endpoint", endpoint.name},
                                            {"attempt", std::to_string(attempt)},
                                            {"error", scrub(out.error)},
                                            {"wait_ms", std::to_string(wait.count())}});
    }
    {
      std::lock_guard lock(mutex);
      ++stats.retries;
    }
    std::this_thread::sleep_for(wait);
  }
  if (!out.error.empty()) {
    out.error = who + " " + std::string(message.method_string()) + " " + where + ": " + out.error;
    if (out.attempts > 1) out.error += " (" + std::to_string(out.attempts) + " attempts)";
  }
  return finish();
}

Client::Client(ClientOptions options) : _impl(std::make_unique<Impl>(std::move(options))) {}

Client::~Client() = default;

Response Client::call(const Endpoint& endpoint, const Request& request) {
  return _impl->run(endpoint, request, nullptr);
}

Response Client::stream(const Endpoint& endpoint, const Request& request,
                        const std::function<bool(const SseEvent&)>& on_event) {
  if (!on_event) {
    Response out;
    out.error = "upstream '" + endpoint.name + "': stream() needs a callback";
    return out;
  }
  return _impl->run(endpoint, request, &on_event);
}

ClientStats Client::stats() const {
  std::lock_guard lock(_impl->mutex);
  return _impl->stats;
}

void Client::close_idle() {
  std::map<std::string, std::vector<std::unique_ptr<Connection>>> dropped;
  std::lock_guard lock(_impl->mutex);
  dropped.swap(_impl->idle);
}

}  // namespace statefold::upstream
