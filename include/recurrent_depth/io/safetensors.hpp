// Safetensors files: reading (memory-mapped or in memory, every field of the JSON header validated
// so that no input can make us read out of bounds) and a writer for test inputs, outputs and
// synthetic models. The model's headers include only tensor_info.hpp and safetensors_file.hpp,
// which do not parse JSON (so that HIP's device compilation never sees nlohmann::json).
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
#include "recurrent_depth/io/safetensors_file.hpp"
#include "recurrent_depth/io/tensor_info.hpp"

namespace recurrent_depth {

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

// Validates the header of a whole safetensors file and lists its tensors into `f`.
inline std::span<const std::byte> parse_header(SafetensorsFile::Contents& f,
                                               std::span<const std::byte> file) {
  const std::string& src = f.source;
  require(file.size() >= 8, src, ": file is ", file.size(),
          " bytes, too short for the 8-byte header length");
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, file.data(), 8);
  require(header_len <= kMaxHeaderBytes, src, ": header length ", header_len, " is absurd (limit ",
          kMaxHeaderBytes, " bytes)");
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
        fail(src, ": __metadata__ must be an object of strings, found ", json_excerpt(entry));
      }
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          fail(src, ": __metadata__ entry ", key, " must be a string, found ", json_excerpt(value));
        }
        f.metadata.emplace(key, value.get<std::string>());
      }
      continue;
    }
    f.tensors.push_back(parse_tensor_entry(src, name, entry, data));
  }
  return data;
}

}  // namespace detail

// Memory-maps `path` and validates its header.
inline SafetensorsFile open_safetensors(const std::filesystem::path& path) {
  SafetensorsFile::Contents contents;
  contents.source = path.string();
  contents.mapping = MappedFile::open(path);
  const auto data = detail::parse_header(contents, contents.mapping.bytes());
  return SafetensorsFile(std::move(contents), data);
}

// Takes ownership of a whole file's bytes and validates its header; `source_name` names it in
// messages.
inline SafetensorsFile parse_safetensors(std::vector<std::byte> owned, std::string source_name) {
  SafetensorsFile::Contents contents;
  contents.source = std::move(source_name);
  contents.owned = std::move(owned);
  const auto data = detail::parse_header(contents, contents.owned);
  return SafetensorsFile(std::move(contents), data);
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
