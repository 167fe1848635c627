// What open_model left out of a model (files of a folder that are not models), told to the
// user on stderr: a note, not an error.
#pragma once

#include <ostream>
#include <string_view>

#include "weightmap/error.hpp"
#include "weightmap/model.hpp"

namespace weightmap::cli {

// One "weightmap COMMAND: note: ..." line per Model::notes() entry.
inline void print_model_notes(const Model& model, std::string_view command, std::ostream& err) {
  for (const auto& note : model.notes()) {
    err << "weightmap " << command << ": note: " << printable(note, 4096) << '\n';
  }
}

}  // namespace weightmap::cli
