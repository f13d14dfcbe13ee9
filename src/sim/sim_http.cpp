// HTTP response helpers for the simulator's handlers.
// Every answer is JSON, as from the real API (Django REST framework).
#include "sim_http.hpp"

#include <boost/json/serialize.hpp>
#include <string>

namespace creatify_sim {

Response json_response(const Request& req, http::status status, const boost::json::value& body) {
  Response res{status, req.version()};
  res.set(http::field::server, "creatify-sim");
  res.set(http::field::content_type, "application/json");
  res.keep_alive(req.keep_alive());
  res.body() = boost::json::serialize(body);
  res.prepare_payload();
  return res;
}

Response detail_response(const Request& req, http::status status, std::string_view detail) {
  return json_response(req, status, boost::json::object{{"detail", detail}});
}

Response method_not_allowed(const Request& req, std::string_view allow) {
  const std::string method(req.method_string());
  Response res = detail_response(req, http::status::method_not_allowed,
                                 "Method \"" + method + "\" not allowed.");
  res.set(http::field::allow, allow);
  return res;
}

}  // namespace creatify_sim
