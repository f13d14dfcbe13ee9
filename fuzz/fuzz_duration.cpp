// Durations ("30s", "7d"): never a crash or a wrapped value; what parses formats back to the
// same length, and what formats parses back.
#include <cstdlib>

#include "fuzz_input.hpp"
#include "personad/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto d = personad::parse_duration(text);
  if (!d) return 0;
  if (d->count() < 0) std::abort();  // a wrapped count
  auto again = personad::parse_duration(personad::format_duration(*d));
  if (!again || *again != *d) std::abort();
  return 0;
}
