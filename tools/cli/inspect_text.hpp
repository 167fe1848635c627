// The text output of `weightmap inspect`: summary, metadata lines, tensor rows.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "weightmap/model.hpp"

namespace weightmap::cli {

// Offsets are reported aligned to at most this many bytes (a page).
inline constexpr std::uint64_t kMaxReportedAlignment = 4096;

// The largest power of two dividing `offset`, capped at kMaxReportedAlignment (0 counts as
// aligned to the cap).
std::uint64_t offset_alignment(std::uint64_t offset);

// `[4096, 4096]`, `[]` for a scalar.
std::string shape_text(const std::vector<std::uint64_t>& shape);

// A metadata value for one line of text: strings quoted and made printable, f32 in its
// shortest round-trip form, arrays longer than a few items cut to type, length and the
// first items.
std::string metadata_value_text(const MetadataValue& value);

// Files, tensor count, bytes per dtype, metadata count, alignment of tensor offsets.
void write_summary(const Model& model, std::ostream& out);

// `key = value` lines, grouped by file when there are several.
void write_metadata(const Model& model, std::ostream& out);

// One row per tensor: name, dtype, shape, [file,] offset, bytes, alignment of the offset.
void write_tensor_rows(const Model& model, const std::vector<const TensorInfo*>& tensors,
                       const std::optional<std::string>& filter, std::ostream& out);

}  // namespace weightmap::cli
