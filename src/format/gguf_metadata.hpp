// GGUF metadata values: the typed key/value pairs before the tensor infos.
#pragma once

#include <cstdint>
#include <optional>

#include "format/gguf_cursor.hpp"
#include "weightmap/metadata.hpp"

namespace weightmap::format {

// Arrays may hold arrays; a hostile file could nest them deep enough to exhaust the stack,
// and no real model nests at all, so anything deeper than this is rejected.
inline constexpr int kGgufMaxArrayNesting = 16;

// The MetadataType with this GGUF value type id, or nullopt for an unknown id.
std::optional<MetadataType> gguf_value_type(std::uint32_t id) noexcept;

// Reads one value of the given GGUF value type id (read just before, at `type_offset`) from
// the cursor. Throws Error naming the offset of the first bad field.
MetadataValue read_gguf_value(GgufCursor& cursor, std::uint32_t type_id, std::uint64_t type_offset);

}  // namespace weightmap::format
