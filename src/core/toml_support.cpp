// Shared helpers of the TOML readers (see toml_support.hpp).
#include "personad/toml_support.hpp"

#include <toml++/toml.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace personad::toml_support {

namespace fs = std::filesystem;

Result<std::string> read_text_file(const fs::path& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec) return make_error(ec.message());
  if (!fs::is_regular_file(status)) return make_error("not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return make_error("read error");
  return text.str();
}

std::string_view type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    case toml::node_type::array: return "array";
    case toml::node_type::table: return "table";
    case toml::node_type::none: break;
  }
  return "nothing";
}

int line_of(const toml::source_region& region) { return static_cast<int>(region.begin.line); }

fs::path directory_of(const std::string& file) {
  std::error_code ec;
  fs::path abs = fs::absolute(fs::path(file), ec);
  if (ec) abs = fs::path(file);
  return abs.lexically_normal().parent_path();
}

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

}  // namespace personad::toml_support
