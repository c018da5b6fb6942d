// api: the sessions HTTP API of `statefold serve` (docs/api.md): appends with read-your-writes and optimistic
// concurrency, session state, history and listing, plus /metrics, /healthz and /readyz.
//
//   api::Api api(options, engine, appender);   // appender: any append::Sink (append::KafkaAppender in serve)
//   http::Server::start(server_options, [&](http::Request r, http::Respond done) {
//     api.handle(std::move(r), caller, done);   // caller: the auth::Principal the request was admitted as
//   });
//
// Thread-safety: handle() from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "engine/append/append.h"
#include "engine/auth/auth.h"
#include "engine/http/http.h"
#include "engine/runtime/engine.h"

namespace statefold::api {

struct ApiOptions {
  std::int64_t ready_max_lag = 1000;            // /readyz: every assigned partition at most this far behind
  std::uint64_t max_events_per_append = 1000;
  std::uint64_t max_page = 1000;
  std::function<std::string()> scrape_metrics;  // /metrics body; empty: 404
  // What a key with a token budget has used of it (/v1/usage's "budget"). Empty: the receipts in this store.
  auth::TokensUsed tokens_used;
  // In a group: one page of GET /v1/sessions over every instance's partitions, as view::sessions_json's body,
  // given to `done` on any thread; an error when it cannot be had now (answered 503 with Retry-After). Empty: the
  // sessions in this store.
  std::function<void(std::string prefix, std::string cursor, std::uint64_t limit,
                     std::function<void(base::Result<std::string>)> done)>
      list_sessions;
  // In a group: GET /v1/usage's body (view::usage_json's, without "budget") over every instance's partitions, for
  // one tenant (or every tenant's, nullopt) from..through, given to `done` on any thread; an error when it cannot
  // be had now (answered 503 with Retry-After). Empty: the rows in this store.
  std::function<void(std::optional<std::string> tenant, std::string from_day, std::string through_day,
                     std::function<void(base::Result<std::string>)> done)>
      usage_report;
};

// An error answer in OpenAI's shape, {"error": {"message", "type", "param", "code"}}, the type following the status
// (401 authentication_error, 403 permission_error, 409 conflict, 429 rate_limit_error, 5xx server_error, else
// invalid_request_error): what every /v1 route outside the gateway answers, so OpenAI's SDKs keep the message.
http::Response error_response(int status, std::string_view message, std::string route = {}, std::string_view code = {});

class Api {
 public:
  Api(ApiOptions options, runtime::Engine& engine, append::Sink& appender);
  // `caller` has been admitted for the route (auth::Gate); here it decides which sessions exist: those of its
  // tenant (any other is 404, listings hold only its own), and erasures need its admin role.
  void handle(http::Request request, const auth::Principal& caller, http::Respond respond);

 private:
  // 421 (naming the partition) or 503 when this instance does not own the session's partition; nullopt when it does.
  std::optional<http::Response> check_owned(const std::string& session_id, const std::string& route);

  void append(const http::Request& request, const auth::Principal& caller, const std::string& session_id,
              http::Respond respond);
  void fork(const http::Request& request, const auth::Principal& caller, const std::string& parent,
            http::Respond respond);
  http::Response get_session(const http::Request& request, const std::string& session_id);
  http::Response get_history(const http::Request& request, const std::string& session_id);
  void list_sessions(const http::Request& request, const auth::Principal& caller, http::Respond respond);
  void usage(const http::Request& request, const auth::Principal& caller, http::Respond respond);
  http::Response ready();

  ApiOptions _options;
  runtime::Engine& _engine;
  append::Sink& _appender;
};

}  // namespace statefold::api
