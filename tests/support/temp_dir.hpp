// The one temporary folder of tests, benchmarks and fuzzers: a fresh folder per object, made
// by mkdtemp under the system's temp folder ($TMPDIR), removed with everything in it when the
// object goes. ctest runs tests as parallel processes in any order, so nothing may write to a
// name another test, another run or another user could also pick: every file a test writes
// goes inside its own TempDir.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace weightmap::testing {

class TempDir {
 public:
  // `prefix` only helps a person find a leftover folder (after a crash); uniqueness comes from
  // mkdtemp.
  explicit TempDir(std::string_view prefix = "weightmap") {
    std::string pattern =
        (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed for " + pattern);
    }
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    if (ec) {
      // A test that took permissions away (an unreadable folder, say) may leave entries that
      // cannot be removed: give the owner its rights back and try once more.
      restore_owner_permissions();
      std::filesystem::remove_all(path_, ec);
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }
  std::string operator/(std::string_view name) const { return (path_ / name).string(); }

 private:
  void restore_owner_permissions() const noexcept {
    std::error_code ec;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    for (auto it = std::filesystem::recursive_directory_iterator(
             path_, std::filesystem::directory_options::skip_permission_denied, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_symlink(ec)) continue;
      std::filesystem::permissions(it->path(), std::filesystem::perms::owner_all,
                                   std::filesystem::perm_options::add, ec);
      ec.clear();
    }
  }

  std::filesystem::path path_;
};

}  // namespace weightmap::testing
