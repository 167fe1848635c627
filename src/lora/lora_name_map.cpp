// The interpreter of the name tables: pattern matching with number captures, linear index
// expressions, nested rules, row slices.
#include "lora/lora_name_map.hpp"

#include <fmt/format.h>

#include <array>
#include <cctype>

namespace weightmap::lora_detail {
namespace {

constexpr std::size_t kVariables = 2;  // {a}, {b}
using Captures = std::array<std::uint64_t, kVariables>;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::optional<std::size_t> variable(char c) {
  if (c >= 'a' && c < static_cast<char>('a' + kVariables)) return static_cast<std::size_t>(c - 'a');
  return std::nullopt;
}

// Matches `pattern` at the start of `name`: the length matched, or nullopt.
std::optional<std::size_t> match(std::string_view pattern, std::string_view name,
                                 Captures& captures) {
  std::size_t at = 0;
  for (std::size_t p = 0; p < pattern.size(); ++p) {
    const char c = pattern[p];
    if (c == '{') {
      const auto close = pattern.find('}', p);
      if (close != p + 2) return std::nullopt;  // a table error: "{a}" only
      const auto slot = variable(pattern[p + 1]);
      if (!slot) return std::nullopt;
      std::uint64_t value = 0;
      const std::size_t start = at;
      while (at < name.size() && is_digit(name[at]) && at - start < 9) {
        value = value * 10 + static_cast<std::uint64_t>(name[at] - '0');
        ++at;
      }
      if (at == start) return std::nullopt;
      captures[*slot] = value;
      p = close;
      continue;
    }
    if (at >= name.size()) return std::nullopt;
    const char n = name[at];
    const bool same = c == n || (c == '.' && n == '_');
    if (!same) return std::nullopt;
    ++at;
  }
  // A pattern ending in '.' names a prefix; any other the whole name.
  if (!pattern.ends_with('.') && at != name.size()) return std::nullopt;
  return at;
}

// "{3a+b+1}" -> 3 * a + b + 1.
std::uint64_t evaluate(std::string_view expression, const Captures& captures) {
  std::uint64_t total = 0;
  std::size_t at = 0;
  while (at < expression.size()) {
    std::uint64_t coefficient = 0;
    bool has_number = false;
    while (at < expression.size() && is_digit(expression[at])) {
      coefficient = coefficient * 10 + static_cast<std::uint64_t>(expression[at] - '0');
      has_number = true;
      ++at;
    }
    std::uint64_t term = coefficient;
    if (at < expression.size()) {
      if (const auto slot = variable(expression[at])) {
        term = (has_number ? coefficient : 1) * captures[*slot];
        ++at;
      }
    }
    total += term;
    if (at < expression.size() && expression[at] == '+') ++at;
  }
  return total;
}

std::string expand(std::string_view replacement, const Captures& captures) {
  std::string out;
  for (std::size_t i = 0; i < replacement.size(); ++i) {
    if (replacement[i] == '{') {
      const auto close = replacement.find('}', i);
      if (close == std::string_view::npos) break;
      out += fmt::format("{}", evaluate(replacement.substr(i + 1, close - i - 1), captures));
      i = close;
      continue;
    }
    out += replacement[i];
  }
  return out;
}

std::optional<RuleResult> apply(const NameRule& rule, std::string_view name, Captures captures) {
  const auto matched = match(rule.from, name, captures);
  if (!matched) return std::nullopt;
  RuleResult out;
  out.name = expand(rule.to, captures);
  out.slice = rule.slice;
  out.tensor_suffix = rule.tensor_suffix;
  out.rule = fmt::format("{} -> {}{}", rule.from, rule.to, rule.tensor_suffix.value_or(""));
  const std::string_view rest = name.substr(*matched);
  for (const NameRule& next : rule.then) {
    if (auto inner = apply(next, rest, captures)) {
      out.name += inner->name;
      if (inner->slice.kind != RowSlice::Kind::whole) out.slice = inner->slice;
      if (inner->tensor_suffix) out.tensor_suffix = inner->tensor_suffix;
      out.rule += ", " + inner->rule;
      return out;
    }
  }
  out.name += rest;
  return out;
}

}  // namespace

std::optional<std::pair<std::uint64_t, std::uint64_t>> slice_rows(RowSlice slice,
                                                                  std::uint64_t rows,
                                                                  std::uint64_t cols) {
  switch (slice.kind) {
    case RowSlice::Kind::whole: return std::pair{std::uint64_t{0}, rows};
    case RowSlice::Kind::third:
      if (rows % 3 != 0 || slice.index >= 3) return std::nullopt;
      return std::pair{slice.index * (rows / 3), rows / 3};
    case RowSlice::Kind::hidden:
      if (cols == 0 || rows / cols < slice.index + std::uint64_t{1}) return std::nullopt;
      return std::pair{slice.index * cols, cols};
    case RowSlice::Kind::past_hidden:
      if (cols == 0 || rows / cols <= slice.index || rows - slice.index * cols == 0) {
        return std::nullopt;
      }
      return std::pair{slice.index * cols, rows - slice.index * cols};
  }
  return std::nullopt;
}

std::string slice_text(RowSlice slice) {
  switch (slice.kind) {
    case RowSlice::Kind::whole: return {};
    case RowSlice::Kind::third: return fmt::format("third {} of 3", slice.index + 1);
    case RowSlice::Kind::hidden: return fmt::format("hidden block {}", slice.index + 1);
    case RowSlice::Kind::past_hidden: return fmt::format("rows past {} hidden blocks", slice.index);
  }
  return {};
}

std::optional<RuleResult> apply_rule(const NameRule& rule, std::string_view name) {
  return apply(rule, name, Captures{});
}

std::vector<NameCandidate> name_candidates(const NamePreset& preset, std::string_view module) {
  std::vector<NameCandidate> out;
  for (const NameComponent& component : preset.components) {
    if (!module.starts_with(component.lora_prefix)) continue;
    const std::string_view rest = module.substr(component.lora_prefix.size());
    const NameDomain& domain = *component.domain;
    const auto add = [&](const RuleResult& result) {
      for (const std::string_view prefix : domain.base_prefixes) {
        out.push_back({fmt::format("{}{}", prefix, result.name), result.tensor_suffix, result.slice,
                       fmt::format("{} {}{}: {}", preset.name, domain.name,
                                   component.lora_prefix.empty()
                                       ? std::string()
                                       : fmt::format(" ({})", component.lora_prefix),
                                   result.rule)});
      }
    };
    for (const NameRule& rule : domain.rules) {
      if (const auto result = apply_rule(rule, rest)) add(*result);
    }
    add({std::string(rest), {}, {}, "as it stands"});
  }
  return out;
}

const NamePreset* find_name_preset(std::string_view name) {
  for (const NamePreset& preset : name_presets()) {
    if (preset.name == name) return &preset;
  }
  return nullptr;
}

}  // namespace weightmap::lora_detail
