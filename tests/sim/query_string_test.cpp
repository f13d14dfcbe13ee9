// Tests of query-string parsing (pagination parameters, urlencoded create bodies),
// including the end-of-input case that Boost.URL 1.81's parse_query gets wrong.
#include "query_string.hpp"

#include <gtest/gtest.h>

namespace creatify_sim {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

TEST(QueryString, DecodesPairsInOrder) {
  EXPECT_EQ(parse_query_string("page=2&page_size=20"), (Pairs{{"page", "2"}, {"page_size", "20"}}));
  EXPECT_EQ(parse_query_string("name=Jane+Doe&url=https%3A%2F%2Fx%2Fy"),
            (Pairs{{"name", "Jane Doe"}, {"url", "https://x/y"}}));
  EXPECT_EQ(parse_query_string("labels=a&labels=b"), (Pairs{{"labels", "a"}, {"labels", "b"}}));
}

TEST(QueryString, StopsAtTheEndOfTheView) {
  const std::string buffer = "page_size=2XYZ";
  const std::string_view view(buffer.data(), buffer.size() - 3);
  EXPECT_EQ(parse_query_string(view), (Pairs{{"page_size", "2"}}));
}

TEST(QueryString, EdgeCases) {
  EXPECT_TRUE(parse_query_string("").empty());
  EXPECT_TRUE(parse_query_string(std::string_view()).empty());
  EXPECT_EQ(parse_query_string("a&&b="), (Pairs{{"a", ""}, {"b", ""}}));
  EXPECT_EQ(parse_query_string("x=%zz%4"), (Pairs{{"x", "%zz%4"}}));  // bad escapes kept
  EXPECT_EQ(parse_query_string("x=a=b"), (Pairs{{"x", "a=b"}}));
}

}  // namespace
}  // namespace creatify_sim
