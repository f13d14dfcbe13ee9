// The HTML/SVG report (see report.hpp).
#include "personad/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>

namespace personad {

namespace {

std::string esc(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

double hours(Millis d) { return static_cast<double>(d.count()) / 3600'000.0; }

std::string human(Millis d) {
  const double h = hours(d);
  char b[32];
  if (h < 1) std::snprintf(b, sizeof b, "%.0f min", h * 60);
  else if (h < 48) std::snprintf(b, sizeof b, "%.1f h", h);
  else std::snprintf(b, sizeof b, "%.1f d", h / 24);
  return b;
}

// "2026-12-01 06:00" (UTC)
std::string short_time(TimePoint t) {
  std::string s = format_rfc3339(t);
  return s.size() >= 16 ? s.substr(0, 10) + " " + s.substr(11, 5) : s;
}

// Colours of the documented stages; others get one of the spare colours by name.
std::string stage_colour(const std::string& stage) {
  static const std::map<std::string, std::string> known = {
      {"@queued", "#c8ccd2"},         {"@submitting", "#9ecae1"},
      {"pending", "#fdd49e"},         {"processing", "#fdae6b"},
      {"voice_creating", "#a1d99b"},  {"video_validating", "#74c476"},
      {"crop_and_matte", "#6baed6"},  {"reviewing", "#9e9ac8"},
      {"done", "#31a354"}};
  if (auto it = known.find(stage); it != known.end()) return it->second;
  static const char* spare[] = {"#e7969c", "#d6616b", "#bcbddc", "#c7e9c0", "#fdd0a2", "#dadaeb"};
  return spare[std::hash<std::string>{}(stage) % std::size(spare)];
}

std::string outcome_colour(State s) {
  switch (s) {
    case State::done: return "#1a7f37";
    case State::failed: return "#cf222e";
    case State::expired: return "#6e7781";
    case State::cancelled: return "#24292f";
    default: return "none";
  }
}

TimePoint final_time(const ReportJob& j) {
  if (!j.history.empty() && is_final(j.history.back().to)) return j.history.back().at;
  return j.job.updated_at;
}

// Row height by the number of rows: every job keeps a row.
int row_height(std::size_t rows) {
  if (rows <= 100) return 16;
  if (rows <= 500) return 8;
  if (rows <= 2000) return 4;
  return 3;
}

struct Axis {
  TimePoint t0{}, t1{};
  double x0 = 0, x1 = 0;
  double x(TimePoint t) const {
    const double span = static_cast<double>((t1 - t0).count());
    return x0 + (x1 - x0) * static_cast<double>((t - t0).count()) / (span > 0 ? span : 1);
  }
};

Axis time_axis(const ReportInput& in, double x0, double x1) {
  Axis a;
  a.x0 = x0;
  a.x1 = x1;
  bool any = false;
  for (const auto& j : in.jobs) {
    const TimePoint start = j.history.empty() ? j.job.created_at : j.history.front().at;
    const TimePoint end = is_final(j.job.state) ? final_time(j) : in.now;
    if (!any || start < a.t0) a.t0 = start;
    if (!any || end > a.t1) a.t1 = end;
    any = true;
  }
  if (!any) a.t0 = a.t1 = in.now;
  if (a.t1 <= a.t0) a.t1 = a.t0 + Millis(3600'000);
  return a;
}

// Vertical grid lines and their labels: steps of 1 h, 6 h, 1 d or 7 d, at most ~10 of them.
std::string ticks(const Axis& a, double top, double bottom) {
  const Millis span = a.t1 - a.t0;
  Millis step{3600'000};
  for (Millis s : {Millis(3600'000), Millis(6 * 3600'000), Millis(24 * 3600'000),
                   Millis(7 * 24 * 3600'000)}) {
    step = s;
    if (span / s <= 10) break;
  }
  std::string o;
  const auto first = (a.t0.time_since_epoch() / step + 1) * step;
  for (TimePoint t{first}; t <= a.t1; t += step) {
    const double x = a.x(t);
    o += "<line class=\"grid\" x1=\"" + num(x) + "\" y1=\"" + num(top) + "\" x2=\"" + num(x) +
         "\" y2=\"" + num(bottom) + "\"/>";
    o += "<text class=\"tick\" x=\"" + num(x) + "\" y=\"" + num(top - 4) +
         "\" text-anchor=\"middle\">" + esc(short_time(t).substr(5)) + "</text>";
  }
  return o;
}

std::string legend(const std::vector<std::string>& stages, double y) {
  std::string o;
  double x = 10;
  for (const auto& s : stages) {
    o += "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"12\" height=\"12\" fill=\"" +
         stage_colour(s) + "\"/><text class=\"legend\" x=\"" + num(x + 16) + "\" y=\"" +
         num(y + 10) + "\">" + esc(s) + "</text>";
    x += 24 + 7.0 * static_cast<double>(s.size());
  }
  for (State st : {State::done, State::failed, State::expired, State::cancelled}) {
    o += "<circle cx=\"" + num(x + 6) + "\" cy=\"" + num(y + 6) + "\" r=\"5\" fill=\"" +
         outcome_colour(st) + "\"/><text class=\"legend\" x=\"" + num(x + 16) + "\" y=\"" +
         num(y + 10) + "\">" + std::string(to_string(st)) + "</text>";
    x += 24 + 7.0 * static_cast<double>(to_string(st).size());
  }
  return o;
}

std::string svg_style() {
  return "<style>text{font:11px sans-serif;fill:#24292f}.tick{font-size:10px;fill:#57606a}"
         ".grid{stroke:#d0d7de;stroke-width:1}.key{font:10px monospace}"
         ".legend{font-size:11px}</style>";
}

}  // namespace

std::vector<StageSpan> stage_spans(const ReportJob& j, TimePoint now) {
  std::vector<StageSpan> out;
  for (std::size_t i = 0; i < j.history.size(); ++i) {
    const Transition& t = j.history[i];
    if (is_final(t.to)) continue;
    const TimePoint end = i + 1 < j.history.size() ? j.history[i + 1].at : now;
    const std::string stage = eta_stage(t.to, t.remote_status);
    if (!out.empty() && out.back().stage == stage && out.back().to == t.at) {
      out.back().to = end;  // a history row that changed nothing the timeline shows
      continue;
    }
    out.push_back({stage, t.at, std::max(end, t.at)});
  }
  return out;
}

std::string render_timeline_svg(const ReportInput& in) {
  const std::size_t rows = in.jobs.size();
  const int rh = row_height(rows);
  const bool keys = rh >= 8;
  const double width = 1000, label = keys ? 170 : 10, top = 40;
  const Axis axis = time_axis(in, label, width - 20);
  const double bottom = top + static_cast<double>(rows * rh);
  // Every stage that appears, documented ones first in their order.
  std::vector<std::string> stages;
  std::vector<std::vector<StageSpan>> spans;
  for (const auto& j : in.jobs) {
    spans.push_back(stage_spans(j, in.now));
    for (const auto& s : spans.back())
      if (std::find(stages.begin(), stages.end(), s.stage) == stages.end()) stages.push_back(s.stage);
  }
  const double height = bottom + 40;
  std::string o = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" width=\"" +
                  num(width) + "\" height=\"" + num(height) + "\" viewBox=\"0 0 " + num(width) +
                  " " + num(height) + "\" role=\"img\" aria-label=\"timeline of " +
                  std::to_string(rows) + " jobs\">" + svg_style();
  o += ticks(axis, top, bottom);
  for (std::size_t r = 0; r < rows; ++r) {
    const ReportJob& j = in.jobs[r];
    const double y = top + static_cast<double>(r * rh);
    std::string tip = j.job.key + ": " + std::string(to_string(j.job.state));
    for (const auto& s : spans[r]) tip += "\n" + s.stage + " " + human(s.to - s.from);
    if (j.job.failed_reason) tip += "\nfailed: " + *j.job.failed_reason;
    o += "<g class=\"row\" data-key=\"" + esc(j.job.key) + "\" data-state=\"" +
         std::string(to_string(j.job.state)) + "\"><title>" + esc(tip) + "</title>";
    if (keys)
      o += "<text class=\"key\" x=\"" + num(label - 6) + "\" y=\"" + num(y + rh - 3) +
           "\" text-anchor=\"end\">" + esc(j.job.key.substr(0, 24)) + "</text>";
    for (const auto& s : spans[r]) {
      const double x0 = axis.x(s.from), x1 = std::max(axis.x(s.to), x0 + 1);
      o += "<rect x=\"" + num(x0) + "\" y=\"" + num(y + (rh > 4 ? 1 : 0)) + "\" width=\"" +
           num(x1 - x0) + "\" height=\"" + std::to_string(rh > 4 ? rh - 2 : rh) + "\" fill=\"" +
           stage_colour(s.stage) + "\"/>";
    }
    if (is_final(j.job.state)) {
      const double x = axis.x(final_time(j));
      o += "<circle class=\"outcome\" cx=\"" + num(x) + "\" cy=\"" + num(y + rh / 2.0) +
           "\" r=\"" + num(std::max(1.5, rh / 2.0 - 1)) + "\" fill=\"" +
           outcome_colour(j.job.state) + "\"/>";
    }
    o += "</g>";
  }
  o += legend(stages, bottom + 14);
  o += "</svg>";
  return o;
}

namespace {

std::string counts_section(const ReportInput& in) {
  std::map<State, std::size_t> counts;
  for (const auto& j : in.jobs) ++counts[j.job.state];
  std::string table = "<table><tr><th>state</th><th>jobs</th></tr>";
  std::string bar = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"24\" "
                    "role=\"img\" aria-label=\"jobs per state\">";
  double x = 0;
  const double total = static_cast<double>(std::max<std::size_t>(in.jobs.size(), 1));
  static const std::map<State, std::string> colour = {
      {State::queued, "#c8ccd2"}, {State::submitting, "#9ecae1"}, {State::pending, "#fdae6b"},
      {State::done, "#1a7f37"},   {State::failed, "#cf222e"},     {State::expired, "#6e7781"},
      {State::cancelled, "#24292f"}};
  for (State st : all_states()) {
    const std::size_t n = counts[st];
    table += "<tr><td><span class=\"swatch\" style=\"background:" + colour.at(st) + "\"></span>" +
             std::string(to_string(st)) + "</td><td class=\"n\">" + std::to_string(n) + "</td></tr>";
    if (n == 0) continue;
    const double w = 600.0 * static_cast<double>(n) / total;
    bar += "<rect x=\"" + num(x) + "\" y=\"0\" width=\"" + num(w) + "\" height=\"24\" fill=\"" +
           colour.at(st) + "\"><title>" + std::string(to_string(st)) + ": " + std::to_string(n) +
           "</title></rect>";
    x += w;
  }
  table += "<tr><th>total</th><th class=\"n\">" + std::to_string(in.jobs.size()) + "</th></tr></table>";
  bar += "</svg>";
  return "<section id=\"counts\"><h2>Jobs per state</h2>" + bar + table + "</section>";
}

std::string eta_section(const ReportInput& in) {
  std::string o = "<section id=\"eta\"><h2>When will it be done</h2>";
  if (!in.eta || !in.eta->p50) {
    bool active = false;
    for (const auto& j : in.jobs) active = active || !is_final(j.job.state);
    o += active ? "<p>No estimate: every active job has taken longer than any observed one.</p>"
                : "<p>Every selected job is final.</p>";
  } else {
    o += "<p>Last completion of the " + std::to_string(in.eta->jobs) +
         " active jobs: median <b>" + esc(short_time(*in.eta->p50)) + " UTC</b>, 90%: <b>" +
         esc(short_time(*in.eta->p90)) + " UTC</b> (" +
         (in.eta->basis == "observed" ? "from the durations observed here"
                                      : "from the documented 1–5 day window") +
         ").</p>";
  }
  return o + "</section>";
}

std::string histogram_section(const ReportInput& in) {
  std::vector<double> h;
  for (const auto& j : in.jobs) {
    if (j.job.state != State::done) continue;
    const TimePoint from = j.job.submitted_at.value_or(j.job.created_at);
    h.push_back(hours(final_time(j) - from));
  }
  std::string o = "<section id=\"histogram\"><h2>Time from submission to done</h2>";
  if (h.empty()) return o + "<p>No job is done yet.</p></section>";
  const double max = *std::max_element(h.begin(), h.end());
  double bin = 1;
  for (double b : {1.0, 3.0, 6.0, 12.0, 24.0}) {
    bin = b;
    if (max / b <= 24) break;
  }
  const auto bins = static_cast<std::size_t>(std::floor(max / bin)) + 1;
  std::vector<std::size_t> count(bins, 0);
  for (double v : h) ++count[std::min(bins - 1, static_cast<std::size_t>(v / bin))];
  const std::size_t peak = *std::max_element(count.begin(), count.end());
  const double W = 600, H = 160, bw = W / static_cast<double>(bins);
  o += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(W + 40) + "\" height=\"" +
       num(H + 30) + "\" role=\"img\" aria-label=\"histogram of time to done\">" + svg_style();
  for (std::size_t i = 0; i < bins; ++i) {
    const double bh = H * static_cast<double>(count[i]) / static_cast<double>(peak);
    o += "<rect class=\"bin\" x=\"" + num(20 + bw * static_cast<double>(i)) + "\" y=\"" +
         num(H - bh) + "\" width=\"" + num(std::max(1.0, bw - 1)) + "\" height=\"" + num(bh) +
         "\" fill=\"#31a354\"><title>" + num(bin * static_cast<double>(i)) + "–" +
         num(bin * static_cast<double>(i + 1)) + " h: " + std::to_string(count[i]) +
         "</title></rect>";
    if (i % std::max<std::size_t>(1, bins / 8) == 0)
      o += "<text class=\"tick\" x=\"" + num(20 + bw * static_cast<double>(i)) + "\" y=\"" +
           num(H + 14) + "\">" + num(bin * static_cast<double>(i)) + " h</text>";
  }
  std::vector<double> sorted = h;
  std::sort(sorted.begin(), sorted.end());
  o += "</svg><p>" + std::to_string(h.size()) + " done; median " +
       num(sorted[sorted.size() / 2]) + " h, slowest " + num(max) + " h.</p></section>";
  return o;
}

std::string failures_section(const ReportInput& in) {
  std::map<std::string, std::vector<std::string>> by_reason;
  for (const auto& j : in.jobs)
    if (j.job.state == State::failed)
      by_reason[j.job.failed_reason.value_or("(no reason given)")].push_back(j.job.key);
  std::string o = "<section id=\"failures\"><h2>Failures</h2>";
  if (by_reason.empty()) return o + "<p>None.</p></section>";
  std::vector<std::pair<std::string, std::vector<std::string>>> rows(by_reason.begin(), by_reason.end());
  std::stable_sort(rows.begin(), rows.end(),
                   [](const auto& a, const auto& b) { return a.second.size() > b.second.size(); });
  o += "<table><tr><th>failed_reason</th><th>jobs</th><th>keys</th></tr>";
  for (const auto& [reason, keys] : rows) {
    std::string list;
    for (std::size_t i = 0; i < keys.size() && i < 5; ++i) list += (i ? ", " : "") + esc(keys[i]);
    if (keys.size() > 5) list += ", … " + std::to_string(keys.size() - 5) + " more";
    o += "<tr class=\"failure\"><td>" + esc(reason) + "</td><td class=\"n\">" +
         std::to_string(keys.size()) + "</td><td>" + list + "</td></tr>";
  }
  return o + "</table></section>";
}

}  // namespace

std::string render_report_html(const ReportInput& in) {
  std::string o =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width\"><title>" + esc(in.title) +
      "</title><style>"
      "body{font:14px/1.4 sans-serif;color:#24292f;margin:24px;max-width:1060px}"
      "h1{font-size:22px}h2{font-size:17px;margin-top:28px}"
      "table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #d0d7de;"
      "text-align:left;vertical-align:top}.n{text-align:right}"
      ".swatch{display:inline-block;width:10px;height:10px;margin-right:6px}"
      ".scroll{max-height:70vh;overflow-y:auto;border:1px solid #d0d7de}"
      ".meta{color:#57606a}"
      "</style></head><body>";
  o += "<h1>" + esc(in.title) + "</h1><p class=\"meta\">" + std::to_string(in.jobs.size()) +
       " jobs" + (in.selection.empty() ? "" : " selected by " + esc(in.selection)) +
       (in.more ? " (" + std::to_string(in.more) + " more matching jobs left out)" : "") +
       "; as of " + esc(short_time(in.now)) + " UTC.</p>";
  o += counts_section(in);
  o += eta_section(in);
  o += "<section id=\"timeline\"><h2>Timeline</h2><p class=\"meta\">One row per job, oldest "
       "first: its time in each stage, its outcome marked where it ended. Hover a row for its "
       "key and stages.</p><div class=\"scroll\">" +
       render_timeline_svg(in) + "</div></section>";
  o += histogram_section(in);
  o += failures_section(in);
  o += "</body></html>\n";
  return o;
}

}  // namespace personad
