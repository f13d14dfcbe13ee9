// What a batch file's content is, in a few bytes: the daemon remembers the fingerprint of every
// file it enqueued whole and does not parse the same content again (design.md, "Intake").
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "personad/result.hpp"

namespace personad {

// "sha256:<64 lower-case hex digits>:<size in bytes>". The size is redundant with the digest;
// it is there for the operator who reads the table (and costs nothing to compare).
//
// Of a file, read in blocks (a 30 MB batch is never in memory for this). Refused, before it is
// read, like load_batch_file refuses it: not a regular file (a FIFO or a device is never
// opened), or larger than a batch file may be (64 MiB). Every error names the file.
Result<std::string> batch_fingerprint(const std::filesystem::path& path);

// Of bytes already in memory (load_batch_file's text): the same fingerprint as a file holding
// exactly these bytes.
Result<std::string> batch_fingerprint_of(std::string_view bytes);

}  // namespace personad
