// The HTTP server behind http.h, on Boost.Beast. Beast and Asio stay in this file.
//
// Shape: one io_context run by `threads` threads; an acceptor on its own strand; one Session per connection, all of
// whose work runs on that connection's strand. A session reads one request, hands it to the handler, writes the
// response once `respond` posts it back onto the strand, then reads the next request (keep-alive, no pipelining).
//
// Lifetime: a session is owned by the handlers pending on its strand (shared_from_this). While the handler works, the
// pending deadline timer owns it, so a handler that never answers cannot leak it. `respond` holds only a weak_ptr to
// the session and a shared "gate": it posts under the gate's lock, and stop() closes the gate before it tears the
// io_context down, so a late `respond` (from any thread, after the connection or the whole server is gone) is a no-op.
#include "engine/http/http.h"

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <variant>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/ssl.h>

#include "engine/base/logging.h"
#include "engine/base/text.h"

namespace statefold::http {

// ---------------------------------------------------------------------------------------------------------------------
// Helpers for handlers.

std::optional<std::string_view> Request::header(std::string_view lower_case_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_case_name) return std::string_view(value);
  }
  return std::nullopt;
}

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if there is none (overlong, surrogate, > U+10FFFF).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  std::size_t n = 0;
  unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

// A JSON string literal for `text`; invalid UTF-8 becomes U+FFFD so the document stays valid.
std::string json_quote(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_sequence(text, i);
      if (n == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(text.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
  return out;
}

}  // namespace

Response json_response(int status, std::string body, std::string route) {
  Response response;
  response.status = status;
  response.body = std::move(body);
  response.route = std::move(route);
  return response;
}

Response error_response(int status, std::string_view message, std::string route) {
  return json_response(status, "{\"error\":" + json_quote(message) + "}", std::move(route));
}

int status_for(base::ErrorCode code) {
  switch (code) {
    case base::ErrorCode::invalid_argument: return 400;
    case base::ErrorCode::permission_denied: return 403;
    case base::ErrorCode::not_found: return 404;
    case base::ErrorCode::conflict: return 409;
    case base::ErrorCode::resource_exhausted: return 429;
    case base::ErrorCode::upstream_failed: return 502;
    case base::ErrorCode::unavailable: return 503;
    case base::ErrorCode::timed_out: return 504;
    case base::ErrorCode::unknown:
    case base::ErrorCode::internal: break;
  }
  return 500;
}

Response error_response(const base::Error& error, std::string route) {
  return error_response(status_for(error.code), error.message, std::move(route));
}

// ---------------------------------------------------------------------------------------------------------------------
// The server.

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kFirstReadBytes = 8 * 1024;
constexpr std::size_t kKeptBufferBytes = 64 * 1024;  // what an idle connection keeps of its read buffer
constexpr std::uint32_t kHeaderLimitBytes = 16 * 1024;
// After a response that closes the connection, keep reading (and dropping) what the client still sends for a while,
// so closing does not reset the connection and destroy the response before the client reads it (the 413 case).
constexpr std::chrono::seconds kLingerTime{2};
constexpr std::size_t kLingerBytes = 16 * 1024 * 1024;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes `in`; false on a malformed escape.
bool percent_decode(std::string_view in, bool plus_is_space, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int hi = hex_value(in[i + 1]);
      const int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return true;
}

// Fills request.path and request.query from an origin-form target; an error message if it is not acceptable.
std::optional<std::string> parse_target(std::string_view target, Request& request) {
  if (target.empty() || target.front() != '/') return "request target must start with '/'";
  const std::size_t question = target.find('?');
  const std::string_view path = target.substr(0, question);
  request.raw_path = std::string(path);
  if (!percent_decode(path, false, request.path)) return "malformed percent-encoding in the path";
  if (request.path.find('\0') != std::string::npos) return "the path contains NUL";
  if (question == std::string_view::npos) return std::nullopt;
  std::string_view rest = target.substr(question + 1);
  request.raw_query = std::string(rest);
  std::string key, value;
  while (!rest.empty()) {
    const std::size_t amp = rest.find('&');
    const std::string_view piece = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (piece.empty()) continue;
    const std::size_t eq = piece.find('=');
    if (!percent_decode(piece.substr(0, eq), true, key) ||
        !percent_decode(eq == std::string_view::npos ? std::string_view() : piece.substr(eq + 1), true, value)) {
      return "malformed percent-encoding in the query";
    }
    if (key.find('\0') != std::string::npos || value.find('\0') != std::string::npos) return "the query contains NUL";
    request.query.insert_or_assign(key, value);
  }
  return std::nullopt;
}

// A header a handler may set: a token name and a value without CR, LF or NUL (no response splitting).
bool valid_header(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F || c == ':' || c == '(' || c == ')' || c == ',' || c == ';' || c == '"' || c == '/' ||
        c == '[' || c == ']' || c == '?' || c == '=' || c == '{' || c == '}' || c == '<' || c == '>' || c == '@' ||
        c == '\\') {
      return false;
    }
  }
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// What the server answers itself when a request cannot be read: 413, 431 or 400 with the reason; 0 when there is
// nobody to answer (the peer went away, or was too slow and the timeout closed the socket).
std::pair<int, std::string> read_error_answer(const beast::error_code& ec, std::size_t max_body_bytes) {
  if (ec == bhttp::error::body_limit) {
    return {413, "request body larger than " + std::to_string(max_body_bytes) + " bytes"};
  }
  if (ec == bhttp::error::header_limit) {
    return {431, "request header larger than " + std::to_string(kHeaderLimitBytes) + " bytes"};
  }
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message || ec == beast::error::timeout ||
      ec.category() != bhttp::make_error_code(bhttp::error::bad_target).category()) {
    return {0, {}};
  }
  return {400, "malformed request: " + ec.message()};
}

// The handler's Request from a message read whole (target decoded, header names lower-cased, the body moved out),
// or the 400 message for a target the server does not accept.
std::variant<Request, std::string> to_request(bhttp::request<bhttp::string_body>& message) {
  Request request;
  request.method = std::string(message.method_string());
  if (auto error = parse_target(message.target(), request)) return *error;
  request.headers.reserve(static_cast<std::size_t>(std::distance(message.begin(), message.end())));
  for (const auto& field : message) {
    request.headers.emplace_back(base::ascii_lower(field.name_string()), std::string(field.value()));
  }
  request.body = std::move(message.body());
  return request;
}

// A request parser with the server's limits.
void limit(bhttp::request_parser<bhttp::string_body>& parser, std::size_t max_body_bytes) {
  parser.body_limit(max_body_bytes);
  parser.header_limit(kHeaderLimitBytes);
}

// The queue between a producing thread and the connection that sends its pieces. The connection installs `wake`,
// which posts "more to send" onto its strand; write() and close() call it outside the lock.
class StreamQueue final : public BodyStream {
 public:
  bool write(std::string piece) override {
    std::function<void()> wake;
    {
      std::lock_guard lock(_mutex);
      if (_closed || _abandoned) return false;
      _pieces.push_back(std::move(piece));
      wake = _wake;
    }
    if (wake) wake();
    return true;
  }
  void close() override {
    std::function<void()> wake;
    {
      std::lock_guard lock(_mutex);
      if (_closed) return;
      _closed = true;
      wake = _wake;
    }
    if (wake) wake();
  }
  bool abandoned() const override {
    std::lock_guard lock(_mutex);
    return _abandoned;
  }

  // Connection side.
  void attach(std::function<void()> wake) {
    std::lock_guard lock(_mutex);
    _wake = std::move(wake);
  }
  void abandon() {
    std::lock_guard lock(_mutex);
    _abandoned = true;
    _pieces.clear();
    _wake = nullptr;
  }
  // The pieces queued so far, and whether the body is complete after them.
  std::pair<std::vector<std::string>, bool> take() {
    std::lock_guard lock(_mutex);
    std::vector<std::string> out(std::make_move_iterator(_pieces.begin()), std::make_move_iterator(_pieces.end()));
    _pieces.clear();
    return {std::move(out), _closed};
  }

 private:
  mutable std::mutex _mutex;
  std::deque<std::string> _pieces;
  bool _closed = false;
  bool _abandoned = false;
  std::function<void()> _wake;
};

// What the server needs of a connection, plain or TLS.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // stop(), first pass, and eviction: close the connection unless a request is under way.
  virtual void post_drain() = 0;
  // stop(), last pass.
  virtual void post_close() = 0;

  // Since when the connection waits for a request (steady clock, ns; 0 while a request is under way or once closed),
  // and whether the server already chose to close it to make room.
  std::atomic<std::int64_t> idle_since{0};
  std::atomic<bool> evicted{false};
};

// Lets `respond` post onto a strand only while the io_context is alive and running.
struct Gate {
  std::mutex mutex;
  bool open = true;
};

// What sessions share with the server. Owned by ServerImpl, which outlives every session (it owns the io_context).
struct ServerState {
  ServerOptions options;
  Handler handler;
  Observer observer;
  std::shared_ptr<Gate> gate = std::make_shared<Gate>();
  std::atomic<bool> stopping{false};

  std::mutex sessions_mutex;
  std::unordered_map<const SessionBase*, std::weak_ptr<SessionBase>> sessions;

  // Connections between a request's first byte and its response written: what stop() waits for.
  std::mutex busy_mutex;
  std::condition_variable busy_cv;
  std::size_t busy = 0;

  std::size_t connections() {
    std::lock_guard lock(sessions_mutex);
    return sessions.size();
  }
  bool add(const std::shared_ptr<SessionBase>& session) {
    std::lock_guard lock(sessions_mutex);
    if (stopping.load()) return false;
    sessions.emplace(session.get(), session);
    return true;
  }
  void forget(const SessionBase* session) {
    std::lock_guard lock(sessions_mutex);
    sessions.erase(session);
  }
  // At the connection limit: closes the connection that has waited longest for a request (as nginx reuses idle
  // keep-alive connections), so a new client (a health check, say) is served rather than refused. False when every
  // connection has a request under way.
  bool evict_idle() {
    std::shared_ptr<SessionBase> oldest;
    {
      std::lock_guard lock(sessions_mutex);
      std::int64_t oldest_since = 0;
      for (auto& [key, weak] : sessions) {
        const std::int64_t since = key->idle_since.load();
        if (since == 0 || key->evicted.load() || (oldest_since != 0 && since >= oldest_since)) continue;
        if (auto session = weak.lock()) {
          oldest = std::move(session);
          oldest_since = since;
        }
      }
      if (!oldest) return false;
      oldest->evicted.store(true);
    }
    oldest->post_drain();
    return true;
  }
  // Sets `stopping` when asked; after that no session is added, so the snapshot is complete.
  std::vector<std::shared_ptr<SessionBase>> snapshot(bool begin_stopping) {
    std::lock_guard lock(sessions_mutex);
    if (begin_stopping) stopping.store(true);
    std::vector<std::shared_ptr<SessionBase>> out;
    out.reserve(sessions.size());
    for (auto& [key, weak] : sessions) {
      if (auto session = weak.lock()) out.push_back(std::move(session));
    }
    return out;
  }
  void add_busy(bool up) {
    std::lock_guard lock(busy_mutex);
    if (up) {
      ++busy;
    } else if (--busy == 0) {
      busy_cv.notify_all();
    }
  }
};

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// One connection: Stream is beast::tcp_stream, or TlsStream when the server has a certificate (the handshake
// comes first, under the read timeout; the rest is the same).
template <class Stream>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  Session(ServerState& state, tcp::socket socket)
    requires(!kTls)
      : _state(state), _stream(std::move(socket)), _strand(_stream.get_executor()), _timer(_strand) {}
  // `tls` is the certificate of the time the connection came in; a reload does not change it.
  Session(ServerState& state, tcp::socket socket, std::shared_ptr<asio::ssl::context> tls)
    requires kTls
      : _state(state), _tls(std::move(tls)), _stream(std::move(socket), *_tls), _strand(_stream.get_executor()),
        _timer(_strand) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() override {
    set_busy(false);
    _state.forget(this);
  }

  void start() {
    asio::dispatch(_strand, [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->handshake();
      } else {
        self->read_next();
      }
    });
  }
  void post_drain() override {
    asio::post(_strand, [self = this->shared_from_this()] {
      if (self->_phase == Phase::idle || self->_phase == Phase::lingering) return self->close();
      self->evicted.store(false);  // a request came in first: it may be chosen again once idle
    });
  }
  void post_close() override {
    asio::post(_strand, [self = this->shared_from_this()] { self->close(); });
  }

 private:
  enum class Phase { idle, reading, handling, writing, lingering, closed };

  // The connection as TCP, below TLS when there is TLS: timeouts and shutdown work there.
  beast::tcp_stream& tcp() { return beast::get_lowest_layer(_stream); }

  void handshake() {
    tcp().expires_after(_state.options.read_timeout);
    _stream.async_handshake(asio::ssl::stream_base::server,
                            [self = this->shared_from_this()](beast::error_code ec) {
                              if (self->_phase == Phase::closed) return;
                              if (ec) {
                                // A scanner, a plain-HTTP client, an untrusted client certificate: nobody to answer.
                                base::log(base::LogLevel::debug, "TLS handshake failed", {{"error", ec.message()}});
                                return self->close();
                              }
                              self->read_next();
                            });
  }

  void read_next() {
    if (_phase == Phase::closed) return;
    if (_state.stopping.load()) return close();
    _parser.emplace();
    limit(*_parser, _state.options.max_body_bytes);
    if (_buffer.capacity() > kKeptBufferBytes) _buffer.shrink_to_fit();  // a large body passed through it
    if (_buffer.size() > 0) return begin_request();
    // Wait for the first byte under the idle timeout; the read timeout starts once the request has begun.
    _phase = Phase::idle;
    idle_since.store(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
    tcp().expires_after(_state.options.idle_timeout);
    _stream.async_read_some(_buffer.prepare(kFirstReadBytes),
                            beast::bind_front_handler(&Session::on_first_bytes, this->shared_from_this()));
  }

  void on_first_bytes(beast::error_code ec, std::size_t bytes) {
    if (_phase != Phase::idle) return;  // closed meanwhile
    if (ec) return close();             // end of stream, idle timeout, reset
    idle_since.store(0);
    _buffer.commit(bytes);
    begin_request();
  }

  void begin_request() {
    _phase = Phase::reading;
    set_busy(true);
    tcp().expires_after(_state.options.read_timeout);
    bhttp::async_read_header(_stream, _buffer, *_parser,
                             beast::bind_front_handler(&Session::on_header, this->shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (_phase != Phase::reading) return;
    if (ec) return on_read_error(ec);
    if (_parser->is_done()) return on_request();
    const auto expect = _parser->get()[bhttp::field::expect];
    if (base::iequals(expect, "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(_stream, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = this->shared_from_this()](beast::error_code write_ec, std::size_t) {
                          if (self->_phase != Phase::reading) return;
                          if (write_ec) return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    bhttp::async_read(_stream, _buffer, *_parser,
                      beast::bind_front_handler(&Session::on_body, this->shared_from_this()));
  }

  void on_body(beast::error_code ec, std::size_t) {
    if (_phase != Phase::reading) return;
    if (ec) return on_read_error(ec);
    on_request();
  }

  void on_read_error(beast::error_code ec) {
    auto [status, message] = read_error_answer(ec, _state.options.max_body_bytes);
    if (status == 0) return close();
    answer_myself(status, std::move(message));
  }

  // A request the server answers without the handler; the connection closes afterwards.
  void answer_myself(int status, std::string message) {
    _observed = Request{};
    _head = false;
    if (_parser && _parser->is_header_done()) {
      _observed.method = std::string(_parser->get().method_string());
      _observed.path = std::string(_parser->get().target());
      _head = _parser->get().method() == bhttp::verb::head;
    }
    _parser.reset();
    _read_done = Clock::now();
    _keep_alive = false;
    _version = 11;
    write_response(error_response(status, message));
  }

  void on_request() {
    _read_done = Clock::now();
    bhttp::request<bhttp::string_body> message = _parser->release();
    _parser.reset();
    _keep_alive = message.keep_alive();
    _version = message.version() == 10 ? 10 : 11;  // an HTTP/1.0 client gets an explicit "Connection: keep-alive"
    _head = message.method() == bhttp::verb::head;

    auto converted = to_request(message);
    if (auto* error = std::get_if<std::string>(&converted)) {
      _observed = Request{};
      _observed.method = std::string(message.method_string());
      _observed.path = std::string(message.target());
      _keep_alive = false;
      return write_response(error_response(400, *error));
    }
    Request request = std::get<Request>(std::move(converted));
    if (_state.observer) {
      std::string body = std::move(request.body);
      _observed = request;  // observers get no body
      request.body = std::move(body);
    } else {
      _observed = Request{};  // method and path for the logs
      _observed.method = request.method;
      _observed.path = request.path;
    }

    const std::uint64_t seq = ++_seq;
    _phase = Phase::handling;
    _timer.expires_after(_state.options.handler_timeout);
    _timer.async_wait([self = this->shared_from_this(), seq](beast::error_code ec) {
      if (!ec) self->on_handler_timeout(seq);
    });

    Respond respond = [gate = _state.gate, weak = this->weak_from_this(), seq](Response response) {
      std::lock_guard lock(gate->mutex);
      if (!gate->open) return;
      std::shared_ptr<Session> self = weak.lock();
      if (!self) return;
      // Moved into the posted handler, so the session is never destroyed on this (foreign) thread.
      const asio::any_io_executor strand = self->_strand;
      asio::post(strand, [self = std::move(self), seq, response = std::move(response)]() mutable {
        self->on_response(seq, std::move(response));
      });
    };
    try {
      _state.handler(std::move(request), std::move(respond));
    } catch (const std::exception& e) {
      base::log_error("http handler threw", {{"error", e.what()}, {"path", _observed.path}});
      fail_handler(seq);
    } catch (...) {
      base::log_error("http handler threw", {{"error", "unknown exception"}});
      fail_handler(seq);
    }
  }

  // Posted, so a response the handler gave before throwing still wins.
  void fail_handler(std::uint64_t seq) {
    asio::post(_strand, [self = this->shared_from_this(), seq] {
      self->on_response(seq, error_response(500, "internal error"));
    });
  }

  void on_handler_timeout(std::uint64_t seq) {
    if (_phase != Phase::handling || seq != _seq) return;
    base::log_warn("http handler did not answer in time", {{"path", _observed.path}});
    ++_seq;  // the handler's late answer is dropped
    _keep_alive = false;
    write_response(error_response(
        503, "no answer within " + std::to_string(_state.options.handler_timeout.count()) + " s"));
  }

  void on_response(std::uint64_t seq, Response response) {
    if (_phase != Phase::handling || seq != _seq) return;  // a second answer, or one for a request already closed
    _timer.cancel();
    write_response(std::move(response));
  }

  void write_response(Response response) {
    _phase = Phase::writing;
    if (response.stream && !_head && response.status >= 200 && response.status <= 599 && response.status != 204 &&
        response.status != 304) {
      return write_stream_head(std::move(response));
    }
    _response = std::move(response);
    int status = _response.status;
    if (status < 200 || status > 599) {
      base::log_error("http handler gave an invalid status", {{"status", std::to_string(status)}});
      status = 500;
    }
    bool keep_alive = _keep_alive && !_state.stopping.load();
    _message = {};
    _message.version(_version);
    _message.result(static_cast<unsigned>(status));
    _message.set(bhttp::field::server, "statefold");
    if (!_response.content_type.empty()) _message.set(bhttp::field::content_type, _response.content_type);
    for (const auto& [name, value] : _response.headers) {
      if (!valid_header(name, value)) {
        base::log_warn("http handler gave an invalid header; dropped", {{"name", name}});
      } else if (base::iequals(name, "content-length") || base::iequals(name, "transfer-encoding")) {
        continue;  // framing is ours
      } else if (base::iequals(name, "connection")) {
        if (base::iequals(value, "close")) keep_alive = false;
      } else {
        _message.insert(name, value);
      }
    }
    _keep_alive = keep_alive;
    _message.keep_alive(keep_alive);
    if (status == 204 || status == 304) {
      // No body, no Content-Length.
    } else if (_head) {
      _message.content_length(_response.body.size());
    } else {
      _message.body() = std::move(_response.body);
      _message.prepare_payload();
    }
    tcp().expires_after(_state.options.read_timeout);
    bhttp::async_write(_stream, _message, beast::bind_front_handler(&Session::on_write, this->shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (_phase != Phase::writing) return;
    if (ec) return close();
    if (_state.observer) {
      if (!_head) _response.body = std::move(_message.body());
      try {
        _state.observer(_observed, _response, Clock::now() - _read_done);
      } catch (const std::exception& e) {
        base::log_error("http observer threw", {{"error", e.what()}});
      } catch (...) {
        base::log_error("http observer threw", {{"error", "unknown exception"}});
      }
    }
    _message = {};
    _response = Response{};
    _observed = Request{};
    set_busy(false);
    if (!_keep_alive) return linger();
    read_next();
  }

  // A streamed body: the head with chunked framing, then each piece as one chunk as the producer queues it. The
  // connection closes afterwards (no keep-alive after a stream the client may have stopped reading).
  void write_stream_head(Response response) {
    _response = std::move(response);
    _queue = std::static_pointer_cast<StreamQueue>(_response.stream);
    std::string head = "HTTP/1.1 " + std::to_string(_response.status) + " " +
                       std::string(bhttp::obsolete_reason(static_cast<bhttp::status>(_response.status))) +
                       "\r\nServer: statefold\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n";
    if (!_response.content_type.empty()) head += "Content-Type: " + _response.content_type + "\r\n";
    for (const auto& [name, value] : _response.headers) {
      if (!valid_header(name, value) || base::iequals(name, "content-length") ||
          base::iequals(name, "transfer-encoding") || base::iequals(name, "connection")) {
        continue;
      }
      head += name + ": " + value + "\r\n";
    }
    head += "\r\n";
    _keep_alive = false;
    // Nothing is pending on the strand while the producer is quiet: the session keeps itself alive until the body
    // ends or the connection closes.
    _streaming_self = this->shared_from_this();
    _stream_out = std::move(head);
    _stream_done = false;
    _queue->attach([gate = _state.gate, weak = this->weak_from_this()] {
      std::lock_guard lock(gate->mutex);
      if (!gate->open) return;
      if (auto self = weak.lock()) {
        const asio::any_io_executor strand = self->_strand;
        asio::post(strand, [self = std::move(self)] { self->pump_stream(); });
      }
    });
    _stream_writing = false;
    pump_stream();
  }

  void pump_stream() {
    if (_phase != Phase::writing || !_queue || _stream_writing) return;
    auto [pieces, closed] = _queue->take();
    for (auto& piece : pieces) {
      if (piece.empty()) continue;  // an empty chunk would end the body
      char size[32];
      std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
      _stream_out += size;
      _stream_out += piece;
      _stream_out += "\r\n";
    }
    if (closed && !_stream_done) {
      _stream_out += "0\r\n\r\n";
      _stream_done = true;
    }
    if (_stream_out.empty()) return;
    _stream_writing = true;
    _stream_sending = std::move(_stream_out);
    _stream_out.clear();
    tcp().expires_after(_state.options.read_timeout);
    asio::async_write(_stream, asio::buffer(_stream_sending),
                      [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                        self->_stream_writing = false;
                        if (self->_phase != Phase::writing) return;
                        if (ec) {
                          self->_queue->abandon();
                          return self->close();
                        }
                        if (self->_stream_done && self->_stream_out.empty()) return self->finish_stream();
                        self->pump_stream();
                      });
  }

  void finish_stream() {
    _queue->attach(nullptr);
    _queue.reset();
    auto keep = std::move(_streaming_self);  // released when this handler returns
    _stream_sending.clear();
    if (_state.observer) {
      try {
        _state.observer(_observed, _response, Clock::now() - _read_done);
      } catch (const std::exception& e) {
        base::log_error("http observer threw", {{"error", e.what()}});
      }
    }
    _response = Response{};
    _observed = Request{};
    set_busy(false);
    linger();
  }

  // Half-close, then drop whatever the client still sends until it closes too (or the linger time or size runs out).
  void linger() {
    _phase = Phase::lingering;
    beast::error_code ignored;
    tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    _buffer.clear();
    _lingered = 0;
    tcp().expires_after(kLingerTime);
    linger_read();
  }

  void linger_read() {
    _stream.async_read_some(_buffer.prepare(64 * 1024), [self = this->shared_from_this()](beast::error_code ec,
                                                                                     std::size_t bytes) {
      if (self->_phase != Phase::lingering) return;
      self->_lingered += bytes;
      if (ec || self->_lingered > kLingerBytes) return self->close();
      self->linger_read();  // the buffer is never committed: the bytes are dropped
    });
  }

  void close() {
    if (_phase == Phase::closed) return;
    idle_since.store(0);
    if (_queue) {
      _queue->abandon();  // the producer learns the client is gone
      _queue.reset();
    }
    _phase = Phase::closed;
    if (_streaming_self) {
      // Released once this handler returns, not in the middle of it.
      asio::post(_strand, [keep = std::move(_streaming_self)] {});
    }
    ++_seq;
    _timer.cancel();
    beast::error_code ignored;
    tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    tcp().close();
    _parser.reset();
    set_busy(false);
  }

  void set_busy(bool busy) {
    if (_busy == busy) return;
    _busy = busy;
    _state.add_busy(busy);
  }

  ServerState& _state;
  std::shared_ptr<asio::ssl::context> _tls;  // TLS only: outlives _stream, which refers to it
  Stream _stream;
  const asio::any_io_executor _strand;  // the connection's strand; every handler of this session runs on it
  asio::steady_timer _timer;            // the handler's deadline; also keeps the session alive while it works
  beast::flat_buffer _buffer;
  std::optional<bhttp::request_parser<bhttp::string_body>> _parser;
  bhttp::response<bhttp::string_body> _message;
  Response _response;
  Request _observed;  // the request as the observer sees it (no body)
  Clock::time_point _read_done;
  std::uint64_t _seq = 0;  // which request `respond` answers; bumped when a request can no longer be answered
  Phase _phase = Phase::idle;
  unsigned _version = 11;
  bool _keep_alive = false;
  bool _head = false;
  bool _busy = false;
  std::size_t _lingered = 0;
  // A streamed body (write_stream_head): its queue, the bytes being sent and those waiting for the next write.
  std::shared_ptr<StreamQueue> _queue;
  std::string _stream_sending;
  std::string _stream_out;
  bool _stream_writing = false;
  bool _stream_done = false;
  std::shared_ptr<Session> _streaming_self;
};

// The reason an OpenSSL call failed, as Asio reports it.
std::string openssl_reason(const beast::error_code& ec) {
  const std::string reason = ec.message();
  return reason.empty() ? "unknown error" : reason;
}

// A server context from PEM files: TLS 1.2 or later, the certificate chain and its key (checked to match), and with
// a client CA, certificates required of clients and verified against it.
base::Result<std::shared_ptr<asio::ssl::context>> make_tls_context(const TlsOptions& tls) {
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  beast::error_code ec;
  if (SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION) != 1) {
    return base::make_error("http: TLS: cannot require TLS 1.2 or later");
  }
  context->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_compression |
                           asio::ssl::context::single_dh_use,
                       ec);
  if (context->use_certificate_chain_file(tls.cert_file, ec); ec) {
    return base::make_error("http: TLS certificate " + tls.cert_file + ": " + openssl_reason(ec));
  }
  if (context->use_private_key_file(tls.key_file, asio::ssl::context::pem, ec); ec) {
    const std::string reason = openssl_reason(ec);
    return base::make_error("http: TLS key " + tls.key_file +
                            (reason.find("mismatch") != std::string::npos
                                 ? " does not match the certificate " + tls.cert_file
                                 : ": " + reason));
  }
  if (SSL_CTX_check_private_key(context->native_handle()) != 1) {
    return base::make_error("http: TLS key " + tls.key_file + " does not match the certificate " + tls.cert_file);
  }
  // OpenSSL refuses to resume a session with a client it verifies unless the server names a session context, and
  // instances forwarding to each other resume their sessions (http::forward).
  static constexpr unsigned char kSessionContext[] = "statefold";
  SSL_CTX_set_session_id_context(context->native_handle(), kSessionContext, sizeof kSessionContext - 1);
  if (!tls.client_ca_file.empty()) {
    if (context->load_verify_file(tls.client_ca_file, ec); ec) {
      return base::make_error("http: TLS client CA " + tls.client_ca_file + ": " + openssl_reason(ec));
    }
    // The CA names go in the handshake, so a client with several certificates picks the right one.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(context->native_handle(), names);
    }
    context->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert, ec);
    if (ec) return base::make_error("http: TLS: cannot require client certificates: " + openssl_reason(ec));
  }
  return context;
}

class ServerImpl final : public Server {
 public:
  ServerImpl(const ServerOptions& options, Handler handler, Observer observer)
      : _acceptor(asio::make_strand(_io)), _accept_timer(_acceptor.get_executor()) {
    _max_connections = options.max_connections;
    if (_max_connections == 0) {
      // What the descriptors allow, less a reserve for the store's files, Kafka's sockets and the rest.
      rlimit limit{};
      const std::uint64_t soft = ::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
                                     ? limit.rlim_cur
                                     : 65536;
      _max_connections = static_cast<std::size_t>(std::max<std::uint64_t>(16, soft > 512 ? soft - 512 : 0));
    }
    _state.options = options;
    _state.handler = std::move(handler);
    _state.observer = std::move(observer);
  }
  ServerImpl(const ServerImpl&) = delete;
  ServerImpl& operator=(const ServerImpl&) = delete;
  ~ServerImpl() override { stop(std::chrono::milliseconds(5000)); }

  base::Result<void> listen() {
    const ServerOptions& options = _state.options;
    const std::string where = options.address + ":" + std::to_string(options.port);
    beast::error_code ec;
    tcp::resolver resolver(_io);
    const auto endpoints = resolver.resolve(options.address, std::to_string(options.port),
                                            tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || endpoints.empty()) {
      return base::make_error("http: cannot resolve " + where + ": " + (ec ? ec.message() : "no address"));
    }
    const tcp::endpoint endpoint = endpoints.begin()->endpoint();
    if (_acceptor.open(endpoint.protocol(), ec); !ec) _acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) _acceptor.bind(endpoint, ec);
    if (!ec) _acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return base::make_error("http: cannot listen on " + where + ": " + ec.message());
    _port = _acceptor.local_endpoint().port();
    return {};
  }

  void run(int threads) {
    do_accept();
    _threads.reserve(static_cast<std::size_t>(threads));
    for (int i = 0; i < threads; ++i) {
      _threads.emplace_back([this] {
        for (;;) {
          try {
            _io.run();
            break;
          } catch (const std::exception& e) {  // handlers catch their own; this is a broken invariant
            base::log_error("http I/O thread caught an exception", {{"error", e.what()}});
          }
        }
        std::lock_guard lock(_done_mutex);
        ++_done;
        _done_cv.notify_all();
      });
    }
  }

  std::uint16_t port() const override { return _port; }

  base::Result<void> load_tls() {
    if (!_state.options.tls) return {};
    auto made = make_tls_context(*_state.options.tls);
    if (!made) return made.error();
    std::lock_guard lock(_tls_mutex);
    _tls = std::move(*made);
    return {};
  }

  base::Result<void> reload_tls() override {
    if (!_state.options.tls) return base::make_error("http: no TLS configured to reload");
    return load_tls();
  }

  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000)) override {
    std::lock_guard stop_lock(_stop_mutex);
    if (_stopped) return;
    _stopped = true;
    const auto deadline = Clock::now() + grace;

    // 1. No new connections; idle connections close; requests under way go on.
    asio::post(_acceptor.get_executor(), [this] {
      beast::error_code ignored;
      _acceptor.close(ignored);
      _accept_timer.cancel();
    });
    for (const auto& session : _state.snapshot(/*begin_stopping=*/true)) session->post_drain();

    // 2. Wait for them to be answered.
    {
      std::unique_lock lock(_state.busy_mutex);
      _state.busy_cv.wait_until(lock, deadline, [&] { return _state.busy == 0; });
    }

    // 3. Late answers become no-ops; close what is left; the threads run out of work and return.
    {
      std::lock_guard lock(_state.gate->mutex);
      _state.gate->open = false;
    }
    for (const auto& session : _state.snapshot(false)) session->post_close();
    {
      std::unique_lock lock(_done_mutex);
      if (!_done_cv.wait_for(lock, std::chrono::seconds(2), [&] { return _done == _threads.size(); })) {
        base::log_warn("http server: I/O threads still busy after closing; stopping them");
        _io.stop();
      }
    }
    for (auto& thread : _threads) {
      if (thread.get_id() == std::this_thread::get_id()) {
        base::log_error("http server stopped from its own I/O thread; not joining it");
        thread.detach();
      } else {
        thread.join();
      }
    }
    _threads.clear();
  }

 private:
  void do_accept() {
    _acceptor.async_accept(asio::make_strand(_io), [this](beast::error_code ec, tcp::socket socket) {
      on_accept(ec, std::move(socket));
    });
  }

  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !_acceptor.is_open()) return;
    if (ec == asio::error::connection_aborted) return do_accept();
    if (ec) {
      // Out of descriptors or memory: back off (doubling up to a second) instead of spinning, and say so once
      // per burst rather than at every attempt.
      _accept_backoff = std::min(std::chrono::milliseconds(1000), std::max(std::chrono::milliseconds(50), _accept_backoff * 2));
      if (++_accept_failures == 1) {
        base::log_warn("http accept failed; backing off", {{"error", ec.message()}});
      }
      _accept_timer.expires_after(_accept_backoff);
      _accept_timer.async_wait([this](beast::error_code timer_ec) {
        if (!timer_ec && _acceptor.is_open()) do_accept();
      });
      return;
    }
    if (_accept_failures > 0) {
      base::log_info("http accept works again", {{"failed_attempts", std::to_string(_accept_failures)}});
      _accept_failures = 0;
      _accept_backoff = std::chrono::milliseconds(0);
    }
    beast::error_code ignored;
    if (_state.connections() >= _max_connections && !_state.evict_idle()) {
      // Full of requests under way: a short answer on the caller's own socket, then close, so the descriptor is back at once.
      static const std::string kFull = [] {
        const std::string body = R"({"error":"too many connections; retry shortly"})";
        return "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
               "Connection: close\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n" + body;
      }();
      socket.non_blocking(true, ignored);
      asio::write(socket, asio::buffer(kFull), ignored);
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      socket.close(ignored);
      return do_accept();
    }
    socket.set_option(tcp::no_delay(true), ignored);
    if (auto tls = tls_context()) {
      auto session = std::make_shared<Session<TlsStream>>(_state, std::move(socket), std::move(tls));
      if (_state.add(session)) session->start();
    } else {
      auto session = std::make_shared<Session<beast::tcp_stream>>(_state, std::move(socket));
      if (_state.add(session)) session->start();
    }
    do_accept();
  }

  std::shared_ptr<asio::ssl::context> tls_context() {
    std::lock_guard lock(_tls_mutex);
    return _tls;
  }

  // Declaration order is destruction order in reverse: sessions left in the io_context die with it, before _state.
  std::mutex _tls_mutex;
  std::shared_ptr<asio::ssl::context> _tls;  // null: plain HTTP; replaced whole by reload_tls()
  ServerState _state;
  asio::io_context _io;
  tcp::acceptor _acceptor;
  asio::steady_timer _accept_timer;
  std::chrono::milliseconds _accept_backoff{0};
  std::uint64_t _accept_failures = 0;
  std::size_t _max_connections = 0;
  std::uint16_t _port = 0;
  std::vector<std::thread> _threads;
  std::mutex _done_mutex;
  std::condition_variable _done_cv;
  std::size_t _done = 0;
  std::mutex _stop_mutex;
  bool _stopped = false;
};

}  // namespace

std::shared_ptr<BodyStream> BodyStream::make() { return std::make_shared<StreamQueue>(); }

ParsedRequest parse_request(std::string_view bytes, std::size_t max_body_bytes) {
  ParsedRequest out;
  bhttp::request_parser<bhttp::string_body> parser;
  limit(parser, max_body_bytes);
  parser.eager(true);
  beast::error_code ec;
  std::size_t used = 0;
  while (!parser.is_done()) {
    const std::size_t n = parser.put(asio::buffer(bytes.data() + used, bytes.size() - used), ec);
    used += n;
    if (ec == bhttp::error::need_more) ec = {};
    if (ec || n == 0) break;
  }
  if (!ec && !parser.is_done()) {
    // The bytes end before the request does: as a connection closed mid-request.
    parser.put_eof(ec);
    if (!ec && !parser.is_done()) ec = bhttp::error::partial_message;
  }
  if (ec && !parser.is_done()) {
    auto [status, message] = read_error_answer(ec, max_body_bytes);
    out.status = status;
    out.error = std::move(message);
    return out;
  }
  auto message = parser.release();
  auto converted = to_request(message);
  if (auto* error = std::get_if<std::string>(&converted)) {
    out.status = 400;
    out.error = std::move(*error);
    return out;
  }
  out.request = std::get<Request>(std::move(converted));
  out.consumed = used;
  return out;
}

base::Result<void> check_tls(const TlsOptions& tls) {
  auto made = make_tls_context(tls);
  if (!made) return made.error();
  return {};
}

base::Result<std::unique_ptr<Server>> Server::start(const ServerOptions& options, Handler handler, Observer observer) {
  if (!handler) return base::make_error("http: no handler");
  if (options.threads < 1) return base::make_error("http: threads must be at least 1");
  try {
    auto server = std::make_unique<ServerImpl>(options, std::move(handler), std::move(observer));
    if (auto tls = server->load_tls(); !tls) return tls.error();
    if (auto listening = server->listen(); !listening) return listening.error();
    server->run(options.threads);
    return std::unique_ptr<Server>(std::move(server));
  } catch (const std::exception& e) {  // thread creation, allocation
    return base::make_error(std::string("http: cannot start: ") + e.what());
  }
}

base::Result<ClientResponse> call(const std::string& host, std::uint16_t port, const std::string& method,
                                  const std::string& target, const std::string& body,
                                  std::chrono::milliseconds timeout) {
  try {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.expires_after(timeout);
    stream.connect(resolver.resolve(host, std::to_string(port)));
    bhttp::request<bhttp::string_body> request{bhttp::string_to_verb(method), target, 11};
    request.set(bhttp::field::host, host);
    request.set(bhttp::field::user_agent, "statefold");
    if (!body.empty()) request.set(bhttp::field::content_type, "application/json");
    request.body() = body;
    request.prepare_payload();
    bhttp::write(stream, request);
    beast::flat_buffer buffer;
    bhttp::response<bhttp::string_body> response;
    bhttp::read(stream, buffer, response);
    beast::error_code ec;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    return ClientResponse{static_cast<int>(response.result_int()), std::move(response.body())};
  } catch (const std::exception& e) {
    return base::make_error("HTTP " + method + " http://" + host + ":" + std::to_string(port) + target + ": " + e.what());
  }
}

std::optional<std::string> decode_path_part(std::string_view part) {
  std::string out;
  if (!percent_decode(part, false, out) || out.find('\0') != std::string::npos) return std::nullopt;
  return out;
}

}  // namespace statefold::http
