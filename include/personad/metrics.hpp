// The one metrics writer: everything personad exposes to Prometheus is gathered into a
// MetricsSnapshot and rendered by render_metrics (text exposition format 0.0.4), for the control
// socket's GET /metrics and the TCP listener ([metrics] listen) alike. Also the counters of API
// requests by operation and HTTP code, kept by MeteredApi (a CreatifyApi decorator).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "personad/clock.hpp"
#include "personad/creatify_api.hpp"
#include "personad/hooks.hpp"
#include "personad/store.hpp"
#include "personad/tracker.hpp"

namespace personad {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// A cumulative histogram over fixed upper bounds (+Inf implied).
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  const std::vector<double>& upper_bounds() const { return bounds_; }
  // Observations <= upper_bounds()[i] (cumulative), one per bound.
  const std::vector<std::uint64_t>& cumulative() const { return cumulative_; }
  std::uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> cumulative_;
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

// Prometheus text, one metric family at a time (HELP, TYPE, samples): the only place that
// knows the format (escaping of label values and help text, number spelling, NaN and +Inf).
class PrometheusText {
 public:
  using Samples = std::vector<std::pair<MetricLabels, double>>;
  void gauge(std::string_view name, std::string_view help, double value);
  void counter(std::string_view name, std::string_view help, double value);
  // type: "gauge" or "counter"; a family may have no samples yet.
  void family(std::string_view name, std::string_view help, std::string_view type,
              const Samples& samples);
  void histogram(std::string_view name, std::string_view help,
                 const std::vector<std::pair<MetricLabels, const Histogram*>>& series);
  const std::string& str() const { return out_; }

 private:
  void header(std::string_view name, std::string_view help, std::string_view type);
  void sample(std::string_view name, const MetricLabels& labels, double value);
  std::string out_;
};

// How a number is spelled in the text format: integers without a fraction, NaN, +Inf, -Inf.
std::string format_metric_value(double v);

// API requests since start: by operation ("create", "get", "list") and HTTP status ("0" when no
// answer arrived), and their durations by operation.
class ApiRequestMetrics {
 public:
  ApiRequestMetrics();
  void record(std::string_view op, int http_status, double seconds);
  // (op, code) → requests
  const std::map<std::pair<std::string, std::string>, std::uint64_t>& requests() const {
    return requests_;
  }
  const std::map<std::string, Histogram>& durations() const { return durations_; }

 private:
  std::map<std::pair<std::string, std::string>, std::uint64_t> requests_;
  std::map<std::string, Histogram> durations_;
};

// Records every request of `inner` (op, HTTP status, duration on `clock`) into `metrics`.
class MeteredApi final : public CreatifyApi {
 public:
  MeteredApi(CreatifyApi& inner, ApiRequestMetrics& metrics, const Clock& clock)
      : inner_(inner), metrics_(metrics), clock_(clock) {}
  boost::asio::awaitable<ApiResult<RemotePersona>> create(const PersonaSpec& spec,
                                                          std::string client_ref) override;
  boost::asio::awaitable<ApiResult<RemotePersona>> get(std::string id) override;
  boost::asio::awaitable<ApiResult<ListPage>> list_page(std::string target) override;
  boost::asio::awaitable<ApiResult<AvatarCapacity>> count() override;

 private:
  void record(std::string_view op, TimePoint began, int http_status);
  CreatifyApi& inner_;
  ApiRequestMetrics& metrics_;
  const Clock& clock_;
};

// Everything the metrics page shows, gathered by the control API (and the daemon's extras).
struct MetricsSnapshot {
  std::string version;
  std::optional<StoreStats> store;           // absent when the store could not be read
  std::optional<std::int64_t> jobs_stuck;    // non-final, unchanged for [alerts] stuck_after
  std::optional<double> oldest_pending_age;  // seconds since the oldest pending job's submission
  TrackerMetrics tracker;                    // counters since start
  std::size_t in_flight = 0;
  std::optional<double> next_due_seconds;
  const ApiRequestMetrics* api = nullptr;
  std::optional<HookStats> hooks;            // the daemon's hook runner
  // Avatars the workspace can still take; absent while unknown (rendered NaN).
  std::optional<std::int64_t> capacity_remaining;
  // The webhook listener's counters (webhook_listener.hpp); absent without [webhook].
  struct Webhook {
    std::vector<std::pair<std::string, std::uint64_t>> requests;  // by result label
    std::uint64_t polls = 0;    // polls the callbacks caused (debounced)
    std::uint64_t evicted = 0;  // connections closed at the cap while waiting for a header
    std::size_t open = 0;
  };
  std::optional<Webhook> webhook;
};

// What the page reads from the store, in one read: counts per state, stuck jobs (non-final,
// state and remote status unchanged since now − stuck_after) and the oldest pending job's age
// (the first pending job in the selection order, created_at; its age from submitted_at).
Result<void> read_store_metrics(const Store& store, TimePoint now, Millis stuck_after,
                                MetricsSnapshot& out);

// The Prometheus text of a snapshot (every family of the contract is always present).
std::string render_metrics(const MetricsSnapshot& s);

}  // namespace personad
