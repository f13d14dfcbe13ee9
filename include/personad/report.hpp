// `personactl report --html FILE` / `--svg FILE`: a self-contained picture of a selection of
// jobs (pure: the jobs and their histories in, the text out; no I/O, no clock).
//
// The HTML page has inline CSS and SVG only — no script, no font, no image or other fetch — so
// it opens offline, mails well and prints: counts per state, the estimate of the last
// completion, a timeline (one row per job: its time in each remote stage as coloured segments,
// its outcome marked at its end), a histogram of the time from submission to done, and the
// failures grouped by failed_reason. 5 jobs or 5,000: every job keeps its row; the rows get
// thinner as jobs get more (16 px down to 3 px; keys written beside rows of 8 px and more,
// every row carries its key and stages as a tooltip), and the timeline sits in a scroll area
// of at most 70% of the window's height, so the rest of the page stays in reach.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "personad/clock.hpp"
#include "personad/eta.hpp"
#include "personad/job.hpp"

namespace personad {

struct ReportJob {
  Job job;
  std::vector<Transition> history;  // oldest first
};

struct ReportInput {
  std::string title = "personad report";
  std::string selection;  // the filters, as the operator gave them ("" = every job)
  TimePoint now{};
  std::vector<ReportJob> jobs;  // in the selection's order
  std::optional<SelectionEta> eta;
  std::size_t more = 0;  // matching jobs left out (a --limit)
};

// One segment of a job's timeline: a stage from `from` to `to`.
struct StageSpan {
  std::string stage;  // eta_stage names: "@queued", "@submitting", a remote status
  TimePoint from{};
  TimePoint to{};
};
// The stages a job went through, from its history (a non-final job's last one runs to `now`).
std::vector<StageSpan> stage_spans(const ReportJob& job, TimePoint now);

// The timeline alone, as an SVG document (one <g class="row"> per job).
std::string render_timeline_svg(const ReportInput& in);
// The whole page.
std::string render_report_html(const ReportInput& in);

}  // namespace personad
