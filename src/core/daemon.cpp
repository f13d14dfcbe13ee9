// Start-up, the batches directory, reload, status reporting and graceful stop (see daemon.hpp).
#include "personad/daemon.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <cstdio>
#include <filesystem>
#include <future>
#include <random>
#include <utility>
#include <spdlog/logger.h>

#include <malloc.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cerrno>

#include "personad/batch.hpp"
#include "personad/batch_fingerprint.hpp"
#include "personad/control.hpp"
#include "personad/creatify_client.hpp"
#include "personad/dir_watch.hpp"
#include "personad/event_feed.hpp"
#include "personad/fd_wait.hpp"
#include "personad/hooks.hpp"
#include "personad/instance_lock.hpp"
#include "personad/job_query.hpp"
#include "personad/metrics.hpp"
#include "personad/metrics_server.hpp"
#include "personad/notify.hpp"
#include "personad/pg_actions.hpp"
#include "personad/pg_lease.hpp"
#include "personad/redact.hpp"
#include "personad/store.hpp"
#include "personad/store_open.hpp"
#include "personad/store_runner.hpp"
#include "personad/stuck.hpp"
#include "personad/toml_support.hpp"
#include "personad/tracker.hpp"
#include "personad/webhook_debounce.hpp"
#include "personad/webhook_listener.hpp"
#include "personad/webhook_token.hpp"

// gperftools' tcmalloc, when the daemon is linked with it (CMake's PERSONAD_TCMALLOC): hands its
// free pages back to the system. A weak reference, null in a binary without tcmalloc.
extern "C" void MallocExtension_ReleaseFreeMemory(void) __attribute__((weak));

namespace personad {

namespace asio = boost::asio;
using spdlog::level::level_enum;

namespace {

// Reads and validates a batch file; run on the parsing thread (a 100,000-entry file takes
// seconds to parse, which the event loop must not wait for).
asio::awaitable<BatchParse> parse_batch_file(std::filesystem::path path) {
  co_return load_batch_file(path);
}

// What a batch file holds now, read in blocks; run on the parsing thread too (a 30 MB file is
// a tenth of a second of hashing, which the event loop must not wait for either).
asio::awaitable<Result<std::string>> fingerprint_batch_file(std::filesystem::path path) {
  co_return batch_fingerprint(path);
}

// Hands freed heap back to the system: tcmalloc's free pages, or glibc's (malloc_trim). Run on
// the parsing thread: after a big batch it walks hundreds of MiB (measured up to ~70 ms),
// which the event loop must not wait for.
asio::awaitable<void> trim_heap() {
  if (MallocExtension_ReleaseFreeMemory != nullptr)
    MallocExtension_ReleaseFreeMemory();
  else
    ::malloc_trim(0);
  co_return;
}

// Reads the config file for a reload; run on the parsing thread, like batch files.
asio::awaitable<Result<Config>> load_config_file(std::string path) { co_return load_config(path); }

HookOptions hook_options(const Config& c) {
  HookOptions o;
  o.program = c.hook_on_transition;
  o.timeout = c.hook_timeout;
  return o;
}

class Daemon {
 public:
  Daemon(Config config, Credentials credentials, const EventLog& log)
      : config_(std::move(config)),
        credentials_(std::move(credentials)),
        log_(log),
        signals_(ioc_),
        status_timer_(ioc_),
        stop_timer_(ioc_),
        scan_ended_(ioc_),
        reload_gap_(ioc_),
        notifier_(ioc_.get_executor()),
        rng_(std::random_device{}()) {
    // `top -H`, `perf` and a core dump tell the threads apart: the loop keeps the program's
    // name, the store's are store-writer and store-reader (store_runner.cpp).
    asio::post(parse_pool_, [] { ::pthread_setname_np(::pthread_self(), "batch-parse"); });
    asio::post(lease_pool_, [] { ::pthread_setname_np(::pthread_self(), "store-lease"); });
  }

  // The pools' threads may still be inside a call on the lease's connection or a parse: they
  // finish it before any member they use goes.
  ~Daemon() {
    lease_pool_.stop();
    lease_pool_.join();
    release_lease();  // after the join: one thread at a time on the lease's connection
    parse_pool_.join();
  }

  int run() {
    if (!start()) return 1;
    ioc_.run();
    return exit_code_;
  }

 private:
  bool fail(std::string_view what, const std::string& why) {
    log_.event(level_enum::critical, "startup_failed", {{"what", std::string(what)}, {"reason", why}});
    return false;
  }

  // Outside systemd (which makes StateDirectory and RuntimeDirectory) the default
  // /var/lib/personad and /run/personad may not exist yet: make them, owner and group only.
  bool ensure_parent_directory(const std::string& file, std::string_view what) {
    namespace fs = std::filesystem;
    fs::path dir = fs::path(file).parent_path();
    std::error_code ec;
    if (dir.empty() || fs::is_directory(dir, ec)) return true;
    if (!fs::create_directories(dir, ec) && ec)
      return fail(what, "cannot create directory " + dir.string() + ": " + ec.message());
    fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec,
                    ec);
    log_.event(level_enum::info, "created_directory",
               {{"path", dir.string()}, {"for", std::string(what)}});
    return true;
  }

  bool start() {
    if (!ensure_parent_directory(config_.control_socket, "control socket")) return false;
    // Where local videos may come from, for batch files and the control socket (batch.hpp).
    set_media_roots({config_.media_roots.begin(), config_.media_roots.end()});
    if (!(uses_pg_store(config_) ? start_shared() : start_local())) return false;
    if (!start_metrics_listener() || !start_control_server()) return false;
    watch_signals();
    notifier_.ready();
    notifier_.start_watchdog();
    update_status();
    log_.event(level_enum::info, "started",
               {{"version", PERSONAD_VERSION},
                {"api", config_.api.base_url},
                {"store", store_display(config_)},
                {"role", active_ ? "active" : "standby"},
                {"batches", config_.batches_directory},
                {"control", config_.control_socket},
                {"credentials", credentials_.origin}});
    return true;
  }

  // The SQLite store: this host is the only one, active from the start.
  bool start_local() {
    if (!ensure_parent_directory(config_.store_path, "store")) return false;
    // "<real path of the database>.lock": every path reaching the same database (symlinks)
    // takes the same lock. The database file is created (empty) first if need be.
    auto lock = InstanceLock::acquire_for_database(config_.store_path);
    if (!lock) return fail("lock", lock.message());
    lock_ = std::move(*lock);
    // The check --check-config runs too: a database that cannot be written is a start-up
    // error, not READY and then a failure at every commit. Before the open: it opens nothing.
    if (auto w = check_store_writable(config_.store_path); !w) return fail("store", w.message());
    // The integrity check reads the whole file (~2 s at 1,000,000 jobs): it runs on a thread
    // and a connection of its own while the store opens and the schedule loads (reads only),
    // and the start waits for it before the loop runs: nothing is written to a damaged file.
    auto integrity = std::async(std::launch::async, [path = config_.store_path] {
      return Store::check_integrity(path);
    });
    auto store = Store::open(config_.store_path, OpenMode::read_write, IntegrityCheck::by_caller);
    if (!store) return fail("store", store.message());
    // A second, read-only connection (after the first migrated the file): reads run on a thread
    // of their own, never behind a commit's fsync (store_runner.hpp).
    auto reader = Store::open(config_.store_path, OpenMode::read_only, IntegrityCheck::by_caller);
    if (!reader) return fail("store", reader.message());
    const bool active = become_active(std::move(*store), std::move(*reader));
    if (auto checked = integrity.get(); !checked) return fail("store", checked.message());
    return active;
  }

  // A PostgreSQL store shared with other hosts: the schema is migrated (once, whoever comes
  // first), then this host takes the lease and is active, or stands by (pg_lease.hpp).
  bool start_shared() {
    auto target = pg_target(config_, process_env());
    if (!target) return fail("store", target.message());
    pg_target_ = std::move(*target);
    pg_target_.idle_in_transaction_limit = config_.takeover_after / 6;
    if (auto migrated = open_pg_store(pg_target_, OpenMode::read_write); !migrated)
      return fail("store", migrated.message());
    auto lease = PgLease::connect(pg_target_, holder_name());
    if (!lease) return fail("store", lease.message());
    lease_ = std::move(*lease);
    auto actions = PgActionQueue::connect(pg_target_);
    if (!actions) return fail("store", actions.message());
    actions_ = std::move(*actions);
    const auto asked = std::chrono::steady_clock::now();
    auto fence = lease_->try_acquire(lease_ttl());
    if (!fence) return fail("store", fence.message());
    if (*fence) {
      if (!take_lease(**fence, asked)) return false;
    } else {
      auto store = open_pg_store(pg_target_, OpenMode::read_only);
      if (!store) return fail("store", store.message());
      store_ = std::make_unique<ThreadedStoreRunner>(std::move(*store));
      control_api_ = std::make_unique<ControlApi>(*store_, clock_);
      control_api_->set_forward([this](ControlRequest r) { return forward_action(std::move(r)); });
      configure_control_api();
      log_active_host();
    }
    spawn(lease_loop());
    return true;
  }

  // This host holds the lease (epoch `fence`): its store writes are fenced by it.
  bool take_lease(const PgFence& fence, std::chrono::steady_clock::time_point asked) {
    fence_ = fence;
    lease_renewed_at_ = asked;
    lease_deadline_ = asked + lease_ttl() * 2 / 3;
    auto store = open_pg_store(pg_target_, OpenMode::read_write, fence);
    if (!store) return fail("store", store.message());
    auto reader = open_pg_store(pg_target_, OpenMode::read_only);  // reads beside the commits
    if (!reader) return fail("store", reader.message());
    log_.event(level_enum::warn, "lease_taken",
               {{"holder", fence.holder},
                {"epoch", std::to_string(fence.epoch)},
                {"reason", "this host is now the active one: it submits, polls and takes intake"}});
    return become_active(std::move(*store), std::move(*reader));
  }

  // The work of the active host: the tracker and everything that feeds it.
  bool become_active(std::unique_ptr<Store> store, std::unique_ptr<Store> reader = nullptr) {
    // From here on the database is the store threads': the loop never waits on the disk. A
    // standby's read-only runner stays alive for the reads still on their way.
    if (store_) retired_stores_.push_back(std::move(store_));
    store_ = std::make_unique<ThreadedStoreRunner>(std::move(store), std::move(reader));

    auto client = CreatifyClient::create_client(ioc_.get_executor(),
                                                client_options_from(config_.api), credentials_,
                                                log_.logger_ptr());
    if (!client) return fail("api client", client.message());
    client_ = std::move(*client);
    if (config_.webhook.enabled()) {
      auto secret = load_webhook_secret(config_, process_env());
      if (!secret) return fail("webhook", secret.message());
      webhook_secret_ = std::move(*secret);
    }
    // Whatever the API answers is cleaned of our credentials before anyone stores or logs it.
    api_ = std::make_unique<RedactingApi>(
        *client_, Redactor({credentials_.api_id, credentials_.api_key, webhook_secret_}));
    // Every request counted by operation and code, and timed (metrics.hpp).
    metered_api_ = std::make_unique<MeteredApi>(*api_, api_metrics_, clock_);

    tracker_ = std::make_unique<Tracker>(
        ioc_.get_executor(), *store_, *metered_api_, clock_, log_, tracker_options(),
        [this] { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); });
    hooks_ = std::make_unique<HookRunner>(ioc_.get_executor(), hook_options(config_), log_);
    // personactl watch/wait follow this feed; its epoch tells a follower the daemon restarted.
    feed_ = std::make_unique<EventFeed>(
        ioc_.get_executor(),
        std::to_string(::getpid()) + "-" + std::to_string(clock_.now().time_since_epoch().count()));
    tracker_->set_transition_hook([this](const Job& job, const Transition& t) {
      status_dirty();
      hooks_->on_transition(job, t);
      feed_->publish(job, t);
      if (t.to == State::done) eta_learnt_something();
      wake_stuck_scan(t);
    });
    if (auto r = tracker_->start(); !r) return fail("load jobs", r.message());
    if (!start_webhook_listener()) return false;

    if (control_api_) retired_control_.push_back(std::move(control_api_));
    control_api_ = std::make_unique<ControlApi>(*tracker_, *store_, clock_);
    configure_control_api();
    control_api_->set_event_feed(feed_.get());
    active_ = true;
    // `personactl submit` found no socket between the lock and now and wrote its jobs into the
    // database; the load above may have missed them. From here on it reaches the socket.
    spawn(tracker_->adopt_queued());

    request_scan();
    spawn(stuck_loop());
    spawn(eta_loop());
    if (lease_) spawn(action_loop());
    watch_batches();
    return true;
  }

  void configure_control_api() {
    control_api_->set_metrics_extras([this](MetricsSnapshot& s) {
      if (hooks_) s.hooks = hooks_->stats();
      s.api = &api_metrics_;
      if (webhook_) s.webhook = webhook_metrics();
      if (tracker_) s.capacity_remaining = tracker_->capacity_remaining();
    });
    control_api_->set_stuck_after(config_.stuck_after);
    control_api_->set_eta_model([this] { return eta_model_; });
    if (lease_) control_api_->set_role([this] { return std::string(active_ ? "active" : "standby"); });
  }

  bool start_control_server() {
    auto server = ControlServer::listen(
        ioc_.get_executor(), config_.control_socket,
        [this](ControlRequest req) { return control_api_->handle(std::move(req)); },
        log_.logger_ptr());
    if (!server) return fail("control socket", server.message());
    control_ = std::move(*server);
    return true;
  }

  // ---- Hosts sharing a PostgreSQL store (pg_lease.hpp, pg_actions.hpp) ----

  // The lease runs for two thirds of takeover_after and is renewed every third of that, so a
  // standby asking every sixth of takeover_after finds it expired within takeover_after of the
  // active host's death.
  Millis lease_ttl() const { return config_.takeover_after * 2 / 3; }

  static std::string holder_name() {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "unknown");
    return std::string(host) + ":" + std::to_string(::getpid());
  }

  // Whether a create may leave: the lease was renewed recently enough that no other host can
  // hold it yet (the deadline is on this host's monotonic clock, which also runs while the
  // process is stopped, so a host woken from SIGSTOP sends nothing).
  bool lease_fresh() const { return active_ && std::chrono::steady_clock::now() < lease_deadline_; }

  // Runs a blocking call of the lease's or the action queue's connection on their thread.
  template <class F>
  static auto call_blocking(F f) -> asio::awaitable<decltype(f())> {
    co_return f();
  }
  template <class F>
  auto on_lease_thread(F f) -> asio::awaitable<decltype(f())> {
    co_return co_await asio::co_spawn(lease_pool_, call_blocking(std::move(f)), asio::use_awaitable);
  }

  asio::awaitable<void> lease_loop() {
    asio::steady_timer timer(ioc_);
    while (!stopping_) {
      if (active_) {
        if (!co_await renew_lease()) co_return;
        timer.expires_after(lease_ttl() / 3);
      } else {
        co_await try_take_over();
        timer.expires_after(config_.takeover_after / 6);
      }
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }

  // False when the lease is lost: the process ends (its writes are fenced already). A renewal
  // that fails (the database does not answer) is tried again until the lease may have run out.
  asio::awaitable<bool> renew_lease() {
    const auto asked = std::chrono::steady_clock::now();
    const Millis ttl = lease_ttl();
    const PgFence fence = *fence_;
    auto call = [this, fence, ttl] { return lease_->renew(fence, ttl); };
    auto r = co_await on_lease_thread(std::move(call));
    if (stopping_) co_return true;
    if (r && *r) {
      lease_renewed_at_ = asked;
      lease_deadline_ = asked + ttl * 2 / 3;
      co_return true;
    }
    if (r) {
      lose_lease("another host holds the lease now");
      co_return false;
    }
    if (std::chrono::steady_clock::now() >= lease_renewed_at_ + ttl) {
      lose_lease("the database did not answer for the lease's whole life: " + r.message());
      co_return false;
    }
    log_.event(level_enum::warn, "lease_renew_failed",
               {{"reason", r.message() + "; trying again (no create leaves once the lease may "
                                         "have run out)"}});
    co_return true;
  }

  // The lease is gone: another host may be active, so this one stops at once, sending nothing
  // more. systemd (Restart=) starts it again, as a standby.
  void lose_lease(const std::string& why) {
    active_ = false;
    log_.event(level_enum::critical, "lease_lost",
               {{"epoch", std::to_string(fence_ ? fence_->epoch : 0)},
                {"reason", why + "; stopping now (restarted, this host stands by)"}});
    if (tracker_) tracker_->stop_taking_work();
    notifier_.stopping();
    exit_code_ = 1;
    ioc_.stop();
  }

  asio::awaitable<void> try_take_over() {
    const auto asked = std::chrono::steady_clock::now();
    const Millis ttl = lease_ttl();
    auto call = [this, ttl] { return lease_->try_acquire(ttl); };
    auto fence = co_await on_lease_thread(std::move(call));
    if (stopping_) co_return;
    if (!fence) {
      log_.event(level_enum::warn, "standby_check_failed", {{"reason", fence.message()}});
      co_return;
    }
    if (!*fence) {
      co_await note_active_host();
      co_return;
    }
    if (!take_lease(**fence, asked)) {
      // The lease is ours but the work cannot start: give it back at once for another host.
      const PgFence f = **fence;
      auto call = [this, f] { return lease_->release(f); };
      (void)co_await on_lease_thread(std::move(call));
      exit_code_ = 1;
      ioc_.stop();
      co_return;
    }
    update_status();
  }

  // A standby logs who is active when that changes (and says it in its STATUS line).
  asio::awaitable<void> note_active_host() {
    auto call = [this] { return lease_->current(); };
    auto info = co_await on_lease_thread(std::move(call));
    if (!info) co_return;
    const std::string who = info->holder + " (epoch " + std::to_string(info->epoch) + ")";
    if (who == active_host_) co_return;
    active_host_ = who;
    log_active_host();
    update_status();
  }

  void log_active_host() {
    log_.event(level_enum::info, "standby",
               {{"active", active_host_.empty() ? "unknown" : active_host_},
                {"reason", "another host holds the lease; this one answers reads and forwards "
                           "actions, and takes over within " +
                               format_duration(config_.takeover_after) + " if it stops"}});
  }

  // The active host runs the actions standbys forwarded, through its own control API. It looks
  // at the table when a standby's post notifies it (LISTEN/NOTIFY), and at least every
  // kUnprompted in case a notice was lost; while the connection is down, every kRetry.
  asio::awaitable<void> action_loop() {
    static constexpr Millis kUnprompted{5'000};
    static constexpr Millis kRetry{1'000};
    auto listen = [this] { return actions_->listen(); };
    auto take_notices = [this] { return actions_->take_notices(); };
    auto socket = [this] { return actions_->socket(); };
    bool listening = false;
    while (!stopping_ && active_) {
      if (!listening) listening = static_cast<bool>(co_await on_lease_thread(listen));
      co_await run_forwarded_actions();
      if (stopping_ || !active_) break;
      // Notices the claim's own statements read: another look at once.
      auto noticed = co_await on_lease_thread(take_notices);
      if (noticed && *noticed) continue;
      if (!listening || !noticed) {
        listening = listening && static_cast<bool>(noticed);
        asio::steady_timer timer(ioc_, kRetry);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        continue;
      }
      const int fd = co_await on_lease_thread(socket);
      if (co_await wait_readable(fd, kUnprompted)) (void)co_await on_lease_thread(take_notices);
    }
  }

  // Claims what standbys forwarded and runs it, answering each.
  asio::awaitable<void> run_forwarded_actions() {
    const PgFence fence = *fence_;
    auto call = [this, fence] { return actions_->claim(fence, 16); };
    auto taken = co_await on_lease_thread(std::move(call));
    if (!taken) co_return;
    for (PgAction& a : *taken) {
      // Named first: GCC 12 miscompiles a braced temporary inside a co_await expression.
      ControlRequest request{std::move(a.method), std::move(a.target), std::move(a.body), {}};
      ControlResponse r = co_await control_api_->handle(std::move(request));
      const PgActionAnswer answer{r.status, std::move(r.body)};
      const std::int64_t id = a.id;
      auto reply = [this, fence, id, answer] { return actions_->set_answer(fence, id, answer); };
      (void)co_await on_lease_thread(std::move(reply));
    }
  }

  // A standby's action: into the action table, and the active host's answer back.
  asio::awaitable<ControlResponse> forward_action(ControlRequest req) {
    static constexpr Millis kWait{20'000};
    static constexpr Millis kEvery{100};
    PgAction action{0, req.method, req.target, req.body, holder_name()};
    auto post = [this, action] { return actions_->post(action); };
    auto id = co_await on_lease_thread(std::move(post));
    if (!id) co_return ControlResponse{503, error_body("cannot reach the shared store: " + id.message())};
    asio::steady_timer timer(ioc_);
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    for (;;) {
      const std::int64_t n = *id;
      auto call = [this, n] { return actions_->answer(n); };
      auto answer = co_await on_lease_thread(std::move(call));
      if (answer && *answer) co_return ControlResponse{(*answer)->status, std::move((*answer)->body)};
      if (std::chrono::steady_clock::now() >= deadline) break;
      timer.expires_after(kEvery);
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (stopping_) break;
    }
    const std::int64_t n = *id;
    auto give_up = [this, n] { return actions_->withdraw(n); };
    auto withdrawn = co_await on_lease_thread(std::move(give_up));
    co_return ControlResponse{
        504, error_body(withdrawn && *withdrawn
                            ? "the active host did not take the request within " +
                                  format_duration(kWait) + "; it was withdrawn: nothing was done"
                            : "the active host took the request but its answer did not come "
                              "within " + format_duration(kWait) +
                                  "; see `personactl show` for what happened")};
  }

  static std::string error_body(const std::string& message) {
    return "{\"error\":" + boost::json::serialize(boost::json::value(message)) + "}";
  }

  // With [webhook]: every create without its own webhook_url gets the job's callback URL. On a
  // shared store, creates leave only while the lease is fresh.
  TrackerOptions tracker_options() {
    TrackerOptions o{config_.api, config_.poll, {}, {}};
    if (config_.webhook.enabled())
      o.hook_url = [url = config_.webhook.public_url,
                    secret = webhook_secret_](const std::string& client_ref) {
        return webhook_url_for(url, secret, client_ref);
      };
    if (lease_) o.may_send = [this] { return lease_fresh(); };
    return o;
  }

  // Runs a coroutine of the daemon on the loop; what it throws is logged, never propagated.
  template <class T>
  void spawn(asio::awaitable<T> work) {
    asio::co_spawn(ioc_, std::move(work), [this](std::exception_ptr e, auto&&...) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log_.event(level_enum::err, "internal_error", {{"reason", ex.what()}});
      }
    });
  }

  // One scan at a time; a request during a scan runs one more after it (files dropped while
  // it read the directory), never several.
  void request_scan() {
    if (scanning_) {
      rescan_ = true;
      return;
    }
    scanning_ = true;
    spawn(scan_loop());
  }

  asio::awaitable<void> scan_loop() {
    do {
      rescan_ = false;
      co_await scan_batches();
    } while (rescan_ && !stopping_);
    // A big batch's parse tree (toml++: ~10× the file) was freed on the parse thread's malloc
    // arena, which keeps it: hand it back, or a 30 MB batch leaves ~250 MiB resident for good.
    co_await asio::co_spawn(parse_pool_, trim_heap(), asio::use_awaitable);
    scanning_ = false;
    scan_ended_.cancel();  // wakes a reload waiting for this scan
  }

  // Every *.toml of the batches directory; a file with any error enqueues nothing. A file is
  // enqueued in chunks (one transaction each, on the store's thread), so a big batch neither
  // holds one huge transaction nor the loop. A file enqueued whole is remembered, and the same
  // content is not parsed again (already_enqueued).
  asio::awaitable<void> scan_batches() {
    // A chunk is one bulk write of the store thread: it commits in a group of its own, after
    // the writes taken with it (store_runner.hpp), so the creates' intent records wait behind
    // at most one chunk (~35 ms at 100,000 jobs). Smaller chunks only add hand-offs; larger
    // ones lengthen that wait and the loop's turn over each chunk's outcomes.
    static constexpr std::size_t kChunk = 250;
    std::size_t files = 0, queued = 0, invalid = 0, skipped = 0, known_files = 0;
    for (const auto& path : list_batch_files(config_.batches_directory)) {
      if (stopping_) co_return;
      ++files;
      // A FIFO, a device or a dangling link named *.toml is never opened (a FIFO would block
      // the reader, a device may act): it is named in a warning, not skipped silently.
      if (auto why = not_a_batch_file(path); !why.empty()) {
        ++skipped;
        log_.event(level_enum::warn, "batch_skipped", {{"file", path.string()}, {"reason", why}});
        continue;
      }
      if (co_await already_enqueued(path)) {
        ++known_files;
        continue;
      }
      BatchParse parse = co_await asio::co_spawn(parse_pool_, parse_batch_file(path),
                                                 asio::use_awaitable);
      if (!parse.ok()) {
        ++invalid;
        log_batch_errors(path.string(), parse);
        continue;
      }
      std::size_t n = 0, entries = parse.entries.size();
      bool failed = false;
      for (std::size_t first = 0; first < entries && !failed; first += kChunk) {
        std::vector<PersonaSpec> specs;
        for (std::size_t i = first; i < std::min(entries, first + kChunk); ++i)
          specs.push_back(std::move(parse.entries[i].spec));
        auto r = co_await tracker_->enqueue(std::move(specs), path.string());
        if (!r) {
          log_.event(level_enum::err, "batch_error",
                     {{"file", path.string()},
                      {"reason", r.message() + " (" + std::to_string(n) +
                                     " entries enqueued before; the next scan goes on)"}});
          failed = true;
          break;
        }
        for (const auto& o : *r) n += o.inserted ? 1 : 0;
      }
      if (!failed) co_await remember_batch(path.string(), parse.fingerprint, entries);
      queued += n;
      log_.event(n ? level_enum::info : level_enum::debug, "batch_read",
                 {{"file", path.string()},
                  {"entries", std::to_string(entries)},
                  {"queued", std::to_string(n)},
                  {"known", std::to_string(entries - n)}});
    }
    log_.event(level_enum::info, "batches_scanned",
               {{"directory", config_.batches_directory},
                {"files", std::to_string(files)},
                {"queued", std::to_string(queued)},
                {"invalid", std::to_string(invalid)},
                {"skipped", std::to_string(skipped)},
                {"known_files", std::to_string(known_files)}});
  }

  // Whether the store holds this very content for this path: an earlier scan enqueued every
  // entry of it (inserted or already known), so parsing it again (seconds and hundreds of MiB
  // for a 100,000-entry file) could only enqueue nothing. The record is in the jobs' database
  // and a key stays known for good (archived ones too), so that holds whatever changed since,
  // batches.media_root included: a new root may make the file invalid, or resolve its videos
  // elsewhere, but its keys are known either way. What the skip leaves out is reports only: the
  // spec_changed warnings of its first intake, and a rejection the new rules would now give
  // (design.md, "Intake").
  //
  // Only an optimisation: when the fingerprint or the look-up fails, the file is parsed as if
  // it were new.
  asio::awaitable<bool> already_enqueued(std::filesystem::path path) {
    const std::string file = path.string();
    // The memory first: a file never enqueued whole (the usual new file) is not hashed here at
    // all; its parse fingerprints the bytes it reads (BatchParse::fingerprint).
    // References only: GCC 12 miscompiles a lambda temporary that holds a std::string inside a
    // co_await expression (a double free); the frame keeps `file` alive meanwhile.
    auto known = co_await store_->read([&file](Store& s) { return s.remembered_batch(file); });
    if (!known) {
      log_.event(level_enum::warn, "batch_memory_failed",
                 {{"file", file},
                  {"reason", known.message() + "; the file is parsed as if it were new"}});
      co_return false;
    }
    if (!*known) co_return false;
    auto print = co_await asio::co_spawn(parse_pool_, fingerprint_batch_file(path),
                                         asio::use_awaitable);
    if (!print) {
      // The file's own trouble (gone, unreadable, too large): its parse reports it as before.
      log_.event(level_enum::debug, "batch_fingerprint_failed",
                 {{"file", file}, {"reason", print.message() + "; the file is parsed"}});
      co_return false;
    }
    if ((*known)->fingerprint != *print) co_return false;
    log_.event(level_enum::debug, "batch_known",
               {{"file", file}, {"entries", std::to_string((*known)->entries)}});
    co_return true;
  }

  // Every entry of the content `fingerprint` (the bytes parsed) is in the store now: the next
  // scan skips that content. Failing costs that scan a parse, nothing more.
  asio::awaitable<void> remember_batch(std::string file, std::string fingerprint,
                                       std::size_t entries) {
    if (fingerprint.empty()) co_return;
    const TimePoint now = clock_.now();
    const auto n = static_cast<std::int64_t>(entries);
    auto r = co_await store_->write([&file, &fingerprint, n, now](Store& s) {
      return s.remember_batch(file, fingerprint, n, now);
    });
    if (!r)
      log_.event(level_enum::warn, "batch_memory_failed",
                 {{"file", file},
                  {"reason", r.message() + "; the file is parsed again at the next scan"}});
  }

  // Why `path` (listed by list_batch_files) is no batch file, or "" when it is a regular file
  // (or vanished since it was listed: reading it reports that).
  static std::string not_a_batch_file(const std::filesystem::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0)
      return S_ISREG(st.st_mode) ? std::string()
                                 : "not a regular file (it is " +
                                       std::string(toml_support::file_type_name(st.st_mode)) +
                                       "); it is never opened and nothing of it is enqueued";
    if (errno == ENOENT && ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
      return "a symbolic link to nothing (dangling); nothing of it is enqueued";
    return {};
  }

  void log_batch_errors(const std::string& path, const BatchParse& parse) {
    for (const auto& e : parse.errors)
      log_.event(level_enum::err, "batch_error",
                 {{"file", e.file},
                  {"line", std::to_string(e.line)},
                  {"field", e.field},
                  {"reason", e.message}});
    log_.event(level_enum::err, "batch_rejected",
               {{"file", path},
                {"errors", std::to_string(parse.errors.size())},
                {"reason", "the file has errors; nothing of it was enqueued"}});
  }

  // Files dropped into the directory are read without waiting for a SIGHUP. A missing
  // directory is made if we may (so it can be watched), else only SIGHUP reads it later.
  void watch_batches() {
    watcher_.reset();
    std::error_code ec;
    if (!std::filesystem::exists(config_.batches_directory, ec) &&
        std::filesystem::create_directories(config_.batches_directory, ec))
      log_.event(level_enum::info, "created_directory",
                 {{"path", config_.batches_directory}, {"for", "batches"}});
    auto w = DirWatcher::watch(ioc_.get_executor(), config_.batches_directory,
                               [this] { request_scan(); });
    if (!w) {
      log_.event(level_enum::warn, "batches_not_watched",
                 {{"directory", config_.batches_directory},
                  {"reason", w.message() + "; new files are read on SIGHUP"}});
      return;
    }
    watcher_ = std::move(*w);
  }

  void watch_signals() {
    signals_.add(SIGHUP);
    signals_.add(SIGTERM);
    signals_.add(SIGINT);
    wait_signal();
  }

  void wait_signal() {
    signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig != SIGHUP) return begin_stop(sig);
      request_reload();
      wait_signal();
    });
  }

  // One reload at a time, run to its end (config read, batches scanned, queued rows adopted);
  // the SIGHUPs that arrive meanwhile make one more reload after it, never one each, and that
  // one starts at least kReloadSpacing after the previous one began: 100 SIGHUPs from a shell
  // loop are two reloads, not 100 rescans. A SIGHUP is never lost: a reload that begins after it
  // always follows (files dropped and config edited since are seen).
  static constexpr Millis kReloadSpacing{500};

  void request_reload() {
    ++reload_requests_;
    if (reloading_) return;
    reloading_ = true;
    spawn(reload_loop());
  }

  asio::awaitable<void> reload_loop() {
    while (reload_requests_ > 0 && !stopping_) {
      // Also across bursts: a SIGHUP just after a reload ended waits for the rest of the gap.
      if (last_reload_began_) {
        reload_gap_.expires_at(*last_reload_began_ + kReloadSpacing);
        co_await reload_gap_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (stopping_) break;
      }
      last_reload_began_ = std::chrono::steady_clock::now();
      const std::uint64_t absorbed = std::exchange(reload_requests_, 0);
      try {
        co_await reload(absorbed);
      } catch (const std::exception& ex) {
        // Logged, and the next SIGHUP still reloads.
        reload_error_ = ex.what();
      }
      if (!reload_error_.empty()) {
        log_.event(level_enum::err, "reload_failed",
                   {{"config", config_.source_path}, {"reason", std::exchange(reload_error_, {})}});
        // RELOADING=1 was sent: systemd waits for READY=1 (the running state is kept).
        if (!stopping_) notifier_.ready();
      }
    }
    reloading_ = false;
  }

  asio::awaitable<void> reload(std::uint64_t requests) {
    notifier_.reloading();
    log_.event(level_enum::info, "reloading",
               {{"config", config_.source_path}, {"requests", std::to_string(requests)}});
    const std::string path = config_.source_path;
    auto fresh = co_await asio::co_spawn(parse_pool_, load_config_file(path), asio::use_awaitable);
    if (stopping_) co_return;
    if (!fresh) {
      log_.event(level_enum::err, "reload_failed",
                 {{"config", config_.source_path},
                  {"reason", fresh.message() + "; keeping the running configuration"}});
    } else {
      apply_reloadable(*fresh);
    }
    if (!active_) {  // a standby takes no intake: the active host reads the batches
      notifier_.ready();
      update_status();
      co_return;
    }
    watch_batches();
    request_scan();
    // The reload ends with its scan (or with the scan that was running, and the one more it
    // runs for this request).
    while (scanning_ && !stopping_) {
      scan_ended_.expires_at(asio::steady_timer::time_point::max());
      co_await scan_ended_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (stopping_) co_return;
    co_await tracker_->adopt_queued();
    notifier_.ready();
    update_status();
  }

  void apply_reloadable(const Config& fresh) {
    std::vector<std::string> fixed;
    const Config& c = config_;
    if (fresh.api.base_url != c.api.base_url) fixed.push_back("api.base_url");
    if (fresh.api.credentials_file != c.api.credentials_file) fixed.push_back("api.credentials_file");
    if (fresh.api.timeout != c.api.timeout) fixed.push_back("api.timeout");
    if (fresh.api.max_requests_per_second != c.api.max_requests_per_second)
      fixed.push_back("api.max_requests_per_second");
    if (fresh.api.max_in_flight != c.api.max_in_flight) fixed.push_back("api.max_in_flight");
    if (fresh.api.list_path != c.api.list_path) fixed.push_back("api.list_path");
    if (fresh.api.ca_file != c.api.ca_file) fixed.push_back("api.ca_file");
    if (fresh.api.allow_insecure != c.api.allow_insecure) fixed.push_back("api.allow_insecure");
    if (fresh.store_path != c.store_path) fixed.push_back("store.path");
    if (fresh.store_url != c.store_url) fixed.push_back("store.url");
    if (fresh.takeover_after != c.takeover_after) fixed.push_back("store.takeover_after");
    if (fresh.control_socket != c.control_socket) fixed.push_back("control.socket");
    if (fresh.log.format != c.log.format) fixed.push_back("log.format");
    if (fresh.webhook.listen != c.webhook.listen) fixed.push_back("webhook.listen");
    if (fresh.webhook.public_url != c.webhook.public_url) fixed.push_back("webhook.public_url");
    if (fresh.webhook.secret_file != c.webhook.secret_file) fixed.push_back("webhook.secret_file");
    if (fresh.metrics_listen != c.metrics_listen) fixed.push_back("metrics.listen");
    for (const auto& key : fixed)
      log_.event(level_enum::warn, "reload_ignored",
                 {{"key", key}, {"reason", "cannot change while running; restart personad"}});
    Config next = config_;
    next.api.status = fresh.api.status;
    next.api.retry_initial = fresh.api.retry_initial;
    next.api.retry_max = fresh.api.retry_max;
    next.api.reconcile_after = fresh.api.reconcile_after;
    next.api.reconcile_give_up = fresh.api.reconcile_give_up;
    next.poll = fresh.poll;
    next.batches_directory = fresh.batches_directory;
    next.media_roots = fresh.media_roots;
    next.log.level = fresh.log.level;
    next.shutdown_grace = fresh.shutdown_grace;
    next.hook_on_transition = fresh.hook_on_transition;
    next.hook_timeout = fresh.hook_timeout;
    next.stuck_after = fresh.stuck_after;
    config_ = std::move(next);
    log_.logger().set_level(spdlog::level::from_str(config_.log.level));
    if (tracker_) tracker_->update_options(tracker_options());
    if (hooks_) hooks_->update(hook_options(config_));
    control_api_->set_stuck_after(config_.stuck_after);
    set_media_roots({config_.media_roots.begin(), config_.media_roots.end()});
  }

  // [alerts] stuck_after: one `stuck` event per job and stuck spell (stuck.hpp), found by the
  // store's --stuck selection every quarter of stuck_after (between 1 s and 10 min) while any
  // job is not final; with none, it sleeps until a job enters (an idle daemon never wakes).
  asio::awaitable<void> stuck_loop() {
    while (!stopping_) {
      co_await scan_stuck();
      const Millis every =
          std::clamp(Millis(config_.stuck_after.count() / 4), Millis(1'000), Millis(600'000));
      stuck_timer_.expires_after(every);
      co_await stuck_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
      while (!stopping_ && !co_await any_job_active()) {
        stuck_sleeping_ = true;
        stuck_timer_.expires_at(asio::steady_timer::time_point::max());
        co_await stuck_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        stuck_sleeping_ = false;
      }
    }
  }

  asio::awaitable<bool> any_job_active() {
    auto s = co_await store_->read([](Store& st) { return st.stats(); });
    if (!s) co_return true;  // cannot tell: keep looking
    std::int64_t active = 0;
    for (const auto& [state, n] : s->counts)
      if (!is_final(state)) active += n;
    co_return active > 0;
  }

  // A job entered a non-final state: the stuck scan has something to watch again.
  void wake_stuck_scan(const Transition& t) {
    if (stuck_sleeping_ && !is_final(t.to)) stuck_timer_.cancel();
  }

  // The estimates' model, learnt from the store's latest done jobs (on the store's thread), so
  // that a query answer does not read thousands of histories each time: at start, then at most
  // once a minute while jobs reach `done`. An idle daemon never wakes for it.
  asio::awaitable<void> eta_loop() {
    while (!stopping_) {
      eta_stale_ = false;
      const auto learnt = std::chrono::steady_clock::now();
      auto m = co_await store_->read(
          [](Store& st) -> Result<std::shared_ptr<const EtaModel>> { return learn_eta(st); });
      if (m && *m) eta_model_ = *m;
      // At start the first stats call then answers from a kept campaign estimate (later
      // rounds find it kept and do nothing: the stats calls refresh it).
      if (!stopping_ && control_api_) co_await control_api_->warm_stats_eta();
      // Nothing new to learn from: sleep until there is (no timer armed, no wake-up). Only
      // then the minute since the last lesson, so a start wakes nothing a minute later.
      while (!eta_stale_ && !stopping_) {
        eta_timer_.expires_at(asio::steady_timer::time_point::max());
        co_await eta_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
      }
      if (stopping_) break;
      eta_timer_.expires_at(learnt + std::chrono::minutes(1));
      co_await eta_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }

  // A job reached done: the model has something new to learn (woken if it sleeps).
  void eta_learnt_something() {
    if (eta_stale_) return;
    eta_stale_ = true;
    if (eta_timer_.expiry() == asio::steady_timer::time_point::max()) eta_timer_.cancel();
  }

  asio::awaitable<void> scan_stuck() {
    static constexpr std::int64_t kPage = 1'000;
    static constexpr int kMaxPages = 100;  // 100,000 stuck jobs a scan; the rest next time
    std::vector<Job> stuck;
    Selection sel;
    sel.stuck = true;
    sel.limit = kPage;
    SelectOptions opt;
    opt.stuck_before = add_saturating(clock_.now(), Millis(-config_.stuck_after.count()));
    // Counted first (O(stuck jobs)): with none stuck, the pages in list order, which walk every
    // non-final job to find none, are not read at all.
    auto count = co_await store_->read(
        [before = opt.stuck_before](Store& st) { return st.count_stuck(before); });
    for (int page = 0; page < kMaxPages && (!count || *count > 0); ++page) {
      // By reference: GCC 12 destroys a lambda temporary's by-value captures inside a co_await
      // twice (design.md), and from the second page on sel.after holds a string (a crash).
      auto r = co_await store_->read([&sel, &opt](Store& st) { return st.select(sel, opt); });
      if (!r) co_return;  // the store says why elsewhere; the next scan tries again
      for (auto& j : r->jobs) stuck.push_back(std::move(j));
      if (!r->has_more || stuck.empty()) break;
      sel.after = stuck.back().key;
    }
    for (const Job& j : stuck_log_.newly_stuck(stuck)) {
      const TimePoint since = j.status_since.value_or(j.updated_at);
      log_.event(level_enum::warn, "stuck",
                 {{"key", j.key},
                  {"remote_id", j.remote_id.value_or("")},
                  {"state", std::string(to_string(j.state))},
                  {"remote_status", j.remote_status.value_or("")},
                  {"since", format_rfc3339(since)},
                  {"reason", "no change of state or remote status for more than " +
                                 format_duration(config_.stuck_after)}});
    }
  }

  // [metrics] listen: the same page as the control socket's GET /metrics, over TCP.
  bool start_metrics_listener() {
    if (config_.metrics_listen.empty()) return true;
    auto address = parse_listen_address(config_.metrics_listen);
    if (!address) return fail("metrics listener", "metrics.listen: " + address.message());
    auto server = MetricsServer::listen(
        ioc_.get_executor(), *address, [this] { return control_api_->metrics_text(); },
        log_.logger_ptr());
    if (!server) return fail("metrics listener", server.message());
    metrics_server_ = std::move(*server);
    log_.event(level_enum::info, "metrics_listening",
               {{"address", config_.metrics_listen},
                {"port", std::to_string(metrics_server_->port())}});
    return true;
  }

  // [webhook] listen: the API's callbacks, each a hint to poll its job soon (debounced).
  bool start_webhook_listener() {
    if (!config_.webhook.enabled()) return true;
    auto address = parse_listen_address(config_.webhook.listen);
    if (!address) return fail("webhook listener", "webhook.listen: " + address.message());
    hook_poller_ = std::make_unique<HookPoller>(ioc_.get_executor(), clock_, kWebhookPollGap,
                                                [this](std::int64_t id) { tracker_->poll_soon(id); });
    WebhookListenerOptions options;
    options.secret = webhook_secret_;
    options.path_prefix = webhook_path_prefix(config_.webhook.public_url);
    auto listener = WebhookListener::listen(
        ioc_.get_executor(), *address, std::move(options),
        [this](std::string client_ref) { return find_hook_job(std::move(client_ref)); },
        [this](const HookJob& job) { on_webhook(job); }, log_.logger_ptr());
    if (!listener) return fail("webhook listener", listener.message());
    webhook_ = std::move(*listener);
    log_.event(level_enum::info, "webhook_listening",
               {{"address", config_.webhook.listen},
                {"port", std::to_string(webhook_->port())},
                {"public_url", config_.webhook.public_url}});
    return true;
  }

  asio::awaitable<Result<std::optional<HookJob>>> find_hook_job(std::string client_ref) {
    auto found =
        co_await store_->read([&client_ref](Store& s) { return s.find_by_client_ref(client_ref); });
    if (!found) co_return found.error();
    if (!*found) co_return std::optional<HookJob>();
    const Job& job = **found;
    co_return std::optional<HookJob>(HookJob{job.id, job.key, job.state});
  }

  // Only a pending job is polled: a final one has nothing left to learn, a queued or
  // submitting one is the create's business.
  void on_webhook(const HookJob& job) {
    const bool poll = job.state == State::pending && tracker_->is_tracking(job.id);
    log_.event(level_enum::info, "webhook",
               {{"key", job.key},
                {"state", std::string(to_string(job.state))},
                {"action", poll ? "poll" : "none"}});
    if (poll) hook_poller_->callback(job.id);
  }

  MetricsSnapshot::Webhook webhook_metrics() const {
    const WebhookListenerStats& w = webhook_->stats();
    MetricsSnapshot::Webhook m;
    for (std::size_t i = 0; i < kHookResults; ++i)
      m.requests.emplace_back(to_string(static_cast<HookResult>(i)), w.results[i]);
    m.polls = hook_poller_->stats().polls;
    m.evicted = w.evicted;
    m.open = w.open;
    return m;
  }

  void begin_stop(int sig) {
    if (stopping_) return;
    stopping_ = true;
    notifier_.stopping();
    log_.event(level_enum::info, "stopping",
               {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"},
                {"in_flight", std::to_string(in_flight())},
                {"grace", format_duration(config_.shutdown_grace)}});
    if (tracker_) tracker_->stop_taking_work();
    reload_gap_.cancel();
    scan_ended_.cancel();
    control_->stop();
    if (webhook_) webhook_->stop();
    if (hook_poller_) hook_poller_->stop();
    if (metrics_server_) metrics_server_->stop();
    watcher_.reset();
    stop_deadline_ = std::chrono::steady_clock::now() + config_.shutdown_grace;
    wait_for_drain();
  }

  // In-flight requests (and hooks) get shutdown_grace to finish and commit; then the rest is
  // abandoned (each job's row already says what may have happened, so nothing is lost).
  std::size_t in_flight() const { return tracker_ ? tracker_->in_flight() : 0; }

  void wait_for_drain() {
    bool drained = in_flight() == 0 && (!hooks_ || hooks_->idle());
    if (drained || std::chrono::steady_clock::now() >= stop_deadline_) {
      if (in_flight() != 0)
        log_.event(level_enum::warn, "stop_abandoned",
                   {{"in_flight", std::to_string(in_flight())},
                    {"reason", "grace period over; their jobs are reconciled at the next start"}});
      finish();
      return;
    }
    stop_timer_.expires_after(std::chrono::milliseconds(20));
    stop_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) wait_for_drain();
    });
  }

  void finish() {
    if (client_) client_->close();
    notifier_.stop_watchdog();
    signals_.cancel();
    status_timer_.cancel();
    eta_timer_.cancel();
    stuck_timer_.cancel();
    log_.event(level_enum::info, "stopped", {});
    exit_code_ = 0;
    ioc_.stop();
  }

  // A graceful stop hands the lease over at once: a standby takes over at its next look
  // instead of waiting for the lease to run out. (Blocking, once, at the very end; not after
  // the lease was lost.)
  void release_lease() {
    if (!lease_ || !fence_ || !active_ || exit_code_ != 0) return;
    active_ = false;
    if (auto r = lease_->release(*fence_); !r)
      log_.event(level_enum::warn, "lease_release_failed",
                 {{"reason", r.message() + "; a standby takes over when the lease runs out"}});
  }

  // STATUS= for systemctl status, at most once a second while things change.
  void status_dirty() {
    if (status_pending_ || stopping_) return;
    status_pending_ = true;
    status_timer_.expires_after(std::chrono::seconds(1));
    status_timer_.async_wait([this](const boost::system::error_code& ec) {
      status_pending_ = false;
      if (!ec) update_status();
    });
  }

  void update_status() { spawn(send_status()); }

  asio::awaitable<void> send_status() {
    auto s = co_await store_->read([](Store& st) { return st.stats(); });
    if (!s || stopping_) co_return;
    std::string text;
    for (State st : all_states()) {
      auto it = s->counts.find(st);
      text += std::string(text.empty() ? "" : " ") + std::string(to_string(st)) + "=" +
              std::to_string(it == s->counts.end() ? 0 : it->second);
    }
    if (auto due = tracker_ ? tracker_->next_due() : std::nullopt)
      text += "; next poll " + format_rfc3339(*due);
    if (lease_)
      text = active_ ? "active; " + text
                     : "standby (active: " + (active_host_.empty() ? "unknown" : active_host_) +
                           "); " + text;
    notifier_.status(text);
  }

  bool scanning_ = false;
  bool rescan_ = false;
  bool reloading_ = false;
  std::uint64_t reload_requests_ = 0;  // SIGHUPs not yet taken by a reload
  std::optional<std::chrono::steady_clock::time_point> last_reload_began_;
  std::string reload_error_;

  Config config_;
  Credentials credentials_;
  const EventLog& log_;
  asio::io_context ioc_{1};
  // Batch files are parsed here, off the loop (one thread: one file at a time anyway).
  asio::thread_pool parse_pool_{1};
  // The blocking libpq calls of the lease and the action table (a shared store only).
  asio::thread_pool lease_pool_{1};
  // (Both pools are declared after ioc_, so they go before it: a call still queued when the
  // loop stopped (lease_pool_.stop() drops it) is destroyed with its pool, and its completion
  // holds an executor of ioc_, which must still exist then. Declared before it, a lost lease
  // with a claim of forwarded actions queued read the freed io_context: SIGABRT, found by
  // Standby.APausedActiveHostWritesNothingAfterLosingTheLease under load and by ASan.)
  SystemClock clock_;
  asio::signal_set signals_;
  asio::steady_timer status_timer_;
  asio::steady_timer stop_timer_;
  asio::steady_timer scan_ended_;  // a reload waits on it for the scan it asked for
  asio::steady_timer reload_gap_;  // kReloadSpacing between two reloads
  Notifier notifier_;
  std::mt19937_64 rng_;
  std::unique_ptr<InstanceLock> lock_;
  std::unique_ptr<StoreRunner> store_;
  // A shared (PostgreSQL) store: the lease and the action table, each call on lease_pool_.
  PgTarget pg_target_;
  std::unique_ptr<PgLease> lease_;
  std::unique_ptr<PgActionQueue> actions_;
  std::optional<PgFence> fence_;  // the lease this host holds (active)
  std::chrono::steady_clock::time_point lease_renewed_at_{};  // when the last renewal was asked
  std::chrono::steady_clock::time_point lease_deadline_{};    // creates leave only before it
  std::string active_host_;  // a standby: who holds the lease, as last seen
  bool active_ = false;      // this host submits, polls and takes intake
  // A standby's read side and control API, kept (idle) once it took over: reads of theirs may
  // still be on their way.
  std::vector<std::unique_ptr<StoreRunner>> retired_stores_;
  std::unique_ptr<CreatifyClient> client_;
  std::unique_ptr<RedactingApi> api_;
  ApiRequestMetrics api_metrics_;
  std::unique_ptr<MeteredApi> metered_api_;
  std::unique_ptr<Tracker> tracker_;
  std::unique_ptr<HookRunner> hooks_;
  std::unique_ptr<DirWatcher> watcher_;
  std::unique_ptr<EventFeed> feed_;
  std::unique_ptr<ControlApi> control_api_;
  std::vector<std::unique_ptr<ControlApi>> retired_control_;
  std::unique_ptr<ControlServer> control_;
  std::string webhook_secret_;  // empty without [webhook]
  std::unique_ptr<HookPoller> hook_poller_;
  std::unique_ptr<WebhookListener> webhook_;
  std::unique_ptr<MetricsServer> metrics_server_;
  StuckLog stuck_log_;
  std::shared_ptr<const EtaModel> eta_model_;
  asio::steady_timer eta_timer_{ioc_};
  asio::steady_timer stuck_timer_{ioc_};
  bool stuck_sleeping_ = false;  // no job was active at the last look
  bool eta_stale_ = false;  // a job reached done since the model was last learnt
  std::chrono::steady_clock::time_point stop_deadline_;
  bool stopping_ = false;
  bool status_pending_ = false;
  int exit_code_ = 1;
};

}  // namespace

int run_daemon(Config config, Credentials credentials, const EventLog& log) {
  Daemon daemon(std::move(config), std::move(credentials), log);
  return daemon.run();
}

}  // namespace personad
