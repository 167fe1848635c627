#include "testbed/synthetic_models.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "weightmap/writer.hpp"

namespace weightmap::testbed {
namespace {

constexpr std::uint64_t kRows = 4;
constexpr std::uint64_t kCols = 8;
constexpr std::uint32_t kGgufAlignment = 32;

std::string tensor_name(std::size_t i) {
  static constexpr const char* kParts[] = {
      "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
      "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",    "input_layernorm"};
  return fmt::format("model.layers.{}.{}.weight", i / 8, kParts[i % 8]);
}

std::vector<TensorToWrite> tensor_list(std::size_t tensors) {
  std::vector<TensorToWrite> list;
  list.reserve(tensors);
  for (std::size_t i = 0; i < tensors; ++i) {
    list.push_back({tensor_name(i), DType::F16, {kRows, kCols}});
  }
  return list;
}

void zeros(std::size_t, std::uint64_t, std::span<std::byte> out) {
  std::fill(out.begin(), out.end(), std::byte{0});
}

}  // namespace

void write_safetensors_model(const std::string& path, std::size_t tensors) {
  SafetensorsWriteOptions options;
  options.metadata = {{"format", "pt"}};
  write_safetensors(path, tensor_list(tensors), zeros, options);
}

void write_gguf_model(const std::string& path, std::size_t tensors) {
  GgufWriteOptions options;
  options.metadata = {
      {"general.architecture", {.type = MetadataType::string, .value = std::string("llama")}},
      {"general.alignment", {.type = MetadataType::u32, .value = std::uint64_t{kGgufAlignment}}}};
  write_gguf(path, tensor_list(tensors), zeros, options);
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

}  // namespace weightmap::testbed
