// Turns a create request body (JSON, multipart/form-data or urlencoded form) into a validated
// PersonaInput, or into the error the real API (Django REST framework) would answer with.
#pragma once

#include <boost/json/value.hpp>
#include <string_view>
#include <variant>

#include "persona_book.hpp"

namespace creatify_sim {

struct RequestError {
  unsigned status = 400;    // 400 field or parse errors, 415 unsupported media type
  boost::json::value body;  // {"field": ["message", ...]} or {"detail": "..."}
};

using CreateRequest = std::variant<PersonaInput, RequestError>;

CreateRequest parse_create_request(std::string_view content_type, std::string_view body);

// Characters as Python counts them (code points), for DRF's max_length checks.
std::size_t utf8_length(std::string_view s);

}  // namespace creatify_sim
