// A restricted pickle reader (protocols 2 to 5) for PyTorch's data.pkl. It runs the pickle
// stack machine over the bytes and builds a small value tree; it never calls anything. The
// few callables a state dict needs (OrderedDict, torch._utils._rebuild_tensor_v2,
// _rebuild_parameter, the storage classes) are interpreted by name; every other global
// becomes an opaque placeholder, so training state pickled beside the weights (callbacks,
// hyper-parameter objects) costs nothing and runs nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "weightmap/dtype.hpp"

namespace weightmap::format::pickle {

// Bounds on what a pickle may make the reader hold; going past one is Error(malformed).
struct Limits {
  std::size_t max_objects = std::size_t{1} << 23;  // values created, all kinds
  std::size_t max_stack = std::size_t{1} << 20;    // values on the stack at once
  std::size_t max_marks = 1000;                    // nested MARKs
  std::size_t max_memo = std::size_t{1} << 22;     // memo entries
  std::size_t max_string = std::size_t{1} << 26;   // bytes of one string
  std::size_t max_dims = 64;                       // tensor rank
};

using NodeId = std::uint32_t;

enum class Kind : std::uint8_t {
  none,
  boolean,
  integer,      // fits int64
  big_integer,  // LONG1/LONG4 wider than 64 bits: kept opaque
  floating,
  text,
  bytes,
  tuple,
  list,
  dict,
  set,
  global,  // a class or function named by GLOBAL/STACK_GLOBAL
  object,  // what calling or instantiating an unknown global would have made
  storage,
  tensor,
};

// What a known global stands for.
enum class Callable : std::uint8_t {
  unknown,
  ordered_dict,
  rebuild_tensor_v2,
  rebuild_parameter,
  rebuild_parameter_with_state,
  storage_class,  // torch.FloatStorage, ..., torch.storage.UntypedStorage
};

struct Node {
  Kind kind = Kind::none;
  Callable callable = Callable::unknown;  // for globals
  std::int64_t integer = 0;               // boolean, integer; storage/tensor: index below
  double number = 0;                      // floating
  std::string text;           // text, bytes; global and object: "module.name" of the (class) global
  std::vector<NodeId> items;  // tuple, list, set; dict: key, value, key, value, ...
};

struct StorageRef {
  std::string key;  // the zip entry is "<archive>/data/<key>"
  DType dtype = DType::U8;
  std::uint64_t numel = 0;  // elements of dtype
  std::uint64_t pickle_offset = 0;
};

struct TensorRef {
  std::size_t storage = 0;  // index into Program::storages
  std::uint64_t storage_offset = 0;
  std::vector<std::uint64_t> shape;
  std::vector<std::uint64_t> stride;
  std::uint64_t pickle_offset = 0;  // offset of the REDUCE that built it
};

struct Program {
  std::vector<Node> nodes;
  std::vector<StorageRef> storages;
  std::vector<TensorRef> tensors;
  std::vector<std::string> globals;  // every global met, "module.name", sorted, unique
  NodeId root = 0;
};

// Where the pickle sits, for error messages: offsets are reported as `base_offset` + offset
// of the opcode in the pickle.
struct Origin {
  std::string file;
  std::uint64_t base_offset = 0;
};

// Throws Error(malformed) naming the opcode's absolute offset; Error(unsupported) for
// pickle features PyTorch does not write (protocol 0/1 text opcodes, extension registry,
// out-of-band buffers).
Program read_pickle(std::span<const std::byte> bytes, const Origin& origin,
                    const Limits& limits = {});

}  // namespace weightmap::format::pickle
