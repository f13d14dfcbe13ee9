// Helpers for the benchmarks that drive real processes (personad, creatify-sim, wrk, personactl):
// spawning children, reading their CPU time, memory and context switches from /proc, a blocking
// HTTP/1.1 client over TCP or a Unix socket, and a fake NOTIFY_SOCKET that timestamps what the
// daemon sends. Figures are taken from outside, as an operator (or systemd) would see them.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.hpp"

namespace bench {

using steady = std::chrono::steady_clock;

inline double since(steady::time_point t) { return Seconds(steady::now() - t).count(); }

// ---- Child processes ------------------------------------------------------------------------

// A child process; killed (SIGKILL) with us if we die (PR_SET_PDEATHSIG), terminated and reaped
// when the object goes away. stdout and stderr go to `log` (or /dev/null).
class Child {
 public:
  Child() = default;
  Child(const std::vector<std::string>& args, const std::vector<std::string>& env_extra,
        const std::string& log = "/dev/null") {
    start_ = steady::now();
    pid_ = ::fork();
    if (pid_ < 0) {
      std::perror("bench: fork");
      std::exit(1);
    }
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (out >= 0) {
        ::dup2(out, STDOUT_FILENO);
        ::dup2(out, STDERR_FILENO);
      }
      int in = ::open("/dev/null", O_RDONLY);
      if (in >= 0) ::dup2(in, STDIN_FILENO);
      for (const auto& e : env_extra) ::putenv(const_cast<char*>(e.c_str()));
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(args[0].c_str(), argv.data());
      std::fprintf(stderr, "bench: exec %s: %s\n", args[0].c_str(), std::strerror(errno));
      ::_exit(127);
    }
  }
  ~Child() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  Child(Child&& o) noexcept { *this = std::move(o); }
  Child& operator=(Child&& o) noexcept {
    std::swap(pid_, o.pid_);
    std::swap(exited_, o.exited_);
    std::swap(status_, o.status_);
    std::swap(usage_, o.usage_);
    std::swap(start_, o.start_);
    return *this;
  }
  pid_t pid() const { return pid_; }
  steady::time_point started() const { return start_; }
  bool running() {
    if (pid_ <= 0 || exited_) return false;
    int st = 0;
    rusage ru{};
    pid_t r = ::wait4(pid_, &st, WNOHANG, &ru);
    if (r == pid_) {
      exited_ = true;
      status_ = st;
      usage_ = ru;
    }
    return !exited_;
  }
  // Waits for the exit; false if it did not come within `timeout`.
  bool wait(std::chrono::milliseconds timeout = std::chrono::hours(24)) {
    const auto end = steady::now() + timeout;
    while (running()) {
      if (steady::now() >= end) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }
  // SIGTERM, then SIGKILL after `grace`. True if it exited on the SIGTERM.
  bool stop(std::chrono::milliseconds grace = std::chrono::seconds(30)) {
    if (!running()) return true;
    ::kill(pid_, SIGTERM);
    if (wait(grace)) return true;
    ::kill(pid_, SIGKILL);
    wait();
    return false;
  }
  int exit_status() const { return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_); }
  // CPU time of the whole run, from wait4 (after the exit).
  double cpu_seconds() const {
    return static_cast<double>(usage_.ru_utime.tv_sec + usage_.ru_stime.tv_sec) +
           static_cast<double>(usage_.ru_utime.tv_usec + usage_.ru_stime.tv_usec) / 1e6;
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
  rusage usage_{};
  steady::time_point start_{};
};

// ---- /proc figures of another process -------------------------------------------------------

// utime + stime of every thread of `pid` (/proc/PID/stat fields 14 and 15), in seconds; the
// kernel counts in clock ticks (10 ms at USER_HZ=100), so windows should last seconds.
inline double proc_cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = all.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return 0;
  std::istringstream rest(all.substr(close + 2));
  std::string field;
  unsigned long utime = 0, stime = 0;
  // After the name: state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
  // utime(14) stime(15).
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoul(field);
    if (i == 15) stime = std::stoul(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// A field of /proc/PID/status in KiB (VmRSS, VmHWM) or as a count; -1 if absent.
inline long proc_status_field(const std::string& status_path, const std::string& field) {
  std::ifstream in(status_path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, field.size() + 1, field + ":") == 0)
      return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}
inline double proc_rss_mib(pid_t pid) {
  return static_cast<double>(proc_status_field("/proc/" + std::to_string(pid) + "/status", "VmRSS")) / 1024.0;
}
inline double proc_peak_rss_mib(pid_t pid) {
  return static_cast<double>(proc_status_field("/proc/" + std::to_string(pid) + "/status", "VmHWM")) / 1024.0;
}

// How long one thread ran on a core and waited on a run queue (ready, no core free), in ms
// since it began (/proc/PID/task/TID/schedstat: run ns, wait ns, time slices); -1 unreadable.
struct SchedTimes {
  double ran_ms = -1, waited_ms = -1;
};
inline SchedTimes thread_sched_times(pid_t pid, pid_t tid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/schedstat");
  unsigned long long run = 0, wait = 0;
  if (!(in >> run >> wait)) return {};
  return {static_cast<double>(run) / 1e6, static_cast<double>(wait) / 1e6};
}

// Context switches of every thread of a process, by thread name. /proc/PID/status counts the
// main thread only; each thread wakes on its own (the store thread, the parsing pool).
struct Switches {
  long voluntary = 0, involuntary = 0;
  std::map<std::string, long> by_thread;  // "name/tid" → voluntary + involuntary
  long total() const { return voluntary + involuntary; }
};
inline Switches proc_switches(pid_t pid) {
  Switches s;
  std::error_code ec;
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& t : std::filesystem::directory_iterator(tasks, ec)) {
    const std::string status = (t.path() / "status").string();
    long v = proc_status_field(status, "voluntary_ctxt_switches");
    long n = proc_status_field(status, "nonvoluntary_ctxt_switches");
    if (v < 0 || n < 0) continue;
    std::ifstream comm(t.path() / "comm");
    std::string name;
    std::getline(comm, name);
    s.voluntary += v;
    s.involuntary += n;
    s.by_thread[name + "/" + t.path().filename().string()] = v + n;
  }
  return s;
}

// ---- A blocking HTTP/1.1 client (keep-alive) ------------------------------------------------

struct HttpAnswer {
  int status = 0;  // 0: no answer (connect or I/O failure)
  std::string body;
};

// One connection to a Unix socket path or to 127.0.0.1:port, kept alive between requests and
// opened again when the server closed it. Enough for Beast servers that answer with a
// Content-Length (personad's control socket, creatify-sim).
class HttpConn {
 public:
  static HttpConn unix_socket(std::string path) {
    HttpConn c;
    c.path_ = std::move(path);
    return c;
  }
  static HttpConn tcp(int port) {
    HttpConn c;
    c.port_ = port;
    return c;
  }
  HttpConn(HttpConn&& o) noexcept { *this = std::move(o); }
  HttpConn& operator=(HttpConn&& o) noexcept {
    std::swap(fd_, o.fd_);
    path_ = o.path_;
    port_ = o.port_;
    headers_ = o.headers_;
    return *this;
  }
  ~HttpConn() { close(); }
  void add_header(const std::string& line) { headers_ += line + "\r\n"; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  HttpAnswer request(const std::string& method, const std::string& target,
                     const std::string& body = "",
                     const std::string& content_type = "application/json") {
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool fresh = fd_ < 0;
      if (fresh && !connect()) return {};
      std::string req = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n" + headers_;
      if (!body.empty() || method == "POST")
        req += "Content-Type: " + content_type + "\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n";
      req += "\r\n" + body;
      HttpAnswer a;
      if (write_all(req) && read_answer(a)) return a;
      close();
      if (fresh) return {};  // a new connection failed: no point trying again
    }
    return {};
  }

 private:
  HttpConn() = default;
  bool connect() {
    if (!path_.empty()) {
      fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
      if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return close(), false;
    } else {
      fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<std::uint16_t>(port_));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return close(), false;
    }
    return true;
  }
  bool write_all(const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  }
  bool read_answer(HttpAnswer& a) {
    std::string buf;
    char chunk[65536];
    std::size_t header_end = std::string::npos;
    while ((header_end = buf.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buf.append(chunk, static_cast<std::size_t>(n));
    }
    const std::string head = buf.substr(0, header_end);
    if (head.size() < 12) return false;
    a.status = std::atoi(head.c_str() + 9);
    std::size_t length = 0;
    bool keep_alive = true;
    std::istringstream lines(head);
    for (std::string line; std::getline(lines, line);) {
      std::string lower = line;
      for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (lower.rfind("content-length:", 0) == 0) length = std::stoul(lower.substr(15));
      if (lower.rfind("connection:", 0) == 0 && lower.find("close") != std::string::npos)
        keep_alive = false;
    }
    a.body = buf.substr(header_end + 4);
    while (a.body.size() < length) {
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      a.body.append(chunk, static_cast<std::size_t>(n));
    }
    if (!keep_alive) close();
    return true;
  }

  int fd_ = -1;
  std::string path_;
  int port_ = 0;
  std::string headers_;
};

// The integer after "name": in a flat JSON text; -1 if absent. Enough for the stats objects.
inline long long json_int(const std::string& body, const std::string& name) {
  auto at = body.find("\"" + name + "\":");
  if (at == std::string::npos) return -1;
  return std::atoll(body.c_str() + at + name.size() + 3);
}

// ---- A fake NOTIFY_SOCKET -------------------------------------------------------------------

// A datagram socket the child is pointed at with NOTIFY_SOCKET=path: every message is kept with
// the time it arrived, read by a thread of its own (so a slow benchmark never blocks the daemon
// on a full queue).
class NotifyListener {
 public:
  struct Message {
    steady::time_point at;
    std::string text;
  };
  explicit NotifyListener(std::filesystem::path path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
    std::filesystem::remove(path_);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      std::perror("bench: bind NOTIFY_SOCKET");
      std::exit(1);
    }
    int big = 4 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    reader_ = std::thread([this] { read_loop(); });
  }
  ~NotifyListener() {
    stop_ = true;
    reader_.join();
    ::close(fd_);
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  std::string env() const { return "NOTIFY_SOCKET=" + path_.string(); }
  void clear() {
    std::lock_guard<std::mutex> l(mu_);
    messages_.clear();
  }
  std::vector<Message> messages() {
    std::lock_guard<std::mutex> l(mu_);
    return messages_;
  }
  // The arrival of the first message containing `text`, waiting up to `timeout`.
  std::optional<steady::time_point> wait_for(const std::string& text, std::chrono::milliseconds timeout,
                                             const std::function<bool()>& still_ok = [] { return true; }) {
    const auto end = steady::now() + timeout;
    while (steady::now() < end && still_ok()) {
      {
        std::lock_guard<std::mutex> l(mu_);
        for (const auto& m : messages_)
          if (m.text.find(text) != std::string::npos) return m.at;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return std::nullopt;
  }

 private:
  void read_loop() {
    char buf[8192];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) continue;
      const auto at = steady::now();
      std::lock_guard<std::mutex> l(mu_);
      messages_.push_back({at, std::string(buf, static_cast<std::size_t>(n))});
    }
  }
  std::filesystem::path path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Message> messages_;
  std::thread reader_;
};

// ---- creatify-sim ---------------------------------------------------------------------------

inline const std::string kSimApiId = "bench-id";
inline const std::string kSimApiKey = "bench-key";

// creatify-sim on 127.0.0.1 and a free port (read from its --port-file).
class SimProcess {
 public:
  SimProcess(const std::string& binary, const std::filesystem::path& dir,
             std::vector<std::string> extra_args) {
    const auto port_file = (dir / "sim.port").string();
    std::filesystem::remove(port_file);
    std::vector<std::string> args{binary, "--listen", "127.0.0.1:0", "--port-file", port_file,
                                  "--seed", "1", "--api-id", kSimApiId, "--api-key", kSimApiKey};
    for (auto& a : extra_args) args.push_back(std::move(a));
    child_ = Child(args, {}, (dir / "sim.log").string());
    for (int i = 0; i < 1000 && port_ == 0; ++i) {
      std::ifstream in(port_file);
      if (!(in >> port_)) port_ = 0;
      if (port_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (port_ == 0) {
      std::fprintf(stderr, "bench: %s did not start (no port file after 10 s)\n", binary.c_str());
      std::exit(1);
    }
  }
  int port() const { return port_; }
  pid_t pid() const { return child_.pid(); }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  HttpConn connect() const {
    HttpConn c = HttpConn::tcp(port_);
    c.add_header("X-API-ID: " + kSimApiId);
    c.add_header("X-API-KEY: " + kSimApiKey);
    return c;
  }
  Child& child() { return child_; }

 private:
  Child child_;
  int port_ = 0;
};

// ---- Files --------------------------------------------------------------------------------

// A batch file of `n` personas with URL videos (what make_spec builds), keys prefix-0000000…
inline void write_batch_file(const std::filesystem::path& path, std::size_t n,
                             const std::string& prefix, std::size_t first = 0) {
  std::ofstream out(path, std::ios::trunc);
  std::string buf;
  buf.reserve(1 << 20);
  for (std::size_t i = first; i < first + n; ++i) {
    const std::string key = strf("%s-%07zu", prefix.c_str(), i);
    buf += "[[persona]]\nkey = \"" + key + "\"\ngender = \"" + (i % 2 ? "f" : "m") +
           "\"\ncreator_name = \"Creator Number " + std::to_string(i) +
           "\"\nvideo_scene = \"office\"\nkeywords = \"friendly, professional, calm\"\n"
           "lipsync_input = \"https://cdn.example.com/" + key + "/lipsync.mp4\"\n"
           "consent_video = \"https://cdn.example.com/" + key + "/consent.mp4\"\n"
           "labels = [\"acme\", \"bench\"]\n\n";
    if (buf.size() > (1 << 20) - 1024) {
      out << buf;
      buf.clear();
    }
  }
  out << buf;
}

// Where the benchmark binaries live: personad, personactl and creatify-sim are built next to
// them (<build>/bench/bench_x → <build>/personad …), unless given on the command line.
inline std::filesystem::path build_dir_of(const char* argv0) {
  std::error_code ec;
  auto self = std::filesystem::canonical("/proc/self/exe", ec);
  if (ec) self = std::filesystem::absolute(argv0);
  return self.parent_path().parent_path();
}

inline std::string find_binary(const std::filesystem::path& build, const std::string& name) {
  for (const auto& p : {build / name, build / "src" / name, build / "src" / "sim" / name,
                        build / "src" / "personad" / name, build / "src" / "personactl" / name})
    if (std::filesystem::exists(p)) return p.string();
  return (build / name).string();
}

// True when another CPU-heavy process shares the machine (named on the command line), so a
// figure can say it was measured next to it.
inline std::string other_load(const std::vector<std::string>& names) {
  std::string found;
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator("/proc", ec)) {
    std::ifstream comm(d.path() / "comm");
    std::string name;
    if (!std::getline(comm, name)) continue;
    for (const auto& n : names)
      if (name == n) found += (found.empty() ? "" : ", ") + name + " (pid " + d.path().filename().string() + ")";
  }
  return found;
}

inline void print_load_note() {
  double load[3] = {0, 0, 0};
  if (::getloadavg(load, 3) < 0) load[0] = -1;
  auto other = other_load({"psim100k2"});
  std::printf("load average %.2f before the run; %s\n", load[0],
              other.empty() ? "no psim100k2 running" : ("running alongside: " + other).c_str());
}

}  // namespace bench

namespace bench {

// ---- personad's configuration for a benchmark run -------------------------------------------

struct DaemonSetup {
  std::filesystem::path dir;  // holds the database, batches.d/, the socket and the log
  std::string base_url;
  int max_in_flight = 64;
  double max_requests_per_second = 1e6;  // out of the way: the figures are personad's cost
  std::string first_after = "1d", initial_interval = "1d", max_interval = "1d";
  std::string log_level = "info";

  std::filesystem::path config() const { return dir / "personad.toml"; }
  std::filesystem::path db() const { return dir / "personad.db"; }
  std::filesystem::path batches() const { return dir / "batches.d"; }
  std::filesystem::path socket() const { return dir / "control.sock"; }
  std::filesystem::path log() const { return dir / "personad.log"; }

  void write() const {
    std::filesystem::create_directories(batches());
    std::ofstream out(config(), std::ios::trunc);
    out << "[api]\nbase_url = \"" << base_url << "\"\ntimeout = \"30s\"\n"
        << "max_requests_per_second = " << strf("%.1f", max_requests_per_second) << "\n"
        << "max_in_flight = " << max_in_flight << "\n"
        << "retry_initial = \"100ms\"\nretry_max = \"2s\"\n"
        << "[store]\npath = \"" << db().string() << "\"\n"
        << "[batches]\ndirectory = \"" << batches().string() << "\"\n"
        << "[poll]\nfirst_after = \"" << first_after << "\"\ninitial_interval = \""
        << initial_interval << "\"\nmultiplier = 1.0\nmax_interval = \"" << max_interval
        << "\"\njitter = 0.0\ngive_up_after = \"365d\"\n"
        << "[control]\nsocket = \"" << socket().string() << "\"\n"
        << "[log]\nlevel = \"" << log_level << "\"\nformat = \"text\"\n"
        << "[daemon]\nshutdown_grace = \"10s\"\n";
  }

  // personad -c <config>, credentials in its environment (as from systemd's LoadCredential).
  Child start(const std::string& personad, std::vector<std::string> env = {}) const {
    env.push_back("CREATIFY_API_ID=" + kSimApiId);
    env.push_back("CREATIFY_API_KEY=" + kSimApiKey);
    return Child({personad, "-c", config().string()}, env, log().string());
  }

  HttpConn control() const { return HttpConn::unix_socket(socket().string()); }
};

// GET /v1/stats until `done(body)` holds; false if the daemon exited or `timeout` passed.
template <class Done>
bool wait_stats(const DaemonSetup& d, Child& daemon, std::chrono::milliseconds timeout,
                std::chrono::milliseconds every, Done done) {
  auto conn = d.control();
  const auto end = steady::now() + timeout;
  while (steady::now() < end) {
    if (!daemon.running()) return false;
    auto a = conn.request("GET", "/v1/stats");
    if (a.status == 200 && done(a.body)) return true;
    std::this_thread::sleep_for(every);
  }
  return false;
}

// The last lines of a file (a daemon's log after a failure).
inline std::string tail_of(const std::filesystem::path& p, std::size_t lines = 5) {
  std::ifstream in(p);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line);
  std::string out;
  for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
    out += "  | " + all[i] + "\n";
  return out;
}

// A value of Prometheus text ("name value"), -1 if absent.
inline double metric(const std::string& text, const std::string& name) {
  auto at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::atof(text.c_str() + at + name.size() + 2);
}

}  // namespace bench
