// A multipart/form-data body parser (RFC 7578 / RFC 2046 framing).
// Strict about framing (missing boundaries are errors) and lenient about header spacing.
#include "multipart.hpp"

#include <algorithm>
#include <cctype>

namespace creatify_sim {

namespace {

constexpr std::string_view kCrlf = "\r\n";

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Reads a quoted-string starting at s[0] == '"'; advances s past the closing quote.
std::string read_quoted(std::string_view& s) {
  std::string out;
  std::size_t i = 1;
  for (; i < s.size() && s[i] != '"'; ++i) {
    // curl escapes '"' and '\' with a backslash; any other backslash is literal (a Windows
    // path from a browser), as in Django's own header parsing.
    if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == '"' || s[i + 1] == '\\')) ++i;
    out.push_back(s[i]);
  }
  s.remove_prefix(std::min(i + 1, s.size()));
  return out;
}

struct PartHeaders {
  HeaderValue disposition;
  std::string content_type;
};

// Parses the header block of one part (the lines between the boundary and the blank line).
PartHeaders parse_part_headers(std::string_view block) {
  PartHeaders h;
  while (!block.empty()) {
    const std::size_t eol = block.find(kCrlf);
    const std::string_view line = block.substr(0, eol);
    block.remove_prefix(eol == std::string_view::npos ? block.size() : eol + kCrlf.size());
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string name = lower(trim(line.substr(0, colon)));
    const std::string_view value = trim(line.substr(colon + 1));
    if (name == "content-disposition")
      h.disposition = parse_header_value(value);
    else if (name == "content-type")
      h.content_type = parse_header_value(value).value;
  }
  return h;
}

}  // namespace

const std::string* HeaderValue::param(std::string_view name) const {
  for (const auto& [key, value] : params)
    if (key == name) return &value;
  return nullptr;
}

HeaderValue parse_header_value(std::string_view text) {
  HeaderValue h;
  const std::size_t semi = text.find(';');
  h.value = lower(trim(text.substr(0, semi)));
  text.remove_prefix(semi == std::string_view::npos ? text.size() : semi + 1);
  while (!text.empty()) {
    text = trim(text);
    const std::size_t eq = text.find_first_of("=;");
    if (eq == std::string_view::npos || text[eq] == ';') {  // a parameter without value
      text.remove_prefix(eq == std::string_view::npos ? text.size() : eq + 1);
      continue;
    }
    std::string name = lower(trim(text.substr(0, eq)));
    text = trim(text.substr(eq + 1));
    std::string value;
    if (!text.empty() && text.front() == '"') {
      value = read_quoted(text);
    } else {
      const std::size_t end = text.find(';');
      value = std::string(trim(text.substr(0, end)));
      text.remove_prefix(end == std::string_view::npos ? text.size() : end);
    }
    const std::size_t next = text.find(';');
    text.remove_prefix(next == std::string_view::npos ? text.size() : next + 1);
    h.params.emplace_back(std::move(name), std::move(value));
  }
  return h;
}

std::optional<std::string> multipart_boundary(std::string_view content_type) {
  const HeaderValue h = parse_header_value(content_type);
  if (h.value != "multipart/form-data") return std::nullopt;
  const std::string* boundary = h.param("boundary");
  // RFC 2046: 1 to 70 characters.
  if (!boundary || boundary->empty() || boundary->size() > 70) return std::nullopt;
  return *boundary;
}

MultipartParse parse_multipart(std::string_view body, std::string_view boundary) {
  MultipartParse result;
  const std::string delimiter = "--" + std::string(boundary);
  const std::string separator = std::string(kCrlf) + delimiter;  // precedes every later boundary

  std::size_t pos = 0;
  if (!body.starts_with(delimiter)) {  // skip a preamble
    pos = body.find(separator);
    if (pos == std::string_view::npos) {
      result.error = "opening boundary not found";
      return result;
    }
    pos += kCrlf.size();
  }
  for (;;) {
    pos += delimiter.size();
    if (body.substr(pos, 2) == "--") return result;  // close delimiter: done
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) ++pos;
    if (body.substr(pos, 2) != kCrlf) {
      result.error = "malformed boundary line";
      return result;
    }
    pos += kCrlf.size();

    std::size_t data_start = 0;
    std::string_view header_block;
    if (body.substr(pos, 2) == kCrlf) {  // a part with no headers
      data_start = pos + kCrlf.size();
    } else {
      const std::size_t blank = body.find("\r\n\r\n", pos);
      if (blank == std::string_view::npos) {
        result.error = "part headers not terminated";
        return result;
      }
      header_block = body.substr(pos, blank - pos);
      data_start = blank + 4;
    }
    const std::size_t data_end = body.find(separator, data_start);
    if (data_end == std::string_view::npos) {
      result.error = "closing boundary not found";
      return result;
    }

    PartHeaders headers = parse_part_headers(header_block);
    const std::string* name = headers.disposition.param("name");
    if (headers.disposition.value != "form-data" || !name) {
      result.error = "part without a form-data name";
      return result;
    }
    MultipartPart part;
    part.name = *name;
    if (const std::string* filename = headers.disposition.param("filename"))
      part.filename = *filename;
    part.content_type = std::move(headers.content_type);
    part.data = body.substr(data_start, data_end - data_start);
    result.parts.push_back(std::move(part));
    pos = data_end + kCrlf.size();
  }
}

}  // namespace creatify_sim
