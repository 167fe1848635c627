// The message of the weightmap::Error an action throws, so a test can compare the whole text a
// user would read; "(no error)" when the action throws nothing.
#pragma once

#include <functional>
#include <string>

#include "weightmap/error.hpp"

namespace weightmap::testing {

inline std::string error_text(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

}  // namespace weightmap::testing
