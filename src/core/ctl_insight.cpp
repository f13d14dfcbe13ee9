// personactl report (see ctl_insight.hpp).
#include "personad/ctl_insight.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <spdlog/logger.h>
#include <spdlog/sinks/null_sink.h>

#include "personad/archive.hpp"
#include "personad/audit.hpp"
#include "personad/creatify_client.hpp"
#include "personad/job_query.hpp"
#include "personad/remote_list.hpp"
#include "personad/store_open.hpp"

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
  auto store = open_configured_store(ctx.config, OpenMode::read_only);
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

int audit(const Context& ctx, bool as_json) {
  auto credentials = load_credentials(ctx.config, process_env());
  if (!credentials) {
    ctx.err << "personactl audit: " << credentials.message() << '\n';
    return kRefused;
  }
  auto store = open_configured_store(ctx.config, OpenMode::read_only);
  if (!store) {
    ctx.err << "personactl audit: " << store.message() << '\n';
    return kRefused;
  }
  auto jobs = (*store)->list();
  if (!jobs) {
    ctx.err << "personactl audit: " << jobs.message() << '\n';
    return kRefused;
  }
  boost::asio::io_context ioc;
  auto quiet = std::make_shared<spdlog::logger>("personactl",
                                                std::make_shared<spdlog::sinks::null_sink_mt>());
  auto client = CreatifyClient::create_client(ioc.get_executor(), client_options_from(ctx.config.api),
                                              *credentials, quiet);
  if (!client) {
    ctx.err << "personactl audit: " << client.message() << '\n';
    return kRefused;
  }
  SystemClock clock;
  ListingOptions options;
  options.retry_initial = ctx.config.api.retry_initial;
  options.retry_max = std::min(ctx.config.api.retry_max, Millis(10'000));
  std::mt19937_64 rng(std::random_device{}());
  std::optional<ApiResult<Listing>> listing;
  boost::asio::co_spawn(
      ioc,
      fetch_listing(**client, clock, options,
                    [&rng] { return std::uniform_real_distribution<double>(0, 1)(rng); }),
      [&](std::exception_ptr e, ApiResult<Listing> r) {
        if (!e) listing = std::move(r);
        (*client)->close();
      });
  ioc.run();
  if (!listing || listing->outcome != Outcome::ok) {
    ctx.err << "personactl audit: cannot list the API's personas: "
            << (listing ? listing->message : std::string("internal error")) << '\n';
    return kRefused;
  }
  const AuditFindings f = personad::audit(listing->value.items, *jobs);
  if (as_json)
    ctx.out << boost::json::serialize(audit_to_json(f)) << '\n';
  else
    ctx.out << audit_text(f);
  return kOk;
}

int archive(const Context& ctx, const std::string& before, const std::string& file) {
  if (before.empty() || file.empty()) {
    ctx.err << "personactl archive: needs --before T and --to FILE\n";
    return kInvalid;
  }
  const TimePoint now = SystemClock().now();
  // The selection's parser reads T (RFC 3339, or a duration back from now).
  auto t = parse_selection({{"until", before}}, now);
  if (!t || !t->until) {
    ctx.err << "personactl archive: --before: " << (t ? std::string("bad time") : t.message()) << '\n';
    return kInvalid;
  }
  auto store = open_configured_store(ctx.config, OpenMode::read_write);
  if (!store) {
    ctx.err << "personactl archive: " << store.message() << '\n';
    return kRefused;
  }
  auto r = archive_jobs(**store, *t->until, file, now);
  if (!r) {
    ctx.err << "personactl archive: " << r.message() << '\n';
    return kRefused;
  }
  ctx.out << "archived " << r->dropped << " jobs to " << file << " (" << r->written
          << " lines written, " << r->already << " there from an earlier run)\n";
  return kOk;
}

}  // namespace personad::ctl
