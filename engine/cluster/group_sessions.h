// Session listings across a group (spec 7: any instance answers). Each session is folded by the owner of its
// partition, so a listing (GET /v1/sessions) is gathered: this instance lists the partitions it owns, and asks every
// other owner for its partitions' page, with a query signed under the group's shared id secret. The pages merge in
// id order into one. A partition whose owner is not known, is still catching up, or did not answer makes the
// listing fail (the caller answers 503 and the client retries): never a listing that silently lacks sessions.
//
//   cluster::GroupSessions sessions(*cluster, {.secret = id_secret, .partitions = 8, .local = ...});
//   sessions.list({"team-a-", "", 100}, [respond](base::Result<cluster::SessionsPage> page) { ... });
//   ... in the HTTP handler, before authentication: if (path == cluster::kPeerSessionsPath) respond(sessions.answer(req));
//
// Thread-safety: every method from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/result.h"
#include "engine/cluster/cluster.h"
#include "engine/http/http.h"

namespace statefold::cluster {

// Where members ask each other for a page of their sessions (POST, JSON body, signed): not a client route.
inline constexpr std::string_view kPeerSessionsPath = "/v1/internal/sessions";

struct SessionsQuery {
  std::string prefix;  // session ids starting with this (the caller's namespace already applied)
  std::string cursor;  // strictly after this id; empty: from the first
  std::uint64_t limit = 100;
};

struct SessionRow {
  std::string session_id;
  std::uint64_t version = 0;
  std::string status;  // open, closed, implicit
};

struct SessionsPage {
  std::vector<SessionRow> sessions;  // in id order, at most the query's limit
  bool more = false;                 // sessions follow the last one
  std::vector<std::int32_t> not_here;  // asked-for partitions the answering instance cannot list now
};

// Pages of disjoint or overlapping partition sets merged into one page of `limit`: in id order, a session listed
// twice (a partition in two stores while it moves) once, at its highest version. Pure.
SessionsPage merge_pages(std::vector<SessionsPage> pages, std::uint64_t limit);
// {"sessions":[{"session_id","version","status"}],"next_cursor"} (next_cursor null after the last page), as
// GET /v1/sessions answers.
std::string sessions_json(const SessionsPage& page);

struct GroupSessionsOptions {
  std::string secret;   // the group's shared id secret (serve --id-secret-file)
  int partitions = 0;   // the events topic's partition count
  // A page of the sessions of `partitions` in this instance's store; partitions it does not own, or is still
  // catching up on, go to not_here.
  std::function<base::Result<SessionsPage>(const SessionsQuery&, const std::vector<std::int32_t>& partitions)> local;
  std::chrono::milliseconds timeout{5000};  // how long a member's answer may take
  std::chrono::seconds clock_skew{60};      // a signed query older or newer than this is refused (replays)
};

class GroupSessions {
 public:
  // `cluster` must outlive this.
  GroupSessions(const Cluster& cluster, GroupSessionsOptions options);
  ~GroupSessions();
  GroupSessions(const GroupSessions&) = delete;
  GroupSessions& operator=(const GroupSessions&) = delete;

  // One page over every partition of the topic, given to `done` on this thread (no member to ask) or on the thread
  // of the last answer. An error names the partitions that could not be listed and why.
  void list(const SessionsQuery& query, std::function<void(base::Result<SessionsPage>)> done) const;
  // Answers a member's query (kPeerSessionsPath) from this store: {"instance","sessions","more","not_here"}; 401
  // when its signature is missing, wrong or too old, 400 when its body is not a query.
  http::Response answer(const http::Request& request) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> _impl;  // shared with the asks in flight, which may outlive this
};

}  // namespace statefold::cluster
