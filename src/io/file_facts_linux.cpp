#include "io/file_facts.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/vfs.h>

#include <array>

#include "weightmap/error.hpp"

namespace weightmap::io {
namespace {

struct KnownFilesystem {
  std::uint64_t type;
  const char* name;
  bool risky;
};

// statfs f_type values (linux/magic.h and the filesystems' sources).
constexpr std::array kFilesystems = {
    KnownFilesystem{0xEF53, "ext4", false},  // ext2, ext3 and ext4 share it
    KnownFilesystem{0x58465342, "xfs", false},     KnownFilesystem{0x9123683E, "btrfs", false},
    KnownFilesystem{0x2FC12FC1, "zfs", false},     KnownFilesystem{0xF2F52010, "f2fs", false},
    KnownFilesystem{0x01021994, "tmpfs", false},   KnownFilesystem{0x858458F6, "ramfs", false},
    KnownFilesystem{0x794C7630, "overlay", false}, KnownFilesystem{0x73717368, "squashfs", false},
    KnownFilesystem{0x6969, "nfs", true},          KnownFilesystem{0x517B, "smb", true},
    KnownFilesystem{0xFE534D42, "smb2", true},     KnownFilesystem{0xFF534D42, "cifs", true},
    KnownFilesystem{0x65735546, "fuse", true},  // also virtiofs, sshfs, s3fs, ...
    KnownFilesystem{0x0BD00BD0, "lustre", true},   KnownFilesystem{0x00C36400, "ceph", true},
    KnownFilesystem{0x01021997, "9p", true},       KnownFilesystem{0x5346414F, "afs", true},
    KnownFilesystem{0x6B414653, "afs", true},      KnownFilesystem{0x01161970, "gfs2", true},
    KnownFilesystem{0x47504653, "gpfs", true},
};

}  // namespace

FileFacts filesystem_facts(std::uint64_t statfs_type) {
  for (const auto& known : kFilesystems) {
    if (known.type == statfs_type) return {known.name, known.risky};
  }
  return {fmt::format("unknown (0x{:x})", statfs_type), false};
}

FileFacts file_facts(const std::string& path) {
  struct statfs info {};
  if (::statfs(path.c_str(), &info) != 0) return {};
  return filesystem_facts(static_cast<std::uint64_t>(info.f_type));
}

}  // namespace weightmap::io
