// The config file: any text is a config or an error naming the file; never a crash, a hang or
// an exception out of parse_config.
#include "fuzz_input.hpp"
#include "personad/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = personad::parse_config(text, "/etc/personad/fuzz.toml");
  if (!c) (void)c.message();
  return 0;
}
