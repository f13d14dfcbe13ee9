// personactl watch's screen (see watch_screen.hpp), with ncurses.
#include "personad/watch_screen.hpp"

#include <curses.h>

#include <cstdio>
#include <vector>

namespace personad {

namespace {

// "title  a 1  b 2", continued on indented lines where the terminal is too narrow.
std::vector<std::string> wrap_items(const std::string& title, const std::vector<std::string>& items,
                                    std::size_t width) {
  std::vector<std::string> lines{title};
  for (const auto& item : items) {
    if (lines.back().size() + 2 + item.size() > width && lines.back().size() > 4)
      lines.push_back("   ");
    lines.back() += "  " + item;
  }
  return lines;
}

}  // namespace

WatchScreen::~WatchScreen() { close(); }

bool WatchScreen::open() {
  if (open_) return true;
  // newterm rather than initscr: a terminal it cannot drive is an answer, not an exit.
  if (newterm(nullptr, stdout, stdin) == nullptr) return false;
  open_ = true;
  cbreak();  // not raw: Ctrl-C still sends SIGINT
  noecho();
  curs_set(0);
  return true;
}

void WatchScreen::close() {
  if (!open_) return;
  curs_set(1);
  endwin();
  open_ = false;
}

void WatchScreen::draw(const Campaign& c, const std::string& title, const std::string& status) {
  if (!open_) return;
  erase();
  const int width = COLS > 20 ? COLS : 20;
  int row = 0;
  mvaddnstr(row++, 0, title.c_str(), width);
  const std::size_t bar = static_cast<std::size_t>(width > 40 ? width - 20 : 20);
  const std::string progress = progress_bar(c.final_count(), c.total(), bar) + " final";
  mvaddnstr(row++, 0, progress.c_str(), width);
  ++row;
  std::vector<std::string> states;
  for (const auto& [s, n] : c.counts()) states.push_back(std::string(to_string(s)) + ' ' + std::to_string(n));
  for (const auto& line : wrap_items("states:", states, static_cast<std::size_t>(width)))
    mvaddnstr(row++, 0, line.c_str(), width);
  std::vector<std::string> stages;
  for (const auto& [s, n] : c.stages()) stages.push_back(s + ' ' + std::to_string(n));
  for (const auto& line : wrap_items("remote stages:", stages, static_cast<std::size_t>(width)))
    mvaddnstr(row++, 0, line.c_str(), width);
  if (const std::string eta = c.eta(); !eta.empty()) {
    const std::string line = "ETA: " + eta;
    mvaddnstr(row++, 0, line.c_str(), width);
  }
  if (!status.empty()) mvaddnstr(row++, 0, status.c_str(), width);
  ++row;
  mvaddnstr(row++, 0, "latest transitions:", width);
  const auto& latest = c.latest();
  const int room = LINES - row;
  if (room > 0) {
    const std::size_t n = std::min<std::size_t>(latest.size(), static_cast<std::size_t>(room));
    for (std::size_t i = latest.size() - n; i < latest.size(); ++i)
      mvaddnstr(row++, 0, latest[i].c_str(), width);
  }
  refresh();
}

}  // namespace personad
