// Checkpoint: all weights of a model (one safetensors file, or the shards a model directory's index
// lists; model_directory.hpp opens them), looked up by name and read with an exact shape check.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "recurrent_depth/core/dtype.hpp"
#include "recurrent_depth/core/error.hpp"
#include "recurrent_depth/io/safetensors_file.hpp"
#include "recurrent_depth/io/tensor_info.hpp"

namespace recurrent_depth {

class Checkpoint {
 public:
  Checkpoint(Checkpoint&&) noexcept = default;
  Checkpoint& operator=(Checkpoint&&) noexcept = default;
  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;

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

  // The tensors `by_name` names, which lie in `files` (a sharded model: the names its index lists).
  static Checkpoint from_tensor_map(std::vector<SafetensorsFile> files,
                                    std::filesystem::path directory,
                                    std::map<std::string, const TensorInfo*, std::less<>> by_name) {
    Checkpoint c(std::make_unique<Impl>());
    c.impl_->directory = std::move(directory);
    c.impl_->by_name = std::move(by_name);
    c.impl_->files = std::move(files);
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

  std::unique_ptr<Impl> impl_;
};

}  // namespace recurrent_depth
