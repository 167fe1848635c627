#include "synthetic_models.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace weightmap::bench {
namespace {

constexpr std::uint64_t kRows = 4;
constexpr std::uint64_t kCols = 8;
constexpr std::uint64_t kTensorBytes = kRows * kCols * 2;  // f16
constexpr std::uint64_t kGgufAlignment = 32;

std::string tensor_name(std::size_t i) {
  static constexpr const char* kParts[] = {
      "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
      "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",    "input_layernorm"};
  return fmt::format("model.layers.{}.{}.weight", i / 8, kParts[i % 8]);
}

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);  // x86: little-endian
}

void put_string(std::string& out, const std::string& text) {
  put<std::uint64_t>(out, text.size());
  out += text;
}

void write_file(const std::string& path, const std::string& head, std::uint64_t data_bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << head;
  const std::vector<char> zeros(static_cast<std::size_t>(data_bytes), '\0');
  out.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace

void write_safetensors_model(const std::string& path, std::size_t tensors) {
  std::string json = R"({"__metadata__":{"format":"pt"})";
  for (std::size_t i = 0; i < tensors; ++i) {
    json += fmt::format(R"(,"{}":{{"dtype":"F16","shape":[{},{}],"data_offsets":[{},{}]}})",
                        tensor_name(i), kRows, kCols, i * kTensorBytes, (i + 1) * kTensorBytes);
  }
  json += '}';
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string head;
  put<std::uint64_t>(head, json.size());
  head += json;
  write_file(path, head, tensors * kTensorBytes);
}

void write_gguf_model(const std::string& path, std::size_t tensors) {
  std::string head = "GGUF";
  put<std::uint32_t>(head, 3);
  put<std::uint64_t>(head, tensors);
  put<std::uint64_t>(head, 2);
  put_string(head, "general.architecture");
  put<std::uint32_t>(head, 8);  // string
  put_string(head, "llama");
  put_string(head, "general.alignment");
  put<std::uint32_t>(head, 4);  // u32
  put<std::uint32_t>(head, kGgufAlignment);
  for (std::size_t i = 0; i < tensors; ++i) {
    put_string(head, tensor_name(i));
    put<std::uint32_t>(head, 2);
    put<std::uint64_t>(head, kCols);  // ne[0] is innermost
    put<std::uint64_t>(head, kRows);
    put<std::uint32_t>(head, 1);  // GGML_TYPE_F16
    put<std::uint64_t>(head, i * kTensorBytes);
  }
  head.append((kGgufAlignment - head.size() % kGgufAlignment) % kGgufAlignment, '\0');
  write_file(path, head, tensors * kTensorBytes);
}

std::string read_safetensors_header(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::uint64_t length = 0;
  in.read(reinterpret_cast<char*>(&length), sizeof length);
  std::string header(static_cast<std::size_t>(length), '\0');
  in.read(header.data(), static_cast<std::streamsize>(length));
  if (!in) throw std::runtime_error("cannot read the header of " + path);
  return header;
}

}  // namespace weightmap::bench
