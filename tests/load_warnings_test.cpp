// Requests a load could not honour reach the user: the log callback gets each at WARNING,
// LoadReport::cache shows what was applied (not what was asked), `weightmap load` prints them
// on stderr. RLIMIT_MEMLOCK does not bind root (CAP_IPC_LOCK), so the refused mlock is
// provoked in a child that is not root.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <filesystem>
#include <string>
#include <vector>

#include "support/cli_run.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "support/unprivileged_child.hpp"
#include "weightmap/load.hpp"
#include "weightmap/model.hpp"

// AddressSanitizer intercepts mlock and makes it succeed whatever the limit, so nothing is
// refused to test in that build.
#if defined(__SANITIZE_ADDRESS__)
#define WEIGHTMAP_TEST_MLOCK_IS_INTERCEPTED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEIGHTMAP_TEST_MLOCK_IS_INTERCEPTED 1
#endif
#endif

namespace weightmap {
namespace {

void skip_where_mlock_is_intercepted() {
#ifdef WEIGHTMAP_TEST_MLOCK_IS_INTERCEPTED
  GTEST_SKIP() << "AddressSanitizer intercepts mlock (it always succeeds there)";
#endif
}

using testing::SafetensorsBuilder;
using testing::TempDir;

// A 64 KiB tensor in a folder anyone may read (the child is `nobody`).
std::string readable_model(const TempDir& dir) {
  namespace fs = std::filesystem;
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  const std::string path = dir / "model.safetensors";
  testing::write_file(path, SafetensorsBuilder().add("w", "F32", {16384}).bytes());
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                            fs::perms::others_read);
  return path;
}

void limit_locked_memory(rlim_t bytes) {
  const rlimit limit{bytes, bytes};
  if (::setrlimit(RLIMIT_MEMLOCK, &limit) != 0) throw std::runtime_error("setrlimit failed");
}

TEST(LoadWarnings, RefusedMlockIsAWarningAndNotInTheAppliedFlags) {
  skip_where_mlock_is_intercepted();
  if (::testing::Test::IsSkipped()) return;
  const TempDir dir;
  const std::string path = readable_model(dir);
  const testing::ChildResult result = testing::run_unprivileged([&] {
    limit_locked_memory(4096);
    const Model model = open_model(path);
    std::vector<TensorRequest> requests = {{.name = "w"}};
    requests[0].device.alignment = 4;  // as a CPU reads f32: mapped at any 8-byte offset
    std::string warnings;
    LoadOptions options;
    options.cache_from_env = false;
    options.cache.mlock = true;
    options.log = [&](LogLevel level, std::string_view line) {
      if (level == LogLevel::warning) warnings += std::string(line) + '\n';
    };
    const LoadedModel loaded = load(model, requests, options);
    return fmt::format("{}flags: [{}], notes: {}, mapped: {}", warnings,
                       loaded.report.cache.to_string(), loaded.report.notes.size(),
                       loaded.report.mapped_tensors);
  });
  ASSERT_TRUE(result.ran) << result.text;
  EXPECT_EQ(result.text,
            "tensors not locked in memory: " + path +
                ": mlock of 68 KiB failed: RLIMIT_MEMLOCK allows 4 KiB; raise it (ulimit -l, or "
                "LimitMEMLOCK= for a service) or turn the mlock option off\n"
                "flags: [], notes: 1, mapped: 1");
}

TEST(LoadWarnings, CliLoadPrintsTheRefusedMlockAndTheAppliedFlags) {
  skip_where_mlock_is_intercepted();
  if (::testing::Test::IsSkipped()) return;
  const TempDir dir;
  const std::string path = readable_model(dir);
  const testing::ChildResult result = testing::run_unprivileged([&] {
    limit_locked_memory(4096);
    const test::CliResult r = test::run_cli_captured({"load", path, "--flags", "mlock,willneed"});
    return fmt::format("code {}\n{}---\n{}", r.code, r.err, r.out);
  });
  ASSERT_TRUE(result.ran) << result.text;
  EXPECT_TRUE(
      result.text.starts_with("code 0\nweightmap load: warning: tensors not locked in "
                              "memory: " +
                              path +
                              ": mlock of 68 KiB failed: RLIMIT_MEMLOCK allows 4 "
                              "KiB; raise it"))
      << result.text;
  EXPECT_NE(result.text.find("page-cache flags: willneed\n"), std::string::npos) << result.text;
}

}  // namespace
}  // namespace weightmap
