// Forwarding a request to the instance that folds its session: a Beast client, plain or TLS, on a thread of its own
// per request that drives its own io_context one step at a time (so timeouts hold), so the server's I/O threads never
// wait on another instance. Over TLS, the last session with each owner is resumed by the next forward to it.
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "engine/base/logging.h"
#include "engine/base/text.h"
#include "engine/http/http.h"

namespace statefold::http {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

std::atomic<std::size_t> g_in_flight{0};
std::atomic<std::size_t> g_resumed{0};
// Beyond this many forwards at once, a request is answered 503 rather than given one more thread.
constexpr std::size_t kMaxInFlight = 512;
constexpr std::chrono::seconds kConnectTimeout{3};
constexpr std::uint64_t kMaxBodyBytes = 1ull << 30;

// Headers that belong to one connection, not to the request or response (RFC 9110 section 7.6.1), and those the
// client library sets itself.
bool hop_by_hop(std::string_view lower_case_name) {
  static constexpr std::string_view kNames[] = {"connection", "keep-alive",        "proxy-authenticate",
                                                "proxy-authorization", "te",       "trailer",
                                                "transfer-encoding",   "upgrade",  "host",
                                                "content-length",      "date",     "server"};
  for (std::string_view name : kNames) {
    if (name == lower_case_name) return true;
  }
  return false;
}

Response failure(int status, std::string message) {
  Response r = error_response(status, message);
  if (status == 503) r.headers.emplace_back("Retry-After", "1");
  return r;
}

// Runs one step of a forward to its end: Beast's stream timeouts (expires_after) bound asynchronous operations only,
// so each step is started asynchronously and the forward's own io_context run until it completes or times out. A
// blocking call would wait for an owner that took the connection and went silent for as long as the socket lives.
template <class Start>
beast::error_code await(asio::io_context& io, Start start) {
  beast::error_code ec;
  start([&ec](const beast::error_code& e, auto&&...) { ec = e; });
  io.restart();
  io.run();
  return ec;
}

// Client TLS: one OpenSSL context (CA, own certificate) for every forward. OpenSSL makes connections from one context
// on several threads at once.
class LoadedClientTls final : public ClientTls {
 public:
  ~LoadedClientTls() override {
    for (auto& [where, session] : _sessions) SSL_SESSION_free(session);
  }
  // Offers the owner's last session, if any, for resumption; true if one was offered.
  bool offer_session(const std::string& where, SSL* handle) const {
    std::lock_guard lock(_mutex);
    auto it = _sessions.find(where);
    return it != _sessions.end() && SSL_set_session(handle, it->second) == 1;
  }
  // Keeps the session of a connection that verified the owner and carried an exchange to its end (so that TLS 1.3's
  // session tickets, sent after the handshake, have arrived).
  void keep_session(const std::string& where, SSL* handle) const {
    SSL_SESSION* session = SSL_get1_session(handle);
    if (session == nullptr) return;
    if (SSL_SESSION_is_resumable(session) != 1) {
      SSL_SESSION_free(session);
      return;
    }
    std::lock_guard lock(_mutex);
    SSL_SESSION*& kept = _sessions[where];
    if (kept != nullptr) SSL_SESSION_free(kept);
    kept = session;
  }
  void forget_session(const std::string& where) const {
    std::lock_guard lock(_mutex);
    auto it = _sessions.find(where);
    if (it == _sessions.end()) return;
    SSL_SESSION_free(it->second);
    _sessions.erase(it);
  }

  mutable asio::ssl::context context{asio::ssl::context::tls_client};

 private:
  mutable std::mutex _mutex;
  mutable std::map<std::string, SSL_SESSION*> _sessions;  // by "https://host:port"
};

// Sends the request on a connected (and, over TLS, handshaken) stream and relays the answer. `lowest` is the TCP layer
// under `stream`, which carries the timeouts. True once the owner's answer began (its head was read).
template <class Stream>
bool exchange(asio::io_context& io, Stream& stream, beast::tcp_stream& lowest, Request request, const std::string& where,
              const std::string& host_header, const std::vector<std::pair<std::string, std::string>>& extra_headers,
              std::chrono::milliseconds timeout, const Respond& respond) {
  beast::error_code ec;
  std::string target = request.raw_path;
  if (!request.raw_query.empty()) target += "?" + request.raw_query;
  bhttp::request<bhttp::string_body> out;
  out.method_string(request.method);
  out.target(target);
  out.version(11);
  for (const auto& [name, value] : request.headers) {
    if (!hop_by_hop(name)) out.insert(name, value);
  }
  for (const auto& [name, value] : extra_headers) out.set(name, value);
  out.set(bhttp::field::host, host_header);
  out.keep_alive(false);
  out.body() = std::move(request.body);
  out.prepare_payload();
  lowest.expires_after(timeout);
  ec = await(io, [&](auto done) { bhttp::async_write(stream, out, std::move(done)); });
  if (ec) {
    respond(failure(503, "the instance that folds this session (" + where + ") did not take the request: " +
                             ec.message() + "; retry shortly"));
    return false;
  }

  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::buffer_body> parser;
  parser.body_limit(kMaxBodyBytes);
  if (request.method == "HEAD") parser.skip(true);  // its Content-Length describes a body that never comes
  lowest.expires_after(timeout);  // the owner's turn may take that long before its first byte
  ec = await(io, [&](auto done) { bhttp::async_read_header(stream, buffer, parser, std::move(done)); });
  if (ec) {
    respond(failure(502, "the instance that folds this session (" + where + ") failed before answering: " +
                             ec.message() + "; whether the request took effect is unknown"));
    return false;
  }
  Response answer;
  answer.status = static_cast<int>(parser.get().result_int());
  answer.route = "(forwarded)";
  answer.content_type.clear();
  for (const auto& field : parser.get()) {
    const std::string name = base::ascii_lower(field.name_string());
    if (name == "content-type") {
      answer.content_type = std::string(field.value());
    } else if (!hop_by_hop(name)) {
      answer.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
  }
  const bool streaming = answer.content_type.starts_with("text/event-stream");
  if (streaming) {
    answer.stream = BodyStream::make();
    respond(answer);
  }
  std::string body;
  char chunk[16 * 1024];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    lowest.expires_after(timeout);
    // Some, not all: an event stream's pieces are relayed as they come, not once 16 KiB have gathered.
    ec = await(io, [&](auto done) { bhttp::async_read_some(stream, buffer, parser, std::move(done)); });
    if (ec == bhttp::error::need_buffer) ec = {};
    const std::size_t got = sizeof chunk - parser.get().body().size;
    if (got > 0) {
      if (streaming) {
        if (!answer.stream->write(std::string(chunk, got))) break;  // the client went away
      } else {
        body.append(chunk, got);
      }
    }
    if (ec) {
      if (streaming) break;  // the stream ends short; the owner's receipt records what happened
      respond(failure(502, "the instance that folds this session (" + where + ") failed while answering: " +
                               ec.message() + "; whether the request took effect is unknown"));
      return true;
    }
  }
  if (streaming) {
    answer.stream->close();
  } else {
    answer.body = std::move(body);
    respond(std::move(answer));
  }
  return true;
}

void run(Request request, const ForwardTarget& to, const std::vector<std::pair<std::string, std::string>>& extra_headers,
         std::chrono::milliseconds timeout, const Respond& respond) {
  const std::string host_port = (to.host.find(':') != std::string::npos ? "[" + to.host + "]" : to.host) + ":" +
                                std::to_string(to.port);
  const std::string where = (to.tls ? "https://" : "http://") + host_port;
  const auto unreachable = [&](const std::string& why) {
    respond(failure(503, "the instance that folds this session (" + where + ") cannot be reached: " + why +
                             "; retry shortly (its partitions move to another instance)"));
  };
  asio::io_context io;
  // Connection and handshake share one deadline, a refused resumption's second connection included.
  const auto deadline = std::chrono::steady_clock::now() + std::min<std::chrono::milliseconds>(timeout, kConnectTimeout);
  const auto connect = [&](beast::tcp_stream& tcp) {
    beast::error_code ec;
    asio::ip::tcp::resolver resolver(io);
    auto endpoints = resolver.resolve(to.host, std::to_string(to.port), ec);
    if (ec) return ec;
    tcp.expires_at(deadline);
    return await(io, [&](auto done) { tcp.async_connect(endpoints, std::move(done)); });
  };
  beast::tcp_stream tcp(io);
  beast::error_code ec = connect(tcp);
  if (ec) return unreachable(ec.message());
  if (!to.tls) {
    exchange(io, tcp, tcp, std::move(request), where, host_port, extra_headers, timeout, respond);
    tcp.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    return;
  }
  const auto& client = static_cast<const LoadedClientTls&>(*to.tls);
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  tls.emplace(std::move(tcp), client.context);
  for (int attempt = 0;; ++attempt) {
    SSL* handle = tls->native_handle();
    beast::error_code not_ip;
    asio::ip::make_address(to.host, not_ip);
    if (not_ip) {
      // SNI, and the name the owner's certificate must carry.
      SSL_ctrl(handle, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(to.host.c_str()));
      SSL_set1_host(handle, to.host.c_str());
    } else {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(handle), to.host.c_str());
    }
    const bool offered = attempt == 0 && client.offer_session(where, handle);
    beast::get_lowest_layer(*tls).expires_at(deadline);
    ec = await(io, [&](auto done) { tls->async_handshake(asio::ssl::stream_base::client, std::move(done)); });
    if (!ec) break;
    const long verify = SSL_get_verify_result(handle);
    if (offered && verify == X509_V_OK) {
      // Refused as a resumption (an owner that cannot resume, e.g. one of an older release that requires client
      // certificates): once more, in full, on a new connection.
      client.forget_session(where);
      beast::tcp_stream again(io);
      if (ec = connect(again); ec) return unreachable(ec.message());
      tls.emplace(std::move(again), client.context);
      continue;
    }
    std::string why = "TLS handshake: " + ec.message();
    if (verify != X509_V_OK) why += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
    return unreachable(why);
  }
  SSL* handle = tls->native_handle();
  if (SSL_session_reused(handle) == 1) g_resumed.fetch_add(1, std::memory_order_relaxed);
  beast::tcp_stream& lowest = beast::get_lowest_layer(*tls);
  // The owner answered over this session: the next forward to it may resume it.
  if (exchange(io, *tls, lowest, std::move(request), where, host_port, extra_headers, timeout, respond)) {
    client.keep_session(where, handle);
  }
  lowest.expires_after(std::chrono::seconds(1));
  await(io, [&](auto done) { tls->async_shutdown(std::move(done)); });  // close_notify; an owner that just closes is fine too
}

}  // namespace

void forward(Request request, ForwardTarget target, std::vector<std::pair<std::string, std::string>> extra_headers,
             std::chrono::milliseconds timeout, Respond respond) {
  if (g_in_flight.fetch_add(1) >= kMaxInFlight) {
    g_in_flight.fetch_sub(1);
    return respond(failure(503, "too many requests are being forwarded to other instances; retry shortly"));
  }
  std::thread([request = std::move(request), target = std::move(target), extra_headers = std::move(extra_headers),
               timeout, respond = std::move(respond)]() mutable {
    try {
      run(std::move(request), target, extra_headers, timeout, respond);
    } catch (const std::exception& e) {  // e.g. a method Beast refuses to send
      respond(failure(502, std::string("forwarding failed: ") + e.what()));
    }
    g_in_flight.fetch_sub(1);
  }).detach();
}

base::Result<std::shared_ptr<const ClientTls>> ClientTls::load(const ClientTlsOptions& options) {
  auto loaded = std::make_shared<LoadedClientTls>();
  asio::ssl::context& context = loaded->context;
  SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
  beast::error_code ec;
  if (options.ca_file.empty()) {
    context.set_default_verify_paths(ec);
    if (ec) return base::make_error("cannot load the system's trusted CA certificates: " + ec.message());
  } else if (context.load_verify_file(options.ca_file, ec); ec) {
    return base::make_error("peer CA file " + options.ca_file + ": " + ec.message() + " (expected PEM certificates)");
  }
  if (!options.cert_file.empty()) {
    if (context.use_certificate_chain_file(options.cert_file, ec); ec) {
      return base::make_error("certificate file " + options.cert_file + ": " + ec.message());
    }
    if (context.use_private_key_file(options.key_file, asio::ssl::context::pem, ec); ec) {
      return base::make_error("key file " + options.key_file + ": " + ec.message());
    }
    if (SSL_CTX_check_private_key(context.native_handle()) != 1) {
      return base::make_error("key file " + options.key_file + " does not match certificate " + options.cert_file);
    }
  }
  context.set_verify_mode(asio::ssl::verify_peer);
  return std::shared_ptr<const ClientTls>(std::move(loaded));
}

std::size_t forwards_in_flight() { return g_in_flight.load(); }
std::size_t forwards_resumed() { return g_resumed.load(); }

}  // namespace statefold::http
