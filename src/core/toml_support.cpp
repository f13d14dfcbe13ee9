// Shared helpers of the TOML readers (see toml_support.hpp).
#include "personad/toml_support.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace personad::toml_support {

namespace fs = std::filesystem;

namespace {

// Closes a descriptor when the scope ends.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string too_large(std::uintmax_t size, std::uintmax_t max_bytes) {
  return "is " + format_size(size) + " (" + std::to_string(size) + " bytes); at most " +
         format_size(max_bytes) + " is allowed";
}

}  // namespace

std::string format_size(std::uintmax_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return std::to_string(bytes) + " bytes";
  double v = static_cast<double>(bytes) / 1024;
  std::size_t unit = 0;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  char text[32];
  if (v == static_cast<double>(static_cast<std::uintmax_t>(v)))
    std::snprintf(text, sizeof text, "%.0f %s", v, kUnits[unit]);
  else
    std::snprintf(text, sizeof text, "%.1f %s", v, kUnits[unit]);
  return text;
}

std::string_view file_type_name(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFIFO: return "a FIFO";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFDIR: return "a directory";
    case S_IFSOCK: return "a socket";
    case S_IFLNK: return "a symbolic link";
    case S_IFREG: return "a regular file";
  }
  return "not a regular file";
}

Result<std::string> read_text_file(const fs::path& path, std::uintmax_t max_bytes) {
  // stat first: opening a FIFO would block until a writer comes, and opening a device may act.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return make_error(ErrorKind::io, std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    return make_error(ErrorKind::invalid,
                      "not a regular file (it is " + std::string(file_type_name(st.st_mode)) + ")");
  if (static_cast<std::uintmax_t>(st.st_size) > max_bytes)
    return make_error(ErrorKind::invalid,
                      too_large(static_cast<std::uintmax_t>(st.st_size), max_bytes));
  // O_NONBLOCK: should the name have been replaced by a FIFO since the stat, open returns.
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)};
  if (f.fd < 0) return make_error(ErrorKind::io, std::strerror(errno));
  if (::fstat(f.fd, &st) != 0) return make_error(ErrorKind::io, std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    return make_error(ErrorKind::invalid,
                      "not a regular file (it is " + std::string(file_type_name(st.st_mode)) + ")");
  const auto expected = static_cast<std::uintmax_t>(st.st_size);
  if (expected > max_bytes) return make_error(ErrorKind::invalid, too_large(expected, max_bytes));

  std::string text;
  // One byte more than announced, so a file that grew is noticed without a second pass.
  text.resize(static_cast<std::size_t>(expected) + 1);
  std::size_t have = 0;
  for (;;) {
    if (have == text.size()) {
      if (text.size() > max_bytes)
        return make_error(ErrorKind::invalid,
                          "grew while being read; at most " + format_size(max_bytes) +
                              " is allowed");
      text.resize(std::min<std::uintmax_t>(text.size() * 2, max_bytes + 1));
    }
    const ssize_t n = ::read(f.fd, text.data() + have, text.size() - have);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorKind::io, std::string("read error: ") + std::strerror(errno));
    }
    if (n == 0) break;
    have += static_cast<std::size_t>(n);
  }
  if (have > max_bytes) return make_error(ErrorKind::invalid, too_large(have, max_bytes));
  text.resize(have);
  return text;
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
