// Turns paths (files, shard indexes, folders) into one validated Model.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <memory>
#include <optional>
#include <unordered_map>

#include "format/readers.hpp"
#include "io/file_reader.hpp"
#include "weightmap/error.hpp"
#include "weightmap/model.hpp"

namespace weightmap {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kShardIndexSuffix = ".safetensors.index.json";
constexpr std::array<std::string_view, 6> kModelSuffixes = {".safetensors", ".gguf", ".ckpt",
                                                            ".pt",          ".pth",  ".bin"};

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// A shard name must stay inside the index's folder: no absolute paths, no "..".
bool escapes_folder(const std::string& shard) {
  const fs::path path(shard);
  if (path.is_absolute() || path.empty()) return true;
  return std::any_of(path.begin(), path.end(), [](const fs::path& part) { return part == ".."; });
}

class ModelBuilder {
 public:
  void add_path(const std::string& path, const std::string& prefix) {
    // One open decides what the path is (no separate stat that could race), says why it
    // cannot be opened in the system's words, and never blocks on a FIFO.
    const std::unique_ptr<io::FileReader> opened = io::open_unless_directory(path);
    if (!opened) {
      add_directory(path, prefix);
      return;
    }
    const io::FileReader& reader = *opened;
    if (ends_with(path, kShardIndexSuffix)) {
      add_shards(path, format::read_safetensors_shard_index(reader), prefix);
    } else {
      add_file(reader, read_any(reader), prefix);
    }
  }

  // Files of a folder that were left out, and why.
  std::vector<std::string> notes;

  Model build() && {
    Model model(std::move(files_), std::move(tensors_), std::move(metadata_));
    model.set_notes(std::move(notes));
    return model;
  }

 private:
  // Adds one indexed model file; returns its index in files_.
  std::uint32_t add_file(const io::FileReader& reader, FileIndex index, const std::string& prefix) {
    const auto file_number = static_cast<std::uint32_t>(files_.size());
    ModelFile file;
    file.path = reader.name();
    file.format = index.format;
    file.size = reader.size();
    file.identity = reader.identity();
    file.data_offset = index.data_offset;
    file.alignment = index.alignment;
    files_.push_back(std::move(file));
    for (auto& tensor : index.tensors) {
      if (!prefix.empty()) tensor.name.insert(0, prefix);
      tensor.file = file_number;
    }
    if (tensors_.empty()) {
      tensors_ = std::move(index.tensors);  // the common single-file case: no copy at all
    } else {
      tensors_.insert(tensors_.end(), std::make_move_iterator(index.tensors.begin()),
                      std::make_move_iterator(index.tensors.end()));
    }
    for (auto& [key, value] : index.metadata) {
      metadata_.push_back({std::move(key), std::move(value), file_number});
    }
    return file_number;
  }

  static FileIndex read_any(const io::FileReader& reader) {
    return std::move(*read_model(reader, nullptr));
  }

  // The file's index. With `skipped` (a file found in a folder, not one the caller named),
  // a file that is not a model weightmap can read is no error: the reason goes to *skipped
  // and the result is nullopt. That is a file whose first bytes are no model format's, a
  // legacy PyTorch pickle, or a zip whose pickle is not a tensor checkpoint (a Hugging Face
  // training_args.bin). A malformed safetensors or GGUF file stays an error.
  static std::optional<FileIndex> read_model(const io::FileReader& reader, std::string* skipped) {
    const auto refuse = [&](std::string message) -> std::optional<FileIndex> {
      if (skipped == nullptr) throw Error(ErrorCode::unsupported, message, {reader.name(), {}, 0});
      *skipped = std::move(message);
      return std::nullopt;
    };
    const auto format = format::sniff_format(reader);
    if (!format && format::is_legacy_pytorch(reader)) {
      return refuse(
          "legacy PyTorch format (saved before PyTorch 1.6 or with "
          "_use_new_zipfile_serialization=False) is not supported; re-save it with "
          "torch.save from PyTorch 1.6 or later");
    }
    if (!format) {
      return refuse(
          "not a model file weightmap can read (expected safetensors, GGUF or a PyTorch zip "
          "checkpoint)");
    }
    switch (*format) {
      case FileFormat::safetensors: return format::read_safetensors(reader);
      case FileFormat::gguf: return format::read_gguf(reader);
      case FileFormat::pytorch_zip: try { return format::read_pytorch(reader);
        } catch (const Error& e) {
          if (skipped == nullptr || e.code() != ErrorCode::unsupported) throw;
          return refuse(e.message());
        }
    }
    throw Error(ErrorCode::unsupported, "unknown file format", {reader.name(), {}, 0});
  }

  static format::ShardIndex read_shard_index(const std::string& index_path) {
    const io::FileReader reader(index_path);
    return format::read_safetensors_shard_index(reader);
  }

  void add_file(const std::string& path, const std::string& prefix) {
    const io::FileReader reader(path);
    add_file(reader, read_any(reader), prefix);
  }

  // Where a shard named by an index lives; the same spelling for every path we compare.
  static std::string shard_path(const std::string& index_path, const std::string& shard) {
    return (fs::path(index_path).parent_path() / shard).lexically_normal().string();
  }

  // The index's shard files, each once, sorted. Throws when a name leaves the index's folder.
  static std::vector<std::string> shard_paths(const std::string& index_path,
                                              const format::ShardIndex& index) {
    std::vector<std::string> paths;
    for (const auto& entry : index.weight_map) {
      if (escapes_folder(entry.second)) {
        throw Error(ErrorCode::malformed,
                    fmt::format("shard name \"{}\" points outside the index's folder",
                                printable(entry.second)),
                    {index_path, printable(entry.first)});
      }
      paths.push_back(shard_path(index_path, entry.second));
    }
    std::sort(paths.begin(), paths.end());
    paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
    return paths;
  }

  // Every shard is opened once; each tensor must be in exactly the shard the index names.
  void add_shards(const std::string& index_path, const format::ShardIndex& index,
                  const std::string& prefix) {
    const std::vector<std::string> paths = shard_paths(index_path, index);
    std::unordered_map<std::string_view, std::string> shard_of;  // tensor -> shard path
    for (const auto& [tensor, shard] : index.weight_map) {
      shard_of.emplace(tensor, shard_path(index_path, shard));
    }

    const auto first_file = static_cast<std::uint32_t>(files_.size());
    const std::size_t first_tensor = tensors_.size();
    for (const auto& path : paths) add_file(path, prefix);
    for (const auto& entry : index.metadata) {
      metadata_.push_back({entry.first, entry.second, first_file});
    }

    // A tensor in two shards is reported as such before anything asks which shard is right.
    std::unordered_map<std::string_view, const TensorInfo*> found;
    for (std::size_t i = first_tensor; i < tensors_.size(); ++i) {
      const TensorInfo& tensor = tensors_[i];
      if (const auto [it, inserted] = found.emplace(tensor.name, &tensor); !inserted) {
        throw Error(
            ErrorCode::duplicate,
            fmt::format("tensor is in two shards (also in {})", files_[it->second->file].path),
            {files_[tensor.file].path, printable(tensor.name), tensor.offset});
      }
    }
    for (std::size_t i = first_tensor; i < tensors_.size(); ++i) {
      const TensorInfo& tensor = tensors_[i];
      const std::string& path = files_[tensor.file].path;
      const auto listed = shard_of.find(std::string_view(tensor.name).substr(prefix.size()));
      if (listed == shard_of.end()) {
        throw Error(ErrorCode::malformed,
                    fmt::format("tensor is not listed in the index {}", index_path),
                    {path, printable(tensor.name), tensor.offset});
      }
      if (listed->second != path) {
        throw Error(ErrorCode::malformed,
                    fmt::format("the index {} places this tensor in {}", index_path,
                                printable(listed->second)),
                    {path, printable(tensor.name), tensor.offset});
      }
    }
    for (const auto& [tensor, shard] : index.weight_map) {
      if (!found.contains(prefix + tensor)) {
        throw Error(
            ErrorCode::not_found,
            fmt::format("the index names this tensor but its shard {} lacks it", printable(shard)),
            {index_path, printable(tensor)});
      }
    }
  }

  // Model files of a folder in sorted order. Shards named by an index in the folder are read
  // through the index, as one group placed where its first file sorts.
  void add_directory(const std::string& path, const std::string& prefix) {
    std::vector<std::string> indexes;
    std::vector<std::string> files;
    // By name: whether an entry can be opened, and what it is, is found out by opening it
    // (a symlink loop or an unreadable file is an error naming it, in the system's words).
    std::error_code ec;
    fs::directory_iterator it(path, ec);
    for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
      const fs::directory_entry& entry = *it;
      std::error_code kind_error;
      if (entry.is_directory(kind_error)) continue;
      const std::string name = entry.path().filename().string();
      if (ends_with(name, kShardIndexSuffix)) {
        indexes.push_back(entry.path().lexically_normal().string());
      } else if (std::any_of(kModelSuffixes.begin(), kModelSuffixes.end(),
                             [&](auto suffix) { return ends_with(name, suffix); })) {
        files.push_back(entry.path().lexically_normal().string());
      }
    }
    if (ec) {
      throw Error(ErrorCode::io, fmt::format("cannot list folder: {}", ec.message()), {path});
    }
    if (indexes.empty() && files.empty()) {
      throw Error(ErrorCode::not_found,
                  "the folder holds no model files (*.safetensors, *.safetensors.index.json, "
                  "*.gguf, *.ckpt, *.pt, *.pth, *.bin)",
                  {path});
    }
    // Hugging Face repositories ship the same weights twice, as *.safetensors and as PyTorch
    // *.bin files; reading both would only find every name twice. Where a folder has
    // safetensors weights its *.bin files are left out (other PyTorch suffixes stay in).
    const bool has_safetensors =
        !indexes.empty() || std::any_of(files.begin(), files.end(), [](const std::string& file) {
          return ends_with(file, ".safetensors");
        });
    if (has_safetensors) {
      std::erase_if(files, [](const std::string& file) { return ends_with(file, ".bin"); });
    }

    struct Group {
      std::string sort_key;
      std::string path;  // a loose model file or an index
      std::optional<format::ShardIndex> index;
    };
    std::vector<Group> groups;
    std::vector<std::string> sharded;
    for (auto& index_path : indexes) {
      format::ShardIndex index = read_shard_index(index_path);
      const std::vector<std::string> paths = shard_paths(index_path, index);
      std::string key = index_path;
      if (!paths.empty()) key = std::min(key, paths.front());
      sharded.insert(sharded.end(), paths.begin(), paths.end());
      groups.push_back({std::move(key), std::move(index_path), std::move(index)});
    }
    for (auto& file : files) {
      if (std::find(sharded.begin(), sharded.end(), file) != sharded.end()) continue;
      groups.push_back({file, std::move(file), std::nullopt});
    }
    std::sort(groups.begin(), groups.end(),
              [](const Group& a, const Group& b) { return a.sort_key < b.sort_key; });
    std::size_t added = 0;
    std::vector<std::string> skipped_files;  // with their reasons
    for (const auto& group : groups) {
      if (group.index) {
        add_shards(group.path, *group.index, prefix);
        ++added;
        continue;
      }
      const io::FileReader reader(group.path);
      std::string why;
      std::optional<FileIndex> index = read_model(reader, &why);
      if (!index) {
        notes.push_back(fmt::format("{}: skipped: {}", group.path, why));
        skipped_files.push_back(notes.back());
        continue;
      }
      add_file(reader, std::move(*index), prefix);
      ++added;
    }
    if (added == 0) {
      throw Error(ErrorCode::not_found,
                  fmt::format("the folder holds no model file weightmap can read ({})",
                              fmt::join(skipped_files, "; ")),
                  {path});
    }
  }

  std::vector<ModelFile> files_;
  std::vector<TensorInfo> tensors_;
  std::vector<MetadataEntry> metadata_;
};

}  // namespace

Model open_model(const std::vector<ModelSource>& sources) {
  if (sources.empty()) {
    throw Error(ErrorCode::invalid_argument, "no model path given");
  }
  ModelBuilder builder;
  for (const auto& source : sources) builder.add_path(source.path, source.name_prefix);
  return std::move(builder).build();  // throws on a name found twice
}

Model open_model(const std::string& path) {
  return open_model(std::vector<ModelSource>{{path, {}}});
}

}  // namespace weightmap
