// Parses batch files ([[persona]] tables) into validated PersonaSpecs. A file with any invalid
// entry yields errors only, each naming file, line and field, so nothing of it is enqueued.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "personad/job.hpp"

namespace personad {

struct BatchError {
  std::string file;
  int line = 0;       // 0 when unknown
  std::string field;  // empty for file-level errors
  std::string message;
  std::string to_string() const;  // "FILE:LINE: field 'F': MESSAGE"
};

struct BatchEntry {
  PersonaSpec spec;
  int line = 0;
};

struct BatchParse {
  std::string file;
  std::vector<BatchEntry> entries;  // empty whenever errors is not empty
  std::vector<BatchError> errors;
  // batch_fingerprint of the very bytes parsed (load_batch_file; empty when the file could not
  // be read): what the daemon remembers once the file is enqueued whole. The bytes parsed, not
  // those of an earlier look: a file rewritten between the two is remembered as what it became.
  std::string fingerprint;
  // How many parts were parsed side by side to give this answer (parse_batch_in_parts): 1 when
  // the text was parsed whole.
  int parts = 1;
  bool ok() const { return errors.empty(); }
};

// ---------------------------------------------------------------------------------------------
// Where local videos may be read from. The daemon reads (and uploads) them with its own
// rights, so a video is checked where it really is: its real path (every symlink resolved)
// must be a regular file with a video extension (.mp4, .m4v, .mov, .qt) inside an allowed
// directory tree, and the spec keeps that real path, so the upload reads what was checked.
//
// `batches.media_root` (config) lists the allowed trees. Without it, a batch file may name
// videos inside its own directory tree only, and a spec over the control socket may name no
// local video at all.

// The configured batches.media_root of this process (the daemon sets it at start); used by
// the overloads below that take no roots.
void set_media_roots(std::vector<std::filesystem::path> roots);
std::vector<std::filesystem::path> media_roots();

// Parses batch TOML text. `file` names it in errors; relative local video paths resolve
// against its directory and are checked as above: inside `roots`, or, when `roots` is empty,
// inside the batch file's own directory tree. The overloads without roots use media_roots().
BatchParse parse_batch(std::string_view text, const std::string& file);
BatchParse parse_batch(std::string_view text, const std::string& file,
                       const std::vector<std::filesystem::path>& roots);
// parse_batch of a big text (1 MiB and more) cuts it at [[persona]] header lines into one part
// per core (up to 4) and parses and checks the parts side by side: the same entries, with the
// same lines, as the whole. A text with any error is parsed whole again, so its errors are the
// whole parse's too. `parts` 1 parses it whole.
BatchParse parse_batch_in_parts(std::string_view text, const std::string& file,
                                const std::vector<std::filesystem::path>& roots, int parts);
// Reads the file (at most 64 MiB: a larger one is refused before it is read) and parses it;
// sets the parse's fingerprint. Never throws: running out of memory is an error of that file.
BatchParse load_batch_file(const std::filesystem::path& path);
BatchParse load_batch_file(const std::filesystem::path& path,
                           const std::vector<std::filesystem::path>& roots);

// *.toml entries of a directory, sorted by name. A missing directory is an empty list.
// Entries that are not regular files (a FIFO, a device, a dangling symlink) are listed too, so
// that reading them reports them by name (load_batch_file never opens them); directories and
// hidden or editor files are not.
std::vector<std::filesystem::path> list_batch_files(const std::filesystem::path& directory);

// Field checks of one spec. Returns (field, message) pairs; empty when valid. Local video
// paths must already be absolute and real (no symlink, "." or ".."), as parse_batch leaves
// them and personactl sends them.
struct FieldError {
  std::string field;
  std::string message;
};
// Where local videos may lie, and how errors name that rule.
struct MediaPolicy {
  std::vector<std::filesystem::path> roots;  // empty: no local video is allowed
  std::string origin;  // "batches.media_root" or "the batch file's directory tree"
};
std::vector<FieldError> validate_spec(const PersonaSpec& spec, const MediaPolicy& media);
// A spec that arrived over the control socket: local videos only inside media_roots().
std::vector<FieldError> validate_spec(const PersonaSpec& spec);

// Empty when `key` is a valid job key ([A-Za-z0-9._-]{1,128}), else what is wrong with it
// (printable: an invalid byte is shown escaped). For every path that stores or prints keys.
std::string key_problem(std::string_view key);

}  // namespace personad
