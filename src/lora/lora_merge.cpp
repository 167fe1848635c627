// base + LoRAs into a new file, streaming through the writer: the writer asks for each
// tensor's bytes chunk by chunk; a chunk of a patched tensor is read from the base file and
// patched with the same kernel LoraPatcher uses, so a merged file and an immediate
// application give the same bytes. A chunk edge may cut a unit (an element, or a row of a
// quantized tensor): the units around the chunk are read and patched whole. A module on a
// slice of a fused tensor patches its rows only (the kernel clips each patch to its rows).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <unordered_map>
#include <unordered_set>

#include "format/output_over_inputs.hpp"
#include "format/writers.hpp"
#include "io/file_reader.hpp"
#include "io/replacing_output.hpp"
#include "lora/lora_factors.hpp"
#include "lora/patch_kernel.hpp"
#include "weightmap/error.hpp"
#include "weightmap/lora.hpp"

namespace weightmap {
namespace {

struct PatchSource {
  std::size_t use = 0;
  const LoraTarget* target = nullptr;
};

class MergedBytes {
 public:
  MergedBytes(const Model& base, std::span<const LoraUse> uses, const LoraQuantCodec* quantized)
      : base_(base), uses_(uses), quantized_(quantized) {
    for (const auto& file : base.files()) {
      readers_.push_back(std::make_unique<io::FileReader>(file.path));
    }
    for (const LoraUse& use : uses) {
      if (!use.lora) throw Error(ErrorCode::invalid_argument, "no LoRA file given");
      lora_readers_.push_back(std::make_unique<lora::LoraReaders>(*use.lora));
    }
    for (std::size_t u = 0; u < uses.size(); ++u) {
      for (const LoraTarget& target : uses[u].match.targets) {
        patches_[target.base_tensor].push_back({u, &target});
      }
    }
    for (const TensorInfo& tensor : base.tensors()) {
      const std::string& path = base.files()[tensor.file].path;
      if (!tensor.strides.empty()) {
        throw Error(ErrorCode::unsupported,
                    "the tensor is a strided PyTorch view; merging writes contiguous tensors only",
                    {path, printable(tensor.name), tensor.offset});
      }
      const auto found = patches_.find(tensor.name);
      if (found == patches_.end()) continue;
      const lora::TensorCodec codec = codec_of(tensor);  // checks the type
      for (const PatchSource& source : found->second) check(tensor, codec, source);
    }
    for (const auto& [name, sources] : patches_) {
      if (base.find(name) == nullptr) {
        throw Error(ErrorCode::not_found, "the LoRA patches a tensor the base model does not have",
                    {uses[sources.front().use].lora->path(), printable(name)});
      }
    }
  }

  void fill(std::size_t index, std::uint64_t offset, std::span<std::byte> out) {
    const TensorInfo& tensor = base_.tensors()[index];
    const auto& reader = *readers_[tensor.file];
    const auto found = patches_.find(tensor.name);
    if (found == patches_.end()) {
      reader.read_at(tensor.offset + offset, out);
      return;
    }
    if (out.empty()) return;
    if (index != prepared_for_) prepare(index, found->second);
    const std::uint64_t size = codec_.unit_bytes;
    const std::uint64_t first = offset / size;
    const std::uint64_t end = (offset + out.size() + size - 1) / size;
    elements_.resize(static_cast<std::size_t>((end - first) * size));
    reader.read_at(tensor.offset + first * size, elements_);
    lora::add_patches(codec_, elements_, first * codec_.unit_elements,
                      (end - first) * codec_.unit_elements, pointers_, kTileElements, scratch_);
    std::copy_n(elements_.begin() + static_cast<std::ptrdiff_t>(offset - first * size), out.size(),
                out.begin());
  }

 private:
  static constexpr std::size_t kTileElements = std::size_t{1} << 17;

  // Before anything is written: the target's rows and factors fit the tensor (a slice of a
  // fused tensor included).
  void check(const TensorInfo& tensor, const lora::TensorCodec& codec,
             const PatchSource& source) const {
    const LoraFile& lora = *uses_[source.use].lora;
    const LoraTarget& target = *source.target;
    const std::string& path = base_.files()[tensor.file].path;
    if (target.rows * target.cols != tensor.element_count() ||
        (!tensor.shape.empty() && target.rows != tensor.shape[0])) {
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("the LoRA was matched to a [{}, {}] matrix; the base tensor has "
                              "shape [{}]",
                              target.rows, target.cols, fmt::join(tensor.shape, ", ")),
                  {lora.path(), printable(tensor.name)});
    }
    lora::check_target_fits(lora, target);
    lora::check_whole_units(codec, target, path);
  }

  lora::TensorCodec codec_of(const TensorInfo& tensor) const {
    return lora::tensor_codec(tensor.dtype, tensor.shape, quantized_, tensor.name,
                              base_.files()[tensor.file].path);
  }

  void prepare(std::size_t index, const std::vector<PatchSource>& sources) {
    codec_ = codec_of(base_.tensors()[index]);
    prepared_.clear();
    pointers_.clear();
    for (const PatchSource& source : sources) {
      const LoraUse& use = uses_[source.use];
      prepared_.push_back(lora::prepare_patch(*use.lora, *lora_readers_[source.use], *source.target,
                                              use.multiplier));
    }
    for (const auto& patch : prepared_) pointers_.push_back(&patch);
    prepared_for_ = index;
  }

  const Model& base_;
  std::span<const LoraUse> uses_;
  const LoraQuantCodec* quantized_ = nullptr;
  std::vector<std::unique_ptr<io::FileReader>> readers_;
  std::vector<std::unique_ptr<lora::LoraReaders>> lora_readers_;
  std::unordered_map<std::string, std::vector<PatchSource>> patches_;
  std::size_t prepared_for_ = SIZE_MAX;
  lora::TensorCodec codec_;  // of the prepared tensor
  std::vector<lora::PreparedPatch> prepared_;
  std::vector<const lora::PreparedPatch*> pointers_;
  std::vector<std::byte> elements_;
  lora::TileScratch scratch_;
};

}  // namespace

WrittenFile write_merged_model(const Model& base, std::span<const LoraUse> uses,
                               const std::string& path, const LoraMergeOptions& options) {
  // Every file read is an input the output must not be (under any name), checked before
  // anything is written.
  std::vector<ModelFile> inputs(base.files().begin(), base.files().end());
  for (const LoraUse& use : uses) {
    if (use.lora)
      inputs.insert(inputs.end(), use.lora->model.files().begin(), use.lora->model.files().end());
  }
  io::ReplacingOutput output(path);
  format::refuse_output_over_inputs(path, inputs);
  MergedBytes bytes(base, uses, options.quantized.get());
  std::vector<TensorToWrite> tensors;
  tensors.reserve(base.tensors().size());
  for (const TensorInfo& tensor : base.tensors()) {
    tensors.push_back({tensor.name, tensor.dtype, tensor.shape});
  }
  const TensorBytesSource source = [&](std::size_t index, std::uint64_t offset,
                                       std::span<std::byte> out) {
    bytes.fill(index, offset, out);
  };
  // Shards repeat some keys; the first file's value is kept.
  std::unordered_set<std::string_view> keys;
  if (options.format == FileFormat::gguf) {
    GgufWriteOptions write;
    write.chunk_bytes = options.chunk_bytes;
    for (const MetadataEntry& entry : base.metadata()) {
      if (keys.insert(entry.key).second) write.metadata.emplace_back(entry.key, entry.value);
    }
    const WrittenFile written = format::write_gguf_to(output, path, tensors, source, write);
    output.commit();
    return written;
  }
  if (options.format != FileFormat::safetensors) {
    throw Error(ErrorCode::invalid_argument, "a merged model is written as safetensors or GGUF",
                {path});
  }
  SafetensorsWriteOptions write;
  write.chunk_bytes = options.chunk_bytes;
  for (const MetadataEntry& entry : base.metadata()) {
    const auto* text = std::get_if<std::string>(&entry.value.value);
    if (text != nullptr && keys.insert(entry.key).second) {
      write.metadata.emplace_back(entry.key, *text);
    }
  }
  const WrittenFile written = format::write_safetensors_to(output, path, tensors, source, write);
  output.commit();
  return written;
}

}  // namespace weightmap
