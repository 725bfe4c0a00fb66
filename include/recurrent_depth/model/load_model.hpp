// load_model: a model directory (config.json and its weights, see io/model_directory.hpp) read on
// the host into a RecurrentDepthModel of any backend. Call it from C++ files (for HipBackend too:
// its kernels are in the recurrent_depth::hip library). A file that Debian 12's hipcc compiles
// cannot include nlohmann::json: construct the model there from a ModelConfig and a Checkpoint
// read in a C++ file.
#pragma once

#include <filesystem>

#include "../io/model_directory.hpp"
#include "recurrent_depth_model.hpp"

namespace recurrent_depth {

// Loads DIR/config.json and the weights of DIR (single file or sharded), converting them once.
// Refused before anything is converted when it would not fit (see LoadOptions).
template <class Backend, class Precision, class Arch = Huginn>
RecurrentDepthModel<Backend, Precision, Arch> load_model(const std::filesystem::path& directory,
                                                         const LoadOptions& options = {}) {
  const Checkpoint checkpoint = open_checkpoint(directory);
  return RecurrentDepthModel<Backend, Precision, Arch>(load_model_config(directory / "config.json"),
                                                       checkpoint, options);
}

}  // namespace recurrent_depth
