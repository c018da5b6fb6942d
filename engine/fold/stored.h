// Private to the fold module: reading the FlatBuffers tables it stores, verified first, so a damaged value is an
// error naming what it is rather than a misread.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace statefold::fold::detail {

template <typename Table>
const Table* verified_root(std::string_view bytes, std::string_view what) {
  flatbuffers::Verifier verifier(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  if (!verifier.VerifyBuffer<Table>(nullptr)) {
    throw std::runtime_error("corrupt stored " + std::string(what) + ": it does not verify as FlatBuffers");
  }
  return flatbuffers::GetRoot<Table>(bytes.data());
}

}  // namespace statefold::fold::detail
