// Batch files: any text is entries or errors naming the file; never a crash, a hang or an
// exception. Local video paths resolve under a directory that does not exist, so nothing of
// the machine running the fuzzer is read. What a file yields goes out to the daemon as JSON
// (personactl submit) and must come back the same.
#include <cstdlib>
#include <filesystem>

#include "fuzz_input.hpp"
#include "personad/batch.hpp"
#include "personad/job_json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::vector<std::filesystem::path> roots{"/nonexistent/personad-fuzz/media"};
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto parsed =
      personad::parse_batch(text, "/nonexistent/personad-fuzz/batch.toml", roots);
  if (!parsed.ok() && !parsed.entries.empty()) std::abort();  // all or nothing
  for (const auto& e : parsed.entries) {
    const boost::json::value v = personad::spec_to_json(e.spec);
    auto back = personad::spec_from_json(v);
    if (!back || back->key != e.spec.key) std::abort();
  }
  for (const auto& e : parsed.errors) (void)e.to_string();
  return 0;
}
