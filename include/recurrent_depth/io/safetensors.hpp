// Safetensors reading (memory-mapped or in memory, every header field validated so that no input
// can make us read out of bounds), conversion of stored tensors to float / bf16 / integers, and a
// writer for test inputs, outputs and synthetic models.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "recurrent_depth/core/dtype.hpp"
#include "recurrent_depth/core/error.hpp"
#include "recurrent_depth/io/mapped_file.hpp"

namespace recurrent_depth {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this library assumes a little-endian host");

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> bytes;  // exactly numel() * dtype_size(dtype) bytes
  std::string source;                // file name, for messages

  std::size_t numel() const {
    std::size_t n = 1;
    for (std::int64_t d : shape) n *= static_cast<std::size_t>(d);
    return n;
  }
  std::string shape_string() const {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
      if (i > 0) s += ", ";
      s += std::to_string(shape[i]);
    }
    return s + "]";
  }
};

namespace detail {

// A JSON value as it appears in a message, cut short if long or deep. Not nlohmann's dump(), which
// recurses without limit and would overflow the stack on a hostile, deeply nested header.
inline void append_excerpt(const nlohmann::json& value, std::string& out, int depth) {
  constexpr std::size_t kLimit = 80;
  if (value.is_array() || value.is_object()) {
    out += value.is_array() ? '[' : '{';
    if (depth >= 3 && !value.empty()) out += "...";
    bool first = true;
    for (auto it = value.begin(); depth < 3 && it != value.end(); ++it, first = false) {
      if (!first) out += ", ";
      if (out.size() > kLimit) {
        out += "...";
        break;
      }
      if (value.is_object()) out += nlohmann::json(it.key()).dump() + ": ";
      append_excerpt(*it, out, depth + 1);
    }
    out += value.is_array() ? ']' : '}';
  } else {
    out += value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
}

inline std::string json_excerpt(const nlohmann::json& value) {
  std::string s;
  append_excerpt(value, s, 0);
  if (s.size() > 100) s = s.substr(0, 97) + "...";
  return s;
}

inline constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

// Parses one tensor entry of a header; `data` is the data section after the header. Checks use
// `if (...) fail(...)` so that messages (and JSON excerpts) are built only on failure.
inline TensorInfo parse_tensor_entry(const std::string& source, const std::string& name,
                                     const nlohmann::json& entry, std::span<const std::byte> data) {
  const auto where = [&] { return source + ": tensor " + name; };
  if (!entry.is_object()) fail(where(), ": entry must be an object, found ", json_excerpt(entry));
  const auto dtype_it = entry.find("dtype");
  const auto shape_it = entry.find("shape");
  const auto offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end()) fail(where(), ": missing \"dtype\"");
  if (shape_it == entry.end()) fail(where(), ": missing \"shape\"");
  if (offsets_it == entry.end()) fail(where(), ": missing \"data_offsets\"");

  TensorInfo info;
  info.name = name;
  info.source = source;
  if (!dtype_it->is_string()) {
    fail(where(), ": \"dtype\" must be a string, found ", json_excerpt(*dtype_it));
  }
  if (!parse_dtype(dtype_it->get_ref<const std::string&>(), info.dtype)) {
    fail(where(), ": unknown dtype ", json_excerpt(*dtype_it),
         " (known: F32, BF16, F16, F64, I64, I32, I16, I8, U8, BOOL)");
  }

  const auto& shape = *shape_it;
  if (!shape.is_array()) {
    fail(where(), ": \"shape\" must be an array of integers, found ", json_excerpt(shape));
  }
  std::uint64_t numel = 1;
  bool overflow = false;
  for (const auto& dim : shape) {
    if (!dim.is_number_integer()) {
      fail(where(), ": \"shape\" must be an array of integers, found ", json_excerpt(shape));
    }
    if (!dim.is_number_unsigned())
      fail(where(), ": negative dimension in shape ", json_excerpt(shape));
    const auto d = dim.get<std::uint64_t>();
    if (d > std::uint64_t(INT64_MAX)) fail(where(), ": dimension ", d, " is too large");
    info.shape.push_back(static_cast<std::int64_t>(d));
    overflow = overflow || __builtin_mul_overflow(numel, d, &numel);
  }
  std::uint64_t needed = 0;
  overflow = overflow || __builtin_mul_overflow(numel, dtype_size(info.dtype), &needed);

  const auto& offsets = *offsets_it;
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    fail(where(), ": \"data_offsets\" must be [begin, end] with non-negative integers, found ",
         json_excerpt(offsets));
  }
  const auto begin = offsets[0].get<std::uint64_t>();
  const auto end = offsets[1].get<std::uint64_t>();
  if (begin > end) fail(where(), ": data_offsets [", begin, ", ", end, "] have begin > end");
  if (end > data.size()) {
    fail(where(), ": data_offsets end ", end, " is past the end of the data section (", data.size(),
         " bytes)");
  }
  if (overflow) {
    fail(where(), ": shape ", info.shape_string(), " of ", dtype_name(info.dtype), " is too large");
  }
  if (end - begin != needed) {
    fail(where(), ": data_offsets [", begin, ", ", end, "] hold ", end - begin, " bytes but shape ",
         info.shape_string(), " of ", dtype_name(info.dtype), " needs ", needed);
  }
  info.bytes = data.subspan(begin, end - begin);
  return info;
}

}  // namespace detail

class SafetensorsFile {
 public:
  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  // Memory-maps `path` and validates its header.
  static SafetensorsFile open(const std::filesystem::path& path) {
    auto impl = std::make_unique<Impl>();
    impl->source = path.string();
    impl->mapping = MappedFile::open(path);
    parse(*impl, impl->mapping.bytes());
    return SafetensorsFile(std::move(impl));
  }

  // Takes ownership of a whole file's bytes; `source_name` names it in messages.
  static SafetensorsFile from_bytes(std::vector<std::byte> owned, std::string source_name) {
    auto impl = std::make_unique<Impl>();
    impl->source = std::move(source_name);
    impl->owned = std::move(owned);
    parse(*impl, impl->owned);
    return SafetensorsFile(std::move(impl));
  }

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
  struct Impl {
    std::string source;
    MappedFile mapping;
    std::vector<std::byte> owned;
    std::vector<TensorInfo> tensors;
    std::map<std::string, std::string> metadata;
    std::map<std::string, std::size_t, std::less<>> index;
  };

  explicit SafetensorsFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

  static void parse(Impl& f, std::span<const std::byte> file) {
    const std::string& src = f.source;
    require(file.size() >= 8, src, ": file is ", file.size(),
            " bytes, too short for the 8-byte header length");
    std::uint64_t header_len = 0;
    std::memcpy(&header_len, file.data(), 8);
    require(header_len <= detail::kMaxHeaderBytes, src, ": header length ", header_len,
            " is absurd (limit ", detail::kMaxHeaderBytes, " bytes)");
    require(header_len <= file.size() - 8, src, ": header length ", header_len,
            " runs past the end of the file (", file.size(), " bytes)");
    const char* text = reinterpret_cast<const char*>(file.data() + 8);
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(text, text + header_len);
    } catch (const nlohmann::json::exception& e) {
      fail(src, ": header is not valid JSON: ", e.what());
    }
    require(header.is_object(), src, ": header is not a JSON object");
    const auto data = file.subspan(8 + header_len);

    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        if (!entry.is_object()) {
          fail(src, ": __metadata__ must be an object of strings, found ",
               detail::json_excerpt(entry));
        }
        for (const auto& [key, value] : entry.items()) {
          if (!value.is_string()) {
            fail(src, ": __metadata__ entry ", key, " must be a string, found ",
                 detail::json_excerpt(value));
          }
          f.metadata.emplace(key, value.get<std::string>());
        }
        continue;
      }
      f.tensors.push_back(detail::parse_tensor_entry(src, name, entry, data));
    }

    // File order; empty tensors cannot overlap anything.
    std::sort(f.tensors.begin(), f.tensors.end(), [&](const TensorInfo& a, const TensorInfo& b) {
      const auto ab = a.bytes.data(), bb = b.bytes.data();
      if (ab != bb) return ab < bb;
      if (a.bytes.size() != b.bytes.size()) return a.bytes.size() < b.bytes.size();
      return a.name < b.name;
    });
    const TensorInfo* furthest = nullptr;  // the tensor whose range reaches furthest so far
    for (const TensorInfo& t : f.tensors) {
      if (t.bytes.empty()) continue;
      if (furthest != nullptr) {
        const auto furthest_end = furthest->bytes.data() + furthest->bytes.size();
        if (t.bytes.data() < furthest_end) {
          const auto offset = [&](const TensorInfo& x) {
            return std::to_string(x.bytes.data() - data.data());
          };
          fail(src, ": tensors ", furthest->name, " and ", t.name, " overlap (data at ",
               offset(*furthest), " and ", offset(t), ")");
        }
      }
      furthest = &t;
    }
    for (std::size_t i = 0; i < f.tensors.size(); ++i) f.index.emplace(f.tensors[i].name, i);
  }

  std::unique_ptr<Impl> impl_;
};

namespace detail {

inline void check_conversion(const TensorInfo& t, std::size_t out_size) {
  if (out_size != t.numel()) {
    fail("tensor ", t.name, " in ", t.source, ": shape ", t.shape_string(), " has ", t.numel(),
         " elements, the output has ", out_size);
  }
  require(t.bytes.size() == t.numel() * dtype_size(t.dtype), "tensor ", t.name, " in ", t.source,
          ": ", t.bytes.size(), " bytes do not match its shape and dtype");
}

template <class T>
inline T load_unaligned(const std::byte* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

}  // namespace detail

// F32, BF16 or F16 -> float.
namespace detail {
// out[i] = convert(i) for i < n, over all threads when n is large (checkpoints convert GBs).
template <class Convert>
inline void convert_all(std::size_t n, Convert&& convert) {
  const auto count = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for schedule(static) if (n >= (std::size_t(1) << 20))
  for (std::ptrdiff_t i = 0; i < count; ++i) convert(static_cast<std::size_t>(i));
}
}  // namespace detail

inline void read_values(const TensorInfo& t, std::span<float> out) {
  detail::check_conversion(t, out.size());
  const std::byte* p = t.bytes.data();
  const std::size_t n = out.size();
  switch (t.dtype) {
    case DType::F32:
      if (n > 0) std::memcpy(out.data(), p, n * sizeof(float));
      return;
    case DType::BF16:
      detail::convert_all(n, [&](std::size_t i) {
        out[i] = to_float(bf16{detail::load_unaligned<std::uint16_t>(p + 2 * i)});
      });
      return;
    case DType::F16:
      detail::convert_all(n, [&](std::size_t i) {
        out[i] = half_bits_to_float(detail::load_unaligned<std::uint16_t>(p + 2 * i));
      });
      return;
    default:
      fail("tensor ", t.name, " in ", t.source, ": dtype ", dtype_name(t.dtype),
           ", expected F32, BF16 or F16");
  }
}

// F32 (rounded to nearest even), BF16 (copied) or F16 -> bf16.
inline void read_values(const TensorInfo& t, std::span<bf16> out) {
  detail::check_conversion(t, out.size());
  const std::byte* p = t.bytes.data();
  const std::size_t n = out.size();
  switch (t.dtype) {
    case DType::F32:
      detail::convert_all(
          n, [&](std::size_t i) { out[i] = to_bf16(detail::load_unaligned<float>(p + 4 * i)); });
      return;
    case DType::BF16:
      if (n > 0) std::memcpy(out.data(), p, n * sizeof(bf16));
      return;
    case DType::F16:
      detail::convert_all(n, [&](std::size_t i) {
        out[i] = to_bf16(half_bits_to_float(detail::load_unaligned<std::uint16_t>(p + 2 * i)));
      });
      return;
    default:
      fail("tensor ", t.name, " in ", t.source, ": dtype ", dtype_name(t.dtype),
           ", expected F32, BF16 or F16");
  }
}

// I64, I32, I16, I8 or U8 -> int64.
inline std::vector<std::int64_t> read_integers(const TensorInfo& t) {
  detail::check_conversion(t, t.numel());
  const std::size_t n = t.numel();
  const std::byte* p = t.bytes.data();
  std::vector<std::int64_t> out(n);
  const auto convert = [&]<class T>(T) {
    for (std::size_t i = 0; i < n; ++i) out[i] = detail::load_unaligned<T>(p + sizeof(T) * i);
  };
  switch (t.dtype) {
    case DType::I64:
      convert(std::int64_t{});
      break;
    case DType::I32:
      convert(std::int32_t{});
      break;
    case DType::I16:
      convert(std::int16_t{});
      break;
    case DType::I8:
      convert(std::int8_t{});
      break;
    case DType::U8:
      convert(std::uint8_t{});
      break;
    default:
      fail("tensor ", t.name, " in ", t.source, ": dtype ", dtype_name(t.dtype),
           ", expected I64, I32, I16, I8 or U8");
  }
  return out;
}

// Collects tensors (copied) and writes them as one safetensors file, in the order added.
class SafetensorsWriter {
 public:
  SafetensorsWriter() = default;
  explicit SafetensorsWriter(std::map<std::string, std::string> metadata)
      : metadata_(std::move(metadata)) {}

  void set_metadata(std::string key, std::string value) {
    metadata_[std::move(key)] = std::move(value);
  }

  void add(std::string name, DType dtype, std::vector<std::int64_t> shape,
           std::span<const std::byte> data) {
    require(name != "__metadata__", "safetensors writer: __metadata__ is not a tensor name");
    require(!names_.contains(name), "safetensors writer: tensor ", name, " added twice");
    std::uint64_t numel = 1;
    for (std::int64_t d : shape) {
      require(d >= 0, "safetensors writer: tensor ", name, ": negative dimension ", d);
      numel *= static_cast<std::uint64_t>(d);
    }
    require(data.size() == numel * dtype_size(dtype), "safetensors writer: tensor ", name, ": ",
            data.size(), " bytes given, ", dtype_name(dtype), " shape needs ",
            numel * dtype_size(dtype));
    names_.insert(name);
    entries_.push_back({std::move(name), dtype, std::move(shape), {data.begin(), data.end()}});
  }
  void add_f32(std::string name, std::vector<std::int64_t> shape, std::span<const float> v) {
    add(std::move(name), DType::F32, std::move(shape), std::as_bytes(v));
  }
  void add_bf16(std::string name, std::vector<std::int64_t> shape, std::span<const bf16> v) {
    add(std::move(name), DType::BF16, std::move(shape), std::as_bytes(v));
  }
  // Rounds float values to bf16 (nearest even).
  void add_bf16(std::string name, std::vector<std::int64_t> shape, std::span<const float> v) {
    std::vector<bf16> rounded(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) rounded[i] = to_bf16(v[i]);
    add_bf16(std::move(name), std::move(shape), std::span<const bf16>(rounded));
  }
  void add_i32(std::string name, std::vector<std::int64_t> shape, std::span<const std::int32_t> v) {
    add(std::move(name), DType::I32, std::move(shape), std::as_bytes(v));
  }
  void add_i64(std::string name, std::vector<std::int64_t> shape, std::span<const std::int64_t> v) {
    add(std::move(name), DType::I64, std::move(shape), std::as_bytes(v));
  }

  // The whole file: 8-byte header length, JSON header padded with spaces to a multiple of 8, data.
  std::vector<std::byte> bytes() const {
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata_.empty()) header["__metadata__"] = metadata_;
    std::uint64_t offset = 0;
    for (const Entry& e : entries_) {
      header[e.name] = {{"dtype", std::string(dtype_name(e.dtype))},
                        {"shape", e.shape},
                        {"data_offsets", {offset, offset + e.data.size()}}};
      offset += e.data.size();
    }
    std::string text;
    try {
      text = header.dump();
    } catch (const nlohmann::json::exception& e) {
      fail("safetensors writer: a tensor name or metadata string is not valid UTF-8 (", e.what(),
           ")");
    }
    text.append((8 - text.size() % 8) % 8, ' ');
    const std::uint64_t header_len = text.size();
    std::vector<std::byte> out(8 + text.size() + offset);
    std::memcpy(out.data(), &header_len, 8);
    std::memcpy(out.data() + 8, text.data(), text.size());
    std::byte* data = out.data() + 8 + text.size();
    for (const Entry& e : entries_) {
      if (!e.data.empty()) std::memcpy(data, e.data.data(), e.data.size());
      data += e.data.size();
    }
    return out;
  }

  void write(const std::filesystem::path& path) const {
    const std::vector<std::byte> content = bytes();
    std::FILE* file = std::fopen(path.c_str(), "wb");
    if (file == nullptr) fail("cannot write ", path.string(), ": ", std::strerror(errno));
    const bool written = std::fwrite(content.data(), 1, content.size(), file) == content.size();
    const int write_errno = errno;
    const bool closed = std::fclose(file) == 0;
    if (!written || !closed) {
      fail("cannot write ", path.string(), ": ", std::strerror(written ? errno : write_errno));
    }
  }

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<std::int64_t> shape;
    std::vector<std::byte> data;
  };
  std::vector<Entry> entries_;
  std::set<std::string, std::less<>> names_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace recurrent_depth
