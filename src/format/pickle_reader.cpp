// The pickle stack machine, as in CPython's Lib/pickle.py `_Unpickler`, with every call
// replaced by a value: known callables are interpreted, unknown ones leave an opaque object.
#include "format/pickle_reader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <set>
#include <string_view>
#include <unordered_map>

#include "weightmap/error.hpp"

namespace weightmap::format::pickle {
namespace {

constexpr std::size_t kMaxGlobalLine = 1024;  // "module\n" or "name\n" of GLOBAL

struct StorageClass {
  std::string_view name;
  DType dtype;
};
constexpr std::array<StorageClass, 14> kStorageClasses = {{
    {"torch.FloatStorage", DType::F32},
    {"torch.HalfStorage", DType::F16},
    {"torch.BFloat16Storage", DType::BF16},
    {"torch.DoubleStorage", DType::F64},
    {"torch.LongStorage", DType::I64},
    {"torch.IntStorage", DType::I32},
    {"torch.ShortStorage", DType::I16},
    {"torch.CharStorage", DType::I8},
    {"torch.ByteStorage", DType::U8},
    {"torch.BoolStorage", DType::BOOL},
    {"torch.ComplexFloatStorage", DType::C64},
    // Storages without a type: bytes.
    {"torch.UntypedStorage", DType::U8},
    {"torch.storage.UntypedStorage", DType::U8},
    {"torch.storage._UntypedStorage", DType::U8},
}};

Callable classify(std::string_view name, DType& dtype) {
  if (name == "collections.OrderedDict") return Callable::ordered_dict;
  if (name == "torch._utils._rebuild_tensor_v2") return Callable::rebuild_tensor_v2;
  if (name == "torch._utils._rebuild_parameter") return Callable::rebuild_parameter;
  if (name == "torch._utils._rebuild_parameter_with_state") {
    return Callable::rebuild_parameter_with_state;
  }
  for (const auto& storage : kStorageClasses) {
    if (storage.name == name) {
      dtype = storage.dtype;
      return Callable::storage_class;
    }
  }
  return Callable::unknown;
}

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::none: return "None";
    case Kind::boolean: return "bool";
    case Kind::integer: return "int";
    case Kind::big_integer: return "big int";
    case Kind::floating: return "float";
    case Kind::text: return "str";
    case Kind::bytes: return "bytes";
    case Kind::tuple: return "tuple";
    case Kind::list: return "list";
    case Kind::dict: return "dict";
    case Kind::set: return "set";
    case Kind::global: return "global";
    case Kind::object: return "object";
    case Kind::storage: return "storage";
    case Kind::tensor: return "tensor";
  }
  return "value";
}

class Machine {
 public:
  Machine(std::span<const std::byte> bytes, const Origin& origin, const Limits& limits)
      : bytes_(bytes), origin_(origin), limits_(limits) {}

  Program run() {
    while (true) {
      op_at_ = pos_;
      if (pos_ >= bytes_.size()) fail("the pickle ends without a STOP opcode");
      const auto op = static_cast<unsigned char>(bytes_[pos_++]);
      if (op == '.') break;
      step(op);
    }
    program_.root = peek("STOP");
    program_.globals.assign(globals_.begin(), globals_.end());
    return std::move(program_);
  }

 private:
  [[noreturn]] void fail(const std::string& message) const {
    throw Error(ErrorCode::malformed, "pickle: " + message,
                {origin_.file, {}, origin_.base_offset + op_at_});
  }
  [[noreturn]] void fail_unsupported(const std::string& message) const {
    throw Error(ErrorCode::unsupported, "pickle: " + message,
                {origin_.file, {}, origin_.base_offset + op_at_});
  }

  // --- reading operands ---
  std::span<const std::byte> take(std::uint64_t n, std::string_view what) {
    if (n > bytes_.size() - pos_) {
      fail(fmt::format("the {} needs {} bytes but the pickle has {} left", what, n,
                       bytes_.size() - pos_));
    }
    const auto out = bytes_.subspan(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return out;
  }
  template <typename T>
  T operand(std::string_view what) {
    T value;
    std::memcpy(&value, take(sizeof(T), what).data(), sizeof(T));
    return value;
  }
  // The one big-endian operand (BINFLOAT's double), assembled byte by byte.
  std::uint64_t big_endian_u64(std::string_view what) {
    std::uint64_t value = 0;
    for (const std::byte byte : take(8, what))
      value = value << 8 | std::to_integer<std::uint64_t>(byte);
    return value;
  }
  std::string string_operand(std::uint64_t length, std::string_view what) {
    if (length > limits_.max_string) {
      fail(fmt::format("a {} of {} bytes is longer than the limit of {}", what, length,
                       limits_.max_string));
    }
    const auto span = take(length, what);
    return {reinterpret_cast<const char*>(span.data()), span.size()};
  }
  std::string line_operand(std::string_view what) {
    const std::size_t limit = std::min(bytes_.size() - pos_, kMaxGlobalLine);
    for (std::size_t i = 0; i < limit; ++i) {
      if (bytes_[pos_ + i] == std::byte{'\n'}) {
        std::string text(reinterpret_cast<const char*>(bytes_.data() + pos_), i);
        pos_ += i + 1;
        return text;
      }
    }
    fail(fmt::format("the {} has no end of line within {} bytes", what, limit));
  }

  // --- values and the stack ---
  NodeId make(Node node) {
    if (program_.nodes.size() >= limits_.max_objects) {
      fail(fmt::format("more than {} objects", limits_.max_objects));
    }
    program_.nodes.push_back(std::move(node));
    return static_cast<NodeId>(program_.nodes.size() - 1);
  }
  NodeId make(Kind kind) { return make(Node{.kind = kind}); }
  Node& node(NodeId id) { return program_.nodes[id]; }
  void push(NodeId id) {
    if (stack_.size() >= limits_.max_stack) {
      fail(fmt::format("more than {} values on the stack", limits_.max_stack));
    }
    stack_.push_back(id);
  }
  std::size_t frame_start() const { return marks_.empty() ? 0 : marks_.back(); }
  NodeId pop(std::string_view op) {
    if (stack_.size() <= frame_start()) fail(fmt::format("{} on an empty stack", op));
    const NodeId id = stack_.back();
    stack_.pop_back();
    return id;
  }
  NodeId peek(std::string_view op) const {
    if (stack_.size() <= frame_start()) fail(fmt::format("{} on an empty stack", op));
    return stack_.back();
  }
  std::vector<NodeId> pop_mark(std::string_view op) {
    if (marks_.empty()) fail(fmt::format("{} without a MARK", op));
    const std::size_t start = marks_.back();
    marks_.pop_back();
    std::vector<NodeId> items(stack_.begin() + static_cast<std::ptrdiff_t>(start), stack_.end());
    stack_.resize(start);
    return items;
  }
  NodeId make_sequence(Kind kind, std::vector<NodeId> items) {
    return make(Node{.kind = kind, .items = std::move(items)});
  }
  NodeId make_integer(std::int64_t value) {
    return make(Node{.kind = Kind::integer, .integer = value});
  }
  void memo_put(std::uint64_t index, NodeId id) {
    if (!memo_.contains(index) && memo_.size() >= limits_.max_memo) {
      fail(fmt::format("more than {} memo entries", limits_.max_memo));
    }
    memo_[index] = id;
  }
  void memo_get(std::uint64_t index) {
    const auto it = memo_.find(index);
    if (it == memo_.end()) fail(fmt::format("memo entry {} was never stored", index));
    push(it->second);
  }

  void push_global(std::string module, std::string name) {
    Node n;
    n.kind = Kind::global;
    n.text = module + "." + name;
    DType dtype = DType::U8;
    n.callable = classify(n.text, dtype);
    n.integer = static_cast<std::int64_t>(dtype);
    if (globals_.size() < limits_.max_memo) globals_.insert(n.text);
    push(make(std::move(n)));
  }

  std::int64_t decode_long(std::span<const std::byte> bytes) {
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      value |= std::uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
    }
    if (!bytes.empty() && bytes.size() < 8 &&
        (static_cast<unsigned char>(bytes.back()) & 0x80) != 0) {
      value |= ~std::uint64_t{0} << (8 * bytes.size());  // sign-extend two's complement
    }
    return static_cast<std::int64_t>(value);
  }
  void push_long(std::uint64_t length) {
    if (length > limits_.max_string) fail("a LONG longer than the string limit");
    const auto span = take(length, "LONG");
    if (span.size() <= 8) {
      push(make_integer(decode_long(span)));
    } else {
      push(make(Kind::big_integer));
    }
  }

  // --- the calls a state dict needs ---
  [[noreturn]] void fail_unknown_maker(std::string_view role, const Node& culprit) {
    fail(
        fmt::format("{} would be made by calling {}, which weightmap does not know; nothing "
                    "was run",
                    role, printable(culprit.text)));
  }

  std::uint64_t non_negative(NodeId id, std::string_view what) {
    const Node& n = node(id);
    if (n.kind != Kind::integer || n.integer < 0) {
      fail(fmt::format("{} is a {}, not a non-negative int", what, kind_name(n.kind)));
    }
    return static_cast<std::uint64_t>(n.integer);
  }
  std::vector<std::uint64_t> int_tuple(NodeId id, std::string_view what) {
    const Node& n = node(id);
    if (n.kind != Kind::tuple && n.kind != Kind::list) {
      fail(fmt::format("{} is a {}, not a tuple", what, kind_name(n.kind)));
    }
    if (n.items.size() > limits_.max_dims) {
      fail(fmt::format("{} has {} dimensions, more than {}", what, n.items.size(),
                       limits_.max_dims));
    }
    std::vector<std::uint64_t> out;
    for (const NodeId item : n.items) out.push_back(non_negative(item, what));
    return out;
  }

  NodeId rebuild_tensor(const std::vector<NodeId>& args) {
    if (args.size() < 4) {
      fail(fmt::format("torch._utils._rebuild_tensor_v2 takes at least 4 arguments, got {}",
                       args.size()));
    }
    const Node& storage = node(args[0]);
    if (storage.kind == Kind::object) fail_unknown_maker("a tensor's storage", storage);
    if (storage.kind != Kind::storage) {
      fail(fmt::format("the storage of a tensor is a {}, not a storage", kind_name(storage.kind)));
    }
    TensorRef tensor;
    tensor.storage = static_cast<std::size_t>(storage.integer);
    tensor.storage_offset = non_negative(args[1], "a tensor's storage offset");
    tensor.shape = int_tuple(args[2], "a tensor's size");
    tensor.stride = int_tuple(args[3], "a tensor's stride");
    if (tensor.shape.size() != tensor.stride.size()) {
      fail(fmt::format("a tensor has {} sizes but {} strides", tensor.shape.size(),
                       tensor.stride.size()));
    }
    tensor.pickle_offset = origin_.base_offset + op_at_;
    const auto index = static_cast<std::int64_t>(program_.tensors.size());
    program_.tensors.push_back(std::move(tensor));
    return make(Node{.kind = Kind::tensor, .integer = index});
  }

  NodeId call(NodeId callee_id, NodeId args_id) {
    const Node& callee = node(callee_id);
    if (callee.kind == Kind::object) {
      // Calling something an unknown call returned: still unknown, still not run.
      return make(Node{.kind = Kind::object, .text = callee.text});
    }
    if (callee.kind != Kind::global) {
      fail(fmt::format("REDUCE calls a {}, which is not callable", kind_name(callee.kind)));
    }
    const Node& args = node(args_id);
    if (args.kind != Kind::tuple) {
      fail(fmt::format("REDUCE of {} has {} arguments, not a tuple", printable(callee.text),
                       kind_name(args.kind)));
    }
    switch (callee.callable) {
      case Callable::ordered_dict:
        if (!args.items.empty()) fail("collections.OrderedDict is called with arguments");
        return make(Kind::dict);
      case Callable::rebuild_tensor_v2: return rebuild_tensor(args.items);
      case Callable::rebuild_parameter:
      case Callable::rebuild_parameter_with_state: {
        if (args.items.empty()) fail(fmt::format("{} without arguments", callee.text));
        const Node& data = node(args.items[0]);
        if (data.kind == Kind::object) fail_unknown_maker("a parameter's tensor", data);
        if (data.kind != Kind::tensor) {
          fail(fmt::format("the data of a parameter is a {}, not a tensor", kind_name(data.kind)));
        }
        return args.items[0];
      }
      case Callable::storage_class:
      case Callable::unknown: break;
    }
    return make(Node{.kind = Kind::object, .text = callee.text});
  }

  NodeId instantiate(NodeId cls_id) {
    const Node& cls = node(cls_id);
    if (cls.kind != Kind::global && cls.kind != Kind::object) {
      fail(fmt::format("NEWOBJ of a {}, which is not a class", kind_name(cls.kind)));
    }
    if (cls.callable == Callable::ordered_dict) return make(Kind::dict);
    return make(Node{.kind = Kind::object, .text = cls.text});
  }

  NodeId persistent_load(NodeId pid_id) {
    const Node& pid = node(pid_id);
    if (pid.kind != Kind::tuple || pid.items.size() != 5 || node(pid.items[0]).kind != Kind::text ||
        node(pid.items[0]).text != "storage") {
      fail("a persistent id is not a ('storage', type, key, location, size) tuple");
    }
    const Node& type = node(pid.items[1]);
    if (type.kind != Kind::global) {
      fail(fmt::format("a storage's type is a {}, not a storage class", kind_name(type.kind)));
    }
    if (type.callable != Callable::storage_class) {
      fail(
          fmt::format("a storage's type is {}, which is not a PyTorch storage class weightmap "
                      "knows",
                      printable(type.text)));
    }
    const Node& key = node(pid.items[2]);
    if (key.kind != Kind::text || key.text.empty()) fail("a storage's key is not a string");
    StorageRef storage;
    storage.key = key.text;
    storage.dtype = static_cast<DType>(type.integer);
    storage.numel = non_negative(pid.items[4], "a storage's size");
    storage.pickle_offset = origin_.base_offset + op_at_;
    const auto index = static_cast<std::int64_t>(program_.storages.size());
    program_.storages.push_back(std::move(storage));
    return make(Node{.kind = Kind::storage, .integer = index});
  }

  // Adds to a container; state meant for an unknown object is dropped unread.
  void extend(std::string_view op, Kind want, const std::vector<NodeId>& items) {
    Node& target = node(peek(op));
    if (target.kind == Kind::object) return;
    if (target.kind != want) {
      fail(fmt::format("{} on a {}", op, kind_name(target.kind)));
    }
    if (target.items.size() + items.size() > limits_.max_objects * 2) {
      fail(fmt::format("a {} of more than {} items", kind_name(want), limits_.max_objects));
    }
    target.items.insert(target.items.end(), items.begin(), items.end());
  }

  void step(unsigned char op) {
    switch (op) {
      case 0x80: {  // PROTO
        const auto version = operand<std::uint8_t>("PROTO");
        if (version < 2 || version > 5) {
          fail_unsupported(fmt::format("protocol {} (PyTorch writes protocols 2 to 5)", version));
        }
        return;
      }
      case 0x95: {  // FRAME: a length hint only
        const auto length = operand<std::uint64_t>("FRAME");
        if (length > bytes_.size() - pos_) fail("a FRAME runs past the end of the pickle");
        return;
      }
      case '(':
        if (marks_.size() >= limits_.max_marks) {
          fail(fmt::format("MARKs nested deeper than {}", limits_.max_marks));
        }
        marks_.push_back(stack_.size());
        return;
      case '0': pop("POP"); return;
      case '1': pop_mark("POP_MARK"); return;
      case '2': push(peek("DUP")); return;
      case 'N': push(make(Kind::none)); return;
      case 0x88:
      case 0x89: {
        push(make(Node{.kind = Kind::boolean, .integer = op == 0x88 ? 1 : 0}));
        return;
      }
      case 'J': push(make_integer(operand<std::int32_t>("BININT"))); return;
      case 'K': push(make_integer(operand<std::uint8_t>("BININT1"))); return;
      case 'M': push(make_integer(operand<std::uint16_t>("BININT2"))); return;
      case 0x8a: push_long(operand<std::uint8_t>("LONG1")); return;
      case 0x8b: {
        const auto length = operand<std::int32_t>("LONG4");
        if (length < 0) fail("LONG4 with a negative length");
        push_long(static_cast<std::uint64_t>(length));
        return;
      }
      case 'G': {
        const auto raw = big_endian_u64("BINFLOAT");
        push(make(Node{.kind = Kind::floating, .number = std::bit_cast<double>(raw)}));
        return;
      }
      case 'X': push_string(Kind::text, operand<std::uint32_t>("BINUNICODE"), "BINUNICODE"); return;
      case 0x8c:
        push_string(Kind::text, operand<std::uint8_t>("SHORT_BINUNICODE"), "SHORT_BINUNICODE");
        return;
      case 0x8d:
        push_string(Kind::text, operand<std::uint64_t>("BINUNICODE8"), "BINUNICODE8");
        return;
      case 'U':
        push_string(Kind::text, operand<std::uint8_t>("SHORT_BINSTRING"), "SHORT_BINSTRING");
        return;
      case 'T': {
        const auto length = operand<std::int32_t>("BINSTRING");
        if (length < 0) fail("BINSTRING with a negative length");
        push_string(Kind::text, static_cast<std::uint64_t>(length), "BINSTRING");
        return;
      }
      case 'B': push_string(Kind::bytes, operand<std::uint32_t>("BINBYTES"), "BINBYTES"); return;
      case 'C':
        push_string(Kind::bytes, operand<std::uint8_t>("SHORT_BINBYTES"), "SHORT_BINBYTES");
        return;
      case 0x8e: push_string(Kind::bytes, operand<std::uint64_t>("BINBYTES8"), "BINBYTES8"); return;
      case 0x96:
        push_string(Kind::bytes, operand<std::uint64_t>("BYTEARRAY8"), "BYTEARRAY8");
        return;
      case ')': push(make(Kind::tuple)); return;
      case ']': push(make(Kind::list)); return;
      case '}': push(make(Kind::dict)); return;
      case 0x8f: push(make(Kind::set)); return;
      case 't': push(make_sequence(Kind::tuple, pop_mark("TUPLE"))); return;
      case 'l': push(make_sequence(Kind::list, pop_mark("LIST"))); return;
      case 0x91: push(make_sequence(Kind::set, pop_mark("FROZENSET"))); return;
      case 'd': {
        auto items = pop_mark("DICT");
        if (items.size() % 2 != 0) fail("DICT with an odd number of items");
        push(make_sequence(Kind::dict, std::move(items)));
        return;
      }
      case 0x85:
      case 0x86:
      case 0x87: {
        const std::size_t count = op - 0x84u;
        std::vector<NodeId> items(count);
        for (std::size_t i = count; i-- > 0;) items[i] = pop("TUPLE1/2/3");
        push(make_sequence(Kind::tuple, std::move(items)));
        return;
      }
      case 'a': {
        const NodeId item = pop("APPEND");
        extend("APPEND", Kind::list, {item});
        return;
      }
      case 'e': {
        const auto items = pop_mark("APPENDS");
        extend("APPENDS", Kind::list, items);
        return;
      }
      case 0x90: {
        const auto items = pop_mark("ADDITEMS");
        extend("ADDITEMS", Kind::set, items);
        return;
      }
      case 's': {
        const NodeId value = pop("SETITEM");
        const NodeId key = pop("SETITEM");
        extend("SETITEM", Kind::dict, {key, value});
        return;
      }
      case 'u': {
        const auto items = pop_mark("SETITEMS");
        if (items.size() % 2 != 0) fail("SETITEMS with an odd number of items");
        extend("SETITEMS", Kind::dict, items);
        return;
      }
      case 'q': memo_put(operand<std::uint8_t>("BINPUT"), peek("BINPUT")); return;
      case 'r': memo_put(operand<std::uint32_t>("LONG_BINPUT"), peek("LONG_BINPUT")); return;
      case 0x94: memo_put(memo_.size(), peek("MEMOIZE")); return;
      case 'h': memo_get(operand<std::uint8_t>("BINGET")); return;
      case 'j': memo_get(operand<std::uint32_t>("LONG_BINGET")); return;
      case 'c': {
        std::string module = line_operand("GLOBAL module");
        std::string name = line_operand("GLOBAL name");
        push_global(std::move(module), std::move(name));
        return;
      }
      case 0x93: {
        const NodeId name = pop("STACK_GLOBAL");
        const NodeId module = pop("STACK_GLOBAL");
        if (node(name).kind != Kind::text || node(module).kind != Kind::text) {
          fail("STACK_GLOBAL of something other than two strings");
        }
        push_global(node(module).text, node(name).text);
        return;
      }
      case 'R': {
        const NodeId args = pop("REDUCE");
        const NodeId callee = pop("REDUCE");
        push(call(callee, args));
        return;
      }
      case 0x81: {
        pop("NEWOBJ");  // arguments: never used
        push(instantiate(pop("NEWOBJ")));
        return;
      }
      case 0x92: {
        pop("NEWOBJ_EX");
        pop("NEWOBJ_EX");
        push(instantiate(pop("NEWOBJ_EX")));
        return;
      }
      case 'b': {
        pop("BUILD");  // the state: attributes of an object, never tensor data
        const Kind kind = node(peek("BUILD")).kind;
        if (kind != Kind::object && kind != Kind::dict && kind != Kind::tensor &&
            kind != Kind::storage && kind != Kind::list && kind != Kind::set) {
          fail(fmt::format("BUILD on a {}", kind_name(kind)));
        }
        return;
      }
      case 'Q': push(persistent_load(pop("BINPERSID"))); return;
      default: break;
    }
    unsupported_opcode(op);
  }

  void push_string(Kind kind, std::uint64_t length, std::string_view what) {
    push(make(Node{.kind = kind, .text = string_operand(length, what)}));
  }

  [[noreturn]] void unsupported_opcode(unsigned char op) const {
    std::string_view name;
    switch (op) {
      case 'F': name = "FLOAT"; break;
      case 'I': name = "INT"; break;
      case 'L': name = "LONG"; break;
      case 'P': name = "PERSID"; break;
      case 'S': name = "STRING"; break;
      case 'V': name = "UNICODE"; break;
      case 'g': name = "GET"; break;
      case 'p': name = "PUT"; break;
      case 'i': name = "INST"; break;
      case 'o': name = "OBJ"; break;
      case 0x82:
      case 0x83:
      case 0x84: name = "EXT"; break;
      case 0x97: name = "NEXT_BUFFER"; break;
      case 0x98: name = "READONLY_BUFFER"; break;
      default: fail(fmt::format("unknown opcode 0x{:02x}", op));
    }
    fail_unsupported(fmt::format("opcode {} (0x{:02x}) is not one PyTorch writes", name, op));
  }

  std::span<const std::byte> bytes_;
  const Origin& origin_;
  const Limits& limits_;
  std::size_t pos_ = 0;
  std::size_t op_at_ = 0;
  Program program_;
  std::vector<NodeId> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint64_t, NodeId> memo_;
  std::set<std::string> globals_;
};

}  // namespace

Program read_pickle(std::span<const std::byte> bytes, const Origin& origin, const Limits& limits) {
  return Machine(bytes, origin, limits).run();
}

}  // namespace weightmap::format::pickle
