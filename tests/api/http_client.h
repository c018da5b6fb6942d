// http_client: a blocking HTTP/1.1 client on Boost.Beast for the API tests and tools/bench/api_bench.cc. One keep-alive
// connection, one request at a time, every request bounded by a timeout (a server that stops answering fails the
// caller instead of hanging it). Beast stays in test and benchmark code: nothing of the engine includes this.
//
//   HttpClient client("127.0.0.1", port);
//   HttpReply r = client.post("/v1/sessions/chat-1/events", R"({"payload_type":"Message",...})",
//                             {{"Idempotency-Key", "order-17"}});
//   if (r.status == 200) { auto version = r.json().at("version").as_uint64(); }
//
// Thread-safety: none; one client per thread.
#pragma once

#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json.hpp>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace statefold::testing {

struct HttpReply {
  int status = 0;          // 0: no answer (see `error`)
  std::string error;       // why there is no answer: refused, reset, timed out...
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;

  bool answered() const { return status != 0; }
  // The body as JSON, parsed once and kept with the reply (references into it live as long as the reply); a JSON
  // null when it does not parse (the caller's assertions then fail with the body shown).
  const boost::json::value& json() const {
    if (!_json) {
      boost::json::error_code ec;
      boost::json::value v = boost::json::parse(body, ec);
      _json = ec ? boost::json::value() : std::move(v);
    }
    return *_json;
  }
  std::string describe() const {
    return answered() ? std::to_string(status) + " " + body : "no answer: " + error;
  }

 private:
  mutable std::optional<boost::json::value> _json;
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

class HttpClient {
 public:
  HttpClient(std::string host, std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(60))
      : _host(std::move(host)), _port(port), _timeout(timeout) {}
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;
  ~HttpClient() { close(); }

  std::uint16_t port() const { return _port; }

  HttpReply get(std::string_view target, const HttpHeaders& headers = {}) {
    return request("GET", target, {}, headers);
  }
  HttpReply post(std::string_view target, std::string_view body, const HttpHeaders& headers = {}) {
    return request("POST", target, body, headers);
  }

  // Sends one request and reads its answer. A request is never sent twice: when the connection breaks, the reply
  // says so and the next request opens a new connection.
  HttpReply request(std::string_view method, std::string_view target, std::string_view body,
                    const HttpHeaders& headers = {}) {
    namespace beast = boost::beast;
    namespace bhttp = boost::beast::http;
    HttpReply reply;
    // A keep-alive connection the server closed while it was idle is noticed here, before anything is sent on it.
    if (_stream && peer_closed()) close();
    if (!_stream) {
      if (auto error = connect()) {
        reply.error = *error;
        return reply;
      }
    }
    bhttp::request<bhttp::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(bhttp::field::host, _host + ":" + std::to_string(_port));
    req.set(bhttp::field::user_agent, "statefold-test");
    if (method == "POST" || method == "PUT" || !body.empty()) {
      req.set(bhttp::field::content_type, "application/json");
      req.body() = std::string(body);
    }
    for (const auto& [name, value] : headers) req.set(name, value);
    req.keep_alive(true);
    req.prepare_payload();

    beast::error_code ec;
    _stream->expires_after(_timeout);
    bhttp::async_write(*_stream, req, [&](beast::error_code e, std::size_t) { ec = e; });
    run();
    // A server that answers before reading the whole body (413) may reset the rest of the write: still read.
    const bool write_failed = static_cast<bool>(ec);
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(1ull << 30);
    parser.header_limit(1u << 20);
    _stream->expires_after(_timeout);
    bhttp::async_read(*_stream, _buffer, parser, [&](beast::error_code e, std::size_t) { ec = e; });
    run();
    if (ec) {
      reply.error = std::string(write_failed ? "write failed; " : "") + "read: " + ec.message();
      close();
      return reply;
    }
    auto& res = parser.get();
    reply.status = static_cast<int>(res.result_int());
    for (const auto& field : res) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
      reply.headers[name] = std::string(field.value());
    }
    reply.body = std::move(res.body());
    if (!res.keep_alive()) close();
    return reply;
  }

  void close() {
    if (!_stream) return;
    boost::beast::error_code ignored;
    _stream->socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
    _stream->close();
    _stream.reset();
    _buffer.clear();
    _io.restart();
    _io.poll();  // let the cancelled operations complete
  }

 private:
  std::optional<std::string> connect() {
    namespace asio = boost::asio;
    boost::beast::error_code ec;
    const auto address = asio::ip::make_address(_host, ec);
    if (ec) return "bad address " + _host + ": " + ec.message();
    _stream.emplace(_io);
    _stream->expires_after(_timeout);
    _stream->async_connect(asio::ip::tcp::endpoint(address, _port), [&](boost::beast::error_code e) { ec = e; });
    run();
    if (ec) {
      _stream.reset();
      return "connect to " + _host + ":" + std::to_string(_port) + ": " + ec.message();
    }
    _stream->socket().set_option(asio::ip::tcp::no_delay(true), ec);
    return std::nullopt;
  }

  // True when the server has closed (or reset) an idle connection: a non-blocking peek sees end of stream.
  bool peer_closed() {
    if (_buffer.size() > 0) return false;
    char c;
    const auto n = ::recv(_stream->socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }

  void run() {
    _io.restart();
    _io.run();
  }

  std::string _host;
  std::uint16_t _port;
  std::chrono::milliseconds _timeout;
  boost::asio::io_context _io;
  std::optional<boost::beast::tcp_stream> _stream;
  boost::beast::flat_buffer _buffer;
};

}  // namespace statefold::testing
