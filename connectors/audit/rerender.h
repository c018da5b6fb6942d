// rerender: counterfactual re-rendering. Every inference receipt of a session is rendered again twice from the state
// version it names: as it was (which must hash to the receipt's request_hash, as audit checks) and under another
// context policy or provider. Per turn it tells what the model would have seen instead: token counts, what would
// have been cut, how much of each request repeats the previous one (prefix-cache reuse), and which history messages
// differ from what was actually sent. No model is called and nothing is written.
//
//   audit::Counterfactual what_if;
//   what_if.token_budget = 16000;
//   what_if.provider = context::Provider::anthropic;
//   auto report = audit::rerender_session(store_reader, "chat-42", what_if);
//   if (report && *report) std::cout << audit::to_text(**report);
//
// Thread-safety: stateless; as safe as the Reader.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/context/render.h"
#include "engine/base/result.h"
#include "engine/fold/kv.h"

namespace statefold::audit {

// What changes. A field left empty keeps what the receipt's turn used.
struct Counterfactual {
  std::optional<std::uint32_t> token_budget;
  std::optional<std::uint32_t> output_reserve;
  std::optional<std::uint32_t> cut_percent;
  std::optional<std::uint32_t> memory_percent;
  std::optional<context::Provider> provider;
  bool changes_nothing() const {
    return !token_budget && !output_reserve && !cut_percent && !memory_percent && !provider;
  }
};

// One rendering of one turn.
struct Rendering {
  std::string hash;                  // hex SHA-256 of the body
  std::size_t bytes = 0;             // of the body
  std::size_t tokens = 0;            // input tokens as materialise counted them
  std::size_t history_messages = 0;  // history messages sent
  std::size_t cut_messages = 0;      // left out by the budget cut
  std::size_t cut_tokens = 0;
  std::uint64_t cut_first_version = 0;  // the dropped range (0 when nothing was cut)
  std::uint64_t cut_last_version = 0;
  std::size_t covered_by_summary = 0;
  std::vector<std::string> memory_left_out;  // unpinned memory blocks
  // Bytes this body shares, from its start, with the previous turn's body under the same rendering: what a
  // provider's prefix cache can reuse (providers cache by token prefix; bytes are the provider-neutral measure).
  std::size_t prefix_reused_bytes = 0;
  std::vector<std::uint64_t> versions;  // of the history messages sent, ascending
};

struct TurnRerender {
  std::uint64_t version = 0;        // the receipt's own version
  std::uint64_t state_version = 0;  // the state its request was rendered from
  std::string recorded_hash;        // the receipt's request_hash
  // Empty when both renderings exist; else why not ("not re-renderable: ...", or the counterfactual's failure,
  // e.g. the pinned sections alone exceed a smaller budget).
  std::string problem;
  std::optional<Rendering> actual;          // as sent; `actual_matches`: it hashes to recorded_hash
  bool actual_matches = false;
  std::optional<Rendering> counterfactual;  // under the Counterfactual
  std::vector<std::uint64_t> only_actual;          // message versions sent, not in the counterfactual
  std::vector<std::uint64_t> only_counterfactual;  // and the other way round
  std::string note;  // e.g. parameters not carried over to another provider
};

struct RerenderReport {
  std::string session_id;
  Counterfactual counterfactual;
  std::vector<TurnRerender> turns;
  // Sums over the turns where both renderings exist.
  std::size_t actual_tokens = 0;
  std::size_t counterfactual_tokens = 0;
  std::size_t actual_prefix_reused = 0;   // bytes
  std::size_t counterfactual_prefix_reused = 0;
  std::size_t actual_bytes = 0;
  std::size_t counterfactual_bytes = 0;
};

// nullopt: no such session. Errors: the store holds a damaged value. A session that was erased has no turns to
// re-render; each turn that cannot be re-rendered says why in its `problem`.
[[nodiscard]] base::Result<std::optional<RerenderReport>> rerender_session(const fold::Reader& reader,
                                                                          std::string_view session_id,
                                                                          const Counterfactual& counterfactual);

// What `statefold rerender` prints (--format text / json), one trailing newline.
std::string to_text(const RerenderReport& report);
std::string to_json(const RerenderReport& report);

}  // namespace statefold::audit
