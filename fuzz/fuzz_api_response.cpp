// What the Creatify API answers: a create's or a poll's response (status, body, Retry-After),
// a list page, a capacity count, an error body. Any of them maps to an outcome, never a crash, an exception or an
// absurd wait. Input: a selector byte, a status byte, a Retry-After line, then the body.
#include <boost/json/parse.hpp>
#include <cstdlib>

#include "fuzz_input.hpp"
#include "personad/creatify_api.hpp"

namespace {

const personad::TimePoint kNow = personad::from_unix_ms(1'790'000'000'000);

void check_wait(const std::optional<personad::Millis>& wait) {
  if (wait && wait->count() < 0) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  personad::fuzz::Input in(data, size);
  const std::uint8_t what = in.byte();
  // 100..611: every class; bit 2 of the selector makes the status odd.
  const int status = 100 + in.byte() * 2 + ((what >> 2) & 1);
  const std::string_view retry_after = in.line();
  const std::string_view body = in.rest();
  // The selector's low 2 bits pick the answer (as the seeds were written); its top bit, a count.
  switch ((what & 0x80) ? 4 : what % 4) {
    case 0: {  // a create's or a poll's answer
      auto r = personad::map_persona_response(status, body, retry_after, kNow);
      check_wait(r.retry_after);
      if (r.outcome == personad::Outcome::ok && r.value.id.empty()) std::abort();
      break;
    }
    case 1: {  // a list page
      boost::system::error_code ec;
      const boost::json::value v = boost::json::parse(body, ec);
      if (!ec) {
        auto page = personad::parse_list_page(v);
        if (page)
          for (const auto& p : page->items)
            if (p.id.empty()) std::abort();
      }
      break;
    }
    case 2:
      check_wait(personad::parse_retry_after(body, kNow));
      break;
    case 4: {  // GET /api/personas_v2/count/: a capacity is two non-negative counts, or an error
      boost::system::error_code ec;
      const boost::json::value v = boost::json::parse(body, ec);
      if (!ec) {
        auto c = personad::parse_capacity(v);
        if (c && (c->max_count < 0 || c->current_count < 0)) std::abort();
      }
      break;
    }
    default:
      (void)personad::error_message_from_body(body);
      (void)personad::classify_http_status(status);
      break;
  }
  return 0;
}
