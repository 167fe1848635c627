#include "format/readers.hpp"
#include "weightmap/error.hpp"

namespace weightmap::format {

ShardIndex read_safetensors_shard_index(const ByteSource& source) {
  throw Error(ErrorCode::unsupported, "shard index reader not written yet", {source.name()});
}

}  // namespace weightmap::format
