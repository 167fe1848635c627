// The check behind every option that takes a byte alignment (`load --alignment`,
// `realign --alignment`): a power of two within the command's bounds.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>

namespace weightmap::cli {

// Accepts a power of two in [min, max]; otherwise "not a power of two up to MAX: TEXT" (min
// of 1) or "not a power of two from MIN to MAX: TEXT".
CLI::Validator power_of_two_validator(std::uint64_t min, std::uint64_t max);

}  // namespace weightmap::cli
