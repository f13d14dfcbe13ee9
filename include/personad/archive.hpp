// `personactl archive --before T --to FILE`: finished jobs (final before T) with their history
// appended to FILE as JSON lines, then their rows dropped, their keys kept (never reused; `show
// KEY` says archived). All or nothing, and safe to run again: the lines are fsync'd before any
// row is dropped, so a crash in between loses nothing; a re-run skips the keys FILE already
// holds (no duplicate lines) and drops their rows; a line cut short by a crash is cut off.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "personad/clock.hpp"
#include "personad/result.hpp"
#include "personad/store.hpp"

namespace personad {

struct ArchiveOutcome {
  std::size_t selected = 0;  // final before T
  std::size_t written = 0;   // lines appended now
  std::size_t already = 0;   // in FILE from an earlier run
  std::size_t dropped = 0;   // rows dropped
};

struct ArchiveHooks {
  std::function<void()> after_sync;  // tests: a crash between the fsync and the drop
};

// One JSON line: {"archived_at", "job": job object, "history": [transition…]}.
Result<ArchiveOutcome> archive_jobs(Store& store, TimePoint before, const std::string& file,
                                    TimePoint now, const ArchiveHooks& hooks = {});

}  // namespace personad
