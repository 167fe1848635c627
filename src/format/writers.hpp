// The streaming writers on a ByteSink. The public write_safetensors/write_gguf (writer.hpp)
// put them in front of a temporary file renamed into place (src/io/model_file_writers.cpp);
// realign and LoRA merging do the same with the inputs the output must not overwrite.
#pragma once

#include <string>
#include <vector>

#include "io/byte_sink.hpp"
#include "weightmap/writer.hpp"

namespace weightmap::format {

// As write_safetensors and write_gguf; `path` names the output in messages. Every input is
// validated before the first byte reaches the sink.
WrittenFile write_safetensors_to(io::ByteSink& sink, const std::string& path,
                                 const std::vector<TensorToWrite>& tensors,
                                 const TensorBytesSource& source,
                                 const SafetensorsWriteOptions& options);
WrittenFile write_gguf_to(io::ByteSink& sink, const std::string& path,
                          const std::vector<TensorToWrite>& tensors,
                          const TensorBytesSource& source, const GgufWriteOptions& options);

}  // namespace weightmap::format
