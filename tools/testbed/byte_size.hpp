// Sizes people type: `weightmap sample --size`, `weightmap bench --bytes-per-run`, and the
// sizes benchmarks read from the environment.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace weightmap::testbed {

// "2G", "256MiB", "1.5g", "4096": bytes. K, M, G, T (with or without B or iB, any case) are
// binary multiples (1K = 1024). nullopt when the text is not such a size or it is zero.
std::optional<std::uint64_t> parse_byte_size(std::string_view text);

}  // namespace weightmap::testbed
