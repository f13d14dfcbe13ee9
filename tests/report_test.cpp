// The report (report.hpp): stage spans from histories, a self-contained page (no script, no
// fetch), one timeline row per job for 5 and 5,000 jobs, failures grouped; and the page as a
// real browser sees it: headless Chromium renders it to a PNG that is not blank, and its DOM
// has the expected number of timeline rows (skipped with a message when chromium is absent).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>

#include "personad/ctl_insight.hpp"
#include "personad/report.hpp"
#include "personad/store.hpp"
#include "temp_dir.hpp"

namespace personad {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using std::chrono::hours;
using std::chrono::minutes;

const TimePoint kT0 = from_unix_ms(1'790'000'000'000);

// Job i: queued and sent at kT0 + 10 min·i, then pending → processing → reviewing; every
// third one done, every seventh failed (two reasons), the rest still reviewing.
ReportJob synthetic(std::size_t i) {
  ReportJob r;
  Job& j = r.job;
  j.id = static_cast<std::int64_t>(i + 1);
  j.key = "job-" + std::to_string(i);
  const TimePoint t = kT0 + minutes(10 * i);
  j.created_at = t;
  j.submitted_at = t + minutes(1);
  r.history = {{j.id, t, std::nullopt, State::queued, "", "batch"},
               {j.id, t, State::queued, State::submitting, "", "send"},
               {j.id, t + minutes(1), State::submitting, State::pending, "pending", "created"},
               {j.id, t + hours(2), State::pending, State::pending, "processing", "poll"},
               {j.id, t + hours(12), State::pending, State::pending, "reviewing", "poll"}};
  j.state = State::pending;
  j.remote_status = "reviewing";
  if (i % 3 == 0) {
    j.state = State::done;
    r.history.push_back({j.id, t + hours(30 + static_cast<int>(i % 5)), State::pending,
                         State::done, "done", "poll"});
  } else if (i % 7 == 0) {
    j.state = State::failed;
    j.failed_reason = i % 2 ? "consent video <rejected> & \"unclear\"" : "face not detected";
    r.history.push_back({j.id, t + hours(20), State::pending, State::failed, "failed", "poll"});
  }
  j.updated_at = r.history.back().at;
  return r;
}

ReportInput input(std::size_t n) {
  ReportInput in;
  in.now = kT0 + hours(48);
  for (std::size_t i = 0; i < n; ++i) in.jobs.push_back(synthetic(i));
  SelectionEta eta;
  eta.p50 = in.now + hours(20);
  eta.p90 = in.now + hours(30);
  eta.basis = "observed";
  eta.jobs = n;
  in.eta = eta;
  return in;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(Report, StageSpansFollowTheHistory) {
  const auto spans = stage_spans(synthetic(3), kT0 + hours(100));  // done at +33h (+30 min)
  std::vector<std::string> stages;
  for (const auto& s : spans) stages.push_back(s.stage);
  EXPECT_EQ(stages, (std::vector<std::string>{"@queued", "@submitting", "pending", "processing",
                                              "reviewing"}));
  const TimePoint t = kT0 + minutes(30);
  EXPECT_EQ(spans[3].from, t + hours(2));
  EXPECT_EQ(spans[3].to, t + hours(12));
  EXPECT_EQ(spans.back().to, t + hours(33));  // ends when it was done, not now
  // A job still reviewing runs to now.
  EXPECT_EQ(stage_spans(synthetic(1), kT0 + hours(100)).back().to, kT0 + hours(100));
}

TEST(Report, PageIsSelfContainedWithOneRowPerJob) {
  for (std::size_t n : {5u, 5000u}) {
    const std::string html = render_report_html(input(n));
    EXPECT_EQ(count(html, "<g class=\"row\""), n);
    EXPECT_THAT(html, Not(HasSubstr("<script")));
    EXPECT_THAT(html, Not(HasSubstr(" src=")));
    EXPECT_THAT(html, Not(HasSubstr(" href=")));
    EXPECT_THAT(html, Not(HasSubstr("@import")));
    EXPECT_THAT(html, Not(HasSubstr("url(")));
    // The only URL is the SVG namespace's name (never fetched).
    std::string rest = html;
    for (auto at = rest.find("http://www.w3.org/2000/svg"); at != std::string::npos;
         at = rest.find("http://www.w3.org/2000/svg"))
      rest.erase(at, 26);
    EXPECT_THAT(rest, Not(HasSubstr("http://")));
    EXPECT_THAT(rest, Not(HasSubstr("https://")));
    for (const char* section : {"id=\"counts\"", "id=\"eta\"", "id=\"timeline\"",
                                "id=\"histogram\"", "id=\"failures\""})
      EXPECT_THAT(html, HasSubstr(section));
  }
}

TEST(Report, ManyJobsGetThinRowsInAScrollArea) {
  const std::string few = render_report_html(input(5));
  const std::string many = render_report_html(input(5000));
  EXPECT_THAT(few, HasSubstr("class=\"key\""));      // keys written beside 16 px rows
  EXPECT_THAT(many, Not(HasSubstr("class=\"key\"")));  // 3 px rows: keys in the tooltips
  EXPECT_THAT(many, HasSubstr("<title>job-4999: pending"));
  EXPECT_THAT(many, HasSubstr("class=\"scroll\""));
  EXPECT_THAT(many, HasSubstr("max-height:70vh"));
}

TEST(Report, FailuresAreGroupedByReasonAndEscaped) {
  const std::string html = render_report_html(input(50));
  // Failed: i % 7 == 0 and i % 3 != 0: 7, 14, 28, 35, 49 (odd → consent; even → face).
  EXPECT_EQ(count(html, "<tr class=\"failure\">"), 2u);
  EXPECT_THAT(html, HasSubstr("consent video &lt;rejected&gt; &amp; &quot;unclear&quot;"));
  EXPECT_THAT(html, Not(HasSubstr("<rejected>")));
  EXPECT_THAT(html, HasSubstr("<td class=\"n\">3</td><td>job-7, job-35, job-49</td>"));
  EXPECT_THAT(html, HasSubstr("<td class=\"n\">2</td><td>job-14, job-28</td>"));
}

TEST(Report, CountsHistogramAndEta) {
  const std::string html = render_report_html(input(30));
  EXPECT_THAT(html, HasSubstr("done</td><td class=\"n\">10</td>"));
  EXPECT_THAT(html, HasSubstr("10 done; median"));
  EXPECT_THAT(html, HasSubstr("from the durations observed here"));
  const std::string svg = render_timeline_svg(input(30));
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_EQ(count(svg, "<g class=\"row\""), 30u);
}

TEST(Report, GatherReadsTheSelectionWithHistories) {
  testing::TempDir dir("report");
  const std::string db = (dir.path() / "p.db").string();
  {
    auto store = Store::open(db, OpenMode::read_write);
    ASSERT_TRUE(store) << store.message();
    std::vector<PersonaSpec> specs(3);
    for (int i = 0; i < 3; ++i) specs[i].key = "k" + std::to_string(i);
    int n = 0;
    ASSERT_TRUE((*store)->enqueue(specs, "t", "batch", kT0, [&] { return "r" + std::to_string(++n); }));
    Job j = **(*store)->find("k1");
    Transition t{j.id, kT0 + hours(1), State::queued, State::cancelled, "", "operator"};
    j.state = State::cancelled;
    ASSERT_TRUE((*store)->apply(j, t));
  }
  auto store = Store::open(db, OpenMode::read_only);
  ASSERT_TRUE(store);
  Selection all;
  auto in = ctl::gather_report(**store, all, kT0 + hours(2), hours(72));
  ASSERT_TRUE(in) << in.message();
  ASSERT_EQ(in->jobs.size(), 3u);
  EXPECT_EQ(in->jobs[1].history.size(), 2u);  // queued, cancelled
  ASSERT_TRUE(in->eta);
  EXPECT_EQ(in->eta->jobs, 2u);  // the two queued jobs
  Selection limited;
  limited.limit = 1;
  in = ctl::gather_report(**store, limited, kT0 + hours(2), hours(72));
  ASSERT_TRUE(in);
  EXPECT_EQ(in->jobs.size(), 1u);
  EXPECT_EQ(in->more, 2u);
}

// ---- In a real browser ----

bool have_chromium() { return std::system("command -v chromium >/dev/null 2>&1") == 0; }

std::pair<int, std::string> run(const std::string& command) {
  std::string out;
  FILE* p = ::popen((command + " 2>/dev/null").c_str(), "r");
  if (p == nullptr) return {-1, ""};
  char buf[65536];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// Decodes the PNG (8-bit RGB/RGBA, as Chromium writes it) with Python's zlib and prints the
// number of distinct colours and the share of pixels that are not the background's.
const char* kPngProbe = R"PY(
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat, w, h, ct = 8, b'', 0, 0, 0
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b'IHDR':
        w, h, depth, ct = struct.unpack('>IIBB', body[:10])
    elif kind == b'IDAT':
        idat += body
    pos += 12 + n
bpp = 4 if ct == 6 else 3
raw = zlib.decompress(idat)
stride = w * bpp
prev = bytearray(stride)
colours = {}
for y in range(h):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]
        c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp * 4):
        k = bytes(line[x:x + 3])
        colours[k] = colours.get(k, 0) + 1
    prev = line
total = sum(colours.values())
background = max(colours.values())
print(len(colours), (total - background) / total)
)PY";

class ReportInBrowser : public ::testing::TestWithParam<std::size_t> {};

TEST_P(ReportInBrowser, RendersRowsAndAPictureThatIsNotBlank) {
  if (!have_chromium()) GTEST_SKIP() << "chromium not installed (Debian package chromium)";
  const std::size_t n = GetParam();
  testing::TempDir dir("report-browser");
  const auto html = dir.path() / "report.html";
  std::ofstream(html) << render_report_html(input(n));
  const std::string chromium =
      "chromium --headless --no-sandbox --disable-gpu --hide-scrollbars "
      "--user-data-dir=" + (dir.path() / "profile").string() + " ";
  // The DOM as the browser parsed it: one timeline row per job.
  auto [rc, dom] = run(chromium + "--dump-dom file://" + html.string());
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(count(dom, "<g class=\"row\""), n);
  EXPECT_THAT(dom, HasSubstr("id=\"failures\""));
  // The picture: many colours, and far from all background.
  const auto png = dir.path() / "report.png";
  run(chromium + "--window-size=1100,1400 --screenshot=" + png.string() + " file://" +
      html.string());
  ASSERT_TRUE(std::filesystem::exists(png));
  std::ofstream(dir.path() / "probe.py") << kPngProbe;
  auto [prc, probe] = run("python3 " + (dir.path() / "probe.py").string() + " " + png.string());
  ASSERT_EQ(prc, 0) << probe;
  std::size_t colours = 0;
  double share = 0;
  ASSERT_EQ(std::sscanf(probe.c_str(), "%zu %lf", &colours, &share), 2) << probe;
  EXPECT_GE(colours, 8u) << probe;
  EXPECT_GE(share, 0.03) << probe;
}

INSTANTIATE_TEST_SUITE_P(FiveAndFiveThousandJobs, ReportInBrowser, ::testing::Values(5, 5000));

}  // namespace
}  // namespace personad
