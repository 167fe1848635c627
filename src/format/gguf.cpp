// GGUF v2/v3: magic, version, counts, key/value metadata, tensor infos, then the tensor data
// section at the next multiple of `general.alignment`. Everything the index promises (known
// types, whole blocks, aligned and non-overlapping ranges inside the file) is proven here.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <string_view>

#include "checked_math.hpp"
#include "format/gguf_cursor.hpp"
#include "format/gguf_metadata.hpp"
#include "format/index_checks.hpp"
#include "format/readers.hpp"
#include "weightmap/error.hpp"

namespace weightmap::format {
namespace {

constexpr std::uint32_t kDefaultAlignment = 32;
constexpr std::string_view kAlignmentKey = "general.alignment";
// ggml_tensor has 4 dimensions; a GGUF tensor with more cannot be loaded by ggml.
constexpr std::uint32_t kMaxDims = 4;
// ggml counts elements in int64_t.
constexpr std::uint64_t kMaxElements = static_cast<std::uint64_t>(INT64_MAX);
// Smallest possible encodings, used to bound counts by the bytes left in the file.
constexpr std::uint64_t kMinKeyValueBytes = 8 + 1 + 4 + 1;    // 1-byte key, type, u8 value
constexpr std::uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // empty name, 0 dims, type, offset

// Counts were checked against the file size, but a hostile file can still claim millions of
// entries it does not hold; reserve a bounded amount and let real entries grow the vectors.
std::size_t initial_capacity(std::uint64_t count) {
  return static_cast<std::size_t>(std::min<std::uint64_t>(count, 1u << 16));
}

// Names and keys are nearly always ASCII; checking 8 bytes at a time first keeps UTF-8
// validation off the profile of a 10,000-tensor header.
bool is_valid_utf8_name(std::string_view text) {
  std::size_t i = 0;
  for (; i + 8 <= text.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, text.data() + i, 8);
    if ((word & 0x8080808080808080ULL) != 0) return is_valid_utf8(text);
  }
  for (; i < text.size(); ++i) {
    if (static_cast<unsigned char>(text[i]) >= 0x80) return is_valid_utf8(text);
  }
  return true;
}

// Where the fields of a tensor info sit, for errors found after all infos are read.
struct TensorFieldOffsets {
  std::uint64_t name = 0;
  std::uint64_t data_offset = 0;
};

class GgufParser {
 public:
  explicit GgufParser(const io::ByteSource& source) : cursor_(source) {
    index_.format = FileFormat::gguf;
  }

  FileIndex parse() && {
    read_preamble();
    read_metadata();
    resolve_alignment();
    read_tensor_infos();
    place_tensor_data();
    reject_overlaps();
    return std::move(index_);
  }

 private:
  [[noreturn]] void fail(ErrorCode code, std::string message, std::uint64_t offset,
                         std::string_view tensor = {}) const {
    throw Error(code, std::move(message),
                {cursor_.file(), tensor.empty() ? std::string() : printable(tensor), offset});
  }

  void read_preamble() {
    std::array<char, 4> magic{};
    for (auto& byte : magic) byte = static_cast<char>(cursor_.read<std::uint8_t>("magic"));
    const std::string_view magic_text(magic.data(), magic.size());
    if (magic_text != "GGUF") {
      fail(ErrorCode::malformed,
           fmt::format("not a GGUF file: it starts with \"{}\", not \"GGUF\"",
                       printable(magic_text)),
           0);
    }
    const auto version = cursor_.read<std::uint32_t>("version");
    if (version != 2 && version != 3) {
      // A big-endian writer stores 2 or 3 as 0x02000000 or 0x03000000: no real version has
      // its low 16 bits clear, so this tells byte order apart from an unknown version.
      if ((version & 0xFFFFu) == 0 && version != 0) {
        fail(ErrorCode::unsupported,
             fmt::format("the file is big-endian (its version field reads 0x{:08x}); only "
                         "little-endian GGUF files are supported",
                         version),
             4);
      }
      fail(ErrorCode::unsupported,
           fmt::format("GGUF version {} is not supported (only 2 and 3)", version), 4);
    }
    tensor_count_ = cursor_.read<std::uint64_t>("tensor count");
    kv_count_ = cursor_.read<std::uint64_t>("metadata key count");
    check_count_fits(kv_count_, kMinKeyValueBytes, "metadata key", "keys", 16);
  }

  // A count read from the header (at byte `count_offset`) must fit in the bytes left, at
  // `min_bytes` each, before anything is reserved for it.
  void check_count_fits(std::uint64_t count, std::uint64_t min_bytes, std::string_view what,
                        std::string_view plural, std::uint64_t count_offset) const {
    const std::uint64_t left = cursor_.remaining();
    if (count > left / min_bytes) {
      fail(ErrorCode::malformed,
           fmt::format("{} count {} is impossible: the {} bytes left in the file hold at most "
                       "{} {}",
                       what, count, left, left / min_bytes, plural),
           count_offset);
    }
  }

  void read_metadata() {
    index_.metadata.reserve(initial_capacity(kv_count_));
    std::vector<std::uint64_t> key_offsets;
    key_offsets.reserve(initial_capacity(kv_count_));
    for (std::uint64_t i = 0; i < kv_count_; ++i) {
      const std::uint64_t key_offset = cursor_.offset();
      std::string key = cursor_.read_string("metadata key");
      if (key.empty()) fail(ErrorCode::malformed, "metadata key is empty", key_offset);
      if (!is_valid_utf8_name(key)) {
        fail(ErrorCode::malformed,
             fmt::format("metadata key \"{}\" is not valid UTF-8", printable(key)), key_offset);
      }
      const std::uint64_t type_offset = cursor_.offset();
      const auto type_id = cursor_.read<std::uint32_t>("metadata value type");
      if (key == kAlignmentKey) alignment_value_offset_ = cursor_.offset();
      MetadataValue value;
      try {
        value = read_gguf_value(cursor_, type_id, type_offset);
      } catch (const Error& error) {
        throw Error(error.code(),
                    fmt::format("metadata key \"{}\": {}", printable(key), error.message()),
                    error.context());
      }
      index_.metadata.emplace_back(std::move(key), std::move(value));
      key_offsets.push_back(key_offset);
    }
    // Checked once every key is in place, so the views into the keys stay valid.
    const auto& metadata = index_.metadata;
    if (const auto repeat = find_repeated_name(
            metadata.size(),
            [&](std::size_t i) -> std::string_view { return metadata[i].first; })) {
      const auto [first, second] = *repeat;
      fail(ErrorCode::duplicate,
           fmt::format("metadata key \"{}\" appears twice (first at byte {})",
                       printable(metadata[second].first), key_offsets[first]),
           key_offsets[second]);
    }
  }

  // ggml accepts general.alignment only as a u32 power of two; so do we.
  void resolve_alignment() {
    index_.alignment = kDefaultAlignment;
    const auto found = std::find_if(index_.metadata.begin(), index_.metadata.end(),
                                    [](const auto& kv) { return kv.first == kAlignmentKey; });
    if (found == index_.metadata.end()) return;
    const MetadataValue& value = found->second;
    if (value.type != MetadataType::u32) {
      fail(ErrorCode::malformed,
           fmt::format("{} must be a u32, but it is a {}", kAlignmentKey,
                       metadata_type_name(value.type)),
           alignment_value_offset_);
    }
    const auto alignment = static_cast<std::uint32_t>(std::get<std::uint64_t>(value.value));
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
      fail(ErrorCode::malformed,
           fmt::format("{} is {}; it must be a nonzero power of two", kAlignmentKey, alignment),
           alignment_value_offset_);
    }
    index_.alignment = alignment;
  }

  void read_tensor_infos() {
    // Checked here rather than with the key count: the metadata has used up its bytes.
    check_count_fits(tensor_count_, kMinTensorInfoBytes, "tensor", "tensor infos", 8);
    index_.tensors.reserve(initial_capacity(tensor_count_));
    field_offsets_.reserve(initial_capacity(tensor_count_));
    for (std::uint64_t i = 0; i < tensor_count_; ++i) {
      TensorFieldOffsets& fields = field_offsets_.emplace_back();
      fields.name = cursor_.offset();
      TensorInfo& tensor = index_.tensors.emplace_back();
      tensor.name = cursor_.read_string("tensor name");
      try {
        read_tensor_info(tensor, fields);
      } catch (Error& error) {
        error.add_context({cursor_.file(), printable(tensor.name)});
        throw;
      }
    }
    // Checked once every tensor is in place, so the views into the names stay valid.
    const auto& tensors = index_.tensors;
    if (const auto repeat = find_repeated_name(
            tensors.size(), [&](std::size_t i) -> std::string_view { return tensors[i].name; })) {
      const auto [first, second] = *repeat;
      fail(ErrorCode::duplicate,
           fmt::format("tensor name appears twice (first at byte {})", field_offsets_[first].name),
           field_offsets_[second].name, tensors[second].name);
    }
  }

  // Everything of one tensor info after its name; stores the offset relative to the data
  // section until the section's start is known.
  void read_tensor_info(TensorInfo& tensor, TensorFieldOffsets& fields) {
    if (!is_valid_utf8_name(tensor.name)) {
      fail(ErrorCode::malformed, "tensor name is not valid UTF-8", fields.name);
    }
    const std::uint64_t dims_offset = cursor_.offset();
    const auto n_dims = cursor_.read<std::uint32_t>("tensor dimension count");
    if (n_dims > kMaxDims) {
      fail(ErrorCode::malformed,
           fmt::format("tensor has {} dimensions; ggml supports at most {}", n_dims, kMaxDims),
           dims_offset);
    }
    // GGUF lists dimensions innermost first; TensorInfo::shape is outermost first.
    const std::uint64_t ne_offset = cursor_.offset();
    tensor.shape.resize(n_dims);
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      tensor.shape[n_dims - 1 - d] = cursor_.read<std::uint64_t>("tensor dimension");
    }
    const std::optional<std::uint64_t> counted = checked_product(tensor.shape);
    const std::uint64_t elements = counted.value_or(0);
    if (!counted || elements > kMaxElements) {
      fail(ErrorCode::malformed,
           fmt::format("tensor shape [{}] has more elements than ggml can count (2^63-1)",
                       fmt::join(tensor.shape, ", ")),
           ne_offset);
    }
    const std::uint64_t type_offset = cursor_.offset();
    const auto type_id = cursor_.read<std::uint32_t>("tensor type");
    const auto dtype = find_dtype_by_ggml_id(type_id);
    if (!dtype) {
      fail(ErrorCode::unknown_dtype, fmt::format("unknown ggml tensor type id {}", type_id),
           type_offset);
    }
    tensor.dtype = *dtype;
    const DTypeInfo& info = dtype_info(*dtype);
    const std::uint64_t row = n_dims == 0 ? 1 : tensor.shape.back();
    if (row % info.block_size != 0) {
      fail(ErrorCode::malformed,
           fmt::format("rows of {} elements are not a whole number of {} blocks ({} elements "
                       "each)",
                       row, info.name, info.block_size),
           ne_offset);
    }
    const auto nbytes = dtype_bytes_for(*dtype, elements);
    if (!nbytes) {
      fail(ErrorCode::malformed,
           fmt::format("tensor of {} {} elements has a size in bytes that overflows 64 bits",
                       elements, info.name),
           ne_offset);
    }
    tensor.nbytes = *nbytes;
    fields.data_offset = cursor_.offset();
    tensor.offset = cursor_.read<std::uint64_t>("tensor data offset");
  }

  // The data section starts at the first multiple of the alignment after the header; each
  // tensor's offset is relative to it and must keep the data aligned and inside the file.
  void place_tensor_data() {
    const std::uint64_t header_end = cursor_.offset();
    const std::uint64_t alignment = index_.alignment;
    const std::uint64_t padding = (alignment - header_end % alignment) % alignment;
    if (header_end > std::numeric_limits<std::uint64_t>::max() - padding) {
      fail(ErrorCode::malformed, "the data section starts past 2^64", header_end);
    }
    const std::uint64_t data_start = header_end + padding;
    index_.data_offset = data_start;
    const std::uint64_t size = cursor_.file_size();
    for (std::size_t i = 0; i < index_.tensors.size(); ++i) {
      TensorInfo& tensor = index_.tensors[i];
      const std::uint64_t relative = tensor.offset;
      const std::uint64_t field = field_offsets_[i].data_offset;
      if (relative % alignment != 0) {
        fail(ErrorCode::malformed,
             fmt::format("tensor data offset {} is not a multiple of the alignment {}", relative,
                         alignment),
             field, tensor.name);
      }
      if (data_start > size || relative > size - data_start ||
          tensor.nbytes > size - data_start - relative) {
        fail(ErrorCode::malformed,
             fmt::format("tensor data ({} bytes at offset {} of the data section, which starts "
                         "at byte {}) runs past the end of the file ({} bytes)",
                         tensor.nbytes, relative, data_start, size),
             field, tensor.name);
      }
      tensor.offset = data_start + relative;
    }
  }

  // ggml does not check this, but two tensors sharing bytes is either corruption or a trick;
  // a writer never produces it.
  void reject_overlaps() const {
    const auto& tensors = index_.tensors;
    const auto overlap = find_overlap(tensors.size(), [&](std::size_t i) {
      return std::pair{tensors[i].offset, tensors[i].nbytes};
    });
    if (!overlap) return;
    const TensorInfo& earlier = tensors[overlap->first];
    const TensorInfo& tensor = tensors[overlap->second];
    fail(ErrorCode::malformed,
         fmt::format("tensor data [{}, {}) overlaps tensor \"{}\" at [{}, {})", tensor.offset,
                     tensor.offset + tensor.nbytes, printable(earlier.name), earlier.offset,
                     earlier.offset + earlier.nbytes),
         field_offsets_[overlap->second].data_offset, tensor.name);
  }

  GgufCursor cursor_;
  FileIndex index_;
  std::uint64_t tensor_count_ = 0;
  std::uint64_t kv_count_ = 0;
  std::uint64_t alignment_value_offset_ = 0;
  std::vector<TensorFieldOffsets> field_offsets_;
};

}  // namespace

FileIndex read_gguf(const io::ByteSource& source) { return GgufParser(source).parse(); }

}  // namespace weightmap::format
