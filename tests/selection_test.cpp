// The selection's one parser: every flag of the contract under its query-string name, times as
// RFC 3339 or durations back from now, errors naming the parameter; the query string parses back
// to the same selection; shell globs match as the shell does.
#include "personad/selection.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

namespace personad {
namespace {

using ::testing::HasSubstr;

const TimePoint kNow = *parse_rfc3339("2026-11-30T12:00:00Z");

Selection parse_ok(const std::vector<SelectionParam>& params) {
  auto s = parse_selection(params, kNow);
  EXPECT_TRUE(s.ok()) << s.message();
  if (s.ok()) return *s;
  Selection none;
  none.limit = -1;  // equal to no parse result
  return none;
}

std::string parse_error(const std::vector<SelectionParam>& params) {
  auto s = parse_selection(params, kNow);
  EXPECT_FALSE(s.ok());
  if (s.ok()) return {};
  EXPECT_EQ(s.kind(), ErrorKind::invalid);
  return s.message();
}

TEST(Selection, EveryFilterOfTheContract) {
  Selection s = parse_ok({{"state", "failed"},
                          {"state", "expired"},
                          {"state", "failed"},  // once is enough
                          {"label", "acme"},
                          {"label", "spring, 2027"},
                          {"source", "batches.d/acme.toml"},
                          {"key", "acme-*"},
                          {"remote_status", "reviewing"},
                          {"since", "2026-11-01T00:00:00Z"},
                          {"until", "90m"},
                          {"needs_operator", "1"},
                          {"stuck", "true"},
                          {"after", "acme-0007"},
                          {"limit", "50"}});
  EXPECT_EQ(s.states, (std::vector<State>{State::failed, State::expired}));
  EXPECT_EQ(s.labels, (std::vector<std::string>{"acme", "spring, 2027"}));
  EXPECT_EQ(s.sources, std::vector<std::string>{"batches.d/acme.toml"});
  EXPECT_EQ(s.key_glob, "acme-*");
  EXPECT_EQ(s.remote_statuses, std::vector<std::string>{"reviewing"});
  EXPECT_EQ(s.since, parse_rfc3339("2026-11-01T00:00:00Z"));
  EXPECT_EQ(s.until, kNow - Millis(90 * 60'000));
  EXPECT_TRUE(s.needs_operator);
  EXPECT_TRUE(s.stuck);
  EXPECT_EQ(s.after, "acme-0007");
  EXPECT_EQ(s.limit, 50);
  EXPECT_EQ(parse_ok({}), Selection{});
}

TEST(Selection, TimesAreRfc3339ADateOrADurationBackFromNow) {
  EXPECT_EQ(parse_ok({{"since", "3d"}}).since, kNow - Millis(3LL * 24 * 3600'000));
  EXPECT_EQ(parse_ok({{"since", "2026-11-29"}}).since, parse_rfc3339("2026-11-29T00:00:00Z"));
  EXPECT_EQ(parse_ok({{"since", "2026-11-29T10:00:00+02:00"}}).since,
            parse_rfc3339("2026-11-29T08:00:00Z"));
  EXPECT_THAT(parse_error({{"since", "yesterday"}}), HasSubstr("since: expected an RFC 3339"));
  EXPECT_THAT(parse_error({{"until", "-5m"}}), HasSubstr("until:"));
}

TEST(Selection, BadValuesAreRefusedNamingTheParameter) {
  EXPECT_THAT(parse_error({{"state", "sideways"}}), HasSubstr("state: unknown state 'sideways'"));
  EXPECT_THAT(parse_error({{"limit", "0"}}), HasSubstr("limit:"));
  EXPECT_THAT(parse_error({{"limit", "ten"}}), HasSubstr("limit:"));
  EXPECT_THAT(parse_error({{"limit", "5x"}}), HasSubstr("limit:"));
  EXPECT_THAT(parse_error({{"label", ""}}), HasSubstr("label: must not be empty"));
  EXPECT_THAT(parse_error({{"after", std::string(129, 'k')}}), HasSubstr("after: too long"));
  EXPECT_THAT(parse_error({{"key", "acme-[0-9"}}), HasSubstr("no closing ']'"));
  EXPECT_THAT(parse_error({{"stuck", "maybe"}}), HasSubstr("stuck: expected 1 or 0"));
  EXPECT_THAT(parse_error({{"colour", "red"}}), HasSubstr("unknown parameter 'colour'"));
  EXPECT_FALSE(parse_ok({{"stuck", "0"}, {"needs_operator", "false"}}).stuck);
}

// What personactl sends is what the daemon reads: the query string of a selection parses back
// to the same selection, whatever its values hold (spaces, '&', '=', '%', UTF-8).
TEST(Selection, QueryStringParsesBackToTheSameSelection) {
  Selection s = parse_ok({{"state", "pending"},
                          {"label", "a&b=c %d"},
                          {"label", "é"},
                          {"source", "/etc/personad/batches.d/x y.toml"},
                          {"key", "k[!0-9]?*"},
                          {"remote_status", "voice_creating"},
                          {"since", "2026-11-01T00:00:00.250Z"},
                          {"until", "1h"},
                          {"needs_operator", "1"},
                          {"stuck", "1"},
                          {"after", "k-1"},
                          {"limit", "7"}});
  const std::string q = selection_query(s);
  const std::string target = "/v1/select?" + q;  // the view below reads it
  auto url = boost::urls::parse_origin_form(target);
  ASSERT_TRUE(url) << q;
  std::vector<SelectionParam> back;
  for (auto p : url->params()) back.emplace_back(std::string(p.key), std::string(p.value));
  EXPECT_EQ(parse_ok(back), s) << q;
  EXPECT_EQ(selection_query(Selection{}), "");
  EXPECT_TRUE(is_selection_param("remote_status"));
  EXPECT_FALSE(is_selection_param("count"));
}

TEST(Selection, GlobsMatchAsTheShellDoes) {
  EXPECT_TRUE(glob_match("acme-*", "acme-jane-01"));
  EXPECT_FALSE(glob_match("acme-*", "xacme-jane"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("*-01", "acme-jane-01"));
  EXPECT_TRUE(glob_match("a?c", "abc"));
  EXPECT_FALSE(glob_match("a?c", "ac"));
  EXPECT_TRUE(glob_match("k[0-9][0-9]", "k42"));
  EXPECT_FALSE(glob_match("k[0-9]", "kx"));
  EXPECT_TRUE(glob_match("k[!0-9]", "kx"));
  EXPECT_TRUE(glob_match("k[^0-9]", "kx"));
  EXPECT_FALSE(glob_match("k[!0-9]", "k1"));
  EXPECT_TRUE(glob_match("k[]x]", "k]"));
  EXPECT_TRUE(glob_match("a\\*", "a*"));
  EXPECT_FALSE(glob_match("a\\*", "ab"));
  EXPECT_TRUE(glob_match("*a*b*c*", "xxaxxbxxcxx"));
  EXPECT_FALSE(glob_match("*a*b*c*", "xxaxxcxxbxx"));
  EXPECT_TRUE(glob_match("a.b", "a.b"));  // '.' is no wildcard
  EXPECT_FALSE(glob_match("a.b", "axb"));
  EXPECT_FALSE(glob_match("ACME-*", "acme-1"));  // case counts
  // Many stars against a long miss stay linear (no exponential backtracking).
  std::string stars(60, '*');
  stars += 'b';  // not `std::string(60, '*') + "b"`: GCC 12 misreads it (-Warray-bounds)
  EXPECT_FALSE(glob_match(stars, std::string(100'000, 'a')));
  EXPECT_EQ(glob_problem("k[0-9]*"), "");
  EXPECT_THAT(glob_problem("k[0-9"), HasSubstr("character 2"));
}

}  // namespace
}  // namespace personad
