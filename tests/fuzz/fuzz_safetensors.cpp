// Fuzz target: one safetensors file (header length, JSON header, dtypes, shapes, offsets, overlaps,
// sizes past the end). Every input must parse or give a recurrent_depth::Error naming the file;
// each tensor of a file that parses is converted the ways the model reads tensors.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "recurrent_depth/io/safetensors.hpp"

namespace rd = recurrent_depth;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::byte> bytes(size);
  if (size > 0) std::memcpy(bytes.data(), data, size);
  try {
    const rd::SafetensorsFile file = rd::parse_safetensors(std::move(bytes), "fuzz");
    for (const rd::TensorInfo& t : file.tensors()) {
      if (t.numel() > (std::size_t(1) << 20)) continue;  // bounded by the input, but keep it fast
      try {
        std::vector<float> values(t.numel());
        rd::read_values(t, std::span<float>(values));
        std::vector<rd::bf16> halves(t.numel());
        rd::read_values(t, std::span<rd::bf16>(halves));
      } catch (const rd::Error&) {
      }
      try {
        (void)rd::read_integers(t);
      } catch (const rd::Error&) {
      }
      (void)file.at(t.name);
    }
  } catch (const rd::Error& e) {
    if (std::string(e.what()).find("fuzz") == std::string::npos) __builtin_trap();
  }
  return 0;
}
