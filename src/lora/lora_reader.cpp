// Groups the tensors of a LoRA file into modules by their suffixes and works out each
// module's kind, rank and alpha. The file itself is parsed and validated by open_model.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <array>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <unordered_map>

#include "io/file_reader.hpp"
#include "lora/lora_adapter_metadata.hpp"
#include "weightmap/convert.hpp"
#include "weightmap/error.hpp"
#include "weightmap/lora.hpp"

namespace weightmap {
namespace {

enum class Part { up, down, mid, alpha, diff, diff_bias };

struct PartSuffix {
  std::string_view suffix;
  Part part;
  LoraNaming naming;
};

// No suffix is the end of another, so their order does not matter.
constexpr std::array<PartSuffix, 14> kPartSuffixes = {{
    {".lora_up.weight", Part::up, LoraNaming::kohya},
    {".lora_down.weight", Part::down, LoraNaming::kohya},
    {".lora_mid.weight", Part::mid, LoraNaming::kohya},
    {".alpha", Part::alpha, LoraNaming::kohya},
    {".diff", Part::diff, LoraNaming::kohya},
    {".diff_b", Part::diff_bias, LoraNaming::kohya},
    {".lora_B.weight", Part::up, LoraNaming::peft},
    {".lora_A.weight", Part::down, LoraNaming::peft},
    {".lora_b", Part::up, LoraNaming::gguf},
    {".lora_a", Part::down, LoraNaming::gguf},
    // diffusers before PEFT (0.21-0.26): LoRACompatibleLinear/Conv, and the text encoder's
    // patched CLIP layers.
    {".lora.up.weight", Part::up, LoraNaming::diffusers},
    {".lora.down.weight", Part::down, LoraNaming::diffusers},
    {".lora_linear_layer.up.weight", Part::up, LoraNaming::diffusers},
    {".lora_linear_layer.down.weight", Part::down, LoraNaming::diffusers},
}};

// Older diffusers attention processors: "<attention>.processor.to_q_lora.down.weight" (UNet)
// and "<attention>.to_q_lora.down.weight" (text encoder) patch the attention's to_q, to_k,
// to_v and to_out.0 linears.
constexpr std::array<PartSuffix, 2> kProcessorSuffixes = {{
    {"_lora.up.weight", Part::up, LoraNaming::diffusers},
    {"_lora.down.weight", Part::down, LoraNaming::diffusers},
}};

// "a.processor.to_q" -> "a.to_q", "a.to_out" -> "a.to_out.0": the module the processor's
// factor patches. Empty when `stem` names no attention projection.
std::string processor_module(std::string_view stem) {
  const auto dot = stem.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return {};
  const std::string_view projection = stem.substr(dot + 1);
  std::string_view attention = stem.substr(0, dot);
  if (projection != "to_q" && projection != "to_k" && projection != "to_v" &&
      projection != "to_out") {
    return {};
  }
  if (attention.ends_with(".processor"))
    attention.remove_suffix(std::string_view(".processor").size());
  return fmt::format("{}.{}{}", attention, projection, projection == "to_out" ? ".0" : "");
}

struct UnsupportedSuffix {
  std::string_view suffix;
  std::string_view kind;
};

// Module kinds of LyCORIS and PEFT that weightmap recognises but does not apply.
constexpr std::array<UnsupportedSuffix, 24> kUnsupportedSuffixes = {{
    {".hada_w1_a", "LoHa"},  {".hada_w1_b", "LoHa"},  {".hada_w2_a", "LoHa"},
    {".hada_w2_b", "LoHa"},  {".hada_t1", "LoHa"},    {".hada_t2", "LoHa"},
    {".lokr_w1", "LoKr"},    {".lokr_w2", "LoKr"},    {".lokr_w1_a", "LoKr"},
    {".lokr_w1_b", "LoKr"},  {".lokr_w2_a", "LoKr"},  {".lokr_w2_b", "LoKr"},
    {".lokr_t2", "LoKr"},    {".oft_blocks", "OFT"},  {".oft_diag", "OFT"},
    {".a1.weight", "GLoRA"}, {".a2.weight", "GLoRA"}, {".b1.weight", "GLoRA"},
    {".b2.weight", "GLoRA"}, {".dora_scale", "DoRA"}, {".lora_magnitude_vector", "DoRA"},
    {".on_input", "IA3"},    {".w_norm", "norm"},     {".lora_embedding_A", "PEFT embedding"},
}};

struct Parts {
  std::string name;
  LoraNaming naming = LoraNaming::kohya;
  std::optional<TensorInfo> up, down, mid, alpha, diff;
  bool diff_is_bias = false;
};

std::optional<TensorInfo>& slot(Parts& parts, Part part) {
  switch (part) {
    case Part::up: return parts.up;
    case Part::down: return parts.down;
    case Part::mid: return parts.mid;
    case Part::alpha: return parts.alpha;
    case Part::diff:
    case Part::diff_bias: return parts.diff;
  }
  return parts.diff;  // unreachable: every Part is handled above
}

bool is_lora_float(DType type) {
  return type == DType::F32 || type == DType::F16 || type == DType::BF16;
}

float read_alpha(const io::FileReader& reader, const TensorInfo& tensor) {
  if (tensor.element_count() != 1 || !is_lora_float(tensor.dtype) || !tensor.strides.empty()) {
    throw Error(ErrorCode::malformed, "a LoRA alpha must be one f32, f16 or bf16 value",
                {reader.name(), printable(tensor.name), tensor.offset});
  }
  std::array<std::byte, 4> raw{};
  reader.read_at(tensor.offset, std::span(raw).first(static_cast<std::size_t>(tensor.nbytes)));
  float value = 0;
  convert(tensor.dtype, raw, DType::F32, std::as_writable_bytes(std::span(&value, 1)), 1);
  if (!std::isfinite(value)) {
    throw Error(ErrorCode::malformed, "the LoRA alpha is not a finite number",
                {reader.name(), printable(tensor.name), tensor.offset});
  }
  return value;
}

// A number from the file's metadata: GGUF's adapter.lora.alpha (0 means "none", as in
// llama.cpp), or a safetensors string "lora_alpha" / "ss_network_alpha" (kohya writes
// "Dynamic" or "None" there at times: not a number, ignored).
std::optional<float> metadata_alpha(const Model& model) {
  if (const auto* entry = model.find_metadata("adapter.lora.alpha")) {
    if (const auto* number = std::get_if<double>(&entry->value.value)) {
      // An f64 beyond float's range has no float value: no alpha, as a non-finite one.
      const bool fits =
          std::isfinite(*number) && std::fabs(*number) <= std::numeric_limits<float>::max();
      if (fits && *number != 0) return static_cast<float>(*number);
    }
    return std::nullopt;
  }
  for (const std::string_view key : {"lora_alpha", "ss_network_alpha"}) {
    const auto* entry = model.find_metadata(key);
    if (entry == nullptr) continue;
    const auto* text = std::get_if<std::string>(&entry->value.value);
    if (text == nullptr) continue;
    float value = 0;
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec == std::errc() && end == text->data() + text->size() && std::isfinite(value) &&
        value != 0) {
      return value;
    }
  }
  return std::nullopt;
}

void check_gguf_adapter(const Model& model, const std::string& path) {
  const auto* type = model.find_metadata("general.type");
  const auto* text = type ? std::get_if<std::string>(&type->value.value) : nullptr;
  if (text == nullptr || *text != "adapter") return;
  const auto* adapter = model.find_metadata("adapter.type");
  const auto* kind = adapter ? std::get_if<std::string>(&adapter->value.value) : nullptr;
  if (kind == nullptr || *kind != "lora") {
    throw Error(
        ErrorCode::unsupported,
        fmt::format("unsupported LoRA kind {} (the GGUF adapter's adapter.type is not lora)",
                    kind ? printable(*kind) : std::string("(no adapter.type)")),
        {path});
  }
}

ErrorContext where(const LoraFile& lora, const TensorInfo& tensor) {
  return {lora.model.files()[tensor.file].path, printable(tensor.name), tensor.offset};
}

// diffusers' JSON of PEFT LoraConfig fields in the safetensors metadata.
// Else, for a PEFT adapter_model.safetensors, the adapter_config.json PEFT's save_pretrained
// writes beside it: the same LoraConfig fields, unprefixed. A config that cannot be read or
// parsed gives no alphas (the rank, or LoraReadOptions::alpha, then serves).
lora_detail::AdapterMetadata adapter_metadata(const Model& model, const std::string& path) {
  const auto* entry = model.find_metadata("lora_adapter_metadata");
  const auto* text = entry ? std::get_if<std::string>(&entry->value.value) : nullptr;
  if (text != nullptr) return lora_detail::AdapterMetadata::parse(*text);
  const std::filesystem::path file(path);
  if (file.filename() != "adapter_model.safetensors") return {};
  constexpr std::uintmax_t kMaxConfigBytes = std::uintmax_t{1} << 20;
  const auto config = file.parent_path() / "adapter_config.json";
  std::error_code error;
  const auto size = std::filesystem::file_size(config, error);
  if (error || size > kMaxConfigBytes) return {};
  std::ifstream in(config, std::ios::binary);
  std::string json(static_cast<std::size_t>(size), '\0');
  if (!in.read(json.data(), static_cast<std::streamsize>(json.size()))) return {};
  return lora_detail::AdapterMetadata::parse(json);
}

LoraModule make_module(const LoraFile& lora, Parts& parts, std::optional<float> file_alpha,
                       const lora_detail::AdapterMetadata& adapter, const LoraReadOptions& options,
                       const std::vector<std::unique_ptr<io::FileReader>>& readers) {
  LoraModule module;
  module.name = std::move(parts.name);
  module.target_suffix = parts.naming == LoraNaming::gguf ? "" : ".weight";
  const auto any = parts.up     ? parts.up
                   : parts.down ? parts.down
                   : parts.mid  ? parts.mid
                                : parts.diff;
  const std::string printable_name = printable(module.name);
  if (parts.diff) {
    if (parts.up || parts.down || parts.mid) {
      throw Error(
          ErrorCode::malformed,
          fmt::format("LoRA module {} has both a diff and low-rank factors", printable_name),
          where(lora, *parts.diff));
    }
    if (!is_lora_float(parts.diff->dtype) || !parts.diff->strides.empty()) {
      throw Error(ErrorCode::unsupported,
                  fmt::format("LoRA diffs of type {} are not supported here (f32, f16 and bf16 "
                              "are)",
                              dtype_name(parts.diff->dtype)),
                  where(lora, *parts.diff));
    }
    module.kind = LoraKind::diff;
    if (parts.diff_is_bias) module.target_suffix = ".bias";
    module.diff = std::move(parts.diff);
    return module;
  }
  if (!parts.up || !parts.down) {
    throw Error(ErrorCode::malformed,
                fmt::format("LoRA module {} has {} factor but no {} factor", printable_name,
                            parts.up ? "an up" : "a down", parts.up ? "down" : "up"),
                where(lora, *any));
  }
  const TensorInfo& up = *parts.up;
  const TensorInfo& down = *parts.down;
  if (up.shape.size() < 2 || down.shape.size() < 2 || down.shape[0] == 0) {
    throw Error(ErrorCode::malformed,
                fmt::format("LoRA factors must have at least two dimensions and a rank above 0 "
                            "(up [{}], down [{}])",
                            fmt::join(up.shape, ", "), fmt::join(down.shape, ", ")),
                where(lora, up));
  }
  module.rank = down.shape[0];
  const bool up_fits =
      up.shape[1] == module.rank && up.element_count() == up.shape[0] * up.shape[1];
  if (!up_fits) {
    throw Error(ErrorCode::malformed,
                fmt::format("the up factor [{}] does not have the down factor's rank {}",
                            fmt::join(up.shape, ", "), module.rank),
                where(lora, up));
  }
  for (const auto* factor : {&up, &down}) {
    if (!is_lora_float(factor->dtype) || !factor->strides.empty()) {
      throw Error(ErrorCode::unsupported,
                  fmt::format("LoRA factors of type {} are not supported here (f32, f16 and bf16 "
                              "are; quantized ones need the ggml adapter)",
                              dtype_name(factor->dtype)),
                  where(lora, *factor));
    }
  }
  if (parts.mid) {
    const TensorInfo& mid = *parts.mid;
    if (mid.shape.size() < 2 || mid.shape[0] != module.rank || mid.shape[1] != module.rank ||
        down.element_count() != module.rank * down.shape[1] || !is_lora_float(mid.dtype) ||
        !mid.strides.empty()) {
      throw Error(ErrorCode::malformed,
                  fmt::format("the mid factor [{}] ({}) does not fit rank {} and down [{}]",
                              fmt::join(mid.shape, ", "), dtype_name(mid.dtype), module.rank,
                              fmt::join(down.shape, ", ")),
                  where(lora, mid));
    }
    module.kind = LoraKind::locon_mid;
  } else {
    module.kind = down.shape.size() == 4 && down.shape[2] * down.shape[3] > 1 ? LoraKind::locon
                                                                              : LoraKind::low_rank;
  }
  if (parts.alpha) {
    module.alpha = read_alpha(*readers[parts.alpha->file], *parts.alpha);
    module.alpha_source = AlphaSource::tensor;
  } else if (const auto alpha = adapter.alpha_for(module.name)) {
    module.alpha = *alpha;
    module.alpha_source = AlphaSource::metadata;
  } else if (file_alpha) {
    module.alpha = *file_alpha;
    module.alpha_source = AlphaSource::metadata;
  } else if (options.alpha) {
    module.alpha = *options.alpha;
    module.alpha_source = AlphaSource::option;
  } else {
    module.alpha = static_cast<float>(module.rank);
    module.alpha_source = AlphaSource::rank;
  }
  module.up = std::move(parts.up);
  module.down = std::move(parts.down);
  module.mid = std::move(parts.mid);
  return module;
}

}  // namespace

std::string_view lora_kind_name(LoraKind kind) noexcept {
  switch (kind) {
    case LoraKind::low_rank: return "lora";
    case LoraKind::locon: return "locon";
    case LoraKind::locon_mid: return "locon_mid";
    case LoraKind::diff: return "diff";
  }
  return "?";
}

std::string_view lora_naming_name(LoraNaming naming) noexcept {
  switch (naming) {
    case LoraNaming::kohya: return "kohya";
    case LoraNaming::peft: return "peft";
    case LoraNaming::gguf: return "gguf";
    case LoraNaming::diffusers: return "diffusers";
  }
  return "?";
}

float lora_scale(const LoraModule& module, float multiplier) noexcept {
  if (module.kind == LoraKind::diff || module.rank == 0) return multiplier;
  return static_cast<float>(static_cast<double>(multiplier) * module.alpha /
                            static_cast<double>(module.rank));
}

LoraFile read_lora(const std::string& path, const LoraReadOptions& options) {
  LoraFile lora;
  lora.model = open_model(path);
  check_gguf_adapter(lora.model, path);
  const bool gguf_adapter = lora.model.find_metadata("adapter.type") != nullptr;

  std::vector<Parts> parts;
  std::unordered_map<std::string, std::size_t> by_name;
  for (const TensorInfo& tensor : lora.model.tensors()) {
    const std::string_view name = tensor.name;
    for (const auto& unsupported : kUnsupportedSuffixes) {
      if (name.ends_with(unsupported.suffix)) {
        throw Error(ErrorCode::unsupported,
                    fmt::format("unsupported LoRA kind {} for tensor {}", unsupported.kind,
                                printable(name)),
                    {lora.model.files()[tensor.file].path});
      }
    }
    const PartSuffix* match = nullptr;
    std::string module;
    for (const auto& suffix : kPartSuffixes) {
      if (name.ends_with(suffix.suffix) && name.size() > suffix.suffix.size()) {
        match = &suffix;
        module = name.substr(0, name.size() - suffix.suffix.size());
        break;
      }
    }
    for (const auto& suffix : kProcessorSuffixes) {
      if (match != nullptr || !name.ends_with(suffix.suffix)) continue;
      module = processor_module(name.substr(0, name.size() - suffix.suffix.size()));
      if (!module.empty()) match = &suffix;
    }
    if (match == nullptr) {
      lora.ignored.push_back(tensor.name);
      continue;
    }
    // A .diff_b patches the bias: a module of its own, beside the weight's.
    const bool bias = match->part == Part::diff_bias;
    const auto [it, inserted] = by_name.try_emplace(bias ? module + "\n" : module, parts.size());
    if (inserted) {
      parts.emplace_back();
      parts.back().name = module;
      parts.back().diff_is_bias = bias;
    }
    Parts& entry = parts[it->second];
    if (match->part == Part::up || match->part == Part::down || match->part == Part::mid) {
      entry.naming = match->naming;
    }
    slot(entry, match->part) = tensor;
  }

  if (gguf_adapter) lora.naming = LoraNaming::gguf;
  const auto file_alpha = metadata_alpha(lora.model);
  const auto adapter = adapter_metadata(lora.model, path);
  std::vector<std::unique_ptr<io::FileReader>> readers;
  for (const auto& file : lora.model.files()) {
    readers.push_back(std::make_unique<io::FileReader>(file.path));
  }
  bool naming_set = gguf_adapter;
  for (Parts& entry : parts) {
    if (!entry.up && !entry.down && !entry.mid && !entry.diff) {
      lora.ignored.push_back(entry.alpha->name);  // an alpha without factors patches nothing
      continue;
    }
    if (!naming_set && (entry.up || entry.down)) {
      lora.naming = entry.naming;
      naming_set = true;
    }
    lora.modules.push_back(make_module(lora, entry, file_alpha, adapter, options, readers));
  }
  return lora;
}

}  // namespace weightmap
