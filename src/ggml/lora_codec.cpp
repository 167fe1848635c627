// Quantized rows to f32 and back for LoRA patching, through ggml's type traits and
// quantizers (the core knows no quantized format).
#include <fmt/format.h>

#include "ggml/ggml_convert.hpp"
#include "weightmap/error.hpp"
#include "weightmap/ggml.hpp"
#include "weightmap/ggml_lora.hpp"

namespace weightmap::ggml {
namespace {

class GgmlLoraCodec final : public LoraQuantCodec {
 public:
  void check(DType dtype) const override {
    const ggml_type type = ggml_type_of(dtype);
    if (ggml_quantize_requires_imatrix(type)) {
      throw Error(ErrorCode::unsupported,
                  fmt::format("ggml cannot requantize {} after a LoRA: quantizing it needs an "
                              "importance matrix",
                              dtype_name(dtype)));
    }
    if (!detail::ggml_can_convert(dtype, DType::F32) ||
        !detail::ggml_can_convert(DType::F32, dtype)) {
      throw Error(
          ErrorCode::unsupported,
          fmt::format("ggml cannot read {} as f32 and quantize it back", dtype_name(dtype)));
    }
    // Builds the lookup tables some types need now: from_f32 may run under the fault guard,
    // where nothing may allocate.
    ggml_quantize_init(type);
  }

  void to_f32(DType dtype, std::span<const std::byte> rows, std::span<float> out) const override {
    if (dtype_bytes_for(dtype, out.size()) != rows.size()) {
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{} bytes of {} do not hold {} elements", rows.size(),
                              dtype_name(dtype), out.size()));
    }
    ggml_get_type_traits(ggml_type_of(dtype))
        ->to_float(rows.data(), out.data(), static_cast<std::int64_t>(out.size()));
  }

  void from_f32(DType dtype, std::uint64_t row_elements, std::span<const float> values,
                std::span<std::byte> rows) const override {
    if (values.empty() && rows.empty()) return;
    const std::uint64_t count = row_elements == 0 ? 0 : values.size() / row_elements;
    if (count * row_elements != values.size() ||
        dtype_bytes_for(dtype, values.size()) != rows.size()) {
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{} values and {} bytes are not whole rows of {} elements of {}",
                              values.size(), rows.size(), row_elements, dtype_name(dtype)));
    }
    ggml_quantize_chunk(ggml_type_of(dtype), values.data(), rows.data(), 0,
                        static_cast<std::int64_t>(count), static_cast<std::int64_t>(row_elements),
                        nullptr);
  }
};

}  // namespace

std::shared_ptr<const LoraQuantCodec> lora_codec() {
  static const auto codec = std::make_shared<const GgmlLoraCodec>();
  return codec;
}

}  // namespace weightmap::ggml
