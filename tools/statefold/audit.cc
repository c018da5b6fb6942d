#include <iostream>

#include <boost/json.hpp>

#include "base/hex.h"
#include "base/sha256.h"
#include "codec/codec.h"
#include "commands.h"
#include "connectors/materialise/materialise.h"
#include "fold/fold.h"
#include "log/log.h"
#include "statefold/schema/events_generated.h"
#include "store/store.h"

namespace statefold::cli {

namespace json = boost::json;

namespace {

std::span<const std::uint8_t> bytes_of(const flatbuffers::Vector<std::uint8_t>* v) {
  return v == nullptr ? std::span<const std::uint8_t>() : std::span<const std::uint8_t>(v->data(), v->size());
}

}  // namespace

Runner add_audit(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "audit", "Check a session's history against the log: every accepted event is read back from Kafka by its "
               "offset and checked against the stored chain hash; every inference receipt's request is rendered "
               "again from the state version it names and checked against its request hash; refusals are listed "
               "with their reasons. Exit 5 on any mismatch, naming the first bad version");
  struct Args {
    std::string brokers = "127.0.0.1:9092";
    std::string topic{log::kDefaultTopic};
    std::string data_dir;
    std::string session;
    std::string format = "text";
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--brokers", a->brokers, "Kafka bootstrap servers")->capture_default_str()->envname("STATEFOLD_BROKERS");
  cmd->add_option("--topic", a->topic, "Event topic")->capture_default_str()->envname("STATEFOLD_TOPIC");
  cmd->add_option("--data-dir", a->data_dir, "The engine's data directory (read-only)")->required();
  cmd->add_option("--session", a->session, "The session to audit")->required();
  cmd->add_option("--format", a->format, "text or json")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  return [a]() {
    store::Options options;
    options.path = a->data_dir + "/store";
    options.read_only = true;
    auto store = store::Store::open(options);
    if (!store) {
      std::cerr << "statefold audit: " << store.error().message << "\n";
      return kNotFound;
    }
    auto header = fold::load_header(**store, a->session);
    if (!header) {
      std::cerr << "statefold audit: no session " << a->session << " in " << a->data_dir << "\n";
      return kNotFound;
    }

    // The stored history, in version order.
    struct Entry {
      std::uint64_t version;
      std::int32_t partition;
      std::int64_t offset;
      std::uint8_t payload_type;
      std::vector<std::uint8_t> event;
      std::vector<std::uint8_t> chain;
      bool redacted;
      std::vector<std::uint8_t> event_digest;  // of the original event, once an erasure redacted `event`
    };
    std::vector<Entry> entries;
    (*store)->scan(fold::key::history_prefix(a->session), [&](std::string_view, std::string_view value) {
      const auto* e = flatbuffers::GetRoot<state::HistoryEntry>(value.data());
      auto event = bytes_of(e->event());
      auto chain = bytes_of(e->chain_hash());
      auto digest = bytes_of(e->event_digest());
      entries.push_back({e->version(), e->partition(), e->offset(), e->payload_type(), {event.begin(), event.end()},
                         {chain.begin(), chain.end()}, e->redacted(), {digest.begin(), digest.end()}});
      return true;
    });

    // Read them back from Kafka, partition by partition (one, unless the topic was repartitioned).
    std::map<std::int32_t, std::vector<std::int64_t>> wanted;
    for (const auto& e : entries) wanted[e.partition].push_back(e.offset);
    std::map<std::pair<std::int32_t, std::int64_t>, log::StoredRecord> records;
    for (auto& [partition, offsets] : wanted) {
      std::sort(offsets.begin(), offsets.end());
      auto read = log::read_records(a->brokers, a->topic, partition, offsets);
      if (!read) {
        std::cerr << "statefold audit: " << read.error().message << "\n";
        return kFailure;
      }
      for (auto& [offset, record] : *read) records.emplace(std::make_pair(partition, offset), std::move(record));
    }

    json::array events;
    std::optional<std::uint64_t> first_bad;
    std::string first_problem;
    base::Digest chain{};
    std::uint64_t expected_version = 1;
    auto fail = [&](std::uint64_t version, const std::string& problem) {
      if (!first_bad) {
        first_bad = version;
        first_problem = problem;
      }
    };
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
        } else if (decoded->session_id() != a->session) {
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
      json::object o{{"version", e.version},
                     {"partition", e.partition},
                     {"offset", e.offset},
                     {"payload_type", codec::payload_type_name(e.payload_type)},
                     {"ok", problem.empty()}};
      if (!problem.empty()) {
        o["problem"] = problem;
        fail(e.version, problem);
        // Carry on from the stored link, so one bad record does not hide the rest.
        std::copy_n(e.chain.begin(), std::min<std::size_t>(32, e.chain.size()), chain.begin());
      }
      events.push_back(std::move(o));
    }
    const auto& h = *header;
    if (h.version != entries.size()) {
      fail(entries.size() + 1, "the session is at version " + std::to_string(h.version) + " but its history has " +
                                   std::to_string(entries.size()) + " events");
    } else if (!entries.empty() && h.chain_hash != entries.back().chain) {
      fail(h.version, "the session's chain hash differs from its last history entry");
    }
    if (base::to_hex(fold::state_hash(h)) != base::to_hex(h.state_hash)) {
      fail(h.version, "the session header does not match its state hash (changed outside the engine)");
    }

    // Every inference receipt: its request rendered again from the state version it names, with the render
    // parameters it recorded, must hash to its request_hash.
    json::array receipts;
    std::uint64_t receipts_checked = 0;
    std::uint64_t receipts_unverifiable = 0;
    for (const auto& e : entries) {
      if (e.payload_type != static_cast<std::uint8_t>(schema::Payload::InferenceReceipt)) continue;
      const auto* receipt = schema::GetEvent(e.event.data())->payload_as_InferenceReceipt();
      json::object r{{"version", e.version},
                     {"state_version", receipt->state_version()},
                     {"request_hash", receipt->request_hash() == nullptr ? "" : receipt->request_hash()->str()}};
      std::string verdict;
      if (h.erased) {
        verdict = "not re-renderable: the session's content was erased";
      } else if (receipt->render() == nullptr || receipt->render()->size() == 0) {
        verdict = "not re-renderable: the receipt does not record how its request was rendered";
      } else if (auto spec = materialise::RenderSpec::from_json(receipt->render()->string_view()); !spec) {
        verdict = "not re-renderable: " + spec.error().message;
      } else if (auto state = materialise::load_state(**store, a->session, receipt->state_version()); !state) {
        fail(e.version, "receipt at version " + std::to_string(e.version) + ": " + state.error().message);
        verdict = "mismatch: " + state.error().message;
      } else {
        std::string counted;
        auto rendered = materialise::render(*state, *spec, counted);
        if (!rendered) {
          verdict = "mismatch: the request no longer renders: " + rendered.error().message;
        } else if (rendered->hash != r.at("request_hash").as_string()) {
          verdict = "mismatch: re-rendered request hashes to " + rendered->hash;
        } else {
          verdict = "ok";
          ++receipts_checked;
        }
        if (verdict != "ok") fail(e.version, "receipt at version " + std::to_string(e.version) + ": " + verdict);
      }
      if (verdict.starts_with("not re-renderable")) ++receipts_unverifiable;
      r["verdict"] = verdict;
      receipts.push_back(std::move(r));
    }

    json::array refusals;
    (*store)->scan(fold::key::refusal_prefix(a->session), [&](std::string_view, std::string_view value) {
      const auto* r = flatbuffers::GetRoot<state::Refusal>(value.data());
      refusals.push_back(json::object{
          {"kind", r->kind() == static_cast<std::uint8_t>(fold::Outcome::duplicate) ? "duplicate" : "rejected"},
          {"event_id", base::to_hex(bytes_of(r->event_id()))},
          {"partition", r->partition()},
          {"offset", r->offset()},
          {"session_version", r->actual_version()},
          {"reason", r->reason() == nullptr ? "" : r->reason()->str()}});
      return true;
    });

    const bool ok = !first_bad.has_value();
    if (a->format == "json") {
      json::object o{{"session_id", a->session}, {"version", h.version}, {"ok", ok},
                     {"chain_hash", base::to_hex(h.chain_hash)}, {"events", std::move(events)},
                     {"refusals", std::move(refusals)}, {"receipts", std::move(receipts)},
                     {"receipts_verified", receipts_checked}, {"receipts_unverifiable", receipts_unverifiable}};
      if (first_bad) {
        o["first_bad_version"] = *first_bad;
        o["problem"] = first_problem;
      }
      std::cout << json::serialize(o) << "\n";
    } else {
      std::cout << "session " << a->session << ": version " << h.version << ", chain " << base::to_hex(h.chain_hash) << "\n";
      for (const auto& v : events) {
        const auto& o = v.as_object();
        std::cout << "  v" << o.at("version").as_uint64() << "  " << o.at("partition").as_int64() << ":"
                  << o.at("offset").as_int64() << "  " << o.at("payload_type").as_string().c_str() << "  "
                  << (o.at("ok").as_bool() ? "ok" : "BAD: " + std::string(o.at("problem").as_string())) << "\n";
      }
      std::cout << "refusals (" << refusals.size() << "):\n";
      for (const auto& v : refusals) {
        const auto& o = v.as_object();
        std::cout << "  " << o.at("kind").as_string().c_str() << " at " << o.at("partition").as_int64() << ":"
                  << o.at("offset").as_int64() << " (session at v" << o.at("session_version").as_uint64()
                  << "): " << o.at("reason").as_string().c_str() << "\n";
      }
      std::cout << "receipts (" << receipts.size() << ", " << receipts_checked << " re-rendered and matching, "
                << receipts_unverifiable << " not re-renderable):\n";
      for (const auto& v : receipts) {
        const auto& o = v.as_object();
        std::cout << "  v" << o.at("version").as_uint64() << "  rendered from v" << o.at("state_version").as_uint64()
                  << "  " << o.at("verdict").as_string().c_str() << "\n";
      }
      std::cout << (ok ? "OK: the history matches the log\n"
                       : "MISMATCH at version " + std::to_string(*first_bad) + ": " + first_problem + "\n");
    }
    return ok ? kOk : kMismatch;
  };
}

}  // namespace statefold::cli
