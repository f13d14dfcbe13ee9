// on_transition hooks (see hooks.hpp). A child is started with posix_spawn (no shell, no
// inherited descriptors), awaited through a pidfd on the event loop together with its deadline,
// killed through that pidfd, and reaped once its exit has been seen.
#include "personad/hooks.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>

extern char** environ;

namespace personad {

namespace asio = boost::asio;
using spdlog::level::level_enum;

namespace {

bool private_variable(std::string_view entry) {
  for (std::string_view prefix : {"CREATIFY_API_", "CREDENTIALS_DIRECTORY=", "NOTIFY_SOCKET=",
                                  "WATCHDOG_", "PERSONA_KEY=", "REMOTE_ID=", "FROM_STATE=",
                                  "TO_STATE=", "REMOTE_STATUS=", "REASON=", "PERSONAD_"})
    if (entry.substr(0, prefix.size()) == prefix) return true;
  return false;
}

std::vector<std::string> process_environment() {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) out.emplace_back(*e);
  return out;
}

// Starts `program` with `env`; stdin/stdout/stderr on /dev/null and every other descriptor
// closed, so the control socket, the database and the lock never leak into a hook.
Result<pid_t> spawn(const std::string& program, const std::vector<std::string>& env) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  for (int fd : {0, 1, 2})
    posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The hook gets default signal handling whatever the daemon blocks or ignores.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> argv{const_cast<char*>(program.c_str()), nullptr};
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, program.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return make_error("cannot start " + program + ": " + std::strerror(rc));
  return pid;
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
  return "ended with status " + std::to_string(status);
}

}  // namespace

std::vector<std::string> hook_environment(const Job& job, const Transition& t,
                                          const std::vector<std::string>& inherited) {
  std::vector<std::string> env;
  for (const auto& e : inherited)
    if (!private_variable(e)) env.push_back(e);
  env.push_back("PERSONA_KEY=" + job.key);
  env.push_back("REMOTE_ID=" + job.remote_id.value_or(""));
  env.push_back("FROM_STATE=" + (t.from ? std::string(to_string(*t.from)) : std::string()));
  env.push_back("TO_STATE=" + std::string(to_string(t.to)));
  env.push_back("REMOTE_STATUS=" + t.remote_status);
  env.push_back("REASON=" + t.reason);
  env.push_back("PERSONAD_CLIENT_REF=" + job.client_ref);
  env.push_back("PERSONAD_AT=" + format_rfc3339(t.at));
  return env;
}

HookRunner::HookRunner(asio::any_io_executor ex, HookOptions options, const EventLog& log)
    : ex_(std::move(ex)), options_(std::move(options)), log_(log) {}

void HookRunner::on_transition(const Job& job, const Transition& t) {
  if (options_.program.empty()) return;
  if (queue_.size() >= options_.max_queued) {
    if (stats_.dropped++ % 1000 == 0)
      log_.event(level_enum::warn, "hook_dropped",
                 {{"key", job.key},
                  {"dropped", std::to_string(stats_.dropped)},
                  {"reason", "hook queue full; the hook is slower than the transitions"}});
    return;
  }
  queue_.push_back(Run{job.key, hook_environment(job, t, process_environment())});
  pump();
}

void HookRunner::pump() {
  while (running_ < std::max<std::size_t>(1, options_.max_running) && !queue_.empty()) {
    Run r = std::move(queue_.front());
    queue_.pop_front();
    ++running_;
    asio::co_spawn(ex_, run(std::move(r)), [this](std::exception_ptr) {
      --running_;
      pump();
    });
  }
}

asio::awaitable<void> HookRunner::run(Run r) {
  auto fail = [&](const std::string& why) {
    ++stats_.failures;
    log_.event(level_enum::warn, "hook_failed",
               {{"key", r.key}, {"program", options_.program}, {"reason", why}});
  };
  auto pid = spawn(options_.program, r.env);
  if (!pid) {
    ++stats_.runs;
    fail(pid.message());
    co_return;
  }
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, *pid, 0));
  if (pidfd < 0) {
    // Without a pidfd we cannot wait on the loop; the child is reaped by the kernel's
    // reparenting only if we give up on it, so kill and reap it now.
    ::kill(*pid, SIGKILL);
    ::waitpid(*pid, nullptr, 0);
    ++stats_.runs;
    fail(std::string("pidfd_open: ") + std::strerror(errno));
    co_return;
  }
  // The exit and the deadline are awaited together inside this frame: `||` cancels the loser
  // and waits for it to finish, so no handler can run after the frame is gone.
  using namespace asio::experimental::awaitable_operators;
  using Wait = asio::posix::stream_descriptor::wait_type;
  asio::posix::stream_descriptor exited(ex_, pidfd);  // owns (and closes) the pidfd
  asio::steady_timer deadline(ex_, options_.timeout);
  auto first = co_await (exited.async_wait(Wait::wait_read, asio::as_tuple(asio::use_awaitable)) ||
                         deadline.async_wait(asio::as_tuple(asio::use_awaitable)));
  const bool timed_out = first.index() == 1;
  // A failed wait on the pidfd (it should not happen) must not leave waitpid() blocking the loop
  // on a child that runs on: it is killed like an overrunning one.
  const bool wait_failed = first.index() == 0 && std::get<0>(std::get<0>(first));
  if (timed_out || wait_failed) {
    // Through the pidfd: it names this child until it is reaped (by us, below), so a pid the
    // kernel has handed to another process is never signalled. ESRCH: it is exiting already.
    ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    co_await exited.async_wait(Wait::wait_read, asio::as_tuple(asio::use_awaitable));
  }
  // Readable pidfd: the child has exited, so this does not block.
  int status = 0;
  ::waitpid(*pid, &status, 0);
  ++stats_.runs;
  if (timed_out)
    fail("timed out after " + format_duration(options_.timeout) + "; killed");
  else if (wait_failed)
    fail("cannot wait for it: " + std::get<0>(std::get<0>(first)).message() + "; killed");
  else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail(describe(status));
}

}  // namespace personad
