// Checkpoint: all weights of a model directory, from one model.safetensors or from shards listed in
// model.safetensors.index.json, looked up by name and read with an exact shape check.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "recurrent_depth/core/dtype.hpp"
#include "recurrent_depth/core/error.hpp"
#include "recurrent_depth/io/safetensors.hpp"

namespace recurrent_depth {

class Checkpoint {
 public:
  Checkpoint(Checkpoint&&) noexcept = default;
  Checkpoint& operator=(Checkpoint&&) noexcept = default;
  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;

  // `dir/model.safetensors` if present, else the shards named by
  // `dir/model.safetensors.index.json`.
  static Checkpoint open(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    const fs::path single = dir / "model.safetensors";
    const fs::path index = dir / "model.safetensors.index.json";
    std::error_code ec;
    if (fs::exists(single, ec)) {
      std::vector<SafetensorsFile> files;
      files.push_back(SafetensorsFile::open(single));
      return from_files(std::move(files), dir.string());
    }
    if (!fs::exists(index, ec)) {
      fail(dir.string(), ": no model.safetensors or model.safetensors.index.json");
    }
    return open_sharded(dir, index);
  }

  // An in-memory model (tests, synthetic weights). Every tensor name must be unique across files.
  static Checkpoint from_files(std::vector<SafetensorsFile> files, std::string description) {
    Checkpoint c(std::make_unique<Impl>());
    c.impl_->directory = description;
    for (const SafetensorsFile& f : files) {
      for (const TensorInfo& t : f.tensors()) {
        const auto [it, inserted] = c.impl_->by_name.emplace(t.name, &t);
        if (!inserted) {
          fail("checkpoint ", description, ": tensor ", t.name, " is in both ", it->second->source,
               " and ", t.source);
        }
      }
    }
    c.impl_->files = std::move(files);  // TensorInfo addresses are stable across moves
    return c;
  }

  const TensorInfo* find(std::string_view name) const {
    const auto it = impl_->by_name.find(name);
    return it == impl_->by_name.end() ? nullptr : it->second;
  }
  const TensorInfo& at(std::string_view name) const {
    const TensorInfo* t = find(name);
    if (t == nullptr) fail("checkpoint ", impl_->directory.string(), ": missing tensor ", name);
    return *t;
  }

  // The tensor `name`, whose stored shape must be exactly `expected_shape` and whose dtype must be
  // one that converts to float (F32, BF16 or F16). Callers check before they allocate for it.
  const TensorInfo& at(std::string_view name,
                       std::initializer_list<std::int64_t> expected_shape) const {
    const TensorInfo& t = at(name);
    if (!std::equal(t.shape.begin(), t.shape.end(), expected_shape.begin(), expected_shape.end())) {
      TensorInfo expected;
      expected.shape = expected_shape;
      fail("tensor ", t.name, " in ", t.source, ": shape ", t.shape_string(), ", expected ",
           expected.shape_string());
    }
    if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16) {
      fail("tensor ", t.name, " in ", t.source, ": dtype ", dtype_name(t.dtype),
           ", expected F32, BF16 or F16");
    }
    return t;
  }

  // Checks the stored shape exactly, then converts (T = float or bf16). `out` must hold numel.
  template <class T>
  requires(std::is_same_v<T, float> ||
           std::is_same_v<T, bf16>) void read(std::string_view name,
                                              std::initializer_list<std::int64_t> expected_shape,
                                              std::span<T> out) const {
    const TensorInfo& t = at(name, expected_shape);
    read_values(t, out);
    release(t);
    if (impl_->observer) impl_->observer(t);
  }

  // Drops the pages of a tensor read from a mapped file from resident memory (reads do it
  // themselves): loading then peaks near the converted size, not converted + files.
  void release(const TensorInfo& t) const {
    for (const SafetensorsFile& f : impl_->files)
      if (f.holds(t)) return f.release(t);
  }

  // Calls observer(tensor) after each read (progress reporting); an empty function: none.
  void on_read(std::function<void(const TensorInfo&)> observer) const {
    impl_->observer = std::move(observer);
  }

  // Makes `alias` name the stored tensor `target` (synthetic weights that repeat one block).
  void add_alias(const std::string& alias, std::string_view target) {
    const TensorInfo& t = at(target);
    require(impl_->by_name.emplace(alias, &t).second, "checkpoint ", impl_->directory.string(),
            ": cannot alias ", alias, " to ", target, ": the name exists");
  }

  // Bytes of all named tensors, as stored (an aliased tensor counts once per name).
  std::size_t total_bytes() const {
    std::size_t total = 0;
    for (const auto& [name, t] : impl_->by_name) total += t->bytes.size();
    return total;
  }
  // The model directory (for in-memory checkpoints: their description).
  const std::filesystem::path& directory() const { return impl_->directory; }
  // Sorted by name.
  std::vector<std::string> tensor_names() const {
    std::vector<std::string> names;
    names.reserve(impl_->by_name.size());
    for (const auto& [name, t] : impl_->by_name) names.push_back(name);
    return names;
  }

 private:
  struct Impl {
    std::filesystem::path directory;
    std::vector<SafetensorsFile> files;
    std::map<std::string, const TensorInfo*, std::less<>> by_name;
    std::function<void(const TensorInfo&)> observer;
  };

  explicit Checkpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

  static Checkpoint open_sharded(const std::filesystem::path& dir,
                                 const std::filesystem::path& index_path) {
    const std::string index_name = index_path.string();
    std::ifstream in(index_path, std::ios::binary);
    if (!in) fail("cannot open ", index_name);
    std::ostringstream text;
    text << in.rdbuf();
    return from_index(dir, text.str(), index_name);
  }

 public:
  // The shards in `dir` that the text of an index file names (open() reads the text from
  // dir/model.safetensors.index.json; `index_name` names it in messages).
  static Checkpoint from_index(const std::filesystem::path& dir, std::string_view index_text,
                               const std::string& index_name) {
    nlohmann::json index;
    try {
      index = nlohmann::json::parse(index_text.begin(), index_text.end());
    } catch (const nlohmann::json::exception& e) {
      fail(index_name, ": malformed JSON: ", e.what());
    }
    if (!index.is_object()) fail(index_name, ": expected a JSON object");
    const auto map_it = index.find("weight_map");
    if (map_it == index.end()) fail(index_name, ": missing \"weight_map\"");
    if (!map_it->is_object()) fail(index_name, ": \"weight_map\" must be an object");

    // Each distinct shard is opened once; a tensor must be in the shard the index names.
    std::map<std::string, std::size_t> shard_slot;
    std::vector<SafetensorsFile> shards;
    Checkpoint c(std::make_unique<Impl>());
    c.impl_->directory = dir;
    for (const auto& [name, shard] : map_it->items()) {
      if (!shard.is_string()) {
        fail(index_name, ": weight_map entry ", name, " must be a shard file name (a string)");
      }
      const auto& shard_name = shard.get_ref<const std::string&>();
      auto slot = shard_slot.find(shard_name);
      if (slot == shard_slot.end()) {
        // A file of the model directory itself: no path (an index names no file elsewhere).
        if (shard_name.empty() || shard_name == "." || shard_name == ".." ||
            shard_name.find_first_of(std::string_view("/\0", 2)) != std::string::npos) {
          fail(index_name, ": weight_map entry ", name, ": shard ", detail::json_excerpt(shard),
               " is not a file name in the model directory (expected e.g. "
               "model-00001-of-00004.safetensors)");
        }
        const std::filesystem::path shard_path = dir / shard_name;
        std::error_code ec;
        if (!std::filesystem::is_regular_file(shard_path, ec)) {
          fail(index_name, ": shard ", shard_name, " (for tensor ", name, ") does not exist");
        }
        shards.push_back(SafetensorsFile::open(shard_path));
        slot = shard_slot.emplace(shard_name, shards.size() - 1).first;
      }
      const TensorInfo* t = shards[slot->second].find(name);
      if (t == nullptr) {
        fail(index_name, ": tensor ", name, " is listed in shard ", shard_name,
             " but absent from it");
      }
      c.impl_->by_name.emplace(name, t);
    }
    c.impl_->files = std::move(shards);
    return c;
  }

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace recurrent_depth
