// The safetensors reader: an 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, then the data area. Everything the header claims is
// proved here, once: sizes match dtype x shape, and the ranges tile the data area exactly,
// as the reference reader demands.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <functional>
#include <optional>

#include "checked_math.hpp"
#include "format/index_checks.hpp"
#include "format/readers.hpp"
#include "format/safetensors_json.hpp"
#include "weightmap/error.hpp"

namespace weightmap::format {
namespace {

namespace ondemand = simdjson::ondemand;
using safetensors_json::describe;

constexpr std::uint64_t kLengthBytes = 8;
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;  // the reference reader's limit
// No framework makes tensors with more dimensions (PyTorch stops at 64); the cap keeps a
// hostile shape from growing a vector without bound.
constexpr std::size_t kMaxDims = 64;

// The shortest tensor entry: "":{"dtype":"F4","shape":[],"data_offsets":[0,0]},
constexpr std::size_t kMinEntryBytes = 48;

constexpr std::string_view kMetadataKey = "__metadata__";

enum class TensorField { dtype, shape, data_offsets };

bool is_number_error(simdjson::error_code error) {
  return error == simdjson::INCORRECT_TYPE || error == simdjson::NUMBER_ERROR ||
         error == simdjson::NUMBER_OUT_OF_RANGE;
}

// Parses one header; holds what every error message needs (file, where the header sits).
class HeaderParser {
 public:
  HeaderParser(const std::string& file, std::string_view header, std::uint64_t file_size)
      : file_(file),
        header_(header),
        data_start_(kLengthBytes + header.size()),
        data_size_(file_size - data_start_) {}

  FileIndex parse(ondemand::parser& parser, simdjson::padded_string_view json) {
    if (const auto error = parser.iterate(json).get(doc_)) fail_document(error);
    document_alive_ = true;
    ondemand::object root;
    if (const auto error = doc_.get_object().get(root)) {
      if (error == simdjson::INCORRECT_TYPE) {
        fail(ErrorCode::malformed, "the header is not a JSON object", {}, kLengthBytes);
      }
      fail_json(error, {});
    }

    FileIndex index;
    // A tensor entry takes at least kMinEntryBytes of header: reserving for the most the
    // header can hold never reallocates, and pages of the excess are never touched.
    index.tensors.reserve(header_.size() / kMinEntryBytes);
    index.format = FileFormat::safetensors;
    index.data_offset = data_start_;
    index.alignment = 1;  // safetensors promises no alignment
    bool seen_metadata = false;
    for (auto field_result : root) {
      ondemand::field field;
      if (const auto error = std::move(field_result).get(field)) fail_json(error, {});
      const char* where = field.key().raw() - 1;  // the key's opening quote
      // Names need no is_valid_utf8 pass of their own: simdjson validated every byte of the
      // header as UTF-8 in iterate(), and unescaping refuses \u escapes of lone surrogates.
      std::string_view key;
      if (const auto error = field.unescaped_key().get(key)) {
        fail(ErrorCode::malformed,
             fmt::format("a tensor name is not a valid JSON string: {}", describe(error)), {},
             offset_of(where));
      }
      if (key == kMetadataKey) {
        if (seen_metadata) {
          fail(ErrorCode::duplicate, "\"__metadata__\" appears twice in the header", {},
               offset_of(where));
        }
        seen_metadata = true;
        parse_metadata(field.value(), index);
        continue;
      }
      TensorInfo& tensor = index.tensors.emplace_back();
      tensor.name.assign(key);
      parse_tensor(field.value(), tensor, where);
    }
    check_nothing_follows();

    check_unique_metadata_keys(index);
    sort_in_file_order(index.tensors);
    check_unique_names(index.tensors);
    check_tiling(index.tensors);
    return index;
  }

 private:
  [[noreturn]] void fail(ErrorCode code, std::string message, std::string_view tensor,
                         std::optional<std::uint64_t> offset) const {
    throw Error(code, std::move(message), {file_, printable(tensor), offset});
  }

  std::uint64_t offset_of(const char* where) const {
    return kLengthBytes + static_cast<std::uint64_t>(where - header_.data());
  }

  // A value of the wrong kind: "`what` (found `token`)", the JSON text found instead.
  [[noreturn]] void fail_found(std::string_view what, std::string_view token,
                               std::string_view tensor, const char* where) const {
    fail(ErrorCode::malformed,
         fmt::format("{} (found {})", what, printable(safetensors_json::trim_token(token))), tensor,
         offset_of(where));
  }

  // Errors simdjson finds while indexing the whole document, before any value is read.
  [[noreturn]] void fail_document(simdjson::error_code error) const {
    if (error == simdjson::UTF8_ERROR) {
      const auto bad = safetensors_json::first_invalid_utf8(header_, kLengthBytes);
      const auto at = bad.value_or(kLengthBytes);
      fail(ErrorCode::malformed,
           fmt::format("the header is not valid UTF-8 (a name or string holds byte 0x{:02x})",
                       static_cast<unsigned char>(header_[at - kLengthBytes])),
           {}, at);
    }
    if (error == simdjson::UNESCAPED_CHARS) {
      fail(ErrorCode::malformed,
           "the header is not valid JSON: a string holds an unescaped control character", {},
           kLengthBytes);
    }
    fail(ErrorCode::malformed, fmt::format("the header is not valid JSON: {}", describe(error)), {},
         kLengthBytes);
  }

  // Syntax errors the on-demand parser meets on its way through the values.
  [[noreturn]] void fail_json(simdjson::error_code error, std::string_view tensor) {
    std::uint64_t at = kLengthBytes;
    const char* location = nullptr;
    if (document_alive_ && !doc_.current_location().get(location) && location >= header_.data() &&
        location <= header_.data() + header_.size()) {
      at = offset_of(location);
    }
    fail(ErrorCode::malformed, fmt::format("the header is not valid JSON: {}", describe(error)),
         tensor, at);
  }

  void check_nothing_follows() {
    const char* location = nullptr;
    if (doc_.current_location().get(location) == simdjson::SUCCESS) {
      fail(ErrorCode::malformed, "the header has more text after its JSON object", {},
           offset_of(location));
    }
  }

  void parse_metadata(ondemand::value value, FileIndex& index) {
    ondemand::object object;
    if (const auto error = value.get_object().get(object)) {
      if (error != simdjson::INCORRECT_TYPE) fail_json(error, {});
      fail(ErrorCode::malformed, "\"__metadata__\" is not an object of strings", {},
           offset_of(value.raw_json_token().data()));
    }
    for (auto field_result : object) {
      ondemand::field field;
      if (const auto error = std::move(field_result).get(field)) fail_json(error, {});
      const char* where = field.key().raw() - 1;
      std::string_view key;
      if (const auto error = field.unescaped_key().get(key)) {
        fail(ErrorCode::malformed,
             fmt::format("a \"__metadata__\" key is not a valid JSON string: {}", describe(error)),
             {}, offset_of(where));
      }
      auto& entry = index.metadata.emplace_back(std::string(key), MetadataValue{});
      std::string_view text;
      if (const auto error = field.value().get_string().get(text)) {
        if (error != simdjson::INCORRECT_TYPE) fail_json(error, {});
        fail_found(
            fmt::format("\"__metadata__\" value of \"{}\" is not a string", printable(entry.first)),
            field.value().raw_json_token(), {}, where);
      }
      entry.second.value = std::string(text);
    }
  }

  // `key` gets the unescaped key when it is none of the three, for the error message.
  std::optional<TensorField> classify(ondemand::field& field, std::string_view& key) {
    // Comparing the raw key is enough for every writer we know; a key spelled with escapes
    // is unescaped before it is called unknown.
    const ondemand::raw_json_string raw = field.key();
    if (raw == "dtype") return TensorField::dtype;
    if (raw == "shape") return TensorField::shape;
    if (raw == "data_offsets") return TensorField::data_offsets;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) return std::nullopt;
    if (key == "dtype") return TensorField::dtype;
    if (key == "shape") return TensorField::shape;
    if (key == "data_offsets") return TensorField::data_offsets;
    return std::nullopt;
  }

  void parse_tensor(ondemand::value value, TensorInfo& tensor, const char* where) {
    const std::string_view name = tensor.name;
    ondemand::object object;
    if (const auto error = value.get_object().get(object)) {
      if (error != simdjson::INCORRECT_TYPE) fail_json(error, name);
      fail(ErrorCode::malformed, "the tensor's entry is not a JSON object", name, offset_of(where));
    }
    bool have_dtype = false;
    bool have_shape = false;
    bool have_offsets = false;
    std::array<std::uint64_t, kMaxDims> dims{};
    std::size_t dim_count = 0;
    std::array<std::uint64_t, 2> range{};
    for (auto field_result : object) {
      ondemand::field field;
      if (const auto error = std::move(field_result).get(field)) fail_json(error, name);
      std::string_view key;
      const auto kind = classify(field, key);
      if (!kind) {
        fail(ErrorCode::malformed,
             fmt::format("unknown field \"{}\" in the tensor's entry (expected dtype, shape, "
                         "data_offsets)",
                         printable(key)),
             name, offset_of(where));
      }
      bool* seen = *kind == TensorField::dtype   ? &have_dtype
                   : *kind == TensorField::shape ? &have_shape
                                                 : &have_offsets;
      if (*seen)
        fail(ErrorCode::malformed, "a field appears twice in the tensor's entry", name,
             offset_of(where));
      *seen = true;
      switch (*kind) {
        case TensorField::dtype: tensor.dtype = parse_dtype(field.value(), name, where); break;
        case TensorField::shape: dim_count = parse_shape(field.value(), dims, name, where); break;
        case TensorField::data_offsets: parse_range(field.value(), range, name, where); break;
      }
    }
    if (!have_dtype)
      fail(ErrorCode::malformed, "the tensor has no \"dtype\"", name, offset_of(where));
    if (!have_shape)
      fail(ErrorCode::malformed, "the tensor has no \"shape\"", name, offset_of(where));
    if (!have_offsets) {
      fail(ErrorCode::malformed, "the tensor has no \"data_offsets\"", name, offset_of(where));
    }
    tensor.shape.assign(dims.begin(), dims.begin() + static_cast<std::ptrdiff_t>(dim_count));
    place(tensor, range, where);
  }

  DType parse_dtype(ondemand::value value, std::string_view name, const char* where) {
    std::string_view text;
    if (const auto error = value.get_string().get(text)) {
      if (error != simdjson::INCORRECT_TYPE) fail_json(error, name);
      fail_found("\"dtype\" is not a string", value.raw_json_token(), name, where);
    }
    // Files hold one or two dtypes: remember the last name instead of searching the table
    // for every tensor.
    if (text == last_dtype_name_) return last_dtype_;
    const auto dtype = find_dtype_by_safetensors_name(text);
    if (!dtype) {
      fail(ErrorCode::unknown_dtype, fmt::format("unknown dtype \"{}\"", printable(text)), name,
           offset_of(where));
    }
    last_dtype_name_.assign(text);
    last_dtype_ = *dtype;
    return *dtype;
  }

  std::size_t parse_shape(ondemand::value value, std::array<std::uint64_t, kMaxDims>& dims,
                          std::string_view name, const char* where) {
    ondemand::array array;
    if (const auto error = value.get_array().get(array)) {
      if (error != simdjson::INCORRECT_TYPE) fail_json(error, name);
      fail_found("\"shape\" is not a list", value.raw_json_token(), name, where);
    }
    std::size_t count = 0;
    for (auto element_result : array) {
      ondemand::value element;
      if (const auto error = std::move(element_result).get(element)) fail_json(error, name);
      std::uint64_t dim = 0;
      if (const auto error = element.get_uint64().get(dim)) {
        if (!is_number_error(error)) fail_json(error, name);
        fail_found("\"shape\" must list integers from 0 to 2^64-1", element.raw_json_token(), name,
                   where);
      }
      if (count == kMaxDims) {
        fail(ErrorCode::unsupported, fmt::format("the shape has more than {} dimensions", kMaxDims),
             name, offset_of(where));
      }
      dims[count++] = dim;
    }
    return count;
  }

  void parse_range(ondemand::value value, std::array<std::uint64_t, 2>& range,
                   std::string_view name, const char* where) {
    ondemand::array array;
    const auto fail_shape = [&](std::string_view found) {
      fail_found("\"data_offsets\" must be [begin, end] with integers from 0 to 2^64-1", found,
                 name, where);
    };
    if (const auto error = value.get_array().get(array)) {
      if (error != simdjson::INCORRECT_TYPE) fail_json(error, name);
      fail_shape(value.raw_json_token());
    }
    std::size_t count = 0;
    for (auto element_result : array) {
      ondemand::value element;
      if (const auto error = std::move(element_result).get(element)) fail_json(error, name);
      if (count == 2) fail_shape("more than two values");
      if (const auto error = element.get_uint64().get(range[count])) {
        if (!is_number_error(error)) fail_json(error, name);
        fail_shape(element.raw_json_token());
      }
      ++count;
    }
    if (count != 2) fail_shape(count == 0 ? "no values" : "one value");
  }

  // Checks that the tensor's byte range holds exactly dtype x shape and lies inside the data
  // area, and records where it is in the file.
  void place(TensorInfo& tensor, const std::array<std::uint64_t, 2>& range, const char* where) {
    const std::string_view name = tensor.name;
    const std::optional<std::uint64_t> counted = checked_product(tensor.shape);
    if (!counted) {
      fail(ErrorCode::malformed,
           fmt::format("shape [{}] has more elements than fit in 64 bits",
                       fmt::join(tensor.shape, ", ")),
           name, offset_of(where));
    }
    const std::uint64_t elements = *counted;
    const auto bytes = dtype_bytes_for(tensor.dtype, elements);
    if (!bytes) {
      const DTypeInfo& info = dtype_info(tensor.dtype);
      if (elements % info.block_size != 0) {
        fail(ErrorCode::malformed,
             fmt::format("{} elements of {} do not fill whole bytes ({} elements take {} bytes)",
                         elements, info.safetensors_name, info.block_size, info.block_bytes),
             name, offset_of(where));
      }
      fail(ErrorCode::malformed,
           fmt::format("{} elements of {} take more bytes than fit in 64 bits", elements,
                       info.safetensors_name),
           name, offset_of(where));
    }
    const auto [begin, end] = range;
    if (begin > end) {
      fail(ErrorCode::malformed,
           fmt::format("\"data_offsets\" [{}, {}] end before they begin", begin, end), name,
           offset_of(where));
    }
    if (end > data_size_) {
      fail(ErrorCode::malformed,
           fmt::format("\"data_offsets\" [{}, {}] run past the end of the data area, which "
                       "holds {} bytes",
                       begin, end, data_size_),
           name, offset_of(where));
    }
    if (end - begin != *bytes) {
      fail(ErrorCode::malformed,
           fmt::format("\"data_offsets\" [{}, {}] hold {} bytes, but {} of shape [{}] takes {}",
                       begin, end, end - begin, dtype_info(tensor.dtype).safetensors_name,
                       fmt::join(tensor.shape, ", "), *bytes),
           name, data_start_ + begin);
    }
    tensor.offset = data_start_ + begin;
    tensor.nbytes = *bytes;
  }

  void check_unique_metadata_keys(const FileIndex& index) const {
    std::vector<std::string_view> keys;
    keys.reserve(index.metadata.size());
    for (const auto& entry : index.metadata) keys.push_back(entry.first);
    std::sort(keys.begin(), keys.end());
    const auto twice = std::adjacent_find(keys.begin(), keys.end());
    if (twice != keys.end()) {
      fail(ErrorCode::duplicate,
           fmt::format("\"__metadata__\" key \"{}\" appears twice", printable(*twice)), {},
           kLengthBytes);
    }
  }

  // File order; zero-size tensors at the same place come before the tensor that starts
  // there, ties by name.
  static void sort_in_file_order(std::vector<TensorInfo>& tensors) {
    const auto before = [](const TensorInfo& a, const TensorInfo& b) {
      if (a.offset != b.offset) return a.offset < b.offset;
      if (a.nbytes != b.nbytes) return a.nbytes < b.nbytes;
      return a.name < b.name;
    };
    // Writers usually list tensors in file order already.
    if (!std::is_sorted(tensors.begin(), tensors.end(), before)) {
      std::sort(tensors.begin(), tensors.end(), before);
    }
  }

  void check_unique_names(const std::vector<TensorInfo>& tensors) const {
    const auto repeat = find_repeated_name(
        tensors.size(), [&](std::size_t i) -> std::string_view { return tensors[i].name; });
    if (repeat) {
      const TensorInfo& again = tensors[repeat->second];
      fail(ErrorCode::duplicate, "the tensor name appears twice in the header", again.name,
           again.offset);
    }
  }

  // The ranges, in file order, must cover the data area from its first byte to the end of
  // the file, each starting where the one before ends.
  void check_tiling(const std::vector<TensorInfo>& tensors) const {
    std::uint64_t next = data_start_;
    const TensorInfo* previous = nullptr;  // the last tensor with bytes
    for (const auto& tensor : tensors) {
      if (tensor.offset > next) {
        if (previous == nullptr) {
          fail(ErrorCode::malformed,
               fmt::format("the first {} bytes of the data area belong to no tensor (the first "
                           "tensor starts at data offset {})",
                           tensor.offset - next, tensor.offset - data_start_),
               tensor.name, data_start_);
        }
        fail(ErrorCode::malformed,
             fmt::format("{} bytes between tensor \"{}\" and this tensor belong to no tensor",
                         tensor.offset - next, printable(previous->name)),
             tensor.name, next);
      }
      if (tensor.offset < next) {
        fail(ErrorCode::malformed,
             fmt::format("the tensor's bytes overlap tensor \"{}\" (data_offsets [{}, {}])",
                         printable(previous->name), previous->offset - data_start_,
                         previous->offset + previous->nbytes - data_start_),
             tensor.name, tensor.offset);
      }
      next = tensor.offset + tensor.nbytes;
      if (tensor.nbytes != 0) previous = &tensor;
    }
    const std::uint64_t end = data_start_ + data_size_;
    if (next < end) {
      fail(ErrorCode::malformed,
           previous == nullptr
               ? fmt::format("the {} bytes after the header belong to no tensor", end - next)
               : fmt::format("the last {} bytes of the file belong to no tensor (they follow "
                             "tensor \"{}\")",
                             end - next, printable(previous->name)),
           {}, next);
    }
  }

  const std::string& file_;
  std::string_view header_;
  std::uint64_t data_start_;
  std::uint64_t data_size_;
  ondemand::document doc_;
  bool document_alive_ = false;
  std::string last_dtype_name_;
  DType last_dtype_ = DType::F32;
};

}  // namespace

FileIndex read_safetensors(const io::ByteSource& source) {
  const std::string& file = source.name();
  const std::uint64_t file_size = source.size();
  if (file_size < kLengthBytes) {
    throw Error(ErrorCode::io,
                fmt::format("the file is too short for safetensors: {} bytes, but the header "
                            "length alone takes 8",
                            file_size),
                {file, {}, 0});
  }
  std::array<std::byte, kLengthBytes> length_bytes{};
  source.read_at(0, length_bytes);
  std::uint64_t header_size = 0;
  for (std::size_t i = 0; i < kLengthBytes; ++i) {
    header_size |= static_cast<std::uint64_t>(length_bytes[i]) << (8 * i);
  }
  if (header_size > kMaxHeaderBytes) {
    throw Error(ErrorCode::malformed,
                fmt::format("the header length {} is over the limit of {} bytes", header_size,
                            kMaxHeaderBytes),
                {file, {}, 0});
  }
  if (header_size > file_size - kLengthBytes) {
    throw Error(ErrorCode::io,
                fmt::format("the header length {} runs past the end of the file ({} bytes)",
                            header_size, file_size),
                {file, {}, 0});
  }

  safetensors_json::JsonScratch scratch;
  const auto json = scratch.load(source, kLengthBytes, static_cast<std::size_t>(header_size));
  HeaderParser parser(file, std::string_view(json.data(), json.length()), file_size);
  return parser.parse(scratch.parser(), json);
}

}  // namespace weightmap::format
