// Private to the fold module: reading the FlatBuffers tables it stores, verified first, so a damaged value is an
// error naming what it is rather than a misread. Other modules read through fold/read.h.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace statefold::fold::detail {

// The root table of `bytes`, or nullptr when they do not verify as one. Identifiers are not checked: stored
// tables are written without one.
template <typename Table>
const Table* verify_root(std::string_view bytes) {
  flatbuffers::Verifier verifier(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  if (!verifier.VerifyBuffer<Table>(nullptr)) return nullptr;
  return flatbuffers::GetRoot<Table>(bytes.data());
}

// As verify_root, for the fold's own reads: damage there is a broken invariant, so it throws.
template <typename Table>
const Table* verified_root(std::string_view bytes, std::string_view what) {
  const Table* root = verify_root<Table>(bytes);
  if (root == nullptr) {
    throw std::runtime_error("corrupt stored " + std::string(what) + ": it does not verify as FlatBuffers");
  }
  return root;
}

}  // namespace statefold::fold::detail
