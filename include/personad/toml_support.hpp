// Helpers shared by the TOML readers (config and batch files): reading a file whole, naming a
// node's type and line for error messages, and anchoring relative paths at a file's directory.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include <toml++/toml.h>

#include "personad/result.hpp"

namespace personad::toml_support {

// The whole file; an error (without the path) when it is missing, not a regular file or unreadable.
Result<std::string> read_text_file(const std::filesystem::path& path);
// "string", "integer", "float", "boolean", "date", "time", "date-time", "array", "table".
std::string_view type_name(const toml::node& node);
int line_of(const toml::source_region& region);
// The directory of `file` as an absolute, normal path.
std::filesystem::path directory_of(const std::string& file);
std::string in_quotes(std::string_view s);

}  // namespace personad::toml_support
