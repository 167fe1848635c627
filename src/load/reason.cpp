#include "weightmap/reason.hpp"

namespace weightmap {

std::string_view reason_sentence(Reason reason) noexcept {
  switch (reason) {
    case Reason::dtype_differs:
      return "the requested type differs from the type in the file, so the tensor is converted";
    case Reason::element_count_differs:
      return "the requested shape has a different number of elements than the tensor in the "
             "file";
    case Reason::misaligned_for_device:
      return "the tensor's bytes in the file are not aligned as the device needs";
    case Reason::device_cannot_read_host_memory:
      return "the device cannot read host memory, so it gets a copy";
    case Reason::copy_on_write_refused:
      return "the caller writes in place and copy-on-write mappings are turned off, so it gets "
             "a private copy";
    case Reason::format_cannot_be_mapped:
      return "the file stores the tensor in a form that cannot be mapped (compressed or "
             "strided)";
    case Reason::mapping_disabled: return "memory mapping was disabled by the caller";
    case Reason::risky_filesystem:
      return "the file is on a network or FUSE filesystem, where mapped reads are slow and an "
             "I/O error kills the process with SIGBUS, so it is read instead";
  }
  return "unknown reason";
}

}  // namespace weightmap
