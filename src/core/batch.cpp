// Parses batch files of [[persona]] tables into validated PersonaSpecs, and checks single specs.
// A file with any error yields no entries; toml++ exceptions are caught here and never escape.
#include "personad/batch.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <system_error>

#include "personad/result.hpp"
#include "personad/toml_support.hpp"

namespace personad {

namespace fs = std::filesystem;
using toml_support::directory_of;
using toml_support::in_quotes;
using toml_support::line_of;
using toml_support::read_text_file;
using toml_support::type_name;

std::string BatchError::to_string() const {
  std::string text = file;
  if (line > 0) text += ":" + std::to_string(line);
  text += ": ";
  if (!field.empty()) text += "field '" + field + "': ";
  return text + message;
}

// ---------------------------------------------------------------------------------------------
// Field checks shared by batch files and the control socket

namespace {

// Documented API limits, checked at intake so a batch fails here rather than days later.
constexpr std::size_t kMaxTextChars = 255;  // creator_name, video_scene, keywords
constexpr std::size_t kMaxUrlChars = 200;   // webhook_url, URL-valued consent_video
constexpr std::size_t kMaxKeyChars = 128;
constexpr std::string_view kReservedLabelPrefix = "personad:";

using Errors = std::vector<FieldError>;

// The API counts characters, not bytes. Inputs are already valid UTF-8 (toml++ and Boost.JSON
// reject anything else), so counting lead bytes is enough.
std::size_t char_count(std::string_view s) {
  return static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; });
}

bool iequals_suffix(std::string_view s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  return std::equal(suffix.begin(), suffix.end(), s.end() - static_cast<long>(suffix.size()),
                    [](char a, char b) {
                      return std::tolower(static_cast<unsigned char>(a)) ==
                             std::tolower(static_cast<unsigned char>(b));
                    });
}

// "scheme://…" other than http(s): a URL we cannot fetch, not a file name.
bool has_foreign_scheme(std::string_view value) {
  const auto sep = value.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  if (!std::isalpha(static_cast<unsigned char>(value.front()))) return false;
  return std::all_of(value.begin(), value.begin() + static_cast<long>(sep), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '+' || c == '-' || c == '.';
  });
}

// Empty when `value` is an absolute http(s) URL with a host; else what is wrong with it.
std::string http_url_problem(std::string_view value) {
  const auto parsed = boost::urls::parse_uri(value);
  if (!parsed) return "is not a valid URL: " + in_quotes(value);
  const auto& url = *parsed;
  if (url.scheme_id() != boost::urls::scheme::http && url.scheme_id() != boost::urls::scheme::https)
    return "must be an http:// or https:// URL, got " + in_quotes(value);
  if (!url.has_authority() || url.encoded_host().empty())
    return "URL has no host: " + in_quotes(value);
  return {};
}

void check_required_text(std::string_view field, const std::string& value, Errors& out) {
  if (value.empty())
    out.push_back({std::string(field), "is required"});
  else if (is_blank(value))
    out.push_back({std::string(field), "must not be blank"});
}

void check_length(std::string_view field, const std::string& value, std::size_t max, Errors& out) {
  if (const auto n = char_count(value); n > max)
    out.push_back({std::string(field), "is " + std::to_string(n) +
                                           " characters long; the API allows at most " +
                                           std::to_string(max)});
}

void check_key(const std::string& key, Errors& out) {
  if (key.empty()) {
    out.push_back({"key", "is required"});
    return;
  }
  const bool allowed = std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '-';
  });
  if (!allowed)
    out.push_back(
        {"key", "may contain only letters, digits, '.', '_' and '-', got " + in_quotes(key)});
  else if (key.size() > kMaxKeyChars)
    out.push_back({"key", "is " + std::to_string(key.size()) + " characters long; at most " +
                              std::to_string(kMaxKeyChars) + " are allowed"});
}

void check_gender(const std::string& gender, Errors& out) {
  if (gender.empty())
    out.push_back({"gender", "is required"});
  else if (gender != "m" && gender != "f" && gender != "nb")
    out.push_back({"gender", "must be \"m\", \"f\" or \"nb\", got " + in_quotes(gender)});
}

void check_optional_url(std::string_view field, const std::string& value, std::size_t max,
                        Errors& out) {
  if (value.empty()) return;
  if (auto problem = http_url_problem(value); !problem.empty())
    out.push_back({std::string(field), problem});
  else if (max > 0)
    check_length(field, value, max, out);
}

// The daemon streams local videos from disk days after intake would be too late to find out
// they are missing, so existence, type and readability are checked now.
void check_local_file(std::string_view field, const std::string& value, Errors& out) {
  const std::string f(field);
  if (has_foreign_scheme(value)) {
    out.push_back(
        {f, "only http(s) URLs or local file paths are supported, got " + in_quotes(value)});
    return;
  }
  const fs::path path(value);
  if (!path.is_absolute()) {
    out.push_back({f, "local path must be absolute, got " + in_quotes(value)});
    return;
  }
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    out.push_back({f, "local file '" + value + "' does not exist"});
    return;
  }
  if (!fs::is_regular_file(status)) {
    out.push_back({f, "'" + value + "' is not a regular file"});
    return;
  }
  if (std::ifstream probe(path, std::ios::binary); !probe.is_open()) {
    out.push_back({f, "local file '" + value + "' is not readable: " + std::strerror(errno)});
    return;
  }
  // The API accepts video/mp4 and video/quicktime only.
  if (!iequals_suffix(value, ".mp4") && !iequals_suffix(value, ".mov"))
    out.push_back({f, "local file '" + value + "' must be a .mp4 or .mov video"});
}

void check_video(std::string_view field, const std::string& value, bool required,
                 std::size_t max_url, Errors& out) {
  if (value.empty()) {
    if (required) out.push_back({std::string(field), "is required"});
    return;
  }
  if (is_local_media(value))
    check_local_file(field, value, out);
  else
    check_optional_url(field, value, max_url, out);
}

void check_labels(const std::vector<std::string>& labels, Errors& out) {
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::string where = "element " + std::to_string(i + 1);
    if (labels[i].empty() || is_blank(labels[i]))
      out.push_back({"labels", where + " must not be empty"});
    else if (labels[i].starts_with(kReservedLabelPrefix))
      out.push_back({"labels", where + ": the prefix \"personad:\" is reserved for personad, got " +
                                   in_quotes(labels[i])});
  }
}

}  // namespace

std::vector<FieldError> validate_spec(const PersonaSpec& spec) {
  Errors out;
  check_key(spec.key, out);
  check_gender(spec.gender, out);
  check_required_text("creator_name", spec.creator_name, out);
  check_length("creator_name", spec.creator_name, kMaxTextChars, out);
  check_required_text("video_scene", spec.video_scene, out);
  check_length("video_scene", spec.video_scene, kMaxTextChars, out);
  check_length("keywords", spec.keywords, kMaxTextChars, out);
  check_video("lipsync_input", spec.lipsync_input, true, 0, out);
  check_video("consent_video", spec.consent_video, false, kMaxUrlChars, out);
  check_labels(spec.labels, out);
  check_optional_url("webhook_url", spec.webhook_url, kMaxUrlChars, out);
  check_optional_url("gdown_url", spec.gdown_url, 0, out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reading batch files

namespace {

constexpr std::string_view kKnownFields =
    "key, gender, creator_name, video_scene, keywords, lipsync_input, consent_video, labels, "
    "webhook_url, gdown_url";

// Turns a local media value into an absolute, normal path. `file:///abs` and `file:rel` are
// accepted besides plain paths; relative paths are anchored at the batch file's directory.
Result<std::string> resolve_local(std::string_view value, const fs::path& base_dir) {
  if (has_foreign_scheme(value) && !value.starts_with("file:"))
    return std::string(value);  // validate_spec rejects it with a clear message
  std::string_view path = value;
  if (path.starts_with("file:")) {
    path.remove_prefix(5);
    if (path.starts_with("//localhost/"))
      path.remove_prefix(11);
    else if (path.starts_with("///"))
      path.remove_prefix(2);
    else if (path.starts_with("//"))
      return make_error("file: URLs must be file:///absolute/path or file:relative/path, got \"" +
                        std::string(value) + "\"");
  }
  if (path.empty()) return make_error("\"" + std::string(value) + "\" names no file");
  fs::path p(path);
  if (p.is_relative()) p = base_dir / p;
  return p.lexically_normal().string();
}

class BatchReader {
 public:
  explicit BatchReader(std::string file) : file_(std::move(file)), base_dir_(directory_of(file_)) {}

  BatchParse read(const toml::table& root) {
    for (const auto& [name, node] : root) {
      if (name.str() == "persona")
        read_personas(name, node);
      else
        error(line_of(name.source()), "",
              "unknown top-level key '" + std::string(name.str()) +
                  "' (a batch file holds only [[persona]] tables)");
    }
    return finish();
  }

  BatchParse fail(int line, std::string message) {
    error(line, "", std::move(message));
    return finish();
  }

 private:
  void read_personas(const toml::key& name, const toml::node& node) {
    const auto* array = node.as_array();
    const bool all_tables =
        array != nullptr &&
        std::all_of(array->begin(), array->end(), [](const toml::node& n) { return n.is_table(); });
    if (!all_tables) {
      error(line_of(name.source()), "",
            "'persona' must be an array of tables: write [[persona]] before each entry");
      return;
    }
    for (const auto& element : *array) read_persona(*element.as_table());
  }

  void read_persona(const toml::table& table) {
    const int table_line = line_of(table.source());
    PersonaSpec spec;
    std::map<std::string, int> lines;  // field -> line, to place validate_spec's errors
    std::set<std::string> reported;    // fields already in error: no second message for them

    for (const auto& [key, node] : table) {
      const std::string field(key.str());
      lines[field] = line_of(key.source());
      if (!read_field(spec, field, node)) reported.insert(field);
    }
    resolve_media("lipsync_input", spec.lipsync_input, lines, reported);
    resolve_media("consent_video", spec.consent_video, lines, reported);

    for (auto& problem : validate_spec(spec)) {
      if (reported.contains(problem.field)) continue;
      const auto it = lines.find(problem.field);
      error(it != lines.end() ? it->second : table_line, problem.field, problem.message);
    }
    check_duplicate(spec.key, lines.contains("key") ? lines["key"] : table_line);
    entries_.push_back({std::move(spec), table_line});
  }

  // Stores one field; false after reporting an unknown field or a wrong type.
  bool read_field(PersonaSpec& spec, const std::string& field, const toml::node& node) {
    const int line = line_of(node.source());
    if (field == "labels") return read_labels(spec, node, line);
    const SpecTextField* text = find_spec_text_field(field);
    if (text == nullptr) {
      error(line, field, "unknown field (known: " + std::string(kKnownFields) + ")");
      return false;
    }
    const auto* s = node.as_string();
    if (s == nullptr) {
      error(line, field, "expected a string, got " + std::string(type_name(node)));
      return false;
    }
    spec.*(text->member) = s->get();
    return true;
  }

  bool read_labels(PersonaSpec& spec, const toml::node& node, int line) {
    const auto* array = node.as_array();
    if (array == nullptr) {
      error(line, "labels", "expected an array of strings, got " + std::string(type_name(node)));
      return false;
    }
    for (std::size_t i = 0; i < array->size(); ++i) {
      const auto* s = (*array)[i].as_string();
      if (s == nullptr) {
        error(line_of((*array)[i].source()), "labels",
              "element " + std::to_string(i + 1) + ": expected a string, got " +
                  std::string(type_name((*array)[i])));
        return false;
      }
      spec.labels.push_back(s->get());
    }
    return true;
  }

  void resolve_media(const std::string& field, std::string& value,
                     const std::map<std::string, int>& lines, std::set<std::string>& reported) {
    if (value.empty() || !is_local_media(value) || reported.contains(field)) return;
    auto resolved = resolve_local(value, base_dir_);
    if (resolved) {
      value = std::move(*resolved);
      return;
    }
    error(lines.at(field), field, resolved.message());
    reported.insert(field);
  }

  void check_duplicate(const std::string& key, int line) {
    if (key.empty()) return;
    const auto [it, inserted] = first_line_of_key_.emplace(key, line);
    if (!inserted)
      error(line, "key",
            "duplicate key '" + key + "' (first used at line " + std::to_string(it->second) + ")");
  }

  void error(int line, std::string field, std::string message) {
    errors_.push_back({file_, line, std::move(field), std::move(message)});
  }

  BatchParse finish() {
    BatchParse result;
    result.file = file_;
    // toml++ iterates tables by key name; operators read errors top to bottom.
    std::stable_sort(errors_.begin(), errors_.end(),
                     [](const BatchError& a, const BatchError& b) { return a.line < b.line; });
    result.errors = std::move(errors_);
    if (result.errors.empty()) result.entries = std::move(entries_);
    return result;
  }

  std::string file_;
  fs::path base_dir_;
  std::vector<BatchEntry> entries_;
  std::vector<BatchError> errors_;
  std::map<std::string, int> first_line_of_key_;
};

}  // namespace

BatchParse parse_batch(std::string_view text, const std::string& file) {
  BatchReader reader(file);
  try {
    const toml::table root = toml::parse(text, std::string_view(file));
    return reader.read(root);
  } catch (const toml::parse_error& e) {
    return reader.fail(line_of(e.source()), std::string(e.description()) + " (column " +
                                                std::to_string(e.source().begin.column) + ")");
  } catch (const std::exception& e) {
    return reader.fail(0, e.what());
  }
}

BatchParse load_batch_file(const fs::path& path) {
  auto text = read_text_file(path);
  if (!text) {
    BatchParse result;
    result.file = path.string();
    result.errors.push_back({path.string(), 0, "", "cannot read batch file: " + text.message()});
    return result;
  }
  return parse_batch(*text, path.string());
}

std::vector<fs::path> list_batch_files(const fs::path& directory) {
  std::vector<fs::path> files;
  std::error_code ec;
  fs::directory_iterator it(directory, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    // Hidden files and editor leftovers (.x.toml.swp, x.toml~) are never batches.
    if (name.starts_with('.') || name.ends_with('~') || !name.ends_with(".toml")) continue;
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;  // follows symlinks, as /etc configs often are
    files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace personad
