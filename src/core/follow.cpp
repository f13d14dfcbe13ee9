// The followed jobs of watch and wait (see follow.hpp).
#include "personad/follow.hpp"

#include <boost/json.hpp>

namespace personad {

namespace json = boost::json;

namespace {

std::string str(const json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::optional<State> state_of(const json::object& o, std::string_view name) {
  auto s = parse_state(str(o, name));
  if (!s) return std::nullopt;
  return *s;
}

}  // namespace

void Campaign::add(const json::object& job) {
  auto state = state_of(job, "state");
  const std::string key = str(job, "key");
  if (!state || key.empty()) return;
  jobs_[key] = FollowedJob{*state, str(job, "remote_status"), str(job, "eta")};
}

void Campaign::clear() { jobs_.clear(); }

bool Campaign::apply(const json::object& event) {
  auto it = jobs_.find(str(event, "key"));
  auto to = state_of(event, "to");
  if (it == jobs_.end() || !to) return false;
  it->second.state = *to;
  it->second.remote_status = str(event, "remote_status");
  if (is_final(*to)) it->second.eta.clear();
  latest_.push_back(event_line(event));
  while (latest_.size() > kLatest) latest_.pop_front();
  return true;
}

std::size_t Campaign::final_count() const {
  std::size_t n = 0;
  for (const auto& [k, j] : jobs_) n += is_final(j.state) ? 1 : 0;
  return n;
}

std::map<State, std::size_t> Campaign::counts() const {
  std::map<State, std::size_t> out;
  for (State s : {State::queued, State::submitting, State::pending, State::done, State::failed,
                  State::expired, State::cancelled})
    out[s] = 0;
  for (const auto& [k, j] : jobs_) ++out[j.state];
  return out;
}

std::map<std::string, std::size_t> Campaign::stages() const {
  std::map<std::string, std::size_t> out;
  for (const auto& [k, j] : jobs_)
    if (!is_final(j.state)) ++out[j.remote_status.empty() ? "-" : j.remote_status];
  return out;
}

std::string Campaign::eta() const {
  std::string latest;
  for (const auto& [k, j] : jobs_)
    if (!is_final(j.state) && j.eta > latest) latest = j.eta;  // RFC 3339 UTC sorts as text
  return latest;
}

std::string event_line(const json::object& e) {
  const std::string from = str(e, "from");
  std::string line = str(e, "at") + ' ' + str(e, "key") + ' ' + (from.empty() ? "-" : from) +
                     " -> " + str(e, "to");
  const std::string rs = str(e, "remote_status");
  if (!rs.empty()) line += " remote_status=" + rs;
  const std::string reason = str(e, "reason");
  if (!reason.empty()) line += " reason=" + json::serialize(json::value(reason));
  return line;
}

std::string summary_line(const Campaign& c) {
  std::string line = std::to_string(c.total()) + (c.total() == 1 ? " job" : " jobs");
  std::string parts;
  for (const auto& [s, n] : c.counts()) {
    if (n == 0) continue;
    parts += (parts.empty() ? "" : ", ") + std::to_string(n) + ' ' + std::string(to_string(s));
  }
  if (!parts.empty()) line += ": " + parts;
  return line + " (" + std::to_string(c.final_count()) + " final)";
}

int wait_exit_code(const Campaign& c) {
  const auto counts = c.counts();
  const std::size_t bad =
      counts.at(State::failed) + counts.at(State::expired) + counts.at(State::cancelled);
  return bad > 0 ? 3 : 0;
}

std::string progress_bar(std::size_t final_count, std::size_t total, std::size_t width) {
  const std::size_t filled = total == 0 ? width : final_count * width / total;
  return '[' + std::string(filled, '#') + std::string(width - filled, '.') + "] " +
         std::to_string(final_count) + '/' + std::to_string(total);
}

}  // namespace personad
