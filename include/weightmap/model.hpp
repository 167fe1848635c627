// A model: one or more files (a safetensors file, shards named by an index, a GGUF file, a
// folder of such files) and the validated index of all their tensors.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "weightmap/error.hpp"
#include "weightmap/export.hpp"
#include "weightmap/file_identity.hpp"
#include "weightmap/metadata.hpp"
#include "weightmap/tensor_info.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

struct ModelFile {
  std::string path;
  FileFormat format = FileFormat::safetensors;
  std::uint64_t size = 0;
  FileIdentity identity;
  std::uint64_t data_offset = 0;
  std::uint32_t alignment = 1;
};

// One thing to open: a model file, a `*.safetensors.index.json`, or a folder. Its tensor
// names get `name_prefix` in front ("vae." + names of the VAE file), so one model can hold
// several components.
struct ModelSource {
  std::string path;
  std::string name_prefix;
};

class Model {
 public:
  Model() = default;
  Model(std::vector<ModelFile> files, std::vector<TensorInfo> tensors,
        std::vector<MetadataEntry> metadata);
  Model(const Model& other);
  Model& operator=(const Model& other);
  Model(Model&&) noexcept = default;
  Model& operator=(Model&&) noexcept = default;

  const std::vector<ModelFile>& files() const noexcept { return files_; }
  const std::vector<TensorInfo>& tensors() const noexcept { return tensors_; }  // file order
  const std::vector<MetadataEntry>& metadata() const noexcept { return metadata_; }
  // What opening left out, in words: files of a folder that are not models weightmap can
  // read ("FOLDER/training_args.bin: skipped: not a model file ..."). Empty for named files.
  const std::vector<std::string>& notes() const noexcept { return notes_; }
  void set_notes(std::vector<std::string> notes) { notes_ = std::move(notes); }

  // nullptr when absent.
  const TensorInfo* find(std::string_view name) const;
  const MetadataEntry* find_metadata(std::string_view key) const;

 private:
  void build_lookup();

  std::vector<ModelFile> files_;
  std::vector<TensorInfo> tensors_;
  std::vector<MetadataEntry> metadata_;
  std::vector<std::string> notes_;
  std::unordered_map<std::string_view, std::size_t> by_name_;
};

// Opens and validates every source. Throws weightmap::Error naming the file, the tensor and
// the byte offset of the first problem: "cannot open: " + the system's reason (ELOOP,
// EACCES, ...), "not a regular file (FIFO)" (never blocking on one), a malformed file. A
// tensor name found twice (in two files, or under the same prefix in two sources) is an
// error. In a folder, files that are not models (see Model::notes) are skipped.
Model open_model(const std::vector<ModelSource>& sources);
Model open_model(const std::string& path);

}  // namespace weightmap
WEIGHTMAP_API_END
