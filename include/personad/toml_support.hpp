// Helpers shared by the TOML readers (config and batch files): reading a file whole, naming a
// node's type and line for error messages, and anchoring relative paths at a file's directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include <toml++/toml.h>

#include "personad/result.hpp"

namespace personad::toml_support {

// Size limits of the files personad reads whole (documented in the README).
inline constexpr std::uintmax_t kMaxConfigBytes = std::uintmax_t{1} << 20;       // 1 MiB
inline constexpr std::uintmax_t kMaxBatchBytes = std::uintmax_t{64} << 20;       // 64 MiB
inline constexpr std::uintmax_t kMaxCredentialsBytes = std::uintmax_t{64} << 10;  // 64 KiB

// The whole file, or an error (without the path; callers name it). Refused before anything is
// read when it is not a regular file (a FIFO or a device is never opened: it could block or
// act) or larger than `max_bytes`; read to its end with every read checked, so it is never
// silently truncated. May throw std::bad_alloc (callers at the intake boundary catch it).
Result<std::string> read_text_file(const std::filesystem::path& path, std::uintmax_t max_bytes);
// "64 MiB", "1 MiB", "734.2 MiB", "3 GiB", "512 bytes".
std::string format_size(std::uintmax_t bytes);
// "a FIFO", "a character device", "a directory", … for st_mode of a file that is not regular.
std::string_view file_type_name(unsigned mode);
// "string", "integer", "float", "boolean", "date", "time", "date-time", "array", "table".
std::string_view type_name(const toml::node& node);
int line_of(const toml::source_region& region);
// The directory of `file` as an absolute, normal path.
std::filesystem::path directory_of(const std::string& file);
std::string in_quotes(std::string_view s);

}  // namespace personad::toml_support
