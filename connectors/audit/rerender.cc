#include "connectors/audit/rerender.h"

#include <boost/json.hpp>

#include <algorithm>
#include <iterator>

#include "connectors/materialise/materialise.h"
#include "connectors/providers/provider.h"
#include "engine/fold/read.h"
#include "statefold/schema/events_generated.h"

namespace statefold::audit {

namespace json = boost::json;

namespace {

struct Receipt {
  std::uint64_t version = 0;
  std::uint64_t state_version = 0;
  std::string request_hash;
  std::string render;  // the RenderSpec as recorded; "" when not recorded
};

std::size_t common_prefix(std::string_view a, std::string_view b) {
  const auto [ia, ib] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  return static_cast<std::size_t>(ia - a.begin());
}

// Renders one turn and takes its figures; `previous_body` is the last body of the same rendering (prefix reuse).
base::Result<Rendering> render_turn(context::SessionState state, const materialise::RenderSpec& spec,
                                    std::string& previous_body) {
  std::string counted;
  auto rendered = materialise::render(state, spec, counted);
  if (!rendered) return rendered.error();
  const context::Context& c = rendered->context;
  Rendering r;
  r.hash = rendered->hash;
  r.bytes = rendered->body.size();
  r.tokens = c.total_tokens;
  r.history_messages = c.history.size();
  r.cut_messages = c.cut.messages;
  r.cut_tokens = c.cut.tokens;
  r.cut_first_version = c.cut.first_version;
  r.cut_last_version = c.cut.last_version;
  r.covered_by_summary = c.cut.covered_by_summary;
  r.memory_left_out = c.cut.memory_blocks;
  for (const auto& item : c.history) r.versions.push_back(item.message->version);
  std::sort(r.versions.begin(), r.versions.end());
  r.prefix_reused_bytes = common_prefix(previous_body, rendered->body);
  previous_body = std::move(rendered->body);
  return r;
}

std::vector<std::uint64_t> minus(const std::vector<std::uint64_t>& a, const std::vector<std::uint64_t>& b) {
  std::vector<std::uint64_t> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

// "3-7, 9": ascending versions as ranges.
std::string ranges(const std::vector<std::uint64_t>& versions) {
  std::string out;
  for (std::size_t i = 0; i < versions.size();) {
    std::size_t j = i;
    while (j + 1 < versions.size() && versions[j + 1] == versions[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += std::to_string(versions[i]);
    if (j > i) {
      out += '-';
      out += std::to_string(versions[j]);
    }
    i = j + 1;
  }
  return out.empty() ? "none" : out;
}

std::string percent(std::size_t part, std::size_t whole) {
  if (whole == 0) return "-";
  const std::size_t tenths = (part * 1000 + whole / 2) / whole;
  std::string out = std::to_string(tenths / 10);
  out += '.';
  out += std::to_string(tenths % 10);
  out += '%';
  return out;
}

json::object rendering_json(const Rendering& r) {
  json::array versions;
  for (auto v : r.versions) versions.push_back(v);
  json::array memory;
  for (const auto& m : r.memory_left_out) memory.push_back(json::string(m));
  return json::object{{"hash", r.hash},
                      {"bytes", r.bytes},
                      {"tokens", r.tokens},
                      {"history_messages", r.history_messages},
                      {"cut", json::object{{"messages", r.cut_messages},
                                           {"tokens", r.cut_tokens},
                                           {"first_version", r.cut_first_version},
                                           {"last_version", r.cut_last_version},
                                           {"covered_by_summary", r.covered_by_summary},
                                           {"memory_left_out", std::move(memory)}}},
                      {"prefix_reused_bytes", r.prefix_reused_bytes},
                      {"message_versions", std::move(versions)}};
}

std::string rendering_line(const Rendering& r) {
  std::string out = std::to_string(r.tokens) + " tokens, " + std::to_string(r.history_messages) + " messages";
  if (r.cut_messages > 0) {
    out += ", cut " + std::to_string(r.cut_messages) + " (" + std::to_string(r.cut_tokens) + " tokens, versions " +
           std::to_string(r.cut_first_version) + "-" + std::to_string(r.cut_last_version) + ")";
  }
  if (r.covered_by_summary > 0) out += ", " + std::to_string(r.covered_by_summary) + " under the summary";
  if (!r.memory_left_out.empty()) out += ", " + std::to_string(r.memory_left_out.size()) + " memory blocks left out";
  out += ", prefix reused " + percent(r.prefix_reused_bytes, r.bytes);
  return out;
}

}  // namespace

base::Result<std::optional<RerenderReport>> rerender_session(const fold::Reader& reader, std::string_view session_id,
                                                             const Counterfactual& counterfactual) {
  auto header = fold::read_header(reader, session_id);
  if (!header) return header.error();
  if (!*header) return std::optional<RerenderReport>();
  RerenderReport report;
  report.session_id = std::string(session_id);
  report.counterfactual = counterfactual;

  std::vector<Receipt> receipts;
  auto read = fold::visit_history(reader, session_id, {}, [&](const fold::HistoryRecord& r) {
    if (r.entry.payload_type() != static_cast<std::uint8_t>(schema::Payload::InferenceReceipt)) return true;
    Receipt receipt{r.version(), 0, {}, {}};
    if (const auto* p = r.event.payload_as_InferenceReceipt(); p != nullptr) {
      receipt.state_version = p->state_version();
      if (p->request_hash() != nullptr) receipt.request_hash = p->request_hash()->str();
      if (p->render() != nullptr) receipt.render = p->render()->str();
    }
    receipts.push_back(std::move(receipt));
    return true;
  });
  if (!read) return read.error();

  std::string previous_actual;
  std::string previous_counterfactual;
  for (const auto& receipt : receipts) {
    TurnRerender turn;
    turn.version = receipt.version;
    turn.state_version = receipt.state_version;
    turn.recorded_hash = receipt.request_hash;
    auto spec = receipt.render.empty()
                    ? base::Result<materialise::RenderSpec>(
                          base::make_error("the receipt does not record how its request was rendered"))
                    : materialise::RenderSpec::from_json(receipt.render);
    auto state = (*header)->erased ? base::Result<context::SessionState>(
                                         base::make_error("the session's content was erased"))
                                   : materialise::load_state(reader, session_id, receipt.state_version);
    if (!spec || !state) {
      turn.problem = "not re-renderable: " + (!spec ? spec.error().message : state.error().message);
      report.turns.push_back(std::move(turn));
      continue;
    }
    if (auto actual = render_turn(*state, *spec, previous_actual)) {
      turn.actual_matches = actual->hash == receipt.request_hash;
      turn.actual = std::move(*actual);
    } else {
      turn.problem = "the request as sent no longer renders: " + actual.error().message;
    }

    materialise::RenderSpec what_if = *spec;
    context::SessionState changed = std::move(*state);
    if (counterfactual.token_budget) changed.policy.token_budget = *counterfactual.token_budget;
    if (counterfactual.output_reserve) changed.policy.output_reserve = *counterfactual.output_reserve;
    if (counterfactual.cut_percent) changed.policy.cut_percent = *counterfactual.cut_percent;
    if (counterfactual.memory_percent) changed.policy.memory_percent = *counterfactual.memory_percent;
    if (counterfactual.provider && *counterfactual.provider != spec->provider) {
      what_if.provider = *counterfactual.provider;
      what_if.margin = providers::get(what_if.provider).token_margin();
      if (!what_if.extra.empty() && what_if.extra != "{}") {
        // The pass-through parameters (tools, response format...) are recorded in the first provider's shape.
        what_if.extra.clear();
        turn.note = "the request's parameters (tools and the like) are not carried over to another provider";
      }
    }
    if (auto rendered = render_turn(std::move(changed), what_if, previous_counterfactual)) {
      turn.counterfactual = std::move(*rendered);
    } else if (turn.problem.empty()) {
      turn.problem = "the counterfactual does not render: " + rendered.error().message;
    }
    if (turn.actual && turn.counterfactual) {
      turn.only_actual = minus(turn.actual->versions, turn.counterfactual->versions);
      turn.only_counterfactual = minus(turn.counterfactual->versions, turn.actual->versions);
      report.actual_tokens += turn.actual->tokens;
      report.counterfactual_tokens += turn.counterfactual->tokens;
      report.actual_bytes += turn.actual->bytes;
      report.counterfactual_bytes += turn.counterfactual->bytes;
      report.actual_prefix_reused += turn.actual->prefix_reused_bytes;
      report.counterfactual_prefix_reused += turn.counterfactual->prefix_reused_bytes;
    }
    report.turns.push_back(std::move(turn));
  }
  return std::optional<RerenderReport>(std::move(report));
}

std::string to_text(const RerenderReport& report) {
  std::string out = "session " + report.session_id + ": " + std::to_string(report.turns.size()) +
                    " turns re-rendered (no model called)\n";
  const Counterfactual& c = report.counterfactual;
  out += "counterfactual:";
  if (c.changes_nothing()) out += " nothing changed (the same policy and provider)";
  if (c.token_budget) out += " token_budget=" + std::to_string(*c.token_budget);
  if (c.output_reserve) out += " output_reserve=" + std::to_string(*c.output_reserve);
  if (c.cut_percent) out += " cut_percent=" + std::to_string(*c.cut_percent);
  if (c.memory_percent) out += " memory_percent=" + std::to_string(*c.memory_percent);
  if (c.provider) out += " provider=" + std::string(context::provider_name(*c.provider));
  out += "\n";
  for (const auto& t : report.turns) {
    out += "\nturn at version " + std::to_string(t.version) + " (state version " + std::to_string(t.state_version) +
           ")\n";
    if (t.actual) {
      out += "  sent:           " + rendering_line(*t.actual) +
             (t.actual_matches ? ", hash matches the receipt\n" : ", HASH DIFFERS from the receipt's " +
                                                                      t.recorded_hash + "\n");
    }
    if (t.counterfactual) {
      out += "  counterfactual: " + rendering_line(*t.counterfactual) + "\n";
      if (t.actual) {
        out += t.counterfactual->hash == t.actual->hash ? "  same bytes as sent\n"
                                                        : "  differs: messages only sent " + ranges(t.only_actual) +
                                                              "; only in the counterfactual " +
                                                              ranges(t.only_counterfactual) + "\n";
      }
    }
    if (!t.note.empty()) out += "  note: " + t.note + "\n";
    if (!t.problem.empty()) out += "  " + t.problem + "\n";
  }
  out += "\ntotal: sent " + std::to_string(report.actual_tokens) + " input tokens (prefix reused " +
         percent(report.actual_prefix_reused, report.actual_bytes) + "), counterfactual " +
         std::to_string(report.counterfactual_tokens) + " (prefix reused " +
         percent(report.counterfactual_prefix_reused, report.counterfactual_bytes) + ")\n";
  return out;
}

std::string to_json(const RerenderReport& report) {
  json::array turns;
  for (const auto& t : report.turns) {
    json::object o{{"version", t.version}, {"state_version", t.state_version}, {"recorded_hash", t.recorded_hash}};
    if (t.actual) {
      o["sent"] = rendering_json(*t.actual);
      o["sent_matches_receipt"] = t.actual_matches;
    }
    if (t.counterfactual) o["counterfactual"] = rendering_json(*t.counterfactual);
    if (t.actual && t.counterfactual) {
      json::array only_sent;
      for (auto v : t.only_actual) only_sent.push_back(v);
      json::array only_cf;
      for (auto v : t.only_counterfactual) only_cf.push_back(v);
      o["same_bytes"] = t.actual->hash == t.counterfactual->hash;
      o["only_sent"] = std::move(only_sent);
      o["only_counterfactual"] = std::move(only_cf);
    }
    if (!t.note.empty()) o["note"] = t.note;
    if (!t.problem.empty()) o["problem"] = t.problem;
    turns.push_back(std::move(o));
  }
  json::object what_if;
  const Counterfactual& c = report.counterfactual;
  if (c.token_budget) what_if["token_budget"] = *c.token_budget;
  if (c.output_reserve) what_if["output_reserve"] = *c.output_reserve;
  if (c.cut_percent) what_if["cut_percent"] = *c.cut_percent;
  if (c.memory_percent) what_if["memory_percent"] = *c.memory_percent;
  if (c.provider) what_if["provider"] = std::string(context::provider_name(*c.provider));
  json::object out{{"session_id", report.session_id},
                   {"counterfactual", std::move(what_if)},
                   {"turns", std::move(turns)},
                   {"total",
                    json::object{{"sent_tokens", report.actual_tokens},
                                 {"counterfactual_tokens", report.counterfactual_tokens},
                                 {"sent_bytes", report.actual_bytes},
                                 {"counterfactual_bytes", report.counterfactual_bytes},
                                 {"sent_prefix_reused_bytes", report.actual_prefix_reused},
                                 {"counterfactual_prefix_reused_bytes", report.counterfactual_prefix_reused}}}};
  return json::serialize(out) + "\n";
}

}  // namespace statefold::audit
