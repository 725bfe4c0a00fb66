// Fuzz target: config.json and generation_config.json. The same text goes through both parsers;
// each must accept it (a config that then passes validate() again) or give an Error naming it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "recurrent_depth/generate/chat.hpp"
#include "recurrent_depth/io/model_directory.hpp"

namespace rd = recurrent_depth;

namespace {
void require_named(const rd::Error& e, const char* source) {
  if (std::string(e.what()).find(source) == std::string::npos) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const rd::ModelConfig config = rd::parse_model_config(text, "config.json");
    config.validate("config.json");
    (void)config.to_string();
  } catch (const rd::Error& e) {
    require_named(e, "config.json");
  }
  try {
    const rd::GenerationConfig config = rd::GenerationConfig::parse(text, "generation_config.json");
    config.sampling.validate();
  } catch (const rd::Error& e) {
    require_named(e, "generation_config.json");
  }
  return 0;
}
