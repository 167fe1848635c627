// The public writers (weightmap/writer.hpp): the format's streaming writers into a
// ReplacingOutput, so a model file appears under its name only when whole.
#include "format/writers.hpp"
#include "io/replacing_output.hpp"
#include "weightmap/writer.hpp"

namespace weightmap {

WrittenFile write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const TensorBytesSource& source,
                              const SafetensorsWriteOptions& options) {
  io::ReplacingOutput output(path);
  const WrittenFile written = format::write_safetensors_to(output, path, tensors, source, options);
  output.commit();
  return written;
}

WrittenFile write_gguf(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const TensorBytesSource& source, const GgufWriteOptions& options) {
  io::ReplacingOutput output(path);
  const WrittenFile written = format::write_gguf_to(output, path, tensors, source, options);
  output.commit();
  return written;
}

}  // namespace weightmap
