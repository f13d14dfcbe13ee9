// Small helpers shared by the benchmark programs: timing, memory figures from /proc, latency
// percentiles, a plain-text table, scratch directories and realistic persona specs.
#pragma once

#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "personad/job.hpp"

namespace bench {

using Seconds = std::chrono::duration<double>;

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const { return Seconds(std::chrono::steady_clock::now() - start_).count(); }
  double micros() const { return seconds() * 1e6; }

 private:
  std::chrono::steady_clock::time_point start_;
};

// printf into a std::string: the figures are formatted once, then laid out by Table.
inline std::string strf(const char* format, ...) __attribute__((format(printf, 1, 2)));
inline std::string strf(const char* format, ...) {
  char buf[256];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buf, sizeof buf, format, args);
  va_end(args);
  return buf;
}

// 1234567 → "1,234,567": rates are easier to compare at a glance with separators.
inline std::string grouped(double value) {
  auto digits = std::to_string(static_cast<long long>(value + (value >= 0 ? 0.5 : -0.5)));
  std::string out;
  const std::size_t sign = digits[0] == '-' ? 1 : 0;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > sign && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// A field of /proc/self/status in KiB (VmRSS: resident now, VmHWM: peak resident), 0 if absent.
inline long proc_status_kib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, field.size() + 1, field + ":") == 0)
      return std::stol(line.substr(field.size() + 1));
  }
  return 0;
}
inline double rss_mib() { return proc_status_kib("VmRSS") / 1024.0; }
inline double peak_rss_mib() { return proc_status_kib("VmHWM") / 1024.0; }

// Resets VmHWM to the current RSS (Linux ≥ 4.0), so each run of a program that measures several
// sizes reports its own peak instead of the largest so far. False when the kernel refuses.
inline bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

// Latency samples in microseconds.
class Samples {
 public:
  void reserve(std::size_t n) { v_.reserve(n); }
  void add(double us) { v_.push_back(us); }
  std::size_t size() const { return v_.size(); }
  double percentile(double p) {
    if (v_.empty()) return 0;
    std::sort(v_.begin(), v_.end());
    auto i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v_.size() - 1) + 0.5);
    return v_[std::min(i, v_.size() - 1)];
  }
  double mean() const {
    double sum = 0;
    for (double x : v_) sum += x;
    return v_.empty() ? 0 : sum / static_cast<double>(v_.size());
  }

 private:
  std::vector<double> v_;
};

// Columns sized to their widest cell; the first column left-aligned, the figures right-aligned.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print() const {
    std::vector<std::size_t> width;
    for (const auto& row : rows_)
      for (std::size_t c = 0; c < row.size(); ++c) {
        if (width.size() <= c) width.push_back(0);
        width[c] = std::max(width[c], display_width(row[c]));
      }
    for (std::size_t r = 0; r < rows_.size(); ++r) {
      std::string line;
      for (std::size_t c = 0; c < rows_[r].size(); ++c) {
        const std::string& cell = rows_[r][c];
        std::string pad(width[c] - display_width(cell), ' ');
        line += c == 0 ? cell + pad : "  " + pad + cell;
      }
      std::printf("%s\n", line.c_str());
      if (r == 0) {
        std::size_t total = 0;
        for (auto w : width) total += w + 2;
        std::printf("%s\n", std::string(total - 2, '-').c_str());
      }
    }
    std::fflush(stdout);
  }

 private:
  // UTF-8 aware enough for "µs" and "→": counts code points, not bytes.
  static std::size_t display_width(const std::string& s) {
    std::size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
  }
  std::vector<std::vector<std::string>> rows_;
};

// Filesystem type of a directory: fsync costs nothing on tmpfs, so a durability figure is only
// meaningful next to the filesystem it was measured on.
inline std::string filesystem_name(const std::filesystem::path& dir) {
  struct statfs s {};
  if (::statfs(dir.c_str(), &s) != 0) return "unknown";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53: return "ext4";
    case 0x01021994: return "tmpfs";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x794C7630: return "overlayfs";
    case 0x2FC12FC1: return "zfs";
    default: return strf("fs 0x%lx", static_cast<unsigned long>(s.f_type));
  }
}

// A fresh directory under `base`, removed when the object goes away (kept with BENCH_KEEP=1,
// to read a daemon's log after a failed run).
class ScratchDir {
 public:
  explicit ScratchDir(const std::filesystem::path& base, const std::string& tag) {
    path_ = base / ("personad-" + tag + "-" + std::to_string(::getpid()) + "-" +
                    std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    if (const char* keep = std::getenv("BENCH_KEEP"); keep && *keep && *keep != '0') {
      std::fprintf(stderr, "kept %s (BENCH_KEEP)\n", path_.c_str());
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Bytes of a SQLite database on disk: the main file plus its WAL (committed rows may still
// live only in the WAL until a checkpoint).
inline std::uintmax_t database_bytes(const std::filesystem::path& db) {
  std::uintmax_t total = 0;
  for (const char* suffix : {"", "-wal"}) {
    std::error_code ec;
    auto n = std::filesystem::file_size(db.string() + suffix, ec);
    if (!ec) total += n;
  }
  return total;
}

// A spec the size of a real one: URL videos, a label, a few keywords.
inline personad::PersonaSpec make_spec(std::size_t i) {
  personad::PersonaSpec s;
  s.key = strf("bench-%07zu", i);
  s.gender = i % 2 ? "f" : "m";
  s.creator_name = strf("Creator Number %zu", i);
  s.video_scene = "office";
  s.keywords = "friendly, professional, calm";
  s.lipsync_input = "https://cdn.example.com/" + s.key + "/lipsync.mp4";
  s.consent_video = "https://cdn.example.com/" + s.key + "/consent.mp4";
  s.labels = {"acme", "bench"};
  return s;
}

inline std::vector<personad::PersonaSpec> make_specs(std::size_t n, std::size_t first = 0) {
  std::vector<personad::PersonaSpec> specs;
  specs.reserve(n);
  for (std::size_t i = 0; i < n; ++i) specs.push_back(make_spec(first + i));
  return specs;
}

inline void print_machine(const std::filesystem::path& dir) {
  std::printf("machine: %ld cores; scratch dir %s (%s)\n", ::sysconf(_SC_NPROCESSORS_ONLN),
              dir.c_str(), filesystem_name(dir).c_str());
}

}  // namespace bench
