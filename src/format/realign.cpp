// weightmap::realign: reads a model file's index, chooses a layout with every tensor it can
// on the alignment, and writes the file again through the streaming writers, reading each
// tensor's bytes with pread into the writer's buffer (no mapping, no whole-model buffer).
#include "weightmap/realign.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <variant>

#include "format/output_over_inputs.hpp"
#include "format/realign_layout.hpp"
#include "format/tensor_layout.hpp"
#include "format/writers.hpp"
#include "io/file_reader.hpp"
#include "io/replacing_output.hpp"
#include "weightmap/error.hpp"
#include "weightmap/model.hpp"

namespace weightmap {
namespace {

constexpr std::string_view kAlignmentKey = "general.alignment";

// What to write, and where each written tensor's bytes come from.
struct WritePlan {
  std::vector<TensorToWrite> tensors;
  std::vector<std::optional<std::size_t>> sources;  // model tensor, or nullopt for padding
};

// A name for the next padding tensor that no tensor of the model has.
std::string padding_name(const Model& model, std::size_t& next) {
  for (;; ++next) {
    std::string name = padding_tensor_name(next);
    if (model.find(name) == nullptr) {
      ++next;
      return name;
    }
  }
}

TensorToWrite as_written(const TensorInfo& tensor) {
  return {tensor.name, tensor.dtype, tensor.shape};
}

WritePlan safetensors_plan(const Model& model, const RealignOptions& options) {
  std::vector<std::uint64_t> sizes;
  sizes.reserve(model.tensors().size());
  for (const TensorInfo& tensor : model.tensors()) sizes.push_back(tensor.nbytes);
  const SafetensorsLayout layout =
      plan_safetensors_layout(sizes, options.alignment, options.padding_tensors);
  WritePlan plan;
  std::size_t next_padding = 0;
  for (const SafetensorsSlot& slot : layout.slots) {
    if (slot.tensor) {
      plan.tensors.push_back(as_written(model.tensors()[*slot.tensor]));
    } else {
      plan.tensors.push_back({padding_name(model, next_padding), DType::U8, {slot.bytes}});
    }
    plan.sources.push_back(slot.tensor);
  }
  return plan;
}

std::vector<std::pair<std::string, std::string>> safetensors_metadata(const Model& model) {
  std::vector<std::pair<std::string, std::string>> metadata;
  for (const MetadataEntry& entry : model.metadata()) {
    const auto* text = std::get_if<std::string>(&entry.value.value);
    if (text == nullptr) {
      throw Error(ErrorCode::unsupported,
                  fmt::format("metadata key \"{}\" is not a string, which safetensors requires",
                              printable(entry.key)),
                  {model.files()[0].path});
    }
    metadata.emplace_back(entry.key, *text);
  }
  return metadata;
}

WritePlan gguf_plan(const Model& model) {
  WritePlan plan;
  for (std::size_t i = 0; i < model.tensors().size(); ++i) {
    plan.tensors.push_back(as_written(model.tensors()[i]));
    plan.sources.emplace_back(i);
  }
  return plan;
}

// The model's metadata in file order with general.alignment replaced where it stands (the
// writer appends it when it is missing and not GGUF's default).
std::vector<std::pair<std::string, MetadataValue>> gguf_metadata(const Model& model,
                                                                 std::uint32_t alignment) {
  std::vector<std::pair<std::string, MetadataValue>> metadata;
  metadata.reserve(model.metadata().size());
  for (const MetadataEntry& entry : model.metadata()) {
    if (entry.key == kAlignmentKey) {
      metadata.emplace_back(
          entry.key, MetadataValue{.type = MetadataType::u32, .value = std::uint64_t{alignment}});
    } else {
      metadata.emplace_back(entry.key, entry.value);
    }
  }
  return metadata;
}

// The one file realign rewrites; folders, shard indexes and PyTorch checkpoints are refused.
const ModelFile& single_file(const Model& model, const std::string& input) {
  if (model.files().size() != 1 || model.files()[0].path != input) {
    throw Error(ErrorCode::unsupported,
                "realign rewrites one model file, not a folder or a shard index; realign each "
                "file of it",
                {input});
  }
  const ModelFile& file = model.files()[0];
  if (file.format == FileFormat::pytorch_zip) {
    throw Error(ErrorCode::unsupported,
                "realign writes safetensors and GGUF files; PyTorch checkpoints are not "
                "rewritten (convert it to safetensors first)",
                {input});
  }
  return file;
}

}  // namespace

RealignResult realign(const std::string& input, const std::string& output,
                      const RealignOptions& options) {
  format::check_alignment({}, "the alignment", options.alignment, kMinRealignment, kMaxRealignment);
  const Model model = open_model(input);
  const ModelFile& file = single_file(model, input);
  // Refuses an output that is the input under any name, before anything is written.
  io::ReplacingOutput target(output);
  format::refuse_output_over_inputs(output, model.files());

  const io::FileReader reader(input);
  if (reader.identity() != file.identity) {
    throw Error(ErrorCode::io, "the file changed while realign was reading it", {input});
  }
  const bool safetensors = file.format == FileFormat::safetensors;
  const WritePlan plan = safetensors ? safetensors_plan(model, options) : gguf_plan(model);
  const TensorBytesSource source = [&](std::size_t index, std::uint64_t offset,
                                       std::span<std::byte> out) {
    if (const auto tensor = plan.sources[index]) {
      reader.read_at(model.tensors()[*tensor].offset + offset, out);
    } else {
      std::fill(out.begin(), out.end(), std::byte{0});
    }
  };

  WrittenFile written;
  if (safetensors) {
    written = format::write_safetensors_to(target, output, plan.tensors, source,
                                           {.metadata = safetensors_metadata(model),
                                            .data_alignment = options.alignment,
                                            .chunk_bytes = options.chunk_bytes});
  } else {
    written = format::write_gguf_to(target, output, plan.tensors, source,
                                    {.metadata = gguf_metadata(model, options.alignment),
                                     .alignment = options.alignment,
                                     .chunk_bytes = options.chunk_bytes});
  }
  target.commit();

  RealignResult result;
  result.format = file.format;
  result.size = written.size;
  result.tensors = model.tensors().size();
  for (std::size_t slot = 0; slot < plan.sources.size(); ++slot) {
    const auto tensor = plan.sources[slot];
    const std::uint64_t offset = written.tensor_offsets[slot];
    if (!tensor) {
      ++result.padding_tensors;
      result.padding_bytes += plan.tensors[slot].shape[0];
      continue;
    }
    if (*tensor != slot - result.padding_tensors) result.reordered = true;
    if (offset % options.alignment != 0) {
      result.unaligned.emplace_back(model.tensors()[*tensor].name, offset);
    }
  }
  return result;
}

}  // namespace weightmap
