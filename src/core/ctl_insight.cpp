// personactl report (see ctl_insight.hpp).
#include "personad/ctl_insight.hpp"

#include <filesystem>
#include <fstream>

#include "personad/job_query.hpp"

namespace personad::ctl {

namespace {

// Written beside the target, then renamed over it: a reader never sees half a report.
Result<void> write_whole(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return make_error(ErrorKind::io, "cannot write " + tmp);
    out << text;
    out.flush();
    if (!out) return make_error(ErrorKind::io, "cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return make_error(ErrorKind::io, "cannot rename " + tmp + " to " + path + ": " + ec.message());
  return {};
}

std::string describe(const std::vector<SelectionParam>& params) {
  std::string s;
  for (const auto& [k, v] : params) s += (s.empty() ? "" : " ") + ("--" + k) + (v == "1" ? "" : " " + v);
  return s;
}

}  // namespace

Result<ReportInput> gather_report(const Store& store, const Selection& selection, TimePoint now,
                                  Millis stuck_after) {
  ReportInput in;
  in.now = now;
  SelectOptions opt;
  opt.stuck_before = add_saturating(now, Millis(-stuck_after.count()));
  Selection page = selection;
  const std::optional<std::int64_t> wanted = selection.limit;
  page.limit = wanted ? std::min<std::int64_t>(*wanted, kMaxPage) : kMaxPage;
  for (;;) {
    opt.count_more = wanted.has_value();
    auto r = store.select(page, opt);
    if (!r) return r.error();
    for (auto& j : r->jobs) {
      auto h = store.history(j.id);
      if (!h) return h.error();
      in.jobs.push_back({std::move(j), std::move(*h)});
    }
    if (wanted) {
      in.more = static_cast<std::size_t>(r->more);
      break;
    }
    if (!r->has_more || in.jobs.empty()) break;
    page.after = in.jobs.back().job.key;
  }
  if (auto model = learn_eta(store)) {
    std::vector<Job> active;
    for (const auto& j : in.jobs)
      if (!is_final(j.job.state)) active.push_back(j.job);
    in.eta = model->last_completion(active, now);
  }
  return in;
}

int report(const Context& ctx, const std::vector<SelectionParam>& params,
           const std::string& html_file, const std::string& svg_file) {
  if (html_file.empty() && svg_file.empty()) {
    ctx.err << "personactl report: name a file: --html FILE and/or --svg FILE\n";
    return kInvalid;
  }
  const TimePoint now = SystemClock().now();
  auto selection = parse_selection(params, now);
  if (!selection) {
    ctx.err << "personactl report: " << selection.message() << '\n';
    return kInvalid;
  }
  auto store = Store::open(ctx.config.store_path, OpenMode::read_only);
  if (!store) {
    ctx.err << "personactl report: " << store.message() << '\n';
    return kRefused;
  }
  auto in = gather_report(**store, *selection, now, ctx.stuck_after);
  if (!in) {
    ctx.err << "personactl report: " << in.message() << '\n';
    return kRefused;
  }
  in->selection = describe(params);
  for (const auto& [file, text] :
       {std::pair{html_file, html_file.empty() ? std::string() : render_report_html(*in)},
        std::pair{svg_file, svg_file.empty() ? std::string() : render_timeline_svg(*in)}}) {
    if (file.empty()) continue;
    if (auto w = write_whole(file, text); !w) {
      ctx.err << "personactl report: " << w.message() << '\n';
      return kRefused;
    }
    ctx.out << "wrote " << file << " (" << in->jobs.size() << " jobs)\n";
  }
  return kOk;
}

}  // namespace personad::ctl
