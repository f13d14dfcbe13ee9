// Single instance per database: an flock(2) on "<real path of the database>.lock", released by
// the kernel when the process dies (even by SIGKILL), so a crash never leaves a stuck lock.
#pragma once

#include <memory>
#include <string>

#include "personad/result.hpp"

namespace personad {

// The lock file of the database at `db_path`: its canonical path (every symlink, of the file or
// of a directory above it, resolved) plus ".lock", so that every path reaching the same
// database takes the same lock. The database file itself is never locked: closing any other
// descriptor of a SQLite file would drop SQLite's own POSIX locks.
// With `create_database`, a missing database file is created empty first (SQLite takes an empty
// file as a new database), so it has a real path; without, a missing database is not_found.
Result<std::string> database_lock_path(const std::string& db_path, bool create_database);

class InstanceLock {
 public:
  // Fails with a message naming the lock file and the holder's pid when another process holds it.
  static Result<std::unique_ptr<InstanceLock>> acquire(const std::string& lock_path);
  // acquire(database_lock_path(db_path, true)): what personad does at start.
  static Result<std::unique_ptr<InstanceLock>> acquire_for_database(const std::string& db_path);
  ~InstanceLock();
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;

 private:
  explicit InstanceLock(int fd) : fd_(fd) {}
  int fd_;
};

// Whether some process holds the lock now (for personactl's messages), without taking it.
bool instance_lock_held(const std::string& lock_path);
// The same for the database at `db_path` (resolved as database_lock_path does, never created):
// false when the database does not exist.
bool database_lock_held(const std::string& db_path);

}  // namespace personad
