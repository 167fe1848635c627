#include <fmt/format.h>

#include "byte_units.hpp"
#include "weightmap/ggml.hpp"

namespace weightmap::ggml {

std::string BindReport::devices_line() const {
  std::string line;
  for (const auto& d : devices) {
    if (!line.empty()) line += "; ";
    line +=
        fmt::format("on {}: {} mapped ({:.1f} MiB), {} loaded ({:.1f} MiB", d.device,
                    d.mapped_tensors, mib(d.mapped_bytes), d.loaded_tensors, mib(d.loaded_bytes));
    if (d.uploaded_tensors != 0) line += fmt::format(", {} uploaded", d.uploaded_tensors);
    line += ')';
  }
  return line;
}

}  // namespace weightmap::ggml
