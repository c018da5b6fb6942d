// Forwarding a request to the instance that folds its session: a blocking Beast client on a thread of its own per
// request, so the server's I/O threads never wait on another instance.
#include <atomic>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
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

#include "engine/base/logging.h"
#include "engine/base/text.h"
#include "engine/http/http.h"

namespace statefold::http {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

std::atomic<std::size_t> g_in_flight{0};
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

void run(Request request, const std::string& host, std::uint16_t port,
         const std::vector<std::pair<std::string, std::string>>& extra_headers, std::chrono::milliseconds timeout,
         const Respond& respond) {
  const std::string where = "http://" + host + ":" + std::to_string(port);
  asio::io_context io;
  beast::tcp_stream stream(io);
  beast::error_code ec;
  {
    asio::ip::tcp::resolver resolver(io);
    auto endpoints = resolver.resolve(host, std::to_string(port), ec);
    if (!ec) {
      stream.expires_after(std::min<std::chrono::milliseconds>(timeout, kConnectTimeout));
      stream.connect(endpoints, ec);
    }
  }
  if (ec) {
    return respond(failure(503, "the instance that folds this session (" + where + ") cannot be reached: " +
                                    ec.message() + "; retry shortly (its partitions move to another instance)"));
  }
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
  out.set(bhttp::field::host, host + ":" + std::to_string(port));
  out.keep_alive(false);
  out.body() = std::move(request.body);
  out.prepare_payload();
  stream.expires_after(timeout);
  bhttp::write(stream, out, ec);
  if (ec) {
    return respond(failure(503, "the instance that folds this session (" + where +
                                    ") did not take the request: " + ec.message() + "; retry shortly"));
  }

  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::buffer_body> parser;
  parser.body_limit(kMaxBodyBytes);
  if (request.method == "HEAD") parser.skip(true);  // its Content-Length describes a body that never comes
  bhttp::read_header(stream, buffer, parser, ec);
  if (ec) {
    return respond(failure(502, "the instance that folds this session (" + where + ") failed before answering: " +
                                    ec.message() + "; whether the request took effect is unknown"));
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
    stream.expires_after(timeout);
    bhttp::read(stream, buffer, parser, ec);
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
      return respond(failure(502, "the instance that folds this session (" + where + ") failed while answering: " +
                                      ec.message() + "; whether the request took effect is unknown"));
    }
  }
  if (streaming) {
    answer.stream->close();
  } else {
    answer.body = std::move(body);
    respond(std::move(answer));
  }
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
}

}  // namespace

void forward(Request request, const std::string& host, std::uint16_t port,
             std::vector<std::pair<std::string, std::string>> extra_headers, std::chrono::milliseconds timeout,
             Respond respond) {
  if (g_in_flight.fetch_add(1) >= kMaxInFlight) {
    g_in_flight.fetch_sub(1);
    return respond(failure(503, "too many requests are being forwarded to other instances; retry shortly"));
  }
  std::thread([request = std::move(request), host, port, extra_headers = std::move(extra_headers), timeout,
               respond = std::move(respond)]() mutable {
    try {
      run(std::move(request), host, port, extra_headers, timeout, respond);
    } catch (const std::exception& e) {  // e.g. a method Beast refuses to send
      respond(failure(502, std::string("forwarding failed: ") + e.what()));
    }
    g_in_flight.fetch_sub(1);
  }).detach();
}

std::size_t forwards_in_flight() { return g_in_flight.load(); }

}  // namespace statefold::http
