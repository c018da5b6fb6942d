// gateway: the OpenAI-compatible stateful endpoints on `serve`'s HTTP server (spec section 6, docs/gateway.md).
// A client sends only its new input; the gateway appends it to the session's log, materialises the whole context at
// the new version, calls the stateless upstream the routing policy allows, appends the reply and an inference
// receipt, and answers in the client's API, streaming too.
//
//   POST /v1/chat/completions            session from X-Session-Id or metadata.session_id
//   POST /v1/responses                   previous_response_id or conversation; GET /v1/responses/{id}
//   GET  /v1/sessions/{id}/context       what a call would send: sections, token counts, the body
//
// The gateway reads state through a StateSource and writes events through an append::Sink: in serve, the engine's
// store and the Kafka appender; in tests, an in-memory store and an in-process fold.
//
//   gateway::Gateway gateway(options, state_source, appender);
//   if (gateway::Gateway::handles(request)) gateway.handle(std::move(request), caller, std::move(respond));
//
// Thread-safety: handle() from any thread (the HTTP server's I/O threads); the blocking work of a turn (rendering,
// the upstream call, waiting for appends to fold) runs on the gateway's own worker threads. One turn per session at
// a time: a second concurrent turn on a session gets 409.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "connectors/upstream/routing.h"
#include "engine/append/append.h"
#include "engine/auth/auth.h"
#include "engine/fold/kv.h"
#include "engine/http/http.h"
#include "engine/runtime/ownership.h"

namespace statefold::gateway {

// The folded session state the gateway reads. Thread-safety: both from any thread.
class StateSource {
 public:
  virtual ~StateSource() = default;
  // A consistent view of the state; release it soon (a store snapshot holds old versions from compaction).
  virtual std::unique_ptr<fold::Reader> snapshot() const = 0;
  // Whether this instance folds the session (a turn elsewhere is refused: 421 or 503).
  virtual runtime::Ownership ownership(std::string_view session_id) const = 0;
};

struct Options {
  upstream::Router router;
  std::size_t workers = 16;  // concurrent turns (each blocks a worker while the upstream answers)
  // Told about every turn that called (or tried) an upstream, when it is answered: the endpoint, the status the
  // client got, the upstream's time and the rest (metrics::Metrics::observe_gateway_turn).
  std::function<void(std::string_view endpoint, int status, std::chrono::nanoseconds upstream,
                     std::chrono::nanoseconds overhead)>
      on_turn;
  // Sessions' contexts kept between turns (messages and their token counts), so a long session is not read and
  // counted again each turn: about this many bytes, least recently used first out.
  std::size_t context_cache_bytes = 64 << 20;
  // How long a turn's reply and receipt are sent again while the log does not take them (a broker's restart)
  // before the client gets 503 rather than a reply its session would not have.
  std::chrono::milliseconds record_patience{30000};
  // Seals the session ids inside response, conversation and item ids (AES-256-SIV): instances that share it read
  // each other's ids, and ids outlive restarts and store rebuilds as long as it stays. At least 16 bytes; empty:
  // a random one for this process only.
  std::string id_secret;
  // What a key with a token budget has used of it. Empty: the receipts in this instance's store (one instance).
  auth::TokensUsed tokens_used;
};

class Gateway {
 public:
  // `state` and `events` must outlive the gateway.
  Gateway(Options options, const StateSource& state, append::Sink& events);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // True for the gateway's routes; the caller hands those requests to handle().
  static bool handles(const http::Request& request);
  // `caller` has been admitted for the route (auth::Gate): its tenant decides which sessions and responses exist
  // for it and which upstream routes its turns take; a turn keeps it (and its concurrent-turn slot) until it ends.
  void handle(http::Request request, auth::Principal caller, http::Respond respond);

  // Finishes the turns in hand, refuses new ones (503).
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> _impl;
};

// The default routing when the configuration has no [upstream] table: one offline endpoint, "echo".
upstream::RoutingConfig offline_routing();

}  // namespace statefold::gateway
