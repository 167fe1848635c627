#include "weightmap/version.hpp"

#include <gtest/gtest.h>

#include <string>

#include "weightmap/weightmap.hpp"

namespace {

// The library reports the version the build gave it (CMake's project version), the same as
// the macros its header was generated with.
TEST(Version, LibraryVersionIsTheProjectVersion) {
  const weightmap::Version v = weightmap::version();
  EXPECT_EQ(v.major, WEIGHTMAP_VERSION_MAJOR);
  EXPECT_EQ(v.minor, WEIGHTMAP_VERSION_MINOR);
  EXPECT_EQ(v.patch, WEIGHTMAP_VERSION_PATCH);
  EXPECT_EQ(std::string(weightmap::version_string()), WEIGHTMAP_VERSION);
  EXPECT_EQ(std::string(WEIGHTMAP_VERSION_STRING), WEIGHTMAP_VERSION);
  EXPECT_EQ(std::to_string(v.major) + "." + std::to_string(v.minor) + "." + std::to_string(v.patch),
            WEIGHTMAP_VERSION);
}

}  // namespace
