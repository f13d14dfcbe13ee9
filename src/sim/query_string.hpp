// Parses `a=1&b=x+y` query strings and urlencoded form bodies into decoded pairs.
// Written here because Boost.URL 1.81's parse_query() reads past the end of its input.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace creatify_sim {

// Pairs in order, repeated keys kept; '+' is a space and %XX is decoded. A malformed escape
// is kept literally (as Django does) rather than rejected.
std::vector<std::pair<std::string, std::string>> parse_query_string(std::string_view query);

}  // namespace creatify_sim
