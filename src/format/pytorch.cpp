// PyTorch zip checkpoints (torch.save since 1.6): "<archive>/data.pkl" describes the objects,
// "<archive>/data/<key>" holds each storage's raw bytes as a stored zip entry. The pickle is
// read by the restricted reader (nothing runs); each tensor found in dicts and lists becomes
// a TensorInfo whose range lies inside its storage's entry.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <unordered_map>

#include "checked_math.hpp"
#include "format/index_checks.hpp"
#include "format/pickle_reader.hpp"
#include "format/readers.hpp"
#include "format/zip_reader.hpp"
#include "weightmap/error.hpp"

namespace weightmap::format {
namespace {

// data.pkl of a state dict is a few bytes per tensor; this only stops a hostile size field
// from making us allocate the whole file.
constexpr std::uint64_t kMaxPickleBytes = std::uint64_t{1} << 30;
constexpr std::size_t kMaxNesting = 64;  // dicts in dicts in lists ...
constexpr std::string_view kPickleName = "data.pkl";

// The object tree, flattened: tensors in dicts get dotted names ("state_dict.fc.weight"),
// in lists and tuples their index. Anything else (numbers, strings, opaque objects) is
// skipped. A budget on visits stops shared sub-trees from multiplying the work.
class Flattener {
 public:
  Flattener(const pickle::Program& program, const std::string& file)
      : program_(program), file_(file) {}

  std::vector<std::pair<std::string, std::size_t>> run() {
    const pickle::Node& root = program_.nodes[program_.root];
    if (root.kind == pickle::Kind::tensor) {
      named_.emplace_back("tensor", static_cast<std::size_t>(root.integer));
    } else {
      visit(program_.root, "", 0);
    }
    return std::move(named_);
  }

 private:
  static std::string join(const std::string& prefix, std::string_view key) {
    if (prefix.empty()) return std::string(key);
    return fmt::format("{}.{}", prefix, key);
  }

  void visit(pickle::NodeId id, const std::string& name, std::size_t depth) {
    if (++visits_ > program_.nodes.size() * 4 + 1024) {
      throw Error(ErrorCode::malformed,
                  "the checkpoint's objects refer to each other too many times to list",
                  {file_, printable(name)});
    }
    const pickle::Node& node = program_.nodes[id];
    switch (node.kind) {
      case pickle::Kind::tensor:
        named_.emplace_back(name, static_cast<std::size_t>(node.integer));
        return;
      case pickle::Kind::dict:
      case pickle::Kind::list:
      case pickle::Kind::tuple: break;
      default: return;
    }
    if (depth >= kMaxNesting) {
      throw Error(ErrorCode::malformed,
                  fmt::format("dicts and lists nested deeper than {} levels", kMaxNesting),
                  {file_, printable(name)});
    }
    if (node.kind == pickle::Kind::dict) {
      for (std::size_t i = 0; i + 1 < node.items.size(); i += 2) {
        const pickle::Node& key = program_.nodes[node.items[i]];
        if (key.kind == pickle::Kind::text) {
          visit(node.items[i + 1], join(name, key.text), depth + 1);
        } else if (key.kind == pickle::Kind::integer) {
          visit(node.items[i + 1], join(name, std::to_string(key.integer)), depth + 1);
        }
      }
    } else {
      for (std::size_t i = 0; i < node.items.size(); ++i) {
        visit(node.items[i], join(name, std::to_string(i)), depth + 1);
      }
    }
  }

  const pickle::Program& program_;
  const std::string& file_;
  std::vector<std::pair<std::string, std::size_t>> named_;
  std::size_t visits_ = 0;
};

class CheckpointReader {
 public:
  explicit CheckpointReader(const io::ByteSource& source)
      : source_(source), zip_(read_zip_directory(source)) {
    for (const auto& entry : zip_.entries) entries_.emplace(entry.name, &entry);
  }

  FileIndex read() {
    const ZipEntry& pickle_entry = find_pickle();
    check_byte_order();
    const std::vector<std::byte> pickle_bytes = read_stored(pickle_entry);
    const pickle::Program program =
        pickle::read_pickle(pickle_bytes, {source_.name(), pickle_entry.data_offset});

    FileIndex index;
    index.format = FileFormat::pytorch_zip;
    const auto named = Flattener(program, source_.name()).run();
    index.tensors.reserve(named.size());
    for (const auto& [name, tensor] : named) {
      index.tensors.push_back(make_tensor(name, program, program.tensors[tensor]));
    }
    const auto& tensors = index.tensors;
    if (const auto repeat = find_repeated_name(
            tensors.size(), [&](std::size_t i) -> std::string_view { return tensors[i].name; })) {
      const TensorInfo& again = tensors[repeat->second];
      throw Error(ErrorCode::duplicate, "tensor name appears twice in the checkpoint",
                  {source_.name(), printable(again.name), again.offset});
    }
    index.data_offset = index.tensors.empty() ? 0 : first_storage_offset_;
    MetadataValue globals;
    globals.type = MetadataType::array;
    globals.element_type = MetadataType::string;
    MetadataArray items;
    for (const auto& global : program.globals) {
      MetadataValue value;
      value.value = global;
      items.push_back(std::move(value));
    }
    globals.value = std::move(items);
    index.metadata.emplace_back("pytorch.globals", std::move(globals));
    return index;
  }

 private:
  [[noreturn]] void fail(ErrorCode code, const std::string& message, const std::string& tensor,
                         std::uint64_t offset) const {
    throw Error(code, message, {source_.name(), printable(tensor), offset});
  }

  const ZipEntry* find(const std::string& name) const {
    const auto it = entries_.find(name);
    return it == entries_.end() ? nullptr : it->second;
  }

  // The pickle is "<archive>/data.pkl" for one top-level folder <archive> (the file's stem
  // when it was saved).
  const ZipEntry& find_pickle() {
    for (const auto& entry : zip_.entries) {
      const std::string_view name = entry.name;
      const auto slash = name.find('/');
      if (slash != std::string_view::npos && name.substr(slash + 1) == kPickleName) {
        prefix_ = std::string(name.substr(0, slash + 1));
        return entry;
      }
    }
    fail(ErrorCode::unsupported,
         "a zip archive without <archive>/data.pkl is not a PyTorch checkpoint", {},
         zip_.central_directory_offset);
  }

  void check_byte_order() const {
    const ZipEntry* entry = find(prefix_ + "byteorder");
    if (entry == nullptr) return;  // written since PyTorch 1.10; older files are little-endian
    if (entry->size > 16) {
      fail(ErrorCode::malformed, "the byteorder entry is longer than \"little\"", {},
           entry->data_offset);
    }
    const std::vector<std::byte> bytes = read_stored(*entry);
    const std::string_view order(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    if (order != "little") {
      fail(ErrorCode::unsupported,
           fmt::format("the checkpoint's byte order is \"{}\"; weightmap reads little-endian "
                       "checkpoints only",
                       printable(order)),
           {}, entry->data_offset);
    }
  }

  std::vector<std::byte> read_stored(const ZipEntry& entry) const {
    if (!entry.stored()) {
      fail(ErrorCode::unsupported,
           fmt::format("zip entry \"{}\" is compressed (method {}); PyTorch stores entries "
                       "uncompressed and weightmap reads only those",
                       printable(entry.name), entry.method),
           {}, entry.local_header_offset);
    }
    if (entry.size > kMaxPickleBytes) {
      fail(ErrorCode::unsupported,
           fmt::format("zip entry \"{}\" is {} bytes, more than the {} weightmap reads",
                       printable(entry.name), entry.size, kMaxPickleBytes),
           {}, entry.data_offset);
    }
    std::vector<std::byte> bytes(static_cast<std::size_t>(entry.size));
    source_.read_at(entry.data_offset, bytes);
    return bytes;
  }

  // The stored zip entry holding a storage, checked to hold all its elements.
  const ZipEntry& storage_entry(const pickle::StorageRef& storage, const std::string& tensor,
                                std::uint64_t element_bytes) {
    const std::string name = prefix_ + "data/" + storage.key;
    const ZipEntry* entry = find(name);
    if (entry == nullptr) {
      fail(ErrorCode::malformed,
           fmt::format("storage \"{}\" has no zip entry \"{}\"", printable(storage.key),
                       printable(name)),
           tensor, storage.pickle_offset);
    }
    if (!entry->stored()) {
      fail(ErrorCode::unsupported,
           fmt::format("storage entry \"{}\" is compressed (method {}); weightmap maps and "
                       "reads stored entries only",
                       printable(name), entry->method),
           tensor, entry->local_header_offset);
    }
    if (storage.numel > entry->size / element_bytes) {
      fail(ErrorCode::malformed,
           fmt::format("storage \"{}\" claims {} elements of {} bytes but its entry holds {} "
                       "bytes",
                       printable(storage.key), storage.numel, element_bytes, entry->size),
           tensor, entry->data_offset);
    }
    first_storage_offset_ = std::min(first_storage_offset_, entry->data_offset);
    return *entry;
  }

  TensorInfo make_tensor(const std::string& name, const pickle::Program& program,
                         const pickle::TensorRef& tensor) {
    if (!is_valid_utf8(name)) {
      fail(ErrorCode::malformed, "tensor name is not valid UTF-8", name, tensor.pickle_offset);
    }
    const pickle::StorageRef& storage = program.storages[tensor.storage];
    const std::uint64_t element_bytes = dtype_info(storage.dtype).block_bytes;
    const ZipEntry& entry = storage_entry(storage, name, element_bytes);

    // Element count, and the last element the strides reach, without overflow.
    std::optional<std::uint64_t> count = checked_product(tensor.shape);
    std::optional<std::uint64_t> last = tensor.storage_offset;
    for (std::size_t i = 0; i < tensor.shape.size() && last; ++i) {
      const std::uint64_t dim = tensor.shape[i];
      const std::optional<std::uint64_t> reach =
          dim > 0 ? checked_mul(dim - 1, tensor.stride[i]) : std::uint64_t{0};
      last = reach ? checked_add(*last, *reach) : std::nullopt;
    }
    const std::optional<std::uint64_t> nbytes =
        count ? checked_mul(*count, element_bytes) : std::nullopt;
    if (!nbytes || !last) {
      fail(ErrorCode::malformed, "the tensor's size or strides overflow 64 bits", name,
           tensor.pickle_offset);
    }
    const bool reaches_outside =
        *count == 0 ? tensor.storage_offset > storage.numel : *last >= storage.numel;
    if (reaches_outside) {
      fail(ErrorCode::malformed,
           fmt::format("the tensor (offset {}, size [{}], stride [{}]) reaches past the end "
                       "of its storage \"{}\" of {} elements",
                       tensor.storage_offset, fmt::join(tensor.shape, ", "),
                       fmt::join(tensor.stride, ", "), printable(storage.key), storage.numel),
           name, tensor.pickle_offset);
    }

    TensorInfo info;
    info.name = name;
    info.dtype = storage.dtype;
    info.shape = tensor.shape;
    info.offset = entry.data_offset + tensor.storage_offset * element_bytes;
    info.nbytes = *nbytes;
    if (!is_contiguous(tensor)) info.strides = tensor.stride;
    return info;
  }

  // Row-major with no gaps; sizes 0 and 1 make any stride of their dimension irrelevant.
  static bool is_contiguous(const pickle::TensorRef& tensor) {
    if (std::find(tensor.shape.begin(), tensor.shape.end(), 0) != tensor.shape.end()) {
      return true;
    }
    std::uint64_t expected = 1;
    for (std::size_t i = tensor.shape.size(); i-- > 0;) {
      if (tensor.shape[i] == 1) continue;
      if (tensor.stride[i] != expected) return false;
      expected *= tensor.shape[i];
    }
    return true;
  }

  const io::ByteSource& source_;
  ZipDirectory zip_;
  std::unordered_map<std::string_view, const ZipEntry*> entries_;
  std::string prefix_;
  std::uint64_t first_storage_offset_ = UINT64_MAX;
};

}  // namespace

FileIndex read_pytorch(const io::ByteSource& source) { return CheckpointReader(source).read(); }

bool is_legacy_pytorch(const io::ByteSource& source) {
  // Legacy torch.save files are a bare pickle stream: PROTO 2, then the magic number
  // 0x1950a86a20f9469cfc6c as a 10-byte LONG1.
  static constexpr std::array<unsigned char, 14> kMagic = {
      0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  if (source.size() < kMagic.size()) return false;
  std::array<std::byte, kMagic.size()> head{};
  source.read_at(0, head);
  return std::memcmp(head.data(), kMagic.data(), kMagic.size()) == 0;
}

}  // namespace weightmap::format
