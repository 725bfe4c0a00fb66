// Test support for tests that write files: a scratch directory per test, whole files as text or
// bytes, and tiny_huginn rewritten as a sharded checkpoint (the released layout if asked), from
// which the checkpoint and bad-file tests derive their broken directories.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "recurrent_depth/core/error.hpp"
#include "recurrent_depth/io/safetensors.hpp"

namespace recurrent_depth::testing {

namespace fs = std::filesystem;

inline fs::path tiny_huginn_dir() {
  return fs::path(RECURRENT_DEPTH_TEST_DATA) / "tiny_huginn";
}

// A fresh directory under the system's temporary directory, removed with everything in it.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& prefix = "rd_test") {
    static int counter = 0;
    path = fs::temp_directory_path() /
           (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

inline void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  require(out.good(), "cannot write ", path.string());
}

inline std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::vector<std::byte> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> chars((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(chars.size());
  if (!chars.empty()) std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

inline void write_bytes(const fs::path& path, const std::vector<std::byte>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  require(out.good(), "cannot write ", path.string());
}

// "model-00002-of-00004.safetensors" for shard 1 of 4.
inline std::string shard_name(int shard, int shards) {
  return "model-0000" + std::to_string(shard + 1) + "-of-0000" + std::to_string(shards) +
         ".safetensors";
}

// Splits tiny_huginn's tensors round-robin into `shards` files plus an index in `dir`; returns
// the index. released: as Huginn-0125 is published, every tensor stored as float32 and
// lm_head.weight a stored copy of the embedding.
inline nlohmann::json write_sharded(const fs::path& dir, int shards, bool released = false) {
  const SafetensorsFile source = open_safetensors(tiny_huginn_dir() / "model.safetensors");
  std::vector<SafetensorsWriter> writers(static_cast<std::size_t>(shards));
  for (auto& w : writers) w.set_metadata("format", "pt");
  nlohmann::json index;
  std::size_t i = 0, total = 0;
  std::vector<const TensorInfo*> tensors;
  for (const TensorInfo& t : source.tensors()) tensors.push_back(&t);
  if (released) tensors.push_back(&source.at("transformer.wte.weight"));  // again, as lm_head
  for (const TensorInfo* tensor : tensors) {
    const int s = int(i++ % std::size_t(shards));
    TensorInfo t = *tensor;
    if (released && i == tensors.size()) t.name = "lm_head.weight";
    std::vector<float> values;
    if (released && t.dtype != DType::F32) {
      values.resize(t.numel());
      read_values(t, std::span<float>(values));
      t.dtype = DType::F32;
      t.bytes = std::as_bytes(std::span<const float>(values));
    }
    writers[std::size_t(s)].add(t.name, t.dtype, t.shape, t.bytes);
    index["weight_map"][t.name] = shard_name(s, shards);
    total += t.bytes.size();
  }
  index["metadata"]["total_size"] = total;
  for (int s = 0; s < shards; ++s) writers[std::size_t(s)].write(dir / shard_name(s, shards));
  write_text(dir / "model.safetensors.index.json", index.dump(2));
  return index;
}

}  // namespace recurrent_depth::testing
