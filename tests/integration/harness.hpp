// Integration test harness: runs the real binaries (creatify-sim, personad, personactl) as
// child processes in a scratch directory, and reads the simulator's admin endpoints.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace personad::it {

namespace fs = std::filesystem;
namespace json = boost::json;

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The last `lines` lines of a log: what a failure message shows of a process that ended badly
// (CI keeps the head and tail of a long output, so a whole log would hide its own end).
inline std::string last_lines(const std::string& text, std::size_t lines = 40) {
  std::size_t at = text.size();
  if (at > 0 && text[at - 1] == '\n') --at;
  for (std::size_t n = 0; n < lines && at > 0; ++n) {
    const auto nl = text.rfind('\n', at - 1);
    if (nl == std::string::npos) return text;
    at = nl;
  }
  return at == 0 ? text : "[…]" + text.substr(at);
}

inline void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
}

// A child process; killed (SIGKILL) when the object dies, so no test leaves one behind.
class Process {
 public:
  // `in_child` runs in the child just before exec (lower a limit, drop privileges, …).
  Process(std::vector<std::string> args, const std::map<std::string, std::string>& env,
          const fs::path& out, const fs::path& err,
          const std::function<void()>& in_child = {}) {
    pid_ = ::fork();
    if (pid_ == 0) {
      if (in_child) in_child();
      int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(o, 1);
      ::dup2(e, 2);
      int devnull = ::open("/dev/null", O_RDONLY);
      ::dup2(devnull, 0);
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  bool running() {
    if (exited_) return false;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      status_ = status;
    }
    return !exited_;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  // Exit code (or 128 + signal).
  int wait() {
    if (!exited_) {
      ::waitpid(pid_, &status_, 0);
      exited_ = true;
    }
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

struct RunResult {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs a command to completion and captures its output.
inline RunResult run(std::vector<std::string> args, const fs::path& scratch,
                     const std::map<std::string, std::string>& env = {}) {
  static int counter = 0;
  fs::path out = scratch / ("run-" + std::to_string(++counter) + ".out");
  fs::path err = scratch / ("run-" + std::to_string(counter) + ".err");
  Process p(std::move(args), env, out, err);
  RunResult r;
  r.code = p.wait();
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

// One HTTP GET/POST to 127.0.0.1:port; returns the body ("" on failure).
inline std::string http(int port, const std::string& method, const std::string& target,
                        const std::string& body = "") {
  namespace beast = boost::beast;
  namespace http = beast::http;
  try {
    boost::asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    stream.expires_after(std::chrono::seconds(10));
    stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                                  static_cast<unsigned short>(port)));
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(stream, buf, res);
    return res.body();
  } catch (const std::exception&) {
    return "";
  }
}

// A scratch directory, a simulator and a personad configuration pointing at it.
class Environment {
 public:
  static constexpr const char* kApiId = "it-api-id";
  static constexpr const char* kApiKey = "it-secret-key-5f2b9c";

  explicit Environment(const std::string& name) {
    dir_ = fs::temp_directory_path() /
           ("personad-it-" + name + "-" + std::to_string(::getpid()) + "-" +
            std::to_string(std::random_device{}() % 100000));
    fs::create_directories(dir_ / "batches.d");
  }
  ~Environment() {
    daemon_.reset();
    sim_.reset();
    if (!::getenv("PERSONAD_KEEP_TEST_DIRS")) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

  const fs::path& dir() const { return dir_; }
  fs::path config_path() const { return dir_ / "personad.toml"; }
  fs::path log_path() const { return dir_ / "personad.log"; }
  int sim_port() const { return port_; }

  // Starts creatify-sim with extra flags; returns false if it did not come up.
  bool start_sim(const std::vector<std::string>& flags) {
    std::vector<std::string> args{CREATIFY_SIM_BIN, "--listen", "127.0.0.1:0", "--port-file",
                                  (dir_ / "sim.port").string(), "--api-id", kApiId,
                                  "--api-key", kApiKey};
    args.insert(args.end(), flags.begin(), flags.end());
    sim_ = std::make_unique<Process>(args, std::map<std::string, std::string>{},
                                     dir_ / "sim.out", dir_ / "sim.err");
    if (!wait_until([&] { return fs::exists(dir_ / "sim.port") && !read_file(dir_ / "sim.port").empty(); },
                    std::chrono::seconds(10)))
      return false;
    port_ = std::stoi(read_file(dir_ / "sim.port"));
    return true;
  }

  // The [poll] section's keys when a test names none: fast polls for a fast simulator.
  static constexpr const char* kDefaultPoll =
      "first_after = \"300ms\"\ninitial_interval = \"300ms\"\nmultiplier = 1.5\n"
      "max_interval = \"1s\"\njitter = 0.2\ngive_up_after = \"10m\"\n";

  // personad.toml against the simulator: `extra_poll`, `extra_api` are appended to their
  // sections, `extra_sections` to the file; `poll`, when not empty, replaces kDefaultPoll.
  void write_config(const std::string& extra_poll = "", const std::string& extra_api = "",
                    const std::string& extra_sections = "", const std::string& poll = "") {
    std::ostringstream c;
    c << "[api]\nbase_url = \"http://127.0.0.1:" << port_ << "\"\n"
      << "timeout = \"2s\"\nmax_requests_per_second = 200.0\nmax_in_flight = 4\n"
      << "retry_initial = \"100ms\"\nretry_max = \"1s\"\nreconcile_after = \"1s\"\n"
      << extra_api << "\n[store]\npath = \"" << (dir_ / "personad.db").string() << "\"\n"
      << "[batches]\ndirectory = \"" << (dir_ / "batches.d").string() << "\"\n"
      << "[poll]\n" << (poll.empty() ? std::string(kDefaultPoll) : poll)
      << extra_poll << "\n[control]\nsocket = \"" << (dir_ / "control.sock").string() << "\"\n"
      << "[log]\nlevel = \"debug\"\n" << extra_sections;
    write_file(config_path(), c.str());
  }

  std::map<std::string, std::string> credentials_env() const {
    return {{"CREATIFY_API_ID", kApiId}, {"CREATIFY_API_KEY", kApiKey}};
  }

  void start_daemon(const std::map<std::string, std::string>& extra_env = {},
                    const std::function<void()>& in_child = {}) {
    auto env = credentials_env();
    env.insert(extra_env.begin(), extra_env.end());
    daemon_ = std::make_unique<Process>(
        std::vector<std::string>{PERSONAD_BIN, "--config", config_path().string()}, env,
        dir_ / "personad.out", log_path(), in_child);
  }
  bool wait_for_socket() {
    return wait_until([&] { return fs::exists(dir_ / "control.sock"); }, std::chrono::seconds(10));
  }
  Process* daemon() { return daemon_.get(); }

  // What most tests start with: a simulator, a configuration, batch files in batches.d, a
  // daemon, its control socket.
  struct Setup {
    std::vector<std::string> sim_flags;
    std::vector<std::pair<std::string, std::string>> batches;  // file name, text
    std::string poll;            // the [poll] keys (kDefaultPoll when empty)
    // Appended to the configuration ([webhook], …); called once the simulator runs, so a port
    // it picks is not the simulator's.
    std::function<std::string()> extra_sections;
  };
  // Fails naming the step that did not work (with the daemon's log once it runs).
  ::testing::AssertionResult start(const Setup& setup) {
    if (!start_sim(setup.sim_flags))
      return ::testing::AssertionFailure() << "creatify-sim did not come up: "
                                           << read_file(dir_ / "sim.err");
    write_config("", "", setup.extra_sections ? setup.extra_sections() : std::string(),
                 setup.poll);
    for (const auto& [name, text] : setup.batches) write_file(dir_ / "batches.d" / name, text);
    start_daemon();
    if (!wait_for_socket())
      return ::testing::AssertionFailure() << "no control socket after 10 s:\n"
                                           << read_file(log_path());
    return ::testing::AssertionSuccess();
  }
  void stop_daemon(int sig = SIGTERM) {
    if (!daemon_) return;
    daemon_->signal(sig);
    daemon_->wait();
    daemon_.reset();
  }

  RunResult ctl(std::vector<std::string> args) {
    std::vector<std::string> full{PERSONACTL_BIN, "--config", config_path().string()};
    full.insert(full.end(), args.begin(), args.end());
    return run(full, dir_);
  }

  json::value ctl_json(std::vector<std::string> args) {
    auto r = ctl(std::move(args));
    boost::system::error_code ec;
    auto v = json::parse(r.out, ec);
    return ec ? json::value(nullptr) : v;
  }

  // Every persona the simulator holds.
  json::array sim_personas() {
    boost::system::error_code ec;
    auto v = json::parse(http(port_, "GET", "/_sim/personas"), ec);
    return !ec && v.is_array() ? v.get_array() : json::array{};
  }

 private:
  fs::path dir_;
  int port_ = 0;
  std::unique_ptr<Process> sim_;
  std::unique_ptr<Process> daemon_;
};

// A batch file of `count` personas with keys PREFIX-0 …; creator names may carry the simulator's
// outcome markers ("[fail]", "[reject]") when `outcomes` says so.
inline std::string make_batch(const std::string& prefix, int count,
                              const std::vector<std::string>& markers = {}) {
  std::ostringstream b;
  for (int i = 0; i < count; ++i) {
    std::string marker = markers.empty() ? "" : markers[static_cast<std::size_t>(i) % markers.size()];
    b << "[[persona]]\nkey = \"" << prefix << "-" << i << "\"\ngender = \"f\"\n"
      << "creator_name = \"Person " << prefix << " " << i << (marker.empty() ? "" : " " + marker)
      << "\"\nvideo_scene = \"office\"\nkeywords = \"friendly\"\n"
      << "lipsync_input = \"https://cdn.example.com/" << prefix << i << "/lipsync.mp4\"\n"
      << "consent_video = \"https://cdn.example.com/" << prefix << i << "/consent.mp4\"\n"
      << "labels = [\"it\", \"" << prefix << "\"]\n\n";
  }
  return b.str();
}

// ---- A process seen from outside ----

// CPU time (user + system) a process has used so far, in seconds; -1 if it cannot be read.
inline double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return -1;
  std::istringstream fields(text.substr(close + 2));
  std::string f;
  unsigned long long utime = 0, stime = 0;
  // After the name: state (3), …, utime (14), stime (15).
  for (int i = 3; i <= 13 && fields >> f; ++i) {
  }
  if (!(fields >> utime >> stime)) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Descriptors a process has open now; -1 if they cannot be listed.
inline long open_fds(pid_t pid) {
  std::error_code ec;
  long n = 0;
  for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec))
    ++n;
  return ec ? -1 : n;
}

inline std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t pos = 0; (pos = text.find(needle, pos)) != std::string::npos; pos += needle.size())
    ++n;
  return n;
}

inline std::uintmax_t size_of(const fs::path& p) {
  std::error_code ec;
  auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

// ---- Assertions over the daemon (through personactl) and the simulator ----

inline bool is_final_state(const std::string& s) {
  return s == "done" || s == "failed" || s == "expired" || s == "cancelled";
}

// Jobs by key, as `personactl list --json` prints them.
inline std::map<std::string, json::object> jobs(Environment& env) {
  std::map<std::string, json::object> out;
  auto v = env.ctl_json({"list", "--json"});
  if (!v.is_array()) return out;
  for (auto& j : v.get_array()) out[std::string(j.at("key").as_string())] = j.as_object();
  return out;
}

inline bool all_final(Environment& env, std::size_t expected) {
  auto js = jobs(env);
  if (js.size() != expected) return false;
  for (auto& [k, j] : js)
    if (!is_final_state(std::string(j.at("state").as_string()))) return false;
  return true;
}

// The simulator's personas by our label personad:<client_ref>.
inline std::map<std::string, std::vector<json::object>> personas_by_label(Environment& env) {
  std::map<std::string, std::vector<json::object>> out;
  for (auto& p : env.sim_personas())
    for (auto& l : p.at("labels").as_array()) {
      std::string label(l.as_string());
      if (label.rfind("personad:", 0) == 0) out[label].push_back(p.as_object());
    }
  return out;
}

// Every job is final with the server's status, and the server holds exactly one persona per job.
inline void expect_consistent_with_server(Environment& env, std::size_t expected) {
  auto js = jobs(env);
  ASSERT_EQ(js.size(), expected);
  auto by_label = personas_by_label(env);
  EXPECT_EQ(env.sim_personas().size(), expected);
  for (auto& [key, j] : js) {
    std::string label = "personad:" + std::string(j.at("client_ref").as_string());
    ASSERT_EQ(by_label[label].size(), 1u) << key << " has " << by_label[label].size() << " personas";
    const json::object& p = by_label[label][0];
    EXPECT_EQ(j.at("remote_id"), p.at("id")) << key;
    std::string server(p.at("process_status").as_string());
    std::string state(j.at("state").as_string());
    if (server == "done")
      EXPECT_EQ(state, "done") << key;
    else
      EXPECT_EQ(state, "failed") << key << " server says " << server;
    EXPECT_EQ(j.at("remote_status"), p.at("process_status")) << key;
    // The operator's labels travel with ours.
    bool has_it = false;
    for (auto& l : p.at("labels").as_array()) has_it = has_it || l == "it";
    EXPECT_TRUE(has_it) << key;
  }
}

}  // namespace personad::it
