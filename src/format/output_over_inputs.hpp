// Every writer of a model file (realign, lora merge, the CLI before it starts) refuses to
// write over one of the files it reads, under any name, before anything is written.
#pragma once

#include <span>
#include <string>

#include "weightmap/model.hpp"

namespace weightmap::format {

// Throws Error(invalid_argument) "the output is the input file X itself; ..." naming
// `output` when it is the same file as one of `inputs` (device and inode, following
// symlinks). Nothing at `output` is fine.
void refuse_output_over_inputs(const std::string& output, std::span<const ModelFile> inputs);

}  // namespace weightmap::format
