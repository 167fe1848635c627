#include "io/mapping_registry.hpp"

#include <fmt/format.h>

#include <mutex>
#include <unordered_map>

#include "weightmap/error.hpp"

namespace weightmap::io {
namespace {

struct FileKey {
  std::uint64_t device;
  std::uint64_t inode;
  friend bool operator==(const FileKey&, const FileKey&) = default;
};

struct FileKeyHash {
  std::size_t operator()(const FileKey& key) const noexcept {
    return std::hash<std::uint64_t>()(key.device * 0x9E3779B97F4A7C15ULL ^ key.inode);
  }
};

class MappingRegistry {
 public:
  std::shared_ptr<MappedFile> find(const FileIdentity& identity) {
    std::lock_guard lock(mutex_);
    const auto it = mappings_.find({identity.device, identity.inode});
    if (it == mappings_.end()) return nullptr;
    auto file = it->second.lock();
    if (file && file->identity() == identity) return file;
    return nullptr;
  }

  // Registers `file` unless a live mapping of the same file got there first; returns the one
  // to use.
  std::shared_ptr<MappedFile> add(std::shared_ptr<MappedFile> file) {
    std::lock_guard lock(mutex_);
    std::erase_if(mappings_, [](const auto& entry) { return entry.second.expired(); });
    const FileKey key{file->identity().device, file->identity().inode};
    auto& slot = mappings_[key];
    if (auto existing = slot.lock(); existing && existing->identity() == file->identity()) {
      return existing;
    }
    slot = file;
    return file;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<FileKey, std::weak_ptr<MappedFile>, FileKeyHash> mappings_;
};

MappingRegistry& registry() {
  static MappingRegistry instance;  // process-wide on purpose: see the header
  return instance;
}

}  // namespace

void check_unchanged(const FileIdentity& now, const FileIdentity& expected,
                     const std::string& path) {
  if (now == expected) return;
  throw Error(ErrorCode::io,
              now.size != expected.size
                  ? fmt::format("the file changed size since the model was opened ({} bytes, "
                                "now {}); open the model again",
                                expected.size, now.size)
                  : "the file was replaced or modified since the model was opened; open the "
                    "model again",
              {path});
}

std::shared_ptr<MappedFile> map_model_file(const std::string& path, const FileIdentity& expected,
                                           Access access) {
  if (access == Access::read_only) {
    if (auto shared = registry().find(expected)) return shared;
  }
  auto file = MappedFile::open(path, access);
  check_unchanged(file->identity(), expected, path);
  if (access == Access::read_only) return registry().add(std::move(file));
  return file;
}

}  // namespace weightmap::io
