#include "format/readers.hpp"
#include "weightmap/error.hpp"

namespace weightmap::format {

FileIndex read_gguf(const ByteSource& source) {
  throw Error(ErrorCode::unsupported, "GGUF reader not written yet", {source.name()});
}

}  // namespace weightmap::format
