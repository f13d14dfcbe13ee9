// Shared by every fuzz target: the libFuzzer entry point's signature and a way to split one
// input into parts (a selector byte, then text) without a dependency on libFuzzer's own
// FuzzedDataProvider, so the same targets also build with GCC as corpus replayers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace personad::fuzz {

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size)
      : rest_(reinterpret_cast<const char*>(data), size) {}
  // The next byte, 0 when none is left.
  std::uint8_t byte() {
    if (rest_.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }
  // Up to the next '\n' (not included), or the rest.
  std::string_view line() {
    const auto nl = rest_.find('\n');
    const std::string_view out = rest_.substr(0, nl);
    rest_.remove_prefix(nl == std::string_view::npos ? rest_.size() : nl + 1);
    return out;
  }
  std::string_view rest() const { return rest_; }

 private:
  std::string_view rest_;
};

}  // namespace personad::fuzz
