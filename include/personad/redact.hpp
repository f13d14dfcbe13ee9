// Keeps our secrets out of every text that comes from outside. The API may echo the key it was
// sent (an error body, a debugging proxy); what it says is stored (failed_reason, history),
// logged, printed by personactl and passed to hooks, so it is cleaned where it comes in.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "personad/creatify_api.hpp"

namespace personad {

class Redactor {
 public:
  // Secrets shorter than kMinLength are ignored (they would blank out ordinary words).
  static constexpr std::size_t kMinLength = 4;
  static constexpr std::string_view kMark = "[redacted]";

  explicit Redactor(std::vector<std::string> secrets = {});
  // `text` with every secret — as is, percent-encoded, or JSON-escaped — replaced by kMark.
  std::string operator()(std::string_view text) const;
  void clean(std::string& text) const;
  bool empty() const { return forms_.empty(); }

 private:
  std::vector<std::string> forms_;  // every form of every secret, longest first
};

// The API as the tracker sees it: every text of every answer (messages, statuses, reasons,
// labels, names, ids) passed through the Redactor.
class RedactingApi final : public CreatifyApi {
 public:
  RedactingApi(CreatifyApi& inner, Redactor redactor)
      : inner_(inner), redactor_(std::move(redactor)) {}

  boost::asio::awaitable<ApiResult<RemotePersona>> create(const PersonaSpec& spec,
                                                          std::string client_ref) override;
  boost::asio::awaitable<ApiResult<RemotePersona>> get(std::string id) override;
  boost::asio::awaitable<ApiResult<ListPage>> list_page(std::string target) override;
  boost::asio::awaitable<ApiResult<AvatarCapacity>> count() override;

 private:
  void clean(RemotePersona& p) const;

  CreatifyApi& inner_;
  Redactor redactor_;
};

}  // namespace personad
