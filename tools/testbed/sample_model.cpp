#include "testbed/sample_model.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <string>

#include "weightmap/error.hpp"

namespace weightmap::testbed {
namespace {

// splitmix64's output function: a full-avalanche mix, cheap enough to run once per 8 bytes.
constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ull;

// Random sign and mantissa under a fixed exponent, for every element a 64-bit word holds:
// values of magnitude 1/16..1/8, finite and small, never NaN or denormal.
std::uint64_t shape_word(std::uint64_t random, DType dtype) {
  switch (dtype) {
    case DType::F16: return (random & 0x83FF83FF83FF83FFull) | 0x2C002C002C002C00ull;
    case DType::BF16: return (random & 0x807F807F807F807Full) | 0x3D803D803D803D80ull;
    case DType::F32: return (random & 0x807FFFFF807FFFFFull) | 0x3D8000003D800000ull;
    default: return random;  // quantized blocks: any quant byte is valid; scales are patched
  }
}

// The parts of a UNet a tensor can be, by size class. Suffixes differ across classes, so
// (block, part) is unique in the whole list.
constexpr std::array kLinearParts = {
    "1.proj_in.weight",
    "1.transformer_blocks.0.attn1.to_q.weight",
    "1.transformer_blocks.0.attn1.to_k.weight",
    "1.transformer_blocks.0.attn1.to_v.weight",
    "1.transformer_blocks.0.attn1.to_out.0.weight",
    "1.transformer_blocks.0.attn2.to_q.weight",
    "1.transformer_blocks.0.ff.net.2.weight",
    "1.proj_out.weight",
};
constexpr std::array kConvParts = {"0.in_layers.2.weight", "0.out_layers.3.weight",
                                   "0.skip_connection.weight"};
constexpr std::array kSmallParts = {
    "0.in_layers.0.weight",
    "0.in_layers.0.bias",
    "0.in_layers.2.bias",
    "0.emb_layers.1.bias",
    "0.out_layers.0.weight",
    "0.out_layers.0.bias",
    "0.out_layers.3.bias",
    "1.norm.weight",
    "1.norm.bias",
    "1.proj_in.bias",
    "1.transformer_blocks.0.norm1.weight",
    "1.transformer_blocks.0.norm1.bias",
    "1.transformer_blocks.0.attn1.to_out.0.bias",
    "1.transformer_blocks.0.ff.net.2.bias",
    "1.proj_out.bias",
};
constexpr std::array kBigNames = {
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
    "model.diffusion_model.middle_block.1.transformer_blocks.0.ff.net.0.proj.weight",
    "model.diffusion_model.output_blocks.2.1.transformer_blocks.0.ff.net.0.proj.weight",
};
constexpr std::array<std::uint64_t, 3> kChannels = {320, 640, 1280};
constexpr std::uint64_t kBigColumns = 1280;

std::string block_name(std::size_t block, const char* part) {
  static constexpr std::array kSections = {"input_blocks", "middle_block", "output_blocks"};
  return fmt::format("model.diffusion_model.{}.{}.{}", kSections[block % 3], block / 3, part);
}

struct Sizer {
  double element_bytes;
  std::uint64_t block_size;

  std::uint64_t bytes(const std::vector<std::uint64_t>& shape) const {
    std::uint64_t elements = 1;
    for (const auto d : shape) elements *= d;
    return static_cast<std::uint64_t>(static_cast<double>(elements) * element_bytes);
  }
  // Rows of `columns` elements closest to `target` bytes, at least 1.
  std::uint64_t rows_for(double target, std::uint64_t columns) const {
    const double rows = std::round(target / (static_cast<double>(columns) * element_bytes));
    return rows < 1 ? 1 : static_cast<std::uint64_t>(rows);
  }
};

}  // namespace

bool sample_dtype_supported(DType dtype, bool gguf) {
  switch (dtype) {
    case DType::F16:
    case DType::BF16:
    case DType::F32: return true;
    case DType::Q8_0:
    case DType::Q4_0: return gguf;
    default: return false;
  }
}

namespace {

// The plan for `total_bytes`, and the bytes it adds up to. Without `named` the names are left
// empty (the search for the smallest size that fits runs many plans).
struct SamplePlan {
  std::vector<TensorToWrite> tensors;
  std::uint64_t used = 0;
  bool fits = false;  // within 1% of the size asked for
};

SamplePlan plan_tensors(std::uint64_t total_bytes, std::size_t count, DType dtype, bool named) {
  const DTypeInfo& info = dtype_info(dtype);
  const Sizer sizer{static_cast<double>(info.block_bytes) / info.block_size, info.block_size};
  const bool plain = info.block_size == 1;
  const std::size_t n_big = std::min<std::size_t>(kBigNames.size(), count);
  const std::size_t n_small = (count - n_big) * 6 / 10;
  const std::size_t n_mid = count - n_big - n_small;
  const double total = static_cast<double>(total_bytes);

  std::vector<TensorToWrite> tensors;
  tensors.reserve(count);
  // Norms and biases: one row of channels each, unless that would eat over 5% of the size.
  std::uint64_t small_channels_cap = UINT64_MAX;
  if (n_small > 0) {
    const double fit = 0.05 * total / (static_cast<double>(n_small) * sizer.element_bytes);
    small_channels_cap = std::max<std::uint64_t>(
        info.block_size, static_cast<std::uint64_t>(fit) / info.block_size * info.block_size);
  }
  std::uint64_t used = 0;
  for (std::size_t i = 0; i < n_small; ++i) {
    const std::uint64_t channels = std::min(kChannels[i % kChannels.size()], small_channels_cap);
    tensors.push_back(
        {named ? block_name(i / kSmallParts.size(), kSmallParts[i % kSmallParts.size()]) : "",
         dtype,
         {channels}});
    used += sizer.bytes(tensors.back().shape);
  }
  // The middle band shares half of what is left; sizes vary 1/4x..4x around the mean (a
  // fixed sequence, so a plan depends only on its arguments).
  if (n_mid > 0) {
    std::vector<double> weights(n_mid);
    double weight_sum = 0;
    for (std::size_t i = 0; i < n_mid; ++i) {
      const double unit = static_cast<double>(mix64(i + 1) >> 11) * 0x1p-53;
      weights[i] = std::exp2(4 * unit - 2);
      weight_sum += weights[i];
    }
    const double mid_total = std::max(0.0, (total - static_cast<double>(used)) / 2);
    const std::size_t conv_every = plain ? 3 : 0;  // 4-D convs only where rows can be 3 wide
    std::size_t convs = 0;
    std::size_t linears = 0;
    for (std::size_t i = 0; i < n_mid; ++i) {
      const double target = mid_total * weights[i] / weight_sum;
      const std::uint64_t in = kChannels[i % kChannels.size()];
      if (conv_every != 0 && i % conv_every == 2) {
        const std::uint64_t out = sizer.rows_for(target / 9, in);
        tensors.push_back(
            {named ? block_name(convs / kConvParts.size(), kConvParts[convs % kConvParts.size()])
                   : "",
             dtype,
             {out, in, 3, 3}});
        ++convs;
      } else {
        tensors.push_back({named ? block_name(linears / kLinearParts.size(),
                                              kLinearParts[linears % kLinearParts.size()])
                                 : "",
                           dtype,
                           {sizer.rows_for(target, in), in}});
        ++linears;
      }
      used += sizer.bytes(tensors.back().shape);
    }
  }
  // The large tensors take the rest, 50/30/20; the last absorbs the rounding.
  static constexpr std::array<double, 3> kBigShares = {0.5, 0.3, 0.2};
  double share_left = 0;
  for (std::size_t i = 0; i < n_big; ++i) share_left += kBigShares[i];
  for (std::size_t i = 0; i < n_big; ++i) {
    const double left = total - static_cast<double>(used);
    const double target = i + 1 == n_big ? left : left * kBigShares[i] / share_left;
    share_left -= kBigShares[i];
    const std::uint64_t rows =
        i + 1 == n_big ? std::max<std::uint64_t>(
                             1, static_cast<std::uint64_t>(std::max(0.0, target) /
                                                           (kBigColumns * sizer.element_bytes)))
                       : sizer.rows_for(target, kBigColumns);
    tensors.push_back({kBigNames[i], dtype, {rows, kBigColumns}});
    const double miss =
        std::fabs(static_cast<double>(used + sizer.bytes(tensors.back().shape)) - total);
    if (i + 1 == n_big && miss > total / 100 && target > 0) {
      // Rows of 1280 are too coarse for 1% of a small size (whole sizes would be left out
      // between the ones that fit): the last tensor takes the rest in blocks, one row.
      const auto blocks = static_cast<std::uint64_t>(
          target / (sizer.element_bytes * static_cast<double>(info.block_size)));
      tensors.back().shape = {std::max<std::uint64_t>(1, blocks) * info.block_size};
    }
    used += sizer.bytes(tensors.back().shape);
  }

  const double miss = std::fabs(static_cast<double>(used) - total);
  return {std::move(tensors), used, miss <= total / 100};
}

// The smallest size above `too_small` (which does not fit) whose plan fits: doubling to a
// size that fits, then bisecting, so what the error states works when retried. Checked by
// scanning: below it nothing fits; above it everything does for real tensor counts, while a
// model of a handful of tensors still has a few sizes above it whose first large tensors
// round past 1% (rows of 1280 elements).
std::uint64_t smallest_fitting_size(std::uint64_t too_small, std::size_t count, DType dtype) {
  std::uint64_t low = too_small;  // does not fit
  std::uint64_t high = std::max<std::uint64_t>(too_small, 1);
  while (!plan_tensors(high, count, dtype, false).fits) {
    if (high >= (std::uint64_t{1} << 62)) return high;
    low = high;
    high *= 2;
  }
  while (high - low > 1) {
    const std::uint64_t middle = low + (high - low) / 2;
    (plan_tensors(middle, count, dtype, false).fits ? high : low) = middle;
  }
  return high;
}

}  // namespace

std::vector<TensorToWrite> plan_sample_tensors(std::uint64_t total_bytes, std::size_t count,
                                               DType dtype) {
  SamplePlan plan = plan_tensors(total_bytes, count, dtype, true);
  if (!plan.fits) {
    const std::uint64_t smallest = smallest_fitting_size(total_bytes, count, dtype);
    throw Error(ErrorCode::invalid_argument,
                fmt::format("{} tensors of {} do not fit in {} bytes (within 1%); the smallest "
                            "size that fits is {} bytes (--size {})",
                            count, dtype_info(dtype).name, total_bytes, smallest, smallest));
  }
  std::sort(plan.tensors.begin(), plan.tensors.end(),
            [](const TensorToWrite& a, const TensorToWrite& b) { return a.name < b.name; });
  return std::move(plan.tensors);
}

std::vector<TensorToWrite> plan_index_bound_tensors(std::size_t count) {
  static constexpr std::array kParts = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                        "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                        "mlp.down_proj",    "input_layernorm"};
  std::vector<TensorToWrite> tensors;
  tensors.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    tensors.push_back(
        {fmt::format("model.layers.{}.{}.weight", i / kParts.size(), kParts[i % kParts.size()]),
         DType::F16,
         {4, 8}});
  }
  return tensors;
}

std::vector<TensorToWrite> hugging_face_checkpoint(std::vector<TensorToWrite> tensors) {
  for (auto& t : tensors) {
    if (t.shape.size() == 1 && dtype_info(t.dtype).block_size == 1) t.dtype = DType::F32;
  }
  tensors.push_back(
      {"cond_stage_model.transformer.text_model.embeddings.position_ids", DType::I64, {1, 77}});
  return tensors;
}

void fill_sample_bytes(std::uint64_t seed, DType dtype, std::size_t tensor_index,
                       std::uint64_t offset, std::span<std::byte> out) {
  const std::uint64_t key = mix64(seed ^ mix64(tensor_index + kGolden));
  const auto word = [&](std::uint64_t w) {
    return dtype == DType::I64 ? w : shape_word(mix64(key + w * kGolden), dtype);
  };
  std::size_t done = 0;
  // A leading partial word, whole words, a trailing partial word: byte b of the tensor is
  // always byte b % 8 of word b / 8.
  while (done < out.size()) {
    const std::uint64_t pos = offset + done;
    const std::uint64_t w = pos / 8;
    const std::size_t skip = static_cast<std::size_t>(pos % 8);
    if (skip == 0 && out.size() - done >= 8) {
      const std::size_t whole = (out.size() - done) / 8;
      std::byte* dst = out.data() + done;
      for (std::size_t k = 0; k < whole; ++k) {
        const std::uint64_t v = word(w + k);
        std::memcpy(dst + 8 * k, &v, 8);
      }
      done += whole * 8;
      continue;
    }
    const std::uint64_t v = word(w);
    const std::size_t n = std::min<std::size_t>(8 - skip, out.size() - done);
    std::memcpy(out.data() + done, reinterpret_cast<const std::byte*>(&v) + skip, n);
    done += n;
  }
  // Quantized blocks start with an f16 scale: make it a small finite value (2^-8..2^-7).
  const DTypeInfo& info = dtype_info(dtype);
  if (info.block_size == 1) return;
  const std::uint64_t block_bytes = info.block_bytes;
  const std::uint64_t end = offset + out.size();
  for (std::uint64_t block = offset / block_bytes; block * block_bytes < end; ++block) {
    const auto scale =
        static_cast<std::uint16_t>(0x1C00 | (mix64(key ^ (block * kGolden)) & 0x03FF));
    for (std::uint64_t b = 0; b < 2; ++b) {
      const std::uint64_t pos = block * block_bytes + b;
      if (pos >= offset && pos < end) {
        out[static_cast<std::size_t>(pos - offset)] = static_cast<std::byte>(scale >> (8 * b));
      }
    }
  }
}

WrittenFile write_sample_file(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const SampleFileOptions& options) {
  const auto fill = [&](std::size_t tensor, std::uint64_t offset, std::span<std::byte> bytes) {
    fill_sample_bytes(options.seed, tensors[tensor].dtype, tensor, offset, bytes);
  };
  if (options.format == FileFormat::gguf) {
    const auto text = [](std::string s) {
      return MetadataValue{.type = MetadataType::string, .value = std::move(s)};
    };
    GgufWriteOptions write_options;
    write_options.metadata = {
        {"general.architecture", text("sample")},
        {"general.name", text("weightmap sample model (random weights)")},
        {"weightmap.sample.seed", {.type = MetadataType::u64, .value = options.seed}},
    };
    return write_gguf(path, tensors, fill, write_options);
  }
  SafetensorsWriteOptions write_options;
  write_options.metadata = {{"format", "pt"},
                            {"weightmap.sample.seed", std::to_string(options.seed)}};
  write_options.hugging_face_order = options.hugging_face_order;
  return write_safetensors(path, tensors, fill, write_options);
}

}  // namespace weightmap::testbed
