// Fuzz target: model.safetensors.index.json. The input is the index's text; the shards it may
// name are two small valid files written once into a scratch directory (a.safetensors holds
// tensors x and y, b.safetensors holds z). Every input must give a checkpoint or an Error.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "recurrent_depth/io/model_directory.hpp"

namespace rd = recurrent_depth;
namespace fs = std::filesystem;

namespace {

const fs::path& shard_directory() {
  static const fs::path dir = [] {
    const fs::path path =
        fs::temp_directory_path() / ("rd_fuzz_index_" + std::to_string(::getpid()));
    fs::create_directories(path);
    rd::SafetensorsWriter a, b;
    a.add_f32("x", {2, 2}, std::vector<float>{1, 2, 3, 4});
    a.add_bf16("y", {3}, std::vector<float>{0.5f, -1, 2});
    b.add_i32("z", {1}, std::vector<std::int32_t>{7});
    a.write(path / "a.safetensors");
    b.write(path / "b.safetensors");
    return path;
  }();
  return dir;
}

struct RemoveAtExit {
  ~RemoveAtExit() {
    std::error_code ec;
    fs::remove_all(shard_directory(), ec);
  }
} remove_at_exit;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const rd::Checkpoint checkpoint =
        rd::checkpoint_from_index(shard_directory(), text, "fuzz.index.json");
    for (const std::string& name : checkpoint.tensor_names()) (void)checkpoint.at(name);
    (void)checkpoint.total_bytes();
  } catch (const rd::Error& e) {
    if (std::string(e.what()).find("fuzz.index.json") == std::string::npos) __builtin_trap();
  }
  return 0;
}
