// Parses batch files of [[persona]] tables into validated PersonaSpecs, and checks single specs.
// A file with any error yields no entries; toml++ exceptions are caught here and never escape.
#include "personad/batch.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <sstream>
#include <system_error>
#include <thread>
#include <unordered_set>

#include "personad/batch_fingerprint.hpp"
#include "personad/result.hpp"
#include "personad/toml_support.hpp"
#include "personad/url.hpp"

namespace personad {

namespace fs = std::filesystem;
using toml_support::directory_of;
using toml_support::file_type_name;
using toml_support::format_size;
using toml_support::in_quotes;
using toml_support::kMaxBatchBytes;
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

// Empty when `value` is an absolute http(s) URL with a host; else what is wrong with it (the
// one URL parser, url.hpp).
std::string http_url_problem(std::string_view value) {
  auto url = parse_http_url(value);
  return url ? std::string() : url.message();
}

// Up to 60 characters of `s`, bytes outside printable ASCII as \xHH: safe in any message.
std::string printable(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < 60; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (s.size() > 60) out += "…";
  return out;
}

std::string hex_code_point(std::uint32_t cp) {
  char text[16];
  std::snprintf(text, sizeof text, "U+%04X", static_cast<unsigned>(cp));
  return text;
}

// Empty when `s` is valid UTF-8 without control characters (C0, DEL, C1); else what is wrong.
std::string text_problem(std::string_view s) {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < s.size(); ++chars) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::uint32_t cp = 0;
    std::size_t len = 0;
    if (c < 0x80) {
      cp = c;
      len = 1;
    } else if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1Fu;
      len = 2;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0Fu;
      len = 3;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07u;
      len = 4;
    }
    bool valid = len > 0 && i + len <= s.size();
    for (std::size_t k = 1; valid && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      valid = (cc & 0xC0) == 0x80;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    valid = valid && !(len == 2 && cp < 0x80) && !(len == 3 && cp < 0x800) &&
            !(len == 4 && cp < 0x10000) && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (!valid) return "is not valid UTF-8 (at byte " + std::to_string(i + 1) + ")";
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F))
      return "must not contain control characters (found " + hex_code_point(cp) +
             " at character " + std::to_string(chars + 1) + ")";
    i += len;
  }
  return {};
}

// Whether the real path `real` lies inside one of the real directories `roots`.
bool media_root_contains(const std::vector<fs::path>& roots, const fs::path& real) {
  return std::any_of(roots.begin(), roots.end(), [&](const fs::path& root) {
    auto r = root.begin();
    auto p = real.begin();
    for (; r != root.end() && p != real.end(); ++r, ++p) {
      if (r->empty()) continue;  // a trailing separator of the root
      if (*r != *p) return false;
    }
    return r == root.end() && p != real.end();
  });
}

// Each root made real; a root that does not exist (yet) keeps its normal form.
std::vector<fs::path> real_roots(const std::vector<fs::path>& roots) {
  std::vector<fs::path> out;
  for (const auto& root : roots) {
    std::error_code ec;
    fs::path real = fs::weakly_canonical(root, ec);
    out.push_back(ec ? root.lexically_normal() : real);
  }
  return out;
}

MediaPolicy socket_media_policy() {
  MediaPolicy policy;
  policy.roots = real_roots(media_roots());
  policy.origin = policy.roots.empty()
                      ? "local files over the control socket need batches.media_root in the "
                        "config file (none is set)"
                      : "batches.media_root";
  return policy;
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
  if (auto problem = key_problem(key); !problem.empty()) out.push_back({"key", std::move(problem)});
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

// The daemon streams local videos from disk, with its own rights, days after intake: what it
// will read is checked now, where it really is (every symlink resolved), so a `x.mp4` that
// points at /etc/shadow, a FIFO or a file outside the allowed trees is refused here.
// `written`: the name the operator wrote, made absolute, when `value` is already its real path
// (batch files); errors show both, so `x.mp4` reads as the link it is.
void check_local_file(std::string_view field, const std::string& value, std::string_view written,
                      const MediaPolicy& media, Errors& out) {
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
  const std::string name_given = written.empty() ? value : std::string(written);
  if (media.roots.empty()) {
    out.push_back({f, "local file '" + name_given + "' refused: " + media.origin});
    return;
  }
  std::error_code ec;
  const fs::path real = fs::canonical(path, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory)
      out.push_back({f, "local file '" + name_given + "' does not exist"});
    else
      out.push_back({f, "local file '" + name_given + "' cannot be resolved: " + ec.message()});
    return;
  }
  const std::string shown = real.string() == name_given
                                ? "'" + name_given + "'"
                                : "'" + name_given + "' (really '" + real.string() + "')";
  if (!media_root_contains(media.roots, real)) {
    std::string roots;
    for (const auto& r : media.roots) roots += (roots.empty() ? "" : ", ") + r.string();
    out.push_back({f, "local file " + shown + " is outside " + media.origin + " (" + roots + ")"});
    return;
  }
  if (real != path) {
    // A spec keeps the path that was checked; personactl and parse_batch send real paths.
    out.push_back({f, "local file '" + value + "' must be named by its real path '" +
                          real.string() + "' (no symlinks, '.' or '..')"});
    return;
  }
  struct stat st {};
  if (::stat(real.c_str(), &st) != 0) {
    out.push_back({f, "local file " + shown + " cannot be read: " + std::strerror(errno)});
    return;
  }
  if (!S_ISREG(st.st_mode)) {
    out.push_back({f, shown + " is not a regular file (it is " +
                          std::string(file_type_name(st.st_mode)) + ")"});
    return;
  }
  // The API accepts video/mp4 and video/quicktime only; the type comes from the real name.
  const std::string name = real.filename().string();
  if (!iequals_suffix(name, ".mp4") && !iequals_suffix(name, ".m4v") &&
      !iequals_suffix(name, ".mov") && !iequals_suffix(name, ".qt")) {
    out.push_back({f, "local file " + shown + " must be a video: .mp4, .m4v, .mov or .qt"});
    return;
  }
  // O_NONBLOCK and O_NOFOLLOW: should the name change since the stat, the open neither blocks
  // on a FIFO nor follows a new symlink; the fstat confirms what was opened.
  const int fd = ::open(real.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
  if (fd < 0) {
    out.push_back({f, "local file " + shown + " is not readable: " + std::strerror(errno)});
    return;
  }
  struct stat opened {};
  const bool same = ::fstat(fd, &opened) == 0 && S_ISREG(opened.st_mode) &&
                    opened.st_dev == st.st_dev && opened.st_ino == st.st_ino;
  ::close(fd);
  if (!same) out.push_back({f, "local file " + shown + " changed while it was checked"});
}

// Names as written of local videos whose spec value was replaced by the real path, by field.
using WrittenNames = std::map<std::string, std::string, std::less<>>;

void check_video(std::string_view field, const std::string& value, bool required,
                 std::size_t max_url, const MediaPolicy& media, const WrittenNames* written,
                 Errors& out) {
  if (value.empty()) {
    if (required) out.push_back({std::string(field), "is required"});
    return;
  }
  std::string_view as_written;
  if (written != nullptr)
    if (auto it = written->find(field); it != written->end()) as_written = it->second;
  if (is_local_media(value))
    check_local_file(field, value, as_written, media, out);
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

std::vector<FieldError> validate_spec_as_written(const PersonaSpec& spec, const MediaPolicy& media,
                                                 const WrittenNames* written) {
  Errors out;
  // Text that is not valid UTF-8 or holds control characters (a NUL cuts a path or a header
  // short, a line break forges a log line) is refused before any other check of its field.
  auto clean = [&](std::string_view field, const std::string& value) {
    if (auto problem = text_problem(value); !problem.empty()) {
      out.push_back({std::string(field), std::move(problem)});
      return false;
    }
    return true;
  };
  // A key is ASCII by contract: key_problem says what is wrong, with invalid bytes escaped.
  check_key(spec.key, out);
  if (clean("gender", spec.gender)) check_gender(spec.gender, out);
  if (clean("creator_name", spec.creator_name)) {
    check_required_text("creator_name", spec.creator_name, out);
    check_length("creator_name", spec.creator_name, kMaxTextChars, out);
  }
  if (clean("video_scene", spec.video_scene)) {
    check_required_text("video_scene", spec.video_scene, out);
    check_length("video_scene", spec.video_scene, kMaxTextChars, out);
  }
  if (clean("keywords", spec.keywords)) check_length("keywords", spec.keywords, kMaxTextChars, out);
  if (clean("lipsync_input", spec.lipsync_input))
    check_video("lipsync_input", spec.lipsync_input, true, 0, media, written, out);
  if (clean("consent_video", spec.consent_video))
    check_video("consent_video", spec.consent_video, false, kMaxUrlChars, media, written, out);
  bool labels_clean = true;
  for (std::size_t i = 0; i < spec.labels.size() && labels_clean; ++i)
    if (auto problem = text_problem(spec.labels[i]); !problem.empty()) {
      out.push_back({"labels", "element " + std::to_string(i + 1) + " " + problem});
      labels_clean = false;
    }
  if (labels_clean) check_labels(spec.labels, out);
  if (clean("webhook_url", spec.webhook_url))
    check_optional_url("webhook_url", spec.webhook_url, kMaxUrlChars, out);
  if (clean("gdown_url", spec.gdown_url)) check_optional_url("gdown_url", spec.gdown_url, 0, out);
  return out;
}

}  // namespace

std::vector<FieldError> validate_spec(const PersonaSpec& spec, const MediaPolicy& media) {
  return validate_spec_as_written(spec, media, nullptr);
}

std::vector<FieldError> validate_spec(const PersonaSpec& spec) {
  return validate_spec(spec, socket_media_policy());
}

// ---------------------------------------------------------------------------------------------
// Media roots

namespace {

std::mutex g_media_roots_mutex;
std::vector<fs::path> g_media_roots;  // as configured; made real when a policy is built

}  // namespace

void set_media_roots(std::vector<fs::path> roots) {
  std::lock_guard lock(g_media_roots_mutex);
  g_media_roots = std::move(roots);
}

std::vector<fs::path> media_roots() {
  std::lock_guard lock(g_media_roots_mutex);
  return g_media_roots;
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

// Configured roots when there are any, else the batch file's own directory tree.
MediaPolicy batch_media_policy(const fs::path& base_dir, const std::vector<fs::path>& roots) {
  MediaPolicy policy;
  if (!roots.empty()) {
    policy.roots = real_roots(roots);
    policy.origin = "batches.media_root";
  } else {
    policy.roots = real_roots({base_dir});
    policy.origin = "the batch file's directory tree (set batches.media_root to allow others)";
  }
  return policy;
}

class BatchReader {
 public:
  BatchReader(std::string file, const std::vector<fs::path>& roots)
      : file_(std::move(file)),
        base_dir_(directory_of(file_)),
        media_(batch_media_policy(base_dir_, roots)) {}

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

  // Whether a persona was written as an inline table (persona = [{ … }]), not after a
  // [[persona]] header: a later [[persona]] could not append to that array.
  bool inline_personas() const { return inline_personas_; }

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
    for (const auto& element : *array) {
      if (element.as_table()->is_inline()) inline_personas_ = true;
      read_persona(*element.as_table());
    }
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
    WrittenNames written;
    resolve_media("lipsync_input", spec.lipsync_input, lines, reported, written);
    resolve_media("consent_video", spec.consent_video, lines, reported, written);

    for (auto& problem : validate_spec_as_written(spec, media_, &written)) {
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
                     const std::map<std::string, int>& lines, std::set<std::string>& reported,
                     WrittenNames& written) {
    if (value.empty() || !is_local_media(value) || reported.contains(field)) return;
    // A NUL would cut the path short for the system calls below; validation refuses such text.
    if (!text_problem(value).empty()) return;
    auto resolved = resolve_local(value, base_dir_);
    if (resolved) {
      // The real path (symlinks resolved) is what is checked, kept and uploaded; one that does
      // not resolve stays as written and validation names the problem. Errors show the name
      // as written too.
      std::error_code ec;
      fs::path real = fs::canonical(*resolved, ec);
      if (!ec && real.string() != *resolved) written[field] = *resolved;
      value = ec ? std::move(*resolved) : real.string();
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
  MediaPolicy media_;
  std::vector<BatchEntry> entries_;
  std::vector<BatchError> errors_;
  std::map<std::string, int> first_line_of_key_;
  bool inline_personas_ = false;
};

// Built after the memory of the failed attempt was released; should even this fail, the
// process is out of memory as a whole, and the exception goes on.
BatchParse out_of_memory(const std::string& file, std::uintmax_t size) {
  BatchParse result;
  result.file = file;
  result.errors.push_back({file, 0, "",
                           "not enough memory to read and check this batch file (" +
                               format_size(size) +
                               "); split it into smaller files or raise the service's memory "
                               "limit"});
  return result;
}

// The text parsed and checked as one document. `inline_personas`, when given, tells whether a
// persona was an inline table. Throws std::bad_alloc only.
BatchParse parse_whole(std::string_view text, const std::string& file,
                       const std::vector<fs::path>& roots, bool* inline_personas = nullptr) {
  BatchReader reader(file, roots);
  try {
    const toml::table root = toml::parse(text, std::string_view(file));
    BatchParse parse = reader.read(root);
    if (inline_personas != nullptr) *inline_personas = reader.inline_personas();
    return parse;
  } catch (const toml::parse_error& e) {
    return reader.fail(line_of(e.source()), std::string(e.description()) + " (column " +
                                                std::to_string(e.source().begin.column) + ")");
  } catch (const std::bad_alloc&) {
    throw;  // the reader's own memory is released first (the caller's catch)
  } catch (const std::exception& e) {
    return reader.fail(0, e.what());
  }
}

// Whether the line at `at` is a [[persona]] header: spaces around it and a comment after it
// allowed, nothing else (a quoted or spaced-out name is simply no place to cut).
bool is_persona_header(std::string_view text, std::size_t at) {
  auto skip_blanks = [&](std::size_t i) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    return i;
  };
  std::size_t i = skip_blanks(at);
  constexpr std::string_view kHeader = "[[persona]]";
  if (text.substr(i, kHeader.size()) != kHeader) return false;
  i = skip_blanks(i + kHeader.size());
  return i == text.size() || text[i] == '\n' || text[i] == '\r' || text[i] == '#';
}

// Up to parts - 1 places to cut the text, each the start of a [[persona]] header line: the
// first such line from each even share of the text on; fewer when the headers run out.
std::vector<std::size_t> cut_points(std::string_view text, int parts) {
  std::vector<std::size_t> cuts;
  for (int k = 1; k < parts; ++k) {
    std::size_t at = text.size() * static_cast<std::size_t>(k) / static_cast<std::size_t>(parts);
    if (!cuts.empty()) at = std::max(at, cuts.back() + 1);
    // The start of the first line at or after `at`.
    std::size_t start = at == 0 ? 0 : text.find('\n', at - 1);
    if (start == std::string_view::npos) break;
    if (at != 0) ++start;
    while (start < text.size() && !(start > 0 && is_persona_header(text, start))) {
      const std::size_t end = text.find('\n', start);
      start = end == std::string_view::npos ? text.size() : end + 1;
    }
    if (start >= text.size()) break;
    cuts.push_back(start);
  }
  return cuts;
}

// The parts parsed side by side and joined, or nullopt when the whole must decide: a part
// with an error (a cut inside a multi-line string or array leaves a part that is no TOML, so
// it errs), a persona written inline before a cut (the whole file could not append to it), or
// a key in two parts. Then the errors, with their lines, are the whole parse's.
std::optional<BatchParse> parse_cut(std::string_view text, const std::string& file,
                                    const std::vector<fs::path>& roots,
                                    const std::vector<std::size_t>& cuts) {
  std::vector<std::string_view> pieces;
  std::vector<int> first_lines;  // of each piece in the whole text, from 1
  std::size_t from = 0;
  int line = 1;
  for (std::size_t i = 0; i <= cuts.size(); ++i) {
    const std::size_t to = i < cuts.size() ? cuts[i] : text.size();
    pieces.push_back(text.substr(from, to - from));
    first_lines.push_back(line);
    line += static_cast<int>(std::count(text.begin() + static_cast<std::ptrdiff_t>(from),
                                        text.begin() + static_cast<std::ptrdiff_t>(to), '\n'));
    from = to;
  }
  struct Part {
    BatchParse parse;
    bool inline_personas = false;
  };
  auto parse_part = [&](std::size_t i) {
    Part p;
    p.parse = parse_whole(pieces[i], file, roots, &p.inline_personas);
    return p;
  };
  std::vector<std::future<Part>> others;
  for (std::size_t i = 1; i < pieces.size(); ++i)
    others.push_back(std::async(std::launch::async, parse_part, i));
  std::vector<Part> parts;
  parts.push_back(parse_part(0));
  for (auto& f : others) parts.push_back(f.get());  // rethrows a part's bad_alloc

  std::size_t total = 0;
  for (const auto& p : parts) total += p.parse.entries.size();
  std::unordered_set<std::string_view> keys;
  keys.reserve(total);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    // Every part after a cut begins with its own [[persona]] header: only an inline persona
    // before the last cut could have made the whole file an error.
    if (!parts[i].parse.ok() || (parts[i].inline_personas && i + 1 < parts.size()))
      return std::nullopt;
    for (const auto& e : parts[i].parse.entries)
      if (!keys.insert(e.spec.key).second) return std::nullopt;
  }
  BatchParse joined;
  joined.file = file;
  joined.parts = static_cast<int>(parts.size());
  joined.entries.reserve(total);
  for (std::size_t i = 0; i < parts.size(); ++i)
    for (auto& e : parts[i].parse.entries) {
      e.line += first_lines[i] - 1;
      joined.entries.push_back(std::move(e));
    }
  return joined;
}

}  // namespace

BatchParse parse_batch_in_parts(std::string_view text, const std::string& file,
                                const std::vector<fs::path>& roots, int parts) {
  try {
    if (parts > 1) {
      const auto cuts = cut_points(text, parts);
      if (!cuts.empty())
        if (auto joined = parse_cut(text, file, roots, cuts)) return std::move(*joined);
    }
    return parse_whole(text, file, roots);
  } catch (const std::bad_alloc&) {
    return out_of_memory(file, text.size());
  }
}

BatchParse parse_batch(std::string_view text, const std::string& file,
                       const std::vector<fs::path>& roots) {
  constexpr std::size_t kBytesPerPart = 1 << 20;  // smaller texts parse in milliseconds
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int parts = static_cast<int>(std::min<std::size_t>(
      {static_cast<std::size_t>(std::min(cores, 4)), text.size() / kBytesPerPart + 1}));
  return parse_batch_in_parts(text, file, roots, parts);
}

BatchParse parse_batch(std::string_view text, const std::string& file) {
  return parse_batch(text, file, media_roots());
}

BatchParse load_batch_file(const fs::path& path, const std::vector<fs::path>& roots) {
  std::uintmax_t size = 0;
  try {
    auto text = read_text_file(path, kMaxBatchBytes);
    if (!text) {
      BatchParse result;
      result.file = path.string();
      result.errors.push_back(
          {path.string(), 0, "", "cannot read batch file: " + text.message()});
      return result;
    }
    size = text->size();
    BatchParse result = parse_batch(*text, path.string(), roots);
    if (auto print = batch_fingerprint_of(*text)) result.fingerprint = std::move(*print);
    return result;
  } catch (const std::bad_alloc&) {
    return out_of_memory(path.string(), size);
  }
}

BatchParse load_batch_file(const fs::path& path) { return load_batch_file(path, media_roots()); }

std::vector<fs::path> list_batch_files(const fs::path& directory) {
  std::vector<fs::path> files;
  std::error_code ec;
  fs::directory_iterator it(directory, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    // Hidden files and editor leftovers (.x.toml.swp, x.toml~) are never batches.
    if (name.starts_with('.') || name.ends_with('~') || !name.ends_with(".toml")) continue;
    // Follows symlinks, as /etc configs often are. Anything but a directory is listed: a
    // FIFO, a device or a dangling link is then reported by name when read (and never opened).
    std::error_code type_ec;
    if (it->is_directory(type_ec)) continue;
    files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string key_problem(std::string_view key) {
  if (key.empty()) return "is required";
  const bool allowed = std::all_of(key.begin(), key.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') ||
           c == '.' || c == '_' || c == '-';
  });
  if (!allowed)
    return "may contain only letters, digits, '.', '_' and '-', got \"" + printable(key) + "\"";
  if (key.size() > kMaxKeyChars)
    return "is " + std::to_string(key.size()) + " characters long; at most " +
           std::to_string(kMaxKeyChars) + " are allowed";
  return {};
}

}  // namespace personad
