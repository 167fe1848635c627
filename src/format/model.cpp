#include "weightmap/model.hpp"

#include <fmt/format.h>

#include "weightmap/error.hpp"

namespace weightmap {

std::string_view file_format_name(FileFormat format) {
  switch (format) {
    case FileFormat::safetensors: return "safetensors";
    case FileFormat::gguf: return "gguf";
    case FileFormat::pytorch_zip: return "pytorch-zip";
  }
  return "unknown";
}

std::string_view metadata_type_name(MetadataType type) {
  switch (type) {
    case MetadataType::u8: return "u8";
    case MetadataType::i8: return "i8";
    case MetadataType::u16: return "u16";
    case MetadataType::i16: return "i16";
    case MetadataType::u32: return "u32";
    case MetadataType::i32: return "i32";
    case MetadataType::f32: return "f32";
    case MetadataType::boolean: return "bool";
    case MetadataType::string: return "string";
    case MetadataType::array: return "array";
    case MetadataType::u64: return "u64";
    case MetadataType::i64: return "i64";
    case MetadataType::f64: return "f64";
  }
  return "unknown";
}

std::uint64_t TensorInfo::element_count() const {
  std::uint64_t count = 1;
  for (const auto dim : shape) count *= dim;  // format/ proved this does not overflow
  return count;
}

Model::Model(std::vector<ModelFile> files, std::vector<TensorInfo> tensors,
             std::vector<MetadataEntry> metadata)
    : files_(std::move(files)), tensors_(std::move(tensors)), metadata_(std::move(metadata)) {
  build_lookup();
}

Model::Model(const Model& other)
    : files_(other.files_),
      tensors_(other.tensors_),
      metadata_(other.metadata_),
      notes_(other.notes_) {
  build_lookup();
}

Model& Model::operator=(const Model& other) {
  if (this != &other) {
    files_ = other.files_;
    tensors_ = other.tensors_;
    metadata_ = other.metadata_;
    notes_ = other.notes_;
    build_lookup();
  }
  return *this;
}

void Model::build_lookup() {
  by_name_.clear();
  by_name_.reserve(tensors_.size());
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    const auto& tensor = tensors_[i];
    const auto [it, inserted] = by_name_.emplace(tensor.name, i);
    if (!inserted) {
      const auto& first = files_.at(tensors_[it->second].file).path;
      throw Error(ErrorCode::duplicate,
                  fmt::format("tensor name appears twice (first in {})", first),
                  {files_.at(tensor.file).path, printable(tensor.name), tensor.offset});
    }
  }
}

const TensorInfo* Model::find(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

const MetadataEntry* Model::find_metadata(std::string_view key) const {
  for (const auto& entry : metadata_) {
    if (entry.key == key) return &entry;
  }
  return nullptr;
}

}  // namespace weightmap
