// Hex encoding for hashes and event ids in logs, JSON and keys.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace statefold::base {

std::string to_hex(std::span<const std::uint8_t> bytes);
std::string to_hex(std::string_view bytes);
// Lower- or upper-case hex of even length; nullopt on any other character.
std::optional<std::vector<std::uint8_t>> from_hex(std::string_view hex);

}  // namespace statefold::base
