#include "engine/cluster/group_sessions.h"

#include <boost/json.hpp>

#include <algorithm>
#include <map>

#include "engine/base/json_read.h"
#include "engine/base/text.h"
#include "engine/cluster/owner_queries.h"
#include "engine/cluster/peer_signing.h"

namespace statefold::cluster {

namespace json = boost::json;

namespace {

constexpr std::uint64_t kMaxLimit = 10000;  // a member answers at most this many rows per query

json::array rows_json(const std::vector<SessionRow>& rows) {
  json::array out;
  out.reserve(rows.size());
  for (const SessionRow& r : rows) {
    out.push_back(json::object{{"session_id", r.session_id}, {"version", r.version}, {"status", r.status}});
  }
  return out;
}

std::string encode_query(const SessionsQuery& q, const std::vector<std::int32_t>& partitions) {
  json::array p(partitions.begin(), partitions.end());
  return json::serialize(
      json::object{{"prefix", q.prefix}, {"cursor", q.cursor}, {"limit", q.limit}, {"partitions", std::move(p)}});
}

base::Result<std::pair<SessionsQuery, std::vector<std::int32_t>>> decode_query(std::string_view body) {
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return base::make_error("the body is not a JSON object");
  const json::object& o = v.as_object();
  SessionsQuery q;
  for (auto [name, out] : {std::pair{"prefix", &q.prefix}, std::pair{"cursor", &q.cursor}}) {
    const json::value* field = base::json::member(o, name);
    if (field == nullptr || !field->is_string()) return base::make_error(std::string(name) + ": expected a string");
    *out = std::string(field->as_string());
  }
  const json::value* limit = base::json::member(o, "limit");
  boost::system::error_code as;
  if (limit == nullptr || !limit->is_number() || (q.limit = limit->to_number<std::uint64_t>(as), as) || q.limit == 0 ||
      q.limit > kMaxLimit) {
    return base::make_error("limit: expected 1.." + std::to_string(kMaxLimit));
  }
  const json::array* partitions = base::json::array_member(o, "partitions");
  if (partitions == nullptr) return base::make_error("partitions: expected an array");
  std::vector<std::int32_t> out;
  for (const json::value& p : *partitions) {
    const auto n = p.is_number() ? p.to_number<std::int32_t>(as) : -1;
    if (!p.is_number() || as || n < 0) return base::make_error("partitions: expected partition numbers");
    out.push_back(n);
  }
  return std::pair{std::move(q), std::move(out)};
}

std::optional<SessionsPage> decode_page(const http::Response& response) {
  if (response.status != 200 || response.stream) return std::nullopt;
  boost::system::error_code ec;
  const json::value v = json::parse(response.body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const json::object& o = v.as_object();
  const json::array* sessions = base::json::array_member(o, "sessions");
  const json::array* not_here = base::json::array_member(o, "not_here");
  const json::value* more = base::json::member(o, "more");
  if (sessions == nullptr || not_here == nullptr || more == nullptr || !more->is_bool()) return std::nullopt;
  SessionsPage page;
  page.more = more->as_bool();
  boost::system::error_code as;
  for (const json::value& s : *sessions) {
    if (!s.is_object()) return std::nullopt;
    const json::value* id = base::json::member(s.as_object(), "session_id");
    const json::value* version = base::json::member(s.as_object(), "version");
    const json::value* status = base::json::member(s.as_object(), "status");
    if (id == nullptr || !id->is_string() || version == nullptr || !version->is_number() || status == nullptr ||
        !status->is_string()) {
      return std::nullopt;
    }
    SessionRow row{std::string(id->as_string()), version->to_number<std::uint64_t>(as), std::string(status->as_string())};
    if (as) return std::nullopt;
    page.sessions.push_back(std::move(row));
  }
  for (const json::value& p : *not_here) {
    const auto n = p.is_number() ? p.to_number<std::int32_t>(as) : -1;
    if (!p.is_number() || as || n < 0) return std::nullopt;
    page.not_here.push_back(n);
  }
  return page;
}

http::Response refused(int status, std::string message) {
  return http::error_response(status, "peer sessions query: " + message, std::string(kPeerSessionsPath));
}

}  // namespace

SessionsPage merge_pages(std::vector<SessionsPage> pages, std::uint64_t limit) {
  std::map<std::string, SessionRow> by_id;
  SessionsPage out;
  for (SessionsPage& page : pages) {
    out.more = out.more || page.more;
    out.not_here.insert(out.not_here.end(), page.not_here.begin(), page.not_here.end());
    for (SessionRow& row : page.sessions) {
      auto [it, added] = by_id.try_emplace(row.session_id, row);
      if (!added && row.version > it->second.version) it->second = std::move(row);
    }
  }
  // Each page holds its instance's first `limit` after the cursor, so the first `limit` of the union are the
  // group's first `limit`.
  if (by_id.size() > limit) out.more = true;
  for (auto& [id, row] : by_id) {
    if (out.sessions.size() == limit) break;
    out.sessions.push_back(std::move(row));
  }
  std::sort(out.not_here.begin(), out.not_here.end());
  out.not_here.erase(std::unique(out.not_here.begin(), out.not_here.end()), out.not_here.end());
  return out;
}

std::string sessions_json(const SessionsPage& page) {
  json::object o;
  o["sessions"] = rows_json(page.sessions);
  // The cursor is the last one shown: the next page starts strictly after it.
  if (page.more && !page.sessions.empty()) {
    o["next_cursor"] = page.sessions.back().session_id;
  } else {
    o["next_cursor"] = nullptr;
  }
  return json::serialize(o);
}

struct GroupSessions::Impl {
  Impl(const Cluster& c, GroupSessionsOptions o)
      : cluster(c), options(std::move(o)), signer(options.secret, c.instance(), "sessions", options.clock_skew) {}

  const Cluster& cluster;
  const GroupSessionsOptions options;
  const PeerSigner signer;
};

GroupSessions::GroupSessions(const Cluster& cluster, GroupSessionsOptions options)
    : _impl(std::make_shared<Impl>(cluster, std::move(options))) {}

GroupSessions::~GroupSessions() = default;

void GroupSessions::list(const SessionsQuery& query, std::function<void(base::Result<SessionsPage>)> done) const {
  const OwnerQuery<SessionsPage> ask{
      .path = kPeerSessionsPath,
      .asked_for = "list them",
      .timeout = _impl->options.timeout,
      .encode = [&query](const std::vector<std::int32_t>& partitions) { return encode_query(query, partitions); },
      .decode = decode_page};
  query_owners<SessionsPage>(
      _impl->cluster, _impl->signer, _impl->options.partitions, ask,
      [this, &query](const std::vector<std::int32_t>& mine) { return _impl->options.local(query, mine); },
      [limit = query.limit](std::vector<SessionsPage> pages) { return merge_pages(std::move(pages), limit); },
      std::move(done));
}

http::Response GroupSessions::answer(const http::Request& request) const {
  if (auto refusal = _impl->signer.refusal(request)) return refused(refusal->first, std::move(refusal->second));
  auto query = decode_query(request.body);
  if (!query) return refused(400, query.error().message);
  auto page = _impl->options.local(query->first, query->second);
  if (!page) return refused(500, page.error().message);
  json::array not_here(page->not_here.begin(), page->not_here.end());
  return http::json_response(200,
                             json::serialize(json::object{{"instance", _impl->cluster.instance()},
                                                          {"sessions", rows_json(page->sessions)},
                                                          {"more", page->more},
                                                          {"not_here", std::move(not_here)}}),
                             std::string(kPeerSessionsPath));
}

}  // namespace statefold::cluster
