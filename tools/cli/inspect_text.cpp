#include "cli/inspect_text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstring>
#include <map>
#include <ostream>
#include <type_traits>
#include <variant>

#include "cli/human_bytes.hpp"
#include "weightmap/error.hpp"
#include "weightmap/realign.hpp"

namespace weightmap::cli {
namespace {

// Arrays longer than this print as "[type x length: first items, ...]".
constexpr std::size_t kArrayItemsShown = 4;
constexpr std::size_t kShortArray = 8;
// Nested arrays deeper than this print as "[...]": a hostile file cannot make one line huge.
constexpr int kMaxArrayDepth = 2;
constexpr std::size_t kMaxStringShown = 120;
constexpr std::size_t kMaxNameShown = 200;

std::string plural(std::uint64_t count, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", count, count == 1 ? one : many);
}

// Display width of printable text (which is valid UTF-8): code points.
std::size_t text_width(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

std::string value_text(const MetadataValue& value, MetadataType type, int depth);

std::string scalar_text(const MetadataValue& value, MetadataType type) {
  return std::visit(
      [&](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return fmt::format("\"{}\"", printable(v, kMaxStringShown));
        } else if constexpr (std::is_same_v<T, double>) {
          // An f32 printed as a float, so the text reads back as the same float.
          if (type == MetadataType::f32) return fmt::format("{}", static_cast<float>(v));
          return fmt::format("{}", v);
        } else if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, MetadataArray>) {
          return "[...]";
        } else {
          return fmt::format("{}", v);
        }
      },
      value.value);
}

std::string array_text(const MetadataValue& value, int depth) {
  const auto* items = std::get_if<MetadataArray>(&value.value);
  if (items == nullptr) return "[]";
  if (depth >= kMaxArrayDepth) {
    return fmt::format("[{} x {}: ...]", metadata_type_name(value.element_type), items->size());
  }
  const bool cut = items->size() > kShortArray;
  const std::size_t shown = cut ? kArrayItemsShown : items->size();
  std::string text = "[";
  if (cut) text += fmt::format("{} x {}: ", metadata_type_name(value.element_type), items->size());
  for (std::size_t i = 0; i < shown; ++i) {
    if (i > 0) text += ", ";
    text += value_text((*items)[i], (*items)[i].type, depth + 1);
  }
  text += cut ? ", ...]" : "]";
  return text;
}

std::string value_text(const MetadataValue& value, MetadataType type, int depth) {
  if (type == MetadataType::array) return array_text(value, depth);
  return scalar_text(value, type);
}

void write_files(const Model& model, std::ostream& out) {
  std::size_t format_width = 6;
  std::size_t size_width = 4;
  for (const auto& file : model.files()) {
    format_width = std::max(format_width, file_format_name(file.format).size());
    size_width = std::max(size_width, human_bytes(file.size).size());
  }
  out << fmt::format("file  {:<{}}  {:>{}}  path\n", "format", format_width, "size", size_width);
  for (std::size_t i = 0; i < model.files().size(); ++i) {
    const auto& file = model.files()[i];
    out << fmt::format("{:<4}  {:<{}}  {:>{}}  {}\n", i, file_format_name(file.format),
                       format_width, human_bytes(file.size), size_width,
                       printable(file.path, 4096));
  }
}

void write_dtypes(const Model& model, std::ostream& out) {
  struct Total {
    std::uint64_t tensors = 0;
    std::uint64_t bytes = 0;
  };
  std::map<DType, Total> totals;
  for (const auto& tensor : model.tensors()) {
    auto& total = totals[tensor.dtype];
    ++total.tensors;
    total.bytes += tensor.nbytes;
  }
  std::vector<std::pair<DType, Total>> rows(totals.begin(), totals.end());
  // Largest share first (ties in ggml id order): that is what a reader looks for.
  std::stable_sort(rows.begin(), rows.end(),
                   [](const auto& a, const auto& b) { return a.second.bytes > b.second.bytes; });
  out << fmt::format("{:<8}  {:>7}  {:>10}\n", "dtype", "tensors", "bytes");
  for (const auto& [dtype, total] : rows) {
    out << fmt::format("{:<8}  {:>7}  {:>10}\n", dtype_name(dtype), total.tensors,
                       human_bytes(total.bytes));
  }
}

// A plain (unblocked) type whose element size is a power of two wants its offset to be a
// multiple of that size to be read in place as a typed array.
bool misaligned_for_element(const TensorInfo& tensor) {
  const DTypeInfo& info = dtype_info(tensor.dtype);
  if (info.block_size != 1 || !std::has_single_bit(info.block_bytes)) return false;
  return tensor.offset % info.block_bytes != 0;
}

// `text` as one shell word, quoted only when it needs to be, so the hint can be pasted.
std::string shell_word(const std::string& text) {
  const bool plain = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("_./+-=:,@%", c) != nullptr;
  });
  if (plain) return text;
  std::string quoted = "'";
  for (const char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// Points at `weightmap realign` for each file it can rewrite that has tensors (other than
// realign's own padding tensors) off the 32-byte boundary, with --padding-tensors when
// reordering alone would leave some of them off realign's alignment.
void write_realign_hint(const Model& model, std::ostream& out) {
  for (std::uint32_t file = 0; file < model.files().size(); ++file) {
    if (model.files()[file].format == FileFormat::pytorch_zip) continue;
    bool misaligned = false;
    for (const TensorInfo& tensor : model.tensors()) {
      if (tensor.file != file) continue;
      misaligned = misaligned || (tensor.offset % 32 != 0 && !is_padding_tensor(tensor));
    }
    if (!misaligned) continue;
    const bool needs_padding = realign_needs_padding_tensors(model, file);
    // ggml's CPU kernels map these tensors as they are (natural alignment is all they need,
    // and off-32 weights measured within noise of aligned ones: README, BM_Alignment*); the
    // rewrite is for devices that ask for 32 or 64 bytes.
    out << fmt::format(
        "realign: `weightmap realign {} -o OUT{}` makes every tensor mappable for devices that "
        "need 32- or 64-byte alignment (the CPU maps them as they are)\n",
        shell_word(printable(model.files()[file].path, 4096)),
        needs_padding ? " --padding-tensors" : "");
  }
}

void write_alignment(const Model& model, std::ostream& out) {
  const auto& tensors = model.tensors();
  if (tensors.empty()) return;
  const auto count_aligned = [&](std::uint64_t alignment) {
    return std::count_if(tensors.begin(), tensors.end(),
                         [&](const TensorInfo& t) { return t.offset % alignment == 0; });
  };
  const auto total = tensors.size();
  const auto aligned32 = static_cast<std::size_t>(count_aligned(32));
  const auto aligned64 = static_cast<std::size_t>(count_aligned(64));
  out << fmt::format(
      "aligned offsets: {} of {} start on a 32-byte boundary, {} on a 64-byte "
      "boundary\n",
      aligned32, plural(total, "tensor", "tensors"), aligned64);
  if (aligned32 < total) {
    out << fmt::format("misaligned: {} not on a 32-byte boundary (see the align column of --all)\n",
                       plural(total - aligned32, "tensor is", "tensors are"));
    write_realign_hint(model, out);
  }
  const auto odd = static_cast<std::size_t>(
      std::count_if(tensors.begin(), tensors.end(), misaligned_for_element));
  if (odd > 0) {
    out << fmt::format("misaligned: {} not even on a multiple of the element size\n",
                       plural(odd, "tensor is", "tensors are"));
  }
}

}  // namespace

std::uint64_t offset_alignment(std::uint64_t offset) {
  if (offset == 0) return kMaxReportedAlignment;
  return std::min<std::uint64_t>(std::uint64_t{1} << std::countr_zero(offset),
                                 kMaxReportedAlignment);
}

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

std::string metadata_value_text(const MetadataValue& value) {
  return value_text(value, value.type, 0);
}

void write_summary(const Model& model, std::ostream& out) {
  std::uint64_t data_bytes = 0;
  for (const auto& tensor : model.tensors()) data_bytes += tensor.nbytes;
  out << fmt::format("{}, {}, {} of tensor data, {}\n\n",
                     plural(model.files().size(), "file", "files"),
                     plural(model.tensors().size(), "tensor", "tensors"), human_bytes(data_bytes),
                     plural(model.metadata().size(), "metadata key", "metadata keys"));
  write_files(model, out);
  if (!model.tensors().empty()) {
    out << '\n';
    write_dtypes(model, out);
    out << '\n';
    write_alignment(model, out);
  }
}

void write_metadata(const Model& model, std::ostream& out) {
  const bool several_files = model.files().size() > 1;
  for (std::uint32_t file = 0; file < model.files().size(); ++file) {
    std::vector<const MetadataEntry*> entries;
    for (const auto& entry : model.metadata()) {
      if (entry.file == file) entries.push_back(&entry);
    }
    if (several_files && entries.empty()) continue;
    out << '\n';
    if (several_files) {
      out << fmt::format("metadata of file {} ({}):\n", file,
                         plural(entries.size(), "key", "keys"));
    } else {
      out << fmt::format("metadata ({}):\n", plural(entries.size(), "key", "keys"));
    }
    for (const MetadataEntry* entry : entries) {
      out << fmt::format("  {} = {}\n", printable(entry->key, kMaxNameShown),
                         metadata_value_text(entry->value));
    }
  }
}

void write_tensor_rows(const Model& model, const std::vector<const TensorInfo*>& tensors,
                       const std::optional<std::string>& filter, std::ostream& out) {
  out << '\n';
  if (filter) {
    out << fmt::format("{} of {} match \"{}\"\n", tensors.size(),
                       plural(model.tensors().size(), "tensor", "tensors"), printable(*filter));
    if (tensors.empty()) return;
  }
  struct Row {
    std::string name, dtype, shape, file, offset, bytes, align;
  };
  const bool several_files = model.files().size() > 1;
  std::vector<Row> rows;
  rows.reserve(tensors.size() + 1);
  rows.push_back({"name", "dtype", "shape", "file", "offset", "bytes", "align"});
  for (const TensorInfo* tensor : tensors) {
    rows.push_back({printable(tensor->name, kMaxNameShown), std::string(dtype_name(tensor->dtype)),
                    shape_text(tensor->shape), fmt::format("{}", tensor->file),
                    fmt::format("{}", tensor->offset), fmt::format("{}", tensor->nbytes),
                    fmt::format("{}", offset_alignment(tensor->offset))});
  }
  std::size_t w_name = 0, w_dtype = 0, w_shape = 0, w_file = 0, w_offset = 0, w_bytes = 0;
  for (const auto& row : rows) {
    w_name = std::max(w_name, text_width(row.name));
    w_dtype = std::max(w_dtype, row.dtype.size());
    w_shape = std::max(w_shape, row.shape.size());
    w_file = std::max(w_file, row.file.size());
    w_offset = std::max(w_offset, row.offset.size());
    w_bytes = std::max(w_bytes, row.bytes.size());
  }
  for (const auto& row : rows) {
    std::string line = row.name;
    line.append(w_name - text_width(row.name), ' ');
    line += fmt::format("  {:<{}}  {:<{}}", row.dtype, w_dtype, row.shape, w_shape);
    if (several_files) line += fmt::format("  {:>{}}", row.file, w_file);
    line += fmt::format("  {:>{}}  {:>{}}  {:>5}\n", row.offset, w_offset, row.bytes, w_bytes,
                        row.align);
    out << line;
  }
}

}  // namespace weightmap::cli
