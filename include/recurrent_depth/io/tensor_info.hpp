// TensorInfo: one stored tensor (name, dtype, shape, its little-endian bytes), and its conversion
// to float, bf16 or integers. No file format here: safetensors.hpp finds tensors in files.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "recurrent_depth/core/dtype.hpp"
#include "recurrent_depth/core/error.hpp"

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

}  // namespace recurrent_depth
