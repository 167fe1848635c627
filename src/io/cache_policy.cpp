#include "weightmap/cache_policy.hpp"

#include <fmt/format.h>

#include <array>
#include <cstdlib>
#include <utility>

#include "weightmap/error.hpp"

namespace weightmap {
namespace {

using Flag = bool CachePolicy::*;

// The variable's words, in the order to_string() prints them.
constexpr std::array<std::pair<std::string_view, Flag>, 7> kWords = {{
    {"sequential", &CachePolicy::sequential},
    {"random", &CachePolicy::random},
    {"willneed", &CachePolicy::willneed},
    {"populate", &CachePolicy::populate},
    {"dontneed", &CachePolicy::dontneed_on_release},
    {"hugepage", &CachePolicy::hugepage},
    {"mlock", &CachePolicy::mlock},
}};

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  const auto begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  const auto end = text.find_last_not_of(kSpace);
  return text.substr(begin, end - begin + 1);
}

}  // namespace

CachePolicy& CachePolicy::merge(const CachePolicy& other) {
  for (const auto& [word, flag] : kWords) this->*flag = this->*flag || other.*flag;
  return *this;
}

CachePolicy& CachePolicy::remove(const CachePolicy& other) {
  for (const auto& [word, flag] : kWords) this->*flag = this->*flag && !(other.*flag);
  return *this;
}

std::string CachePolicy::to_string() const {
  std::string out;
  for (const auto& [word, flag] : kWords) {
    if (!(this->*flag)) continue;
    if (!out.empty()) out += ',';
    out += word;
  }
  return out;
}

CachePolicy CachePolicy::parse(std::string_view flags, std::vector<std::string>* warnings) {
  CachePolicy policy;
  while (!flags.empty()) {
    const auto comma = flags.find(',');
    const std::string_view word = trim(flags.substr(0, comma));
    flags = comma == std::string_view::npos ? std::string_view{} : flags.substr(comma + 1);
    if (word.empty()) continue;
    bool known = false;
    for (const auto& [name, flag] : kWords) {
      if (word == name) {
        policy.*flag = true;
        known = true;
      }
    }
    if (!known && warnings != nullptr) {
      warnings->push_back(fmt::format(
          "{}: unknown word \"{}\" ignored (known: sequential, willneed, populate, dontneed, "
          "hugepage, random, mlock)",
          kMmapFlagsVariable, printable(word, 40)));
    }
  }
  return policy;
}

CachePolicy CachePolicy::from_env(std::vector<std::string>* warnings) {
  const char* value = std::getenv(std::string(kMmapFlagsVariable).c_str());
  if (value == nullptr) return {};
  return parse(value, warnings);
}

}  // namespace weightmap
