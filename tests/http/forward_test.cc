// http::forward to an http::Server on 127.0.0.1, plain and over TLS: the request arrives as sent, the answer comes
// back whole, and over TLS the owner's certificate is checked (CA, the address it names) and a client certificate is
// shown when the owner asks for one. Certificates are made by the openssl CLI for each run.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/http/http.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace statefold::http {
namespace {

using namespace std::chrono_literals;

// An owner that answers every request with what it received.
Handler echo() {
  return [](Request request, Respond respond) {
    std::string seen = request.method + " " + request.raw_path + "?" + request.raw_query + " " + request.body;
    for (const auto& [name, value] : request.headers) {
      if (name == "x-forwarded-by") seen += " by=" + value;
    }
    respond(json_response(200, "\"" + seen + "\""));
  };
}

Response forwarded(const ForwardTarget& target, std::chrono::milliseconds timeout = 10s) {
  Request request;
  request.method = "POST";
  request.raw_path = "/v1/sessions/s/events";
  request.raw_query = "a=1";
  request.body = "hello";
  request.headers = {{"content-type", "application/json"}};
  std::promise<Response> answer;
  forward(std::move(request), target, {{"x-forwarded-by", "instance-a"}}, timeout,
          [&](Response r) { answer.set_value(std::move(r)); });
  auto future = answer.get_future();
  EXPECT_EQ(future.wait_for(30s), std::future_status::ready);
  return future.get();
}

TEST(Forward, PlainHttpCarriesTheRequestAndTheAnswer) {
  ServerOptions options;
  options.port = 0;
  auto server = Server::start(options, echo());
  ASSERT_TRUE(server) << server.error().message;
  const Response r = forwarded({"127.0.0.1", (*server)->port(), nullptr});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "\"POST /v1/sessions/s/events?a=1 hello by=instance-a\"");
}

TEST(Forward, NobodyListeningIs503WithRetryAfter) {
  ServerOptions options;
  options.port = 0;
  std::uint16_t port = 0;
  {
    auto server = Server::start(options, echo());
    ASSERT_TRUE(server);
    port = (*server)->port();
  }
  const Response r = forwarded({"127.0.0.1", port, nullptr});
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("cannot be reached"), std::string::npos) << r.body;
  bool retry_after = false;
  for (const auto& [name, value] : r.headers) retry_after = retry_after || name == "Retry-After";
  EXPECT_TRUE(retry_after);
}

// An owner that takes connections and never says a word (a stopped process, a wedged machine): the listen backlog
// accepts for it.
struct SilentOwner {
  SilentOwner() : listener(testing::listen_loopback(16)), port(listener.port) {}
  ~SilentOwner() { ::close(listener.fd); }
  const testing::Listener listener;
  const std::uint16_t port;
};

TEST(Forward, AnOwnerThatNeverAnswersIsGivenUpOnAfterTheTimeout) {
  SilentOwner owner;
  const auto start = std::chrono::steady_clock::now();
  const Response r = forwarded({"127.0.0.1", owner.port, nullptr}, 1s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(r.status, 502) << r.body;
  EXPECT_NE(r.body.find("failed before answering"), std::string::npos) << r.body;
}

TEST(Forward, AnOwnerThatNeverFinishesTheTlsHandshakeIsGivenUpOnAfterTheTimeout) {
  SilentOwner owner;
  auto tls = ClientTls::load({});
  ASSERT_TRUE(tls) << tls.error().message;
  const auto start = std::chrono::steady_clock::now();
  const Response r = forwarded({"127.0.0.1", owner.port, *tls}, 1s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("TLS handshake"), std::string::npos) << r.body;
}

// An event stream is relayed piece by piece: the owner's first event reaches the client while the owner still waits
// to send the second (which it sends only once the client has the first, or after 5 s).
TEST(Forward, AnEventStreamIsRelayedAsItComes) {
  std::promise<void> first_seen;
  auto seen = first_seen.get_future().share();
  ServerOptions options;
  options.port = 0;
  auto owner = Server::start(options, [seen](Request, Respond respond) {
    Response r;
    r.content_type = "text/event-stream";
    r.stream = BodyStream::make();
    respond(r);
    r.stream->write("data: first\n\n");
    std::thread([stream = r.stream, seen] {
      const bool in_time = seen.wait_for(5s) == std::future_status::ready;
      stream->write(in_time ? "data: second\n\n" : "data: late\n\n");
      stream->close();
    }).detach();
  });
  ASSERT_TRUE(owner) << owner.error().message;
  const std::uint16_t owner_port = (*owner)->port();
  auto front = Server::start(options, [owner_port](Request request, Respond respond) {
    forward(std::move(request), {"127.0.0.1", owner_port, nullptr}, {}, 10s, std::move(respond));
  });
  ASSERT_TRUE(front) << front.error().message;

  const int fd = testing::connect_loopback((*front)->port());
  ASSERT_GE(fd, 0) << std::strerror(errno);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string ask = "GET /v1/stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(fd, ask.data(), ask.size(), 0), static_cast<ssize_t>(ask.size()));
  std::string got;
  bool told = false;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
    if (!told && got.find("data: first") != std::string::npos) {
      first_seen.set_value();
      told = true;
    }
  }
  ::close(fd);
  EXPECT_TRUE(told) << got;
  EXPECT_NE(got.find("data: second"), std::string::npos) << got;
  EXPECT_EQ(got.find("data: late"), std::string::npos) << "the first event was held back until the owner went on";
}

// A CA, an owner certificate for 127.0.0.1 from it, a client certificate from it, and a second CA.
class ForwardTls : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!make_ca("ca") || !make_ca("other-ca") || !make_cert("owner", "subjectAltName=IP:127.0.0.1") ||
        !make_cert("elsewhere", "subjectAltName=IP:10.9.8.7") || !make_cert("peer", "extendedKeyUsage=clientAuth")) {
      GTEST_SKIP() << "the openssl CLI could not make certificates: " << _error;
    }
  }
  std::string file(const std::string& name) const { return _dir.path() + "/" + name; }

  std::unique_ptr<Server> owner(const std::string& cert, const std::string& client_ca = {}) {
    return owner_on(cert, 0, client_ca);
  }
  std::unique_ptr<Server> owner_on(const std::string& cert, std::uint16_t port, const std::string& client_ca = {}) {
    ServerOptions options;
    options.port = port;
    options.tls = TlsOptions{file(cert + ".pem"), file(cert + ".key"), client_ca.empty() ? "" : file(client_ca)};
    auto server = Server::start(options, echo());
    EXPECT_TRUE(server) << server.error().message;
    return server ? std::move(*server) : nullptr;
  }
  std::shared_ptr<const ClientTls> client(const std::string& ca, const std::string& cert = {}) {
    auto loaded = ClientTls::load({file(ca), cert.empty() ? "" : file(cert + ".pem"), cert.empty() ? "" : file(cert + ".key")});
    EXPECT_TRUE(loaded) << loaded.error().message;
    return loaded ? *loaded : nullptr;
  }

 private:
  bool openssl(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"openssl"};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto made = testing::run(argv, 60s);
    if (!made.status.exited_with(0)) _error += made.err;
    return made.status.exited_with(0);
  }
  bool make_ca(const std::string& name) {
    return openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days",
                    "2", "-subj", "/CN=forward test " + name, "-keyout", file(name + ".key"), "-out",
                    file(name + ".pem")});
  }
  bool make_cert(const std::string& name, const std::string& extension) {
    std::FILE* ext = std::fopen(file(name + ".ext").c_str(), "w");
    if (ext == nullptr) return false;
    std::fputs((extension + "\n").c_str(), ext);
    std::fclose(ext);
    return openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
                    "/CN=" + name, "-keyout", file(name + ".key"), "-out", file(name + ".csr")}) &&
           openssl({"x509", "-req", "-in", file(name + ".csr"), "-CA", file("ca.pem"), "-CAkey", file("ca.key"),
                    "-CAcreateserial", "-days", "2", "-extfile", file(name + ".ext"), "-out", file(name + ".pem")});
  }

  testing::TempDir _dir;
  std::string _error;
};

TEST_F(ForwardTls, AnOwnerWhoseCertificateChainsToTheCaAnswersOverTls) {
  auto server = owner("owner");
  ASSERT_TRUE(server);
  const Response r = forwarded({"127.0.0.1", server->port(), client("ca.pem")});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "\"POST /v1/sessions/s/events?a=1 hello by=instance-a\"");
}

TEST_F(ForwardTls, AnOwnerFromAnotherCaOrForAnotherAddressIsNotTalkedTo) {
  auto server = owner("owner");
  ASSERT_TRUE(server);
  const Response stranger = forwarded({"127.0.0.1", server->port(), client("other-ca.pem")});
  EXPECT_EQ(stranger.status, 503);
  EXPECT_NE(stranger.body.find("certificate verify failed"), std::string::npos) << stranger.body;

  auto misnamed = owner("elsewhere");  // from the CA, but for 10.9.8.7
  ASSERT_TRUE(misnamed);
  const Response r = forwarded({"127.0.0.1", misnamed->port(), client("ca.pem")});
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("certificate verify failed"), std::string::npos) << r.body;
}

TEST_F(ForwardTls, AnOwnerThatAsksForAClientCertificateGetsTheInstancesOwn) {
  auto server = owner("owner", "ca.pem");
  ASSERT_TRUE(server);
  const Response with = forwarded({"127.0.0.1", server->port(), client("ca.pem", "peer")});
  EXPECT_EQ(with.status, 200) << with.body;
  const Response without = forwarded({"127.0.0.1", server->port(), client("ca.pem")});
  // Refused in the handshake (TLS 1.2) or right after it (TLS 1.3): never handled.
  EXPECT_TRUE(without.status == 502 || without.status == 503) << without.status << " " << without.body;
}

TEST_F(ForwardTls, TheNextForwardToAnOwnerResumesItsTlsSession) {
  for (const std::string client_ca : {"", "ca.pem"}) {  // with and without mutual TLS
    SCOPED_TRACE(client_ca.empty() ? "server TLS" : "mutual TLS");
    auto server = owner("owner", client_ca);
    ASSERT_TRUE(server);
    auto tls = client("ca.pem", "peer");
    const std::size_t before = forwards_resumed();
    const Response first = forwarded({"127.0.0.1", server->port(), tls});
    EXPECT_EQ(first.status, 200) << first.body;
    EXPECT_EQ(forwards_resumed(), before) << "the first forward has no session to resume";
    for (int i = 0; i < 2; ++i) {
      const Response next = forwarded({"127.0.0.1", server->port(), tls});
      EXPECT_EQ(next.status, 200) << next.body;
      EXPECT_EQ(next.body, first.body);
    }
    EXPECT_EQ(forwards_resumed(), before + 2);
  }
}

TEST_F(ForwardTls, AKeptSessionNeverStandsInForTheCertificateOfWhoeverAnswersNext) {
  auto server = owner("owner");
  ASSERT_TRUE(server);
  const std::uint16_t port = server->port();
  auto tls = client("ca.pem");
  ASSERT_EQ(forwarded({"127.0.0.1", port, tls}).status, 200);
  server.reset();

  // Another server on the same address, with a certificate of another CA: the kept session is of no use to it, and
  // its certificate is checked as on a first forward.
  ServerOptions options;
  options.port = port;
  options.tls = TlsOptions{file("other-ca.pem"), file("other-ca.key"), ""};
  auto impostor = Server::start(options, echo());
  ASSERT_TRUE(impostor) << impostor.error().message;
  const std::size_t before = forwards_resumed();
  const Response r = forwarded({"127.0.0.1", port, tls});
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("certificate verify failed"), std::string::npos) << r.body;
  EXPECT_EQ(forwards_resumed(), before);
  impostor.value().reset();

  // The owner back, on a new process's keys: a full handshake, then resumption again.
  server = owner_on("owner", port);
  ASSERT_TRUE(server);
  EXPECT_EQ(forwarded({"127.0.0.1", port, tls}).status, 200);
  EXPECT_EQ(forwarded({"127.0.0.1", port, tls}).status, 200);
  EXPECT_EQ(forwards_resumed(), before + 1);
}

TEST_F(ForwardTls, UnusableFilesAreNamedWhenLoaded) {
  auto missing = ClientTls::load({file("nowhere.pem"), "", ""});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("nowhere.pem"), std::string::npos) << missing.error().message;
  auto mismatched = ClientTls::load({file("ca.pem"), file("peer.pem"), file("owner.key")});
  ASSERT_FALSE(mismatched);
  EXPECT_NE(mismatched.error().message.find("owner.key"), std::string::npos) << mismatched.error().message;
}

}  // namespace
}  // namespace statefold::http
