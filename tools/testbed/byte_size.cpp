#include "testbed/byte_size.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <string>
#include <utility>

namespace weightmap::testbed {

std::optional<std::uint64_t> parse_byte_size(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.')) {
    ++digits;
  }
  double number = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + digits, number);
  if (digits == 0 || ec != std::errc() || end != text.data() + digits) return std::nullopt;
  std::string suffix(text.substr(digits));
  for (char& c : suffix) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static constexpr std::array<std::pair<std::string_view, int>, 5> kUnits = {
      {{"", 0}, {"k", 10}, {"m", 20}, {"g", 30}, {"t", 40}}};
  for (const auto& [unit, shift] : kUnits) {
    const std::string bare(unit);
    if (suffix == bare || (!bare.empty() && (suffix == bare + "b" || suffix == bare + "ib")) ||
        (bare.empty() && suffix == "b")) {
      const double bytes = std::ldexp(number, shift);
      if (!(bytes >= 1) || bytes >= 0x1p63) return std::nullopt;
      if (shift == 0 && number != std::floor(number)) return std::nullopt;
      return static_cast<std::uint64_t>(bytes);
    }
  }
  return std::nullopt;
}

}  // namespace weightmap::testbed
