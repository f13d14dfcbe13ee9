// The live screen of `personactl watch` on a terminal, drawn with ncurses: a progress bar
// (final / total), counts per state and per remote stage, the selection's ETA when the jobs
// carry one, and the latest transitions. The terminal is restored by close() (and on
// destruction).
#pragma once

#include <string>

#include "personad/follow.hpp"

namespace personad {

class WatchScreen {
 public:
  WatchScreen() = default;
  ~WatchScreen();
  WatchScreen(const WatchScreen&) = delete;
  WatchScreen& operator=(const WatchScreen&) = delete;

  // Takes the terminal (stdout); false when it cannot (no usable TERM).
  bool open();
  void draw(const Campaign& c, const std::string& title, const std::string& status);
  void close();

 private:
  bool open_ = false;
};

}  // namespace personad
