// SafetensorsFile: the tensors of one safetensors file, over its memory mapping or its bytes in
// memory, looked up by name. Built by open_safetensors / parse_safetensors (safetensors.hpp), which
// read and validate the JSON header; this class checks that no two tensors' data overlap.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "recurrent_depth/core/error.hpp"
#include "recurrent_depth/io/mapped_file.hpp"
#include "recurrent_depth/io/tensor_info.hpp"

namespace recurrent_depth {

class SafetensorsFile {
 public:
  // What a header lists; each tensor's bytes lie in `mapping` or in `owned`.
  struct Contents {
    std::string source;  // file name, for messages
    MappedFile mapping;
    std::vector<std::byte> owned;
    std::vector<TensorInfo> tensors;
    std::map<std::string, std::string> metadata;
  };

  // Takes the contents (their bytes stay where they are) and sorts the tensors into file order;
  // `data` is the data section the tensors lie in, for the offsets in messages.
  SafetensorsFile(Contents contents, std::span<const std::byte> data)
      : impl_(std::make_unique<Impl>(std::move(contents))) {
    std::vector<TensorInfo>& tensors = impl_->tensors;
    // File order; empty tensors cannot overlap anything.
    std::sort(tensors.begin(), tensors.end(), [&](const TensorInfo& a, const TensorInfo& b) {
      const auto ab = a.bytes.data(), bb = b.bytes.data();
      if (ab != bb) return ab < bb;
      if (a.bytes.size() != b.bytes.size()) return a.bytes.size() < b.bytes.size();
      return a.name < b.name;
    });
    const TensorInfo* furthest = nullptr;  // the tensor whose range reaches furthest so far
    for (const TensorInfo& t : tensors) {
      if (t.bytes.empty()) continue;
      if (furthest != nullptr) {
        const auto furthest_end = furthest->bytes.data() + furthest->bytes.size();
        if (t.bytes.data() < furthest_end) {
          const auto offset = [&](const TensorInfo& x) {
            return std::to_string(x.bytes.data() - data.data());
          };
          fail(impl_->source, ": tensors ", furthest->name, " and ", t.name, " overlap (data at ",
               offset(*furthest), " and ", offset(t), ")");
        }
      }
      furthest = &t;
    }
    for (std::size_t i = 0; i < tensors.size(); ++i) impl_->index.emplace(tensors[i].name, i);
  }
  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const TensorInfo* find(std::string_view name) const {
    const auto it = impl_->index.find(name);
    return it == impl_->index.end() ? nullptr : &impl_->tensors[it->second];
  }
  const TensorInfo& at(std::string_view name) const {
    const TensorInfo* info = find(name);
    if (info == nullptr) fail(impl_->source, ": no tensor ", name);
    return *info;
  }
  // In the order of their data in the file.
  const std::vector<TensorInfo>& tensors() const { return impl_->tensors; }
  const std::map<std::string, std::string>& metadata() const { return impl_->metadata; }
  const std::string& source() const { return impl_->source; }
  // Whether `t` is one of this file's tensors.
  bool holds(const TensorInfo& t) const {
    return !impl_->tensors.empty() && &t >= &impl_->tensors.front() && &t <= &impl_->tensors.back();
  }
  // Drops a mapped tensor's pages from resident memory (see MappedFile::release); owned bytes stay.
  void release(const TensorInfo& t) const { impl_->mapping.release(t.bytes); }

 private:
  // Behind a unique_ptr so that TensorInfo spans and pointers survive moves.
  struct Impl : Contents {
    explicit Impl(Contents contents) : Contents(std::move(contents)) {}
    std::map<std::string, std::size_t, std::less<>> index;
  };

  std::unique_ptr<Impl> impl_;
};

}  // namespace recurrent_depth
