#include "cli/power_of_two_option.hpp"

#include <fmt/format.h>

#include <exception>
#include <string>

namespace weightmap::cli {

CLI::Validator power_of_two_validator(std::uint64_t min, std::uint64_t max) {
  return CLI::Validator(
      [min, max](const std::string& text) {
        std::uint64_t value = 0;
        try {
          value = std::stoull(text);
        } catch (const std::exception&) {
        }
        const bool power_of_two = value != 0 && (value & (value - 1)) == 0;
        if (power_of_two && value >= min && value <= max) return std::string();
        return min <= 1 ? fmt::format("not a power of two up to {}: {}", max, text)
                        : fmt::format("not a power of two from {} to {}: {}", min, max, text);
      },
      "N");
}

}  // namespace weightmap::cli
