#include "connectors/audit/audit.h"

#include <boost/json.hpp>

#include <algorithm>

#include "connectors/materialise/materialise.h"
#include "engine/base/hex.h"
#include "engine/base/sha256.h"
#include "engine/codec/codec.h"
#include "engine/fold/fold.h"
#include "engine/fold/read.h"

namespace statefold::audit {

namespace json = boost::json;

namespace {

std::vector<std::uint8_t> copy_of(const flatbuffers::Vector<std::uint8_t>* v) {
  return v == nullptr ? std::vector<std::uint8_t>() : std::vector<std::uint8_t>(v->begin(), v->end());
}

// What audit needs of a stored history entry, copied out of the verified table.
// What an entry that is an InferenceReceipt recorded. At namespace scope: clang cannot default-construct a class
// with member initializers nested in the class being defined (the fuzz preset builds with clang).
struct ReceiptFacts {
  std::uint64_t state_version = 0;
  std::string request_hash;
  std::optional<std::string> render;  // nullopt: not recorded
};

struct Entry {
  std::uint64_t version;
  std::int32_t partition;
  std::int64_t offset;
  std::uint8_t payload_type;
  std::vector<std::uint8_t> event;
  std::vector<std::uint8_t> chain;
  bool redacted;
  std::vector<std::uint8_t> event_digest;  // of the original event, once an erasure redacted `event`
  std::optional<ReceiptFacts> receipt;  // for an InferenceReceipt
};

// Each entry against the record at its offset, and the chain recomputed from the records.
void check_events(const std::vector<Entry>& entries, std::string_view session_id,
                  const std::map<std::pair<std::int32_t, std::int64_t>, log::StoredRecord>& records,
                  SessionReport& report, const std::function<void(std::uint64_t, const std::string&)>& fail) {
  base::Digest chain{};
  std::uint64_t expected_version = 1;
  for (const auto& e : entries) {
    std::string problem;
    auto it = records.find({e.partition, e.offset});
    if (e.version != expected_version) {
      problem = "version " + std::to_string(e.version) + " where " + std::to_string(expected_version) + " was expected";
    } else if (it == records.end()) {
      problem = "no record at partition " + std::to_string(e.partition) + " offset " + std::to_string(e.offset);
    } else {
      const auto& r = it->second;
      auto decoded = codec::decode(r.value,
                                   codec::encoding_for_content_type(r.content_type.empty()
                                                                        ? std::nullopt
                                                                        : std::optional<std::string_view>(r.content_type)),
                                   r.key ? std::optional<std::string_view>(*r.key) : std::nullopt);
      if (!decoded) {
        problem = "the record no longer decodes: " + decoded.error().message;
      } else if (decoded->session_id() != session_id) {
        problem = "the record belongs to session " + std::string(decoded->session_id());
      } else {
        const auto canonical = decoded->canonical();
        const base::Digest digest = base::sha256(canonical);
        chain = base::Sha256().update(chain).update(digest).finish();
        if (e.redacted) {
          // Erased: the store kept only the original's digest, which the record still in Kafka must match.
          if (!std::equal(digest.begin(), digest.end(), e.event_digest.begin(), e.event_digest.end())) {
            problem = "the record in Kafka differs from the digest kept when the event was erased";
          }
        } else if (!std::equal(canonical.begin(), canonical.end(), e.event.begin(), e.event.end())) {
          problem = "the stored event differs from the record in Kafka";
        }
        if (problem.empty() && !std::equal(chain.begin(), chain.end(), e.chain.begin(), e.chain.end())) {
          problem = "chain hash differs: stored " + base::to_hex(e.chain) + ", recomputed " + base::to_hex(chain);
        }
      }
    }
    ++expected_version;
    if (!problem.empty()) {
      fail(e.version, problem);
      // Carry on from the stored link, so one bad record does not hide the rest.
      std::copy_n(e.chain.begin(), std::min<std::size_t>(32, e.chain.size()), chain.begin());
    }
    report.events.push_back({e.version, e.partition, e.offset, codec::payload_type_name(e.payload_type), problem});
  }
}

// Every inference receipt: its request rendered again from the state version it names, with the render parameters
// it recorded, must hash to its request_hash.
void check_receipts(const fold::Reader& reader, std::string_view session_id, bool erased,
                    const std::vector<Entry>& entries, SessionReport& report,
                    const std::function<void(std::uint64_t, const std::string&)>& fail) {
  for (const auto& e : entries) {
    if (!e.receipt) continue;
    const auto& receipt = *e.receipt;
    std::string verdict;
    if (erased) {
      verdict = "not re-renderable: the session's content was erased";
    } else if (!receipt.render || receipt.render->empty()) {
      verdict = "not re-renderable: the receipt does not record how its request was rendered";
    } else if (auto spec = materialise::RenderSpec::from_json(*receipt.render); !spec) {
      verdict = "not re-renderable: " + spec.error().message;
    } else if (auto state = materialise::load_state(reader, session_id, receipt.state_version); !state) {
      fail(e.version, "receipt at version " + std::to_string(e.version) + ": " + state.error().message);
      verdict = "mismatch: " + state.error().message;
    } else {
      std::string counted;
      auto rendered = materialise::render(*state, *spec, counted);
      if (!rendered) {
        verdict = "mismatch: the request no longer renders: " + rendered.error().message;
      } else if (rendered->hash != receipt.request_hash) {
        verdict = "mismatch: re-rendered request hashes to " + rendered->hash;
      } else {
        verdict = "ok";
        ++report.receipts_verified;
      }
      if (verdict != "ok") fail(e.version, "receipt at version " + std::to_string(e.version) + ": " + verdict);
    }
    if (verdict.starts_with("not re-renderable")) ++report.receipts_unverifiable;
    report.receipts.push_back({e.version, receipt.state_version, receipt.request_hash, verdict});
  }
}

}  // namespace

base::Result<std::optional<SessionReport>> audit_session(const fold::Reader& reader, std::string_view session_id,
                                                         const RecordSource& records) {
  auto read_header = fold::read_header(reader, session_id);
  if (!read_header) return read_header.error();
  if (!*read_header) return std::optional<SessionReport>();
  const auto& h = **read_header;

  // The stored history, in version order.
  std::vector<Entry> entries;
  auto read = fold::visit_history(reader, session_id, {}, [&](const fold::HistoryRecord& r) {
    const auto& s = r.entry;
    Entry e{s.version(),    s.partition(),          s.offset(),         s.payload_type(),
            copy_of(s.event()), copy_of(s.chain_hash()), s.redacted(), copy_of(s.event_digest()), std::nullopt};
    if (s.payload_type() == static_cast<std::uint8_t>(schema::Payload::InferenceReceipt)) {
      e.receipt.emplace();
      if (const auto* receipt = r.event.payload_as_InferenceReceipt(); receipt != nullptr) {
        e.receipt->state_version = receipt->state_version();
        if (receipt->request_hash() != nullptr) e.receipt->request_hash = receipt->request_hash()->str();
        if (receipt->render() != nullptr) e.receipt->render = receipt->render()->str();
      }
    }
    entries.push_back(std::move(e));
    return true;
  });
  if (!read) return read.error();

  // Read them back from the log, partition by partition (one, unless the topic was repartitioned).
  std::map<std::int32_t, std::vector<std::int64_t>> wanted;
  for (const auto& e : entries) wanted[e.partition].push_back(e.offset);
  std::map<std::pair<std::int32_t, std::int64_t>, log::StoredRecord> found;
  for (auto& [partition, offsets] : wanted) {
    std::sort(offsets.begin(), offsets.end());
    auto got = records(partition, offsets);
    if (!got) return got.error();
    for (auto& [offset, record] : *got) found.emplace(std::make_pair(partition, offset), std::move(record));
  }

  SessionReport report;
  report.session_id = std::string(session_id);
  report.version = h.version;
  report.chain_hash = base::to_hex(h.chain_hash);
  auto fail = [&](std::uint64_t version, const std::string& problem) {
    if (!report.first_bad_version) {
      report.first_bad_version = version;
      report.problem = problem;
    }
  };
  check_events(entries, session_id, found, report, fail);
  if (h.version != entries.size()) {
    fail(entries.size() + 1, "the session is at version " + std::to_string(h.version) + " but its history has " +
                                 std::to_string(entries.size()) + " events");
  } else if (!entries.empty() && h.chain_hash != entries.back().chain) {
    fail(h.version, "the session's chain hash differs from its last history entry");
  }
  if (base::to_hex(fold::state_hash(h)) != base::to_hex(h.state_hash)) {
    fail(h.version, "the session header does not match its state hash (changed outside the engine)");
  }
  check_receipts(reader, session_id, h.erased, entries, report, fail);

  auto refusals = fold::read_refusals(reader, session_id);
  if (!refusals) return refusals.error();
  for (const auto& r : *refusals) {
    report.refusals.push_back({r.kind == static_cast<std::uint8_t>(fold::Outcome::duplicate) ? "duplicate" : "rejected",
                               base::to_hex(r.event_id), r.partition, r.offset, r.actual_version, r.reason});
  }
  return std::optional<SessionReport>(std::move(report));
}

std::string to_json(const SessionReport& report) {
  json::array events;
  for (const auto& e : report.events) {
    json::object o{{"version", e.version},
                   {"partition", e.partition},
                   {"offset", e.offset},
                   {"payload_type", e.payload_type},
                   {"ok", e.problem.empty()}};
    if (!e.problem.empty()) o["problem"] = e.problem;
    events.push_back(std::move(o));
  }
  json::array refusals;
  for (const auto& r : report.refusals) {
    refusals.push_back(json::object{{"kind", r.kind},
                                    {"event_id", r.event_id},
                                    {"partition", r.partition},
                                    {"offset", r.offset},
                                    {"session_version", r.session_version},
                                    {"reason", r.reason}});
  }
  json::array receipts;
  for (const auto& r : report.receipts) {
    receipts.push_back(json::object{{"version", r.version},
                                    {"state_version", r.state_version},
                                    {"request_hash", r.request_hash},
                                    {"verdict", r.verdict}});
  }
  json::object o{{"session_id", report.session_id}, {"version", report.version}, {"ok", report.ok()},
                 {"chain_hash", report.chain_hash}, {"events", std::move(events)},
                 {"refusals", std::move(refusals)}, {"receipts", std::move(receipts)},
                 {"receipts_verified", report.receipts_verified},
                 {"receipts_unverifiable", report.receipts_unverifiable}};
  if (report.first_bad_version) {
    o["first_bad_version"] = *report.first_bad_version;
    o["problem"] = report.problem;
  }
  return json::serialize(o) + "\n";
}

std::string to_text(const SessionReport& report) {
  std::string out = "session " + report.session_id + ": version " + std::to_string(report.version) + ", chain " +
                    report.chain_hash + "\n";
  for (const auto& e : report.events) {
    out.append("  v").append(std::to_string(e.version)).append("  ").append(std::to_string(e.partition));
    out.append(":").append(std::to_string(e.offset)).append("  ").append(e.payload_type).append("  ");
    out.append(e.problem.empty() ? "ok" : "BAD: " + e.problem).append("\n");
  }
  out.append("refusals (").append(std::to_string(report.refusals.size())).append("):\n");
  for (const auto& r : report.refusals) {
    out.append("  ").append(r.kind).append(" at ").append(std::to_string(r.partition)).append(":");
    out.append(std::to_string(r.offset)).append(" (session at v").append(std::to_string(r.session_version));
    out.append("): ").append(r.reason).append("\n");
  }
  out.append("receipts (").append(std::to_string(report.receipts.size())).append(", ");
  out.append(std::to_string(report.receipts_verified)).append(" re-rendered and matching, ");
  out.append(std::to_string(report.receipts_unverifiable)).append(" not re-renderable):\n");
  for (const auto& r : report.receipts) {
    out.append("  v").append(std::to_string(r.version)).append("  rendered from v");
    out.append(std::to_string(r.state_version)).append("  ").append(r.verdict).append("\n");
  }
  out.append(report.ok() ? "OK: the history matches the log\n"
                         : "MISMATCH at version " + std::to_string(*report.first_bad_version) + ": " + report.problem +
                               "\n");
  return out;
}

}  // namespace statefold::audit
