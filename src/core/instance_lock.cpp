// flock-based single-instance lock (see instance_lock.hpp).
#include "personad/instance_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace personad {

namespace {
std::string read_pid(int fd) {
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  std::string s = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s.empty() ? "unknown" : s;
}
}  // namespace

Result<std::string> database_lock_path(const std::string& db_path, bool create_database) {
  namespace fs = std::filesystem;
  if (db_path.empty()) return make_error(ErrorKind::invalid, "store path is empty");
  if (create_database) {
    // O_EXCL: an existing database is never opened here, because closing any descriptor of a
    // file drops every POSIX lock this process holds on it (SQLite's included). The mode is
    // SQLite's own default for a new database, under the umask.
    int fd = ::open(db_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0)
      ::close(fd);
    else if (errno != EEXIST)
      return make_error(ErrorKind::io,
                        "cannot create database " + db_path + ": " + std::strerror(errno));
  }
  std::error_code ec;
  fs::path real = fs::canonical(db_path, ec);
  if (ec) {
    ErrorKind kind = ec == std::errc::no_such_file_or_directory ? ErrorKind::not_found
                                                                 : ErrorKind::io;
    return make_error(kind, "database " + db_path + ": " + ec.message());
  }
  return real.string() + ".lock";
}

Result<std::unique_ptr<InstanceLock>> InstanceLock::acquire_for_database(const std::string& db_path) {
  auto path = database_lock_path(db_path, true);
  if (!path) return path.error();
  return acquire(*path);
}

Result<std::unique_ptr<InstanceLock>> InstanceLock::acquire(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return make_error(ErrorKind::io, "lock file " + path + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    std::string holder = read_pid(fd);
    ::close(fd);
    if (err == EWOULDBLOCK)
      return make_error(ErrorKind::conflict, "another personad (pid " + holder + ") is already running on this " +
                        "database (lock " + path + " is held); refusing to start");
    return make_error(ErrorKind::io, "lock file " + path + ": " + std::strerror(err));
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The lock is what matters; the pid is only a courtesy for the message above.
  }
  return std::unique_ptr<InstanceLock>(new InstanceLock(fd));
}

InstanceLock::~InstanceLock() {
  if (fd_ >= 0) ::close(fd_);
}

bool instance_lock_held(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  return held;
}

bool database_lock_held(const std::string& db_path) {
  auto path = database_lock_path(db_path, false);
  return path && instance_lock_held(*path);
}

}  // namespace personad
