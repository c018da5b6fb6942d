#include <boost/json.hpp>

#include <iostream>

#include "commands.h"
#include "engine/http/http.h"

namespace statefold::cli {

Runner add_fork(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "fork", "Create a session whose state equals another's at a version, through a running serve's HTTP API "
              "(POST /v1/sessions/{id}/fork). The fork is written to the log as events: a SessionOpened naming the "
              "parent and version, then copies of the parent's events");
  struct Args {
    std::string http_address = "127.0.0.1:8080";
    std::string session;
    std::uint64_t version = 0;
    std::string new_session;
    std::string format = "text";
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--http-address", a->http_address, "serve's HTTP API (HOST:PORT)")->capture_default_str();
  cmd->add_option("--session", a->session, "The session to fork (the parent)")->required();
  cmd->add_option("--version", a->version, "The parent's version to fork at (default: its current version)");
  cmd->add_option("--new-session", a->new_session, "The fork's session id (default: PARENT-fork-<random>)");
  cmd->add_option("--format", a->format, "text or json")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  return [a]() {
    const auto address = parse_host_port(a->http_address);
    if (!address) {
      std::cerr << "statefold fork: --http-address: expected HOST:PORT, got \"" << a->http_address << "\"\n";
      return kUsage;
    }
    boost::json::object body;
    if (a->version > 0) body["version"] = a->version;
    if (!a->new_session.empty()) body["session_id"] = a->new_session;
    std::string target = "/v1/sessions/";
    for (unsigned char c : a->session) {
      // Percent-encode everything but unreserved characters: session ids are free-form UTF-8.
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
        target.push_back(static_cast<char>(c));
      } else {
        static const char* hex = "0123456789ABCDEF";
        target += {'%', hex[c >> 4], hex[c & 15]};
      }
    }
    target += "/fork";
    auto answer = http::call(address->first, address->second, "POST", target, boost::json::serialize(body));
    if (!answer) {
      std::cerr << "statefold fork: serve at " << a->http_address << ": " << answer.error().message << "\n";
      return kFailure;
    }
    boost::json::error_code ec;
    auto reply = boost::json::parse(answer->body, ec);
    if (answer->status != 201) {
      // serve answers errors in OpenAI's shape, {"error": {"message": ...}} (a string from older serves).
      const boost::json::value* error = !ec && reply.is_object() ? reply.as_object().if_contains("error") : nullptr;
      const boost::json::value* message =
          error != nullptr && error->is_object() ? error->as_object().if_contains("message") : error;
      const std::string why =
          message != nullptr && message->is_string() ? std::string(message->as_string()) : answer->body;
      std::cerr << "statefold fork: " << why << " (HTTP " << answer->status << ")\n";
      return answer->status == 404 ? kNotFound : (answer->status == 400 ? kUsage : kFailure);
    }
    if (a->format == "json" || ec || !reply.is_object()) {
      std::cout << answer->body << "\n";
    } else {
      const auto& r = reply.as_object();
      std::cout << "forked " << a->session << " at version " << r.at("parent").at("version") << " into "
                << r.at("session_id").as_string() << " (version " << r.at("version") << ", " << r.at("events")
                << " events)\n";
    }
    return kOk;
  };
}

}  // namespace statefold::cli
