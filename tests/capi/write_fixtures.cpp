// Writes the C API tests' fixtures into a directory, through the library's public writers:
//   model.safetensors  a.weight f32 [4, 8], b.weight f16 [8, 4], c.bias bf16 [8];
//                      __metadata__ {"title": "capi fixture"}
//   model.gguf         the same tensors; general.name "capi fixture", capi.answer u32 42,
//                      capi.scale f32 0.5, capi.list [1, 2, 3] (i32)
//   lora.safetensors   a PEFT LoRA (rank 2) for a.weight: base_model.model.a.lora_A.weight
//                      [2, 8] and .lora_B.weight [4, 2], f32
//   malformed.safetensors  a header that is cut-off JSON
// Element i of every model tensor is fixture_value(i) (exact in f16 and bf16); LoRA factors
// are lora_value(i). The C and Python tests compute the same values.
#include <cstdio>
#include <exception>
#include <fstream>
#include <string>
#include <vector>

#include "weightmap/convert.hpp"
#include "weightmap/writer.hpp"

namespace {

using weightmap::DType;

float fixture_value(std::size_t i) { return static_cast<float>(i % 17) * 0.25f - 2.0f; }
float lora_value(std::size_t i) { return static_cast<float>(i % 5) * 0.125f - 0.25f; }

struct Tensor {
  weightmap::TensorToWrite layout;
  std::vector<std::byte> bytes;
};

Tensor make(std::string name, DType dtype, std::vector<std::uint64_t> shape,
            float (*value)(std::size_t)) {
  std::size_t n = 1;
  for (const auto dim : shape) n *= dim;
  std::vector<float> values(n);
  for (std::size_t i = 0; i < n; ++i) values[i] = value(i);
  Tensor out{{std::move(name), dtype, std::move(shape)}, {}};
  out.bytes.resize(*weightmap::dtype_bytes_for(dtype, n));
  weightmap::convert(DType::F32, std::as_bytes(std::span(values)), dtype, out.bytes, n);
  return out;
}

std::vector<weightmap::TensorToWrite> layouts(const std::vector<Tensor>& tensors) {
  std::vector<weightmap::TensorToWrite> out;
  for (const auto& tensor : tensors) out.push_back(tensor.layout);
  return out;
}

weightmap::TensorBytesSource source_of(const std::vector<Tensor>& tensors) {
  return [&tensors](std::size_t index, std::uint64_t offset, std::span<std::byte> out) {
    const auto& bytes = tensors[index].bytes;
    std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(offset), out.size(), out.begin());
  };
}

weightmap::MetadataValue scalar(
    weightmap::MetadataType type,
    std::variant<std::uint64_t, std::int64_t, double, bool, std::string, weightmap::MetadataArray>
        value) {
  return {type, weightmap::MetadataType::string, std::move(value)};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIRECTORY\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  try {
    const std::vector<Tensor> model = {
        make("a.weight", DType::F32, {4, 8}, fixture_value),
        make("b.weight", DType::F16, {8, 4}, fixture_value),
        make("c.bias", DType::BF16, {8}, fixture_value),
    };
    weightmap::SafetensorsWriteOptions safetensors;
    safetensors.metadata = {{"title", "capi fixture"}};
    safetensors.data_alignment = 32;  // every tensor 32-aligned: mapped for the default device
    weightmap::write_safetensors(dir + "/model.safetensors", layouts(model), source_of(model),
                                 safetensors);

    using weightmap::MetadataType;
    weightmap::MetadataArray list;
    for (std::int64_t i = 1; i <= 3; ++i) list.push_back(scalar(MetadataType::i32, i));
    weightmap::MetadataValue list_value{MetadataType::array, MetadataType::i32, list};
    weightmap::GgufWriteOptions gguf;
    gguf.metadata = {
        {"general.name", scalar(MetadataType::string, std::string("capi fixture"))},
        {"capi.answer", scalar(MetadataType::u32, std::uint64_t{42})},
        {"capi.scale", scalar(MetadataType::f32, 0.5)},
        {"capi.list", list_value},
    };
    weightmap::write_gguf(dir + "/model.gguf", layouts(model), source_of(model), gguf);

    const std::vector<Tensor> lora = {
        make("base_model.model.a.lora_A.weight", DType::F32, {2, 8}, lora_value),
        make("base_model.model.a.lora_B.weight", DType::F32, {4, 2}, lora_value),
    };
    weightmap::write_safetensors(dir + "/lora.safetensors", layouts(lora), source_of(lora));

    std::ofstream malformed(dir + "/malformed.safetensors", std::ios::binary);
    const unsigned char header_length[8] = {5, 0, 0, 0, 0, 0, 0, 0};
    malformed.write(reinterpret_cast<const char*>(header_length), sizeof(header_length));
    malformed << "{\"a\":";
  } catch (const std::exception& error) {
    std::fprintf(stderr, "write_fixtures: %s\n", error.what());
    return 1;
  }
  return 0;
}
