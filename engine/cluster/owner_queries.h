// A query over the whole group, asked of every other owner of the topic's partitions (GroupSessions,
// GroupUsageRows): each is sent the partitions it owns, signed, and their shares are gathered with this instance's
// own. Private to the cluster module.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/base/result.h"
#include "engine/base/text.h"
#include "engine/cluster/cluster.h"
#include "engine/cluster/peer_signing.h"

namespace statefold::cluster {

// Whom a query over partitions 0..partitions-1 asks now: an error while any partition has no owner (it is moving).
inline base::Result<PartitionSplit> owners_to_ask(const Cluster& cluster, int partitions) {
  PartitionSplit split = split_partitions(cluster.members(), cluster.instance(), partitions);
  if (!split.unowned.empty()) {
    return base::make_error("partitions " + base::join(split.unowned) + " are moving: no instance claims them now");
  }
  return split;
}

template <typename Share>
struct OwnerQuery {
  std::string_view path;          // the members' route
  std::string_view asked_for;     // what an owner that failed did not do, after "did not": "list them"
  std::chrono::milliseconds timeout;
  std::function<std::string(const std::vector<std::int32_t>& partitions)> encode;  // the body for an owner
  std::function<std::optional<Share>(const http::Response&)> decode;  // nullopt: not an answer
};

// Asks each of `theirs` (PartitionSplit::theirs) for its partitions' share and gives `done` every share, this
// instance's (`shares`) first, and a sentence per owner that did not answer, on this thread when there is nobody to
// ask, else on the thread of the last answer.
template <typename Share>
void ask_owners(const Cluster& cluster, const PeerSigner& signer, const OwnerQuery<Share>& query,
                const decltype(PartitionSplit::theirs)& theirs, std::vector<Share> shares,
                std::function<void(std::vector<Share> shares, std::vector<std::string> failures)> done) {
  if (theirs.empty()) return done(std::move(shares), {});
  struct Gathering {
    std::mutex mutex;
    std::vector<Share> shares;
    std::vector<std::string> failures;
    std::size_t waiting = 0;
    std::function<void(std::vector<Share>, std::vector<std::string>)> done;
  };
  auto gathering = std::make_shared<Gathering>();
  gathering->shares = std::move(shares);
  gathering->waiting = theirs.size();
  gathering->done = std::move(done);
  for (const auto& [instance, asked] : theirs) {
    const auto& [member, partitions] = asked;
    cluster.ask(member, signer.request(query.path, query.encode(partitions)), query.timeout,
                [gathering, member, partitions, decode = query.decode,
                 asked_for = std::string(query.asked_for)](http::Response response) {
                  auto share = decode(response);
                  std::unique_lock lock(gathering->mutex);
                  if (share) {
                    gathering->shares.push_back(std::move(*share));
                  } else {
                    gathering->failures.push_back("instance " + member.instance + " (" + member.url +
                                                  "), which owns partitions " + base::join(partitions) +
                                                  ", did not " + asked_for + ": " + std::to_string(response.status) +
                                                  " " + response.body.substr(0, 400));
                  }
                  if (--gathering->waiting > 0) return;
                  lock.unlock();
                  gathering->done(std::move(gathering->shares), std::move(gathering->failures));
                });
  }
}

// The failures of ask_owners as one sentence.
inline std::string joined_failures(const std::vector<std::string>& failures) {
  std::string why;
  for (const std::string& f : failures) why.append(why.empty() ? "" : "; ").append(f);
  return why;
}

// The whole query: this instance's share of the partitions it owns (`local`) and every other owner's (ask_owners),
// merged, given to `done` as ask_owners does. An error when a partition has no owner, an owner did not answer, or
// a share could not read some of its partitions (Share::not_here): never a merge that lacks a share.
template <typename Share>
void query_owners(const Cluster& cluster, const PeerSigner& signer, int partitions, const OwnerQuery<Share>& query,
                  const std::function<base::Result<Share>(const std::vector<std::int32_t>& mine)>& local,
                  std::function<Share(std::vector<Share>)> merge, std::function<void(base::Result<Share>)> done) {
  auto split = owners_to_ask(cluster, partitions);
  if (!split) return done(split.error());
  std::vector<Share> shares;
  if (!split->mine.empty()) {
    auto own = local(split->mine);
    if (!own) return done(own.error());
    shares.push_back(std::move(*own));
  }
  ask_owners<Share>(cluster, signer, query, split->theirs, std::move(shares),
                    [merge = std::move(merge), done = std::move(done)](std::vector<Share> gathered,
                                                                       std::vector<std::string> failures) {
                      if (!failures.empty()) return done(base::make_error(joined_failures(failures)));
                      Share merged = merge(std::move(gathered));
                      if (!merged.not_here.empty()) {
                        return done(base::make_error("partitions " + base::join(merged.not_here) +
                                                     " are moving: their owner is still catching up on them"));
                      }
                      done(std::move(merged));
                    });
}

}  // namespace statefold::cluster
