// Hex encoding for hashes and event ids in logs, JSON and keys.
#pragma once

#include <cstddef>
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
// `bytes` random bytes (a per-thread generator seeded from std::random_device) as 2 * `bytes` lower-case hex digits:
// ids that must not collide, not secrets.
std::string random_hex(std::size_t bytes);

}  // namespace statefold::base
