// http::Server over real sockets on 127.0.0.1, with a small blocking client written against POSIX sockets.
#include "engine/http/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <future>
#include <optional>
#include <utility>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace statefold::http {
namespace {

using namespace std::chrono_literals;

struct Reply {
  std::string version;  // "HTTP/1.1"
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// One client connection. Blocking, with a receive timeout so a broken server fails the test instead of hanging it.
class Client {
 public:
  explicit Client(std::uint16_t port) {
    _fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (_fd < 0) throw std::runtime_error("socket failed");
    timeval tv{10, 0};
    ::setsockopt(_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(_fd);
      throw std::runtime_error(std::string("connect failed: ") + std::strerror(errno));
    }
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client() { close(); }

  void close() {
    if (_fd >= 0) ::close(_fd);
    _fd = -1;
  }

  bool send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(_fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // The next response, or nullopt if the connection ended first. `no_body`: the answer to a HEAD has none.
  std::optional<Reply> read(bool no_body = false) {
    std::size_t end;
    while ((end = _buffer.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return std::nullopt;
    }
    Reply reply;
    const std::string head = _buffer.substr(0, end);
    _buffer.erase(0, end + 4);
    std::size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    if (status_line.rfind("HTTP/1.1 ", 0) != 0 && status_line.rfind("HTTP/1.0 ", 0) != 0) return std::nullopt;
    reply.version = status_line.substr(0, 8);
    reply.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const std::size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string line = head.substr(start, line_end == std::string::npos ? std::string::npos : line_end - start);
      const std::size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      reply.headers[lower(line.substr(0, colon))] = value;
    }
    if (reply.status == 100 || no_body) return reply;
    std::size_t length = 0;
    if (auto it = reply.headers.find("content-length"); it != reply.headers.end()) length = std::stoul(it->second);
    while (_buffer.size() < length) {
      if (!fill()) return std::nullopt;
    }
    reply.body = _buffer.substr(0, length);
    _buffer.erase(0, length);
    return reply;
  }

  std::optional<Reply> request(std::string_view raw) {
    if (!send(raw)) return std::nullopt;
    return read();
  }

  // Reads until `text` has arrived (or the connection ends): what came so far, raw.
  std::string read_until(std::string_view text) {
    while (_buffer.find(text) == std::string::npos) {
      if (!fill()) break;
    }
    return _buffer;
  }
  // Reads until the server closes; everything received since the last read(), raw.
  std::string read_to_end() {
    while (fill()) {
    }
    return std::exchange(_buffer, {});
  }

  // True once the server has closed the connection (reads end of stream, nothing else pending).
  bool closed_by_server() {
    char c;
    return _buffer.empty() && ::recv(_fd, &c, 1, 0) == 0;
  }

 private:
  bool fill() {
    char chunk[16 * 1024];
    const ssize_t n = ::recv(_fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    _buffer.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int _fd = -1;
  std::string _buffer;
};

std::string get(std::string_view target, std::string_view extra_headers = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra_headers) + "\r\n";
}

std::string post(std::string_view target, std::string_view body, std::string_view extra_headers = "") {
  return "POST " + std::string(target) + " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" + std::string(extra_headers) + "\r\n" + std::string(body);
}

ServerOptions test_options() {
  ServerOptions options;
  options.address = "127.0.0.1";
  options.port = 0;
  options.threads = 2;
  return options;
}

std::unique_ptr<Server> start(const ServerOptions& options, Handler handler, Observer observer = {}) {
  auto server = Server::start(options, std::move(handler), std::move(observer));
  if (!server.ok()) throw std::runtime_error(server.error().message);
  return std::move(server).value();
}

// Responds from background threads; joins them when it goes away (before the server in each test).
class Later {
 public:
  ~Later() { join(); }
  void after(std::chrono::milliseconds delay, Respond respond, Response response) {
    std::lock_guard lock(_mutex);
    _threads.emplace_back([delay, respond = std::move(respond), response = std::move(response)]() mutable {
      std::this_thread::sleep_for(delay);
      respond(std::move(response));
    });
  }
  void join() {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(_mutex);
      threads.swap(_threads);
    }
    for (auto& t : threads) t.join();
  }

 private:
  std::mutex _mutex;
  std::vector<std::thread> _threads;
};

// Keeps the `respond` of requests the test answers by hand.
class Pending {
 public:
  void add(Respond respond) {
    std::lock_guard lock(_mutex);
    _responds.push_back(std::move(respond));
    _cv.notify_all();
  }
  Respond wait_one() {
    std::unique_lock lock(_mutex);
    if (!_cv.wait_for(lock, 10s, [&] { return !_responds.empty(); })) throw std::runtime_error("no request arrived");
    Respond respond = std::move(_responds.front());
    _responds.erase(_responds.begin());
    return respond;
  }

 private:
  std::mutex _mutex;
  std::condition_variable _cv;
  std::vector<Respond> _responds;
};

TEST(HttpServer, GetWithDecodedPathQueryAndHeaders) {
  std::mutex mutex;
  std::optional<Request> seen;
  auto server = start(test_options(), [&](Request request, Respond respond) {
    {
      std::lock_guard lock(mutex);
      seen = request;
    }
    Response response = json_response(200, R"({"ok":true})", "/v1/things/{id}");
    response.headers.emplace_back("X-Reply", "yes");
    respond(std::move(response));
  });
  ASSERT_NE(server->port(), 0);

  Client client(server->port());
  auto reply = client.request(get("/v1/th%C3%ADngs/a%2Fb%20c?x=1+2&y=%26z%3D&x=3&flag&e=", "X-Custom-Thing: Value\r\n"));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body, R"({"ok":true})");
  EXPECT_EQ(reply->headers["content-type"], "application/json");
  EXPECT_EQ(reply->headers["server"], "statefold");
  EXPECT_EQ(reply->headers["x-reply"], "yes");

  std::lock_guard lock(mutex);
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->method, "GET");
  EXPECT_EQ(seen->path, "/v1/th\xC3\xADngs/a/b c");
  EXPECT_EQ(seen->query.size(), 4u);
  EXPECT_EQ(seen->query["x"], "3");  // last one wins
  EXPECT_EQ(seen->query["y"], "&z=");
  EXPECT_EQ(seen->query["flag"], "");
  EXPECT_EQ(seen->query["e"], "");
  EXPECT_EQ(seen->header("x-custom-thing"), "Value");
  EXPECT_EQ(seen->header("host"), "test");
  EXPECT_FALSE(seen->header("X-Custom-Thing"));  // names are lower-cased; lookups take lower-case names
  EXPECT_TRUE(seen->body.empty());
}

TEST(HttpServer, PostEchoesBody) {
  auto server = start(test_options(), [](Request request, Respond respond) {
    Response response;
    response.status = 201;
    response.content_type = "text/plain";
    response.body = request.method + " " + request.path + " " + request.query["q"] + " " + request.body;
    respond(std::move(response));
  });
  Client client(server->port());
  const std::string body = "hello {\"a\": 1}\r\n\0 world";
  auto reply = client.request(post("/echo?q=a+b%2Bc", body, "Content-Type: application/json\r\n"));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 201);
  EXPECT_EQ(reply->headers["content-type"], "text/plain");
  EXPECT_EQ(reply->body, "POST /echo a b+c " + body);

  // A larger body, delivered in chunked encoding.
  const std::string big(100'000, 'x');
  std::string chunked = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (std::size_t i = 0; i < big.size(); i += 30'000) {
    const std::size_t n = std::min<std::size_t>(30'000, big.size() - i);
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", n);
    chunked += size + big.substr(i, n) + "\r\n";
  }
  chunked += "0\r\n\r\n";
  reply = client.request(chunked);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->body, "POST /echo  " + big);
}

TEST(HttpServer, KeepAliveServesManyRequestsOnOneConnection) {
  std::atomic<int> calls{0};
  auto server = start(test_options(), [&](Request request, Respond respond) {
    ++calls;
    respond(json_response(200, request.query["i"]));
  });
  Client client(server->port());
  for (int i = 0; i < 10; ++i) {
    auto reply = client.request(i % 2 == 0 ? get("/n?i=" + std::to_string(i)) : post("/n?i=" + std::to_string(i), "b"));
    ASSERT_TRUE(reply) << i;
    EXPECT_EQ(reply->body, std::to_string(i));
    EXPECT_EQ(reply->version, "HTTP/1.1");
    EXPECT_NE(lower(reply->headers["connection"]), "close");
  }
  EXPECT_EQ(calls.load(), 10);

  // HTTP/1.0 keep-alive is explicit both ways.
  auto old = client.request("GET /n?i=ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->version, "HTTP/1.0");
  EXPECT_EQ(lower(old->headers["connection"]), "keep-alive");
  EXPECT_EQ(old->body, "ten");
  // Connection: close is honoured.
  auto reply = client.request(get("/n?i=last", "Connection: close\r\n"));
  ASSERT_TRUE(reply);
  EXPECT_EQ(lower(reply->headers["connection"]), "close");
  EXPECT_TRUE(client.closed_by_server());
}

TEST(HttpServer, RespondsLaterFromAnotherThread) {
  Later later;
  auto server = start(test_options(), [&](Request request, Respond respond) {
    later.after(50ms, std::move(respond), json_response(202, "later:" + request.path));
  });
  Client client(server->port());
  for (int i = 0; i < 3; ++i) {  // and the connection stays usable
    auto reply = client.request(get("/p" + std::to_string(i)));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->status, 202);
    EXPECT_EQ(reply->body, "later:/p" + std::to_string(i));
  }
  later.join();
}

TEST(HttpServer, SecondRespondIsIgnored) {
  auto server = start(test_options(), [](Request request, Respond respond) {
    Respond copy = respond;
    respond(json_response(200, "first:" + request.path));
    copy(json_response(500, "second"));
  });
  Client client(server->port());
  for (int i = 0; i < 3; ++i) {
    auto reply = client.request(get("/r" + std::to_string(i)));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->status, 200);
    EXPECT_EQ(reply->body, "first:/r" + std::to_string(i));
  }
}

TEST(HttpServer, BodyOverTheLimitGets413WithoutTheHandler) {
  ServerOptions options = test_options();
  options.max_body_bytes = 1024;
  std::atomic<int> calls{0};
  auto server = start(options, [&](Request, Respond respond) {
    ++calls;
    respond(json_response(200, "{}"));
  });
  {
    Client client(server->port());
    auto reply = client.request(post("/big", std::string(1024, 'a')));  // exactly the limit is fine
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->status, 200);
  }
  {
    Client client(server->port());
    auto reply = client.request(post("/big", std::string(4096, 'a')));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->status, 413);
    EXPECT_EQ(reply->body, R"({"error":"request body larger than 1024 bytes"})");
    EXPECT_EQ(reply->headers["content-type"], "application/json");
    EXPECT_EQ(lower(reply->headers["connection"]), "close");
    EXPECT_TRUE(client.closed_by_server());
  }
  {
    // Chunked: the limit is found while reading the body.
    Client client(server->port());
    std::string chunked = "POST /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i) chunked += "200\r\n" + std::string(512, 'b') + "\r\n";
    chunked += "0\r\n\r\n";
    auto reply = client.request(chunked);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->status, 413);
    EXPECT_TRUE(client.closed_by_server());
  }
  {
    // A large body the client keeps sending after the 413: the response still arrives intact.
    Client client(server->port());
    auto reply = client.request(post("/big", std::string(3 << 20, 'c')));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->status, 413);
  }
  EXPECT_EQ(calls.load(), 1);
}

TEST(HttpServer, MalformedRequestsGet400) {
  std::atomic<int> calls{0};
  auto server = start(test_options(), [&](Request, Respond respond) {
    ++calls;
    respond(json_response(200, "{}"));
  });
  const std::vector<std::string> bad = {
      "GARBAGE\r\n\r\n",
      "GET /x HTTP/9.9.9\r\n\r\n",
      "GET /x HTTP/1.1\r\nBad Header\r\n\r\n",
      "POST /x HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
      get("/a%00b"),           // NUL in the path
      get("/a%zzb"),           // malformed escape
      get("/a%2"),             // truncated escape
      get("/x?k=%"),           // malformed escape in the query
      get("http://host/abs"),  // not origin-form
  };
  for (const auto& raw : bad) {
    Client client(server->port());
    auto reply = client.request(raw);
    ASSERT_TRUE(reply) << raw;
    EXPECT_EQ(reply->status, 400) << raw;
    EXPECT_NE(reply->body.find("\"error\""), std::string::npos) << raw;
    EXPECT_TRUE(client.closed_by_server()) << raw;
  }
  EXPECT_EQ(calls.load(), 0);

  // Headers over the header limit: 431.
  Client client(server->port());
  auto reply = client.request(get("/x", "X-Big: " + std::string(20'000, 'h') + "\r\n"));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 431);

  // And the server still works.
  Client good(server->port());
  reply = good.request(get("/fine"));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
}

TEST(HttpServer, ExpectContinue) {
  auto server = start(test_options(), [](Request request, Respond respond) {
    respond(json_response(200, request.body));
  });
  Client client(server->port());
  ASSERT_TRUE(client.send("POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  auto interim = client.read();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  auto reply = client.request("hello");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body, "hello");
}

TEST(HttpServer, HundredConnectionsTwentyRequestsEach) {
  ServerOptions options = test_options();
  auto server = start(options, [](Request request, Respond respond) {
    respond(json_response(200, request.query["c"] + "/" + request.query["i"] + "/" + request.body));
  });
  constexpr int kConnections = 100;
  constexpr int kRequests = 20;
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kConnections; ++c) {
    clients.emplace_back([&, c] {
      Client client(server->port());
      for (int i = 0; i < kRequests; ++i) {
        const std::string query = "/x?c=" + std::to_string(c) + "&i=" + std::to_string(i);
        const std::string body = i % 2 == 0 ? "" : "payload-" + std::to_string(c * 1000 + i);
        auto reply = client.request(i % 2 == 0 ? get(query) : post(query, body));
        if (reply && reply->status == 200 && reply->body == std::to_string(c) + "/" + std::to_string(i) + "/" + body) {
          ++ok;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), kConnections * kRequests);
}

TEST(HttpServer, ObserverSeesEveryAnsweredRequest) {
  struct Seen {
    std::string method, path, route;
    int status;
    std::chrono::nanoseconds latency;
    bool body_empty;
  };
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<Seen> seen;
  Later later;
  auto server = start(
      test_options(),
      [&](Request request, Respond respond) {
        if (request.path == "/slow") {
          later.after(30ms, std::move(respond), json_response(200, "{}", "/slow"));
        } else {
          respond(error_response(404, "no such thing", ""));
        }
      },
      [&](const Request& request, const Response& response, std::chrono::nanoseconds latency) {
        std::lock_guard lock(mutex);
        seen.push_back({request.method, request.path, response.route, response.status, latency, request.body.empty()});
        cv.notify_all();
      });
  Client client(server->port());
  ASSERT_TRUE(client.request(post("/slow", "body")));
  ASSERT_TRUE(client.request(get("/missing")));
  Client bad(server->port());
  ASSERT_TRUE(bad.request("BROKEN\r\n\r\n"));
  ASSERT_TRUE(bad.closed_by_server());

  later.join();
  // The observer runs once the response is written, which may be just after the client has read it.
  std::unique_lock lock(mutex);
  ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return seen.size() >= 3; }));
  ASSERT_EQ(seen.size(), 3u);
  std::sort(seen.begin() + 1, seen.end(), [](const Seen& a, const Seen& b) { return a.status > b.status; });
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].path, "/slow");
  EXPECT_EQ(seen[0].route, "/slow");
  EXPECT_EQ(seen[0].status, 200);
  EXPECT_GE(seen[0].latency, 30ms);
  EXPECT_TRUE(seen[0].body_empty);
  EXPECT_EQ(seen[1].path, "/missing");
  EXPECT_EQ(seen[1].route, "");
  EXPECT_EQ(seen[1].status, 404);
  EXPECT_GT(seen[1].latency.count(), 0);
  EXPECT_EQ(seen[2].status, 400);
}

TEST(HttpServer, StopWaitsForAPendingHandler) {
  Pending pending;
  auto server = start(test_options(), [&](Request, Respond respond) { pending.add(std::move(respond)); });
  Client client(server->port());
  ASSERT_TRUE(client.send(get("/wait")));
  Client idle(server->port());  // an idle keep-alive connection does not hold stop() up

  Respond respond = pending.wait_one();
  std::thread answer([respond] {
    std::this_thread::sleep_for(200ms);
    respond(json_response(200, "answered"));
  });
  const auto begin = std::chrono::steady_clock::now();
  server->stop(10s);
  const auto took = std::chrono::steady_clock::now() - begin;
  answer.join();
  EXPECT_GE(took, 100ms);
  EXPECT_LT(took, 8s);

  auto reply = client.read();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->body, "answered");
  EXPECT_EQ(lower(reply->headers["connection"]), "close");
  EXPECT_TRUE(idle.closed_by_server());
  server->stop();  // idempotent
}

TEST(HttpServer, StopGivesUpAfterGraceAndLateRespondIsHarmless) {
  Pending pending;
  auto server = start(test_options(), [&](Request, Respond respond) { pending.add(std::move(respond)); });
  Client client(server->port());
  ASSERT_TRUE(client.send(get("/never")));
  Respond respond = pending.wait_one();
  const auto begin = std::chrono::steady_clock::now();
  server->stop(100ms);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 5s);
  EXPECT_FALSE(client.read());  // closed without an answer
  respond(json_response(200, "too late"));  // server stopped
  server.reset();
  respond(json_response(200, "far too late"));  // server gone
}

TEST(HttpServer, SurvivesAClientThatLeavesBeforeTheResponse) {
  Pending pending;
  auto server = start(test_options(), [&](Request request, Respond respond) {
    if (request.path == "/hold") {
      pending.add(std::move(respond));
    } else {
      respond(json_response(200, "alive"));
    }
  });
  {
    Client client(server->port());
    ASSERT_TRUE(client.send(get("/hold")));
    Respond respond = pending.wait_one();
    client.close();
    std::this_thread::sleep_for(20ms);
    respond(json_response(200, "nobody listens"));
  }
  {
    // Leaves with a large response being written.
    Client client(server->port());
    ASSERT_TRUE(client.send(get("/hold")));
    Respond respond = pending.wait_one();
    client.close();
    respond(json_response(200, std::string(8 << 20, 'z')));
  }
  {
    // Leaves halfway through a request.
    Client client(server->port());
    ASSERT_TRUE(client.send("POST /x HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly a part"));
  }
  Client client(server->port());
  auto reply = client.request(get("/ok"));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->body, "alive");
}

TEST(HttpServer, HandlerThatNeverAnswersTimesOut) {
  ServerOptions options = test_options();
  options.handler_timeout = 1s;
  Pending pending;
  auto server = start(options, [&](Request, Respond respond) { pending.add(std::move(respond)); });
  Client client(server->port());
  auto reply = client.request(get("/never"));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 503);
  EXPECT_TRUE(client.closed_by_server());
  pending.wait_one()(json_response(200, "late"));  // ignored
}

TEST(HttpServer, IdleConnectionsAreClosed) {
  ServerOptions options = test_options();
  options.idle_timeout = 1s;
  auto server = start(options, [](Request, Respond respond) { respond(json_response(200, "{}")); });
  Client client(server->port());
  ASSERT_TRUE(client.request(get("/a")));
  EXPECT_TRUE(client.closed_by_server());  // after about a second
}

// Issue 9, defect 5: clients cannot take every descriptor. At max_connections a new client is still served when
// some connection only waits for its next request: the one idle longest is closed to make room. When every
// connection has a request under way, a new one gets 503 with Retry-After and is closed at once.
TEST(HttpServer, AtTheLimitTheLongestIdleConnectionMakesRoomForANewClient) {
  ServerOptions options = test_options();
  options.max_connections = 2;
  auto server = start(options, [](Request, Respond respond) { respond(json_response(200, R"({"ok":true})")); });
  Client oldest(server->port());
  ASSERT_TRUE(oldest.request(get("/a")));
  std::this_thread::sleep_for(20ms);
  Client newer(server->port());
  ASSERT_TRUE(newer.request(get("/b")));

  Client third(server->port());
  auto served = third.request(get("/c"));
  ASSERT_TRUE(served) << "the third connection got no answer";
  EXPECT_EQ(served->status, 200);
  EXPECT_TRUE(oldest.closed_by_server()) << "the connection idle longest was kept";
  auto still = newer.request(get("/d"));
  ASSERT_TRUE(still) << "a connection idle for less time was closed instead";
  EXPECT_EQ(still->status, 200);
}

TEST(HttpServer, ConnectionsBeyondTheLimitGet503WhenNoneIsIdle) {
  ServerOptions options = test_options();
  options.max_connections = 2;
  Pending pending;
  auto server = start(options, [&](Request, Respond respond) { pending.add(std::move(respond)); });
  auto first = std::make_unique<Client>(server->port());
  Client second(server->port());
  ASSERT_TRUE(first->send(get("/a")));
  ASSERT_TRUE(second.send(get("/b")));
  Respond first_respond = pending.wait_one();
  Respond second_respond = pending.wait_one();
  {
    Client third(server->port());
    auto refused = third.read();
    ASSERT_TRUE(refused) << "the third connection got no answer";
    EXPECT_EQ(refused->status, 503);
    EXPECT_EQ(refused->headers["retry-after"], "1");
    EXPECT_TRUE(third.closed_by_server());
  }
  first_respond(json_response(200, R"({"ok":true})"));
  second_respond(json_response(200, R"({"ok":true})"));
  ASSERT_TRUE(first->read());
  first.reset();  // one leaves: a new connection is served again
  std::thread answer([&] { pending.wait_one()(json_response(200, R"({"ok":true})")); });
  Client again(server->port());
  auto served = again.request(get("/c"));
  answer.join();
  ASSERT_TRUE(served);
  EXPECT_EQ(served->status, 200);
}

TEST(HttpServer, HandlerExceptionsBecome500) {
  auto server = start(test_options(), [](Request request, Respond respond) {
    if (request.path == "/throw") throw std::runtime_error("boom");
    respond(json_response(200, "{}"));
  });
  Client client(server->port());
  auto reply = client.request(get("/throw"));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 500);
  reply = client.request(get("/fine"));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
}

TEST(HttpServer, HeadAndNoContent) {
  auto server = start(test_options(), [](Request request, Respond respond) {
    if (request.path == "/empty") return respond(json_response(204, ""));
    respond(json_response(200, "0123456789"));
  });
  Client client(server->port());
  ASSERT_TRUE(client.send("HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto head = client.read(/*no_body=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->headers["content-length"], "10");
  auto empty = client.request(get("/empty"));  // were a body sent after the HEAD answer, this would misparse
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->status, 204);
  EXPECT_EQ(empty->headers.count("content-length"), 0u);
  auto full = client.request(get("/x"));
  ASSERT_TRUE(full);
  EXPECT_EQ(full->body, "0123456789");
}

TEST(HttpServer, StartFailsCleanly) {
  auto first = start(test_options(), [](Request, Respond respond) { respond(json_response(200, "{}")); });
  ServerOptions options = test_options();
  options.port = first->port();
  auto taken = Server::start(options, [](Request, Respond respond) { respond(json_response(200, "{}")); });
  EXPECT_FALSE(taken.ok());
  options.address = "not an address";
  EXPECT_FALSE(Server::start(options, [](Request, Respond) {}).ok());
  EXPECT_FALSE(Server::start(test_options(), Handler{}).ok());
}

// A chunked body -> its payload; nullopt when the framing is wrong or the last chunk is missing.
std::optional<std::string> dechunk(std::string raw) {
  std::string out;
  while (true) {
    const std::size_t eol = raw.find("\r\n");
    if (eol == std::string::npos) return std::nullopt;
    const std::size_t size = std::stoul(raw.substr(0, eol), nullptr, 16);
    if (size == 0) return raw.substr(eol + 2) == "\r\n" ? std::optional(out) : std::nullopt;
    if (raw.size() < eol + 2 + size + 2 || raw.compare(eol + 2 + size, 2, "\r\n") != 0) return std::nullopt;
    out += raw.substr(eol + 2, size);
    raw.erase(0, eol + 2 + size + 2);
  }
}

TEST(HttpServer, AStreamedBodyIsSentPieceByPieceAsItIsWritten) {
  std::mutex mutex;
  std::condition_variable cv;
  bool client_saw_first = false;
  std::thread producer;
  auto server = start(test_options(), [&](Request, Respond respond) {
    auto stream = BodyStream::make();
    Response head{200, "", "text/event-stream", {{"cache-control", "no-cache"}}, "/stream", stream};
    respond(std::move(head));
    producer = std::thread([&, stream] {
      EXPECT_TRUE(stream->write("data: one\n\n"));
      // The second piece only once the client has the first: a server that buffered the body would never send it.
      std::unique_lock lock(mutex);
      cv.wait_for(lock, 10s, [&] { return client_saw_first; });
      EXPECT_TRUE(stream->write("data: two\n\n"));
      stream->close();
      EXPECT_FALSE(stream->write("late")) << "nothing after close";
    });
  });
  Client client(server->port());
  ASSERT_TRUE(client.send(get("/stream")));
  auto head = client.read(/*no_body=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->headers["transfer-encoding"], "chunked");
  EXPECT_EQ(head->headers["content-type"], "text/event-stream");
  EXPECT_EQ(head->headers["cache-control"], "no-cache");
  EXPECT_NE(client.read_until("data: one").find("data: one"), std::string::npos);
  {
    std::lock_guard lock(mutex);
    client_saw_first = true;
  }
  cv.notify_all();
  auto body = dechunk(client.read_to_end());
  producer.join();
  ASSERT_TRUE(body);
  EXPECT_EQ(*body, "data: one\n\ndata: two\n\n");
}

TEST(HttpServer, AStreamWhoseClientLeftIsAbandoned) {
  std::promise<std::shared_ptr<BodyStream>> made;
  auto server = start(test_options(), [&](Request, Respond respond) {
    auto stream = BodyStream::make();
    respond(Response{200, "", "text/event-stream", {}, "/stream", stream});
    made.set_value(stream);
  });
  {
    Client client(server->port());
    ASSERT_TRUE(client.send(get("/stream")));
    ASSERT_TRUE(client.read(/*no_body=*/true));
  }  // the client hangs up
  auto stream = made.get_future().get();
  bool stopped = false;
  for (int i = 0; i < 500 && !stopped; ++i) {
    stopped = !stream->write(std::string(64 * 1024, 'x'));
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(stopped) << "write() kept accepting pieces for a client that is gone";
  EXPECT_TRUE(stream->abandoned());
}

TEST(HttpHelpers, ErrorResponseEscapesJson) {
  EXPECT_EQ(error_response(404, "no such session").body, R"({"error":"no such session"})");
  EXPECT_EQ(error_response(400, "say \"hi\"\\\n\t\x01").body, R"({"error":"say \"hi\"\\\n\t\u0001"})");
  EXPECT_EQ(error_response(400, "caf\xC3\xA9").body, "{\"error\":\"caf\xC3\xA9\"}");
  EXPECT_EQ(error_response(400, "bad \xFF\xC3").body, R"({"error":"bad \ufffd\ufffd"})");
  EXPECT_EQ(error_response(400, std::string_view("a\0b", 3)).body, R"({"error":"a\u0000b"})");
  const Response r = error_response(409, "x", "/v1/sessions/{id}");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.route, "/v1/sessions/{id}");
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(json_response(201, "{}").status, 201);
}

// The bytes-in door to the server's reading rules (the HTTP request fuzzer's entry point) answers as the server does.
TEST(ParseRequest, ReadsARequestOrGivesTheServersOwnAnswer) {
  const std::string first =
      "POST /v1/sessions/acme%2Fx/events?wait=true&a=%41 HTTP/1.1\r\nHost: h\r\nX-Session-Id: s\r\n"
      "Content-Length: 2\r\n\r\n[]";
  auto ok = parse_request(first + "GET / HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(ok.request) << ok.status << " " << ok.error;
  EXPECT_EQ(ok.request->method, "POST");
  EXPECT_EQ(ok.request->raw_path, "/v1/sessions/acme%2Fx/events");
  EXPECT_EQ(ok.request->path, "/v1/sessions/acme/x/events");
  EXPECT_EQ(ok.request->query.at("a"), "A");
  EXPECT_EQ(ok.request->header("x-session-id"), "s");
  EXPECT_EQ(ok.request->body, "[]");
  EXPECT_EQ(ok.consumed, first.size()) << "stops at the end of the first request";

  struct Case {
    std::string bytes;
    int status;
    const char* says;
  };
  const Case cases[] = {
      {"GET /%zz HTTP/1.1\r\n\r\n", 400, "percent-encoding"},
      {"GET /a%00b HTTP/1.1\r\n\r\n", 400, "NUL"},
      {"GET http://x/ HTTP/1.1\r\n\r\n", 400, "must start with '/'"},
      {"BLAH\r\n\r\n", 400, "malformed request"},
      {"POST / HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", 413, "larger than 1024"},
      {"GET / HTTP/1.1\r\nX: " + std::string(20000, 'a') + "\r\n\r\n", 431, "header larger"},
      {"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", 0, ""},  // the client went away mid-body
      {"GET / HT", 0, ""},
  };
  for (const auto& c : cases) {
    auto parsed = parse_request(c.bytes, 1024);
    EXPECT_FALSE(parsed.request) << c.says;
    EXPECT_EQ(parsed.status, c.status) << c.says << ": " << parsed.error;
    EXPECT_NE(parsed.error.find(c.says), std::string::npos) << parsed.error;
  }
}

}  // namespace
}  // namespace statefold::http
