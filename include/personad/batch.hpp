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
  bool ok() const { return errors.empty(); }
};

// Parses batch TOML text. `file` names it in errors; relative local video paths resolve
// against its directory and are checked to exist and be readable.
BatchParse parse_batch(std::string_view text, const std::string& file);
BatchParse load_batch_file(const std::filesystem::path& path);

// *.toml files of a directory, sorted by name. A missing directory is an empty list.
std::vector<std::filesystem::path> list_batch_files(const std::filesystem::path& directory);

// Field checks of one spec (also used for specs that arrive over the control socket).
// Returns (field, message) pairs; empty when valid. Local video paths must already be absolute.
struct FieldError {
  std::string field;
  std::string message;
};
std::vector<FieldError> validate_spec(const PersonaSpec& spec);

}  // namespace personad
