// Redaction of secrets from outside texts (see redact.hpp).
#include "personad/redact.hpp"

#include <algorithm>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

namespace personad {

namespace {

std::string json_escaped(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

Redactor::Redactor(std::vector<std::string> secrets) {
  for (const auto& s : secrets) {
    if (s.size() < kMinLength) continue;
    for (std::string form : {s, boost::urls::encode(s, boost::urls::unreserved_chars), json_escaped(s)})
      if (std::find(forms_.begin(), forms_.end(), form) == forms_.end())
        forms_.push_back(std::move(form));
  }
  // Longest first: a secret that contains another is replaced whole.
  std::sort(forms_.begin(), forms_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

void Redactor::clean(std::string& text) const {
  for (const auto& form : forms_) {
    for (std::size_t at = text.find(form); at != std::string::npos;
         at = text.find(form, at + kMark.size()))
      text.replace(at, form.size(), kMark);
  }
}

std::string Redactor::operator()(std::string_view text) const {
  std::string out(text);
  clean(out);
  return out;
}

void RedactingApi::clean(RemotePersona& p) const {
  for (std::string* s : {&p.id, &p.process_status, &p.failed_reason, &p.creator_name, &p.gender,
                         &p.video_scene, &p.keywords})
    redactor_.clean(*s);
  for (auto& l : p.labels) redactor_.clean(l);
}

boost::asio::awaitable<ApiResult<RemotePersona>> RedactingApi::create(const PersonaSpec& spec,
                                                                      std::string client_ref) {
  auto r = co_await inner_.create(spec, std::move(client_ref));
  redactor_.clean(r.message);
  clean(r.value);
  co_return r;
}

boost::asio::awaitable<ApiResult<RemotePersona>> RedactingApi::get(std::string id) {
  auto r = co_await inner_.get(std::move(id));
  redactor_.clean(r.message);
  clean(r.value);
  co_return r;
}

boost::asio::awaitable<ApiResult<AvatarCapacity>> RedactingApi::count() {
  auto r = co_await inner_.count();
  redactor_.clean(r.message);
  co_return r;
}

boost::asio::awaitable<ApiResult<ListPage>> RedactingApi::list_page(std::string target) {
  auto r = co_await inner_.list_page(std::move(target));
  redactor_.clean(r.message);
  for (auto& p : r.value.items) clean(p);
  redactor_.clean(r.value.next);
  co_return r;
}

}  // namespace personad
