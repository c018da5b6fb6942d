#include "engine/cluster/group_usage_rows.h"

#include <boost/json.hpp>

#include <algorithm>
#include <map>
#include <tuple>

#include "engine/base/json_read.h"
#include "engine/base/text.h"
#include "engine/cluster/owner_queries.h"
#include "engine/cluster/peer_signing.h"

namespace statefold::cluster {

namespace json = boost::json;

namespace {

bool is_day(std::string_view d) {
  return d.size() == 10 && d[4] == '-' && d[7] == '-' &&
         std::all_of(d.begin(), d.end(), [](char c) { return (c >= '0' && c <= '9') || c == '-'; });
}

json::array rows_json(const std::vector<UsageRow>& rows) {
  json::array out;
  out.reserve(rows.size());
  for (const UsageRow& r : rows) {
    out.push_back(json::object{{"tenant", r.tenant},
                               {"day", r.day},
                               {"key", r.key},
                               {"model", r.model},
                               {"calls", r.calls},
                               {"failed", r.failed},
                               {"input_tokens", r.input_tokens},
                               {"output_tokens", r.output_tokens},
                               {"cached_tokens", r.cached_tokens}});
  }
  return out;
}

std::string encode_query(const UsageRowsQuery& q, const std::vector<std::int32_t>& partitions) {
  json::object o{{"from", q.from_day},
                 {"to", q.through_day},
                 {"partitions", json::array(partitions.begin(), partitions.end())}};
  if (q.tenant) {
    o["tenant"] = *q.tenant;
  } else {
    o["tenant"] = nullptr;
  }
  return json::serialize(o);
}

std::optional<std::vector<std::int32_t>> partition_list(const json::array& a) {
  std::vector<std::int32_t> out;
  boost::system::error_code as;
  for (const json::value& p : a) {
    const auto n = p.is_number() ? p.to_number<std::int32_t>(as) : -1;
    if (!p.is_number() || as || n < 0) return std::nullopt;
    out.push_back(n);
  }
  return out;
}

base::Result<std::pair<UsageRowsQuery, std::vector<std::int32_t>>> decode_query(std::string_view body) {
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return base::make_error("the body is not a JSON object");
  const json::object& o = v.as_object();
  UsageRowsQuery q;
  const json::value* tenant = base::json::member(o, "tenant");
  if (tenant == nullptr || !(tenant->is_string() || tenant->is_null())) {
    return base::make_error("tenant: expected a string or null");
  }
  if (tenant->is_string()) q.tenant = std::string(tenant->as_string());
  for (auto [name, out] : {std::pair{"from", &q.from_day}, std::pair{"to", &q.through_day}}) {
    const json::value* field = base::json::member(o, name);
    if (field == nullptr || !field->is_string() || !is_day(field->as_string())) {
      return base::make_error(std::string(name) + ": expected YYYY-MM-DD");
    }
    *out = std::string(field->as_string());
  }
  const json::array* partitions = base::json::array_member(o, "partitions");
  auto list = partitions == nullptr ? std::nullopt : partition_list(*partitions);
  if (!list) return base::make_error("partitions: expected an array of partition numbers");
  return std::pair{std::move(q), std::move(*list)};
}

std::optional<UsageRows> decode_rows(const http::Response& response) {
  if (response.status != 200 || response.stream) return std::nullopt;
  boost::system::error_code ec;
  const json::value v = json::parse(response.body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const json::array* rows = base::json::array_member(v.as_object(), "rows");
  const json::array* not_here = base::json::array_member(v.as_object(), "not_here");
  if (rows == nullptr || not_here == nullptr) return std::nullopt;
  UsageRows out;
  boost::system::error_code as;
  for (const json::value& r : *rows) {
    if (!r.is_object()) return std::nullopt;
    UsageRow row;
    for (auto [name, field] : {std::pair{"tenant", &row.tenant}, std::pair{"day", &row.day},
                               std::pair{"key", &row.key}, std::pair{"model", &row.model}}) {
      const json::value* value = base::json::member(r.as_object(), name);
      if (value == nullptr || !value->is_string()) return std::nullopt;
      *field = std::string(value->as_string());
    }
    for (auto [name, field] : {std::pair{"calls", &row.calls}, std::pair{"failed", &row.failed},
                               std::pair{"input_tokens", &row.input_tokens},
                               std::pair{"output_tokens", &row.output_tokens},
                               std::pair{"cached_tokens", &row.cached_tokens}}) {
      const json::value* value = base::json::member(r.as_object(), name);
      if (value == nullptr || !value->is_number()) return std::nullopt;
      *field = value->to_number<std::uint64_t>(as);
      if (as) return std::nullopt;
    }
    out.rows.push_back(std::move(row));
  }
  auto list = partition_list(*not_here);
  if (!list) return std::nullopt;
  out.not_here = std::move(*list);
  return out;
}

http::Response refused(int status, std::string message) {
  return http::error_response(status, "peer usage rows query: " + message, std::string(kPeerUsageRowsPath));
}

}  // namespace

UsageRows merge_usage_rows(std::vector<UsageRows> shares) {
  using Key = std::tuple<std::string, std::string, std::string, std::string>;
  std::map<Key, UsageRow> by_key;
  UsageRows out;
  for (UsageRows& share : shares) {
    out.not_here.insert(out.not_here.end(), share.not_here.begin(), share.not_here.end());
    for (UsageRow& row : share.rows) {
      auto [it, added] = by_key.try_emplace(Key{row.tenant, row.day, row.key, row.model}, row);
      if (added) continue;
      UsageRow& sum = it->second;
      sum.calls += row.calls;
      sum.failed += row.failed;
      sum.input_tokens += row.input_tokens;
      sum.output_tokens += row.output_tokens;
      sum.cached_tokens += row.cached_tokens;
    }
  }
  out.rows.reserve(by_key.size());
  for (auto& [key, row] : by_key) out.rows.push_back(std::move(row));
  std::sort(out.not_here.begin(), out.not_here.end());
  out.not_here.erase(std::unique(out.not_here.begin(), out.not_here.end()), out.not_here.end());
  return out;
}

struct GroupUsageRows::Impl {
  Impl(const Cluster& c, GroupUsageRowsOptions o)
      : cluster(c), options(std::move(o)), signer(options.secret, c.instance(), "usage-rows", options.clock_skew) {}

  const Cluster& cluster;
  const GroupUsageRowsOptions options;
  const PeerSigner signer;
};

GroupUsageRows::GroupUsageRows(const Cluster& cluster, GroupUsageRowsOptions options)
    : _impl(std::make_shared<Impl>(cluster, std::move(options))) {}

GroupUsageRows::~GroupUsageRows() = default;

void GroupUsageRows::report(const UsageRowsQuery& query, std::function<void(base::Result<UsageRows>)> done) const {
  const OwnerQuery<UsageRows> ask{
      .path = kPeerUsageRowsPath,
      .asked_for = "give their usage rows",
      .timeout = _impl->options.timeout,
      .encode = [&query](const std::vector<std::int32_t>& partitions) { return encode_query(query, partitions); },
      .decode = decode_rows};
  query_owners<UsageRows>(
      _impl->cluster, _impl->signer, _impl->options.partitions, ask,
      [this, &query](const std::vector<std::int32_t>& mine) { return _impl->options.local(query, mine); },
      merge_usage_rows, std::move(done));
}

http::Response GroupUsageRows::answer(const http::Request& request) const {
  if (auto refusal = _impl->signer.refusal(request)) return refused(refusal->first, std::move(refusal->second));
  auto query = decode_query(request.body);
  if (!query) return refused(400, query.error().message);
  auto rows = _impl->options.local(query->first, query->second);
  if (!rows) return refused(500, rows.error().message);
  return http::json_response(200,
                             json::serialize(json::object{{"instance", _impl->cluster.instance()},
                                                          {"rows", rows_json(rows->rows)},
                                                          {"not_here", json::array(rows->not_here.begin(),
                                                                                   rows->not_here.end())}}),
                             std::string(kPeerUsageRowsPath));
}

}  // namespace statefold::cluster
