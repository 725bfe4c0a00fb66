// Where a backend's activations, KV cache and small parameters live: its Memory policy. The
// sessions, caches and blocks hold their buffers through it, and the model moves data between the
// caller's host memory and it only through upload / download, so the same code runs on host
// memory (CpuBackend) and on a GPU's (HipBackend: backends/hip/device_memory.hpp).
//
// A Memory provides
//   Matrix           owning [rows, cols] float matrix: resize(rows, cols) (contents dropped),
//                    rows(), cols(), view()
//   Rows             growable rows of `width` floats, contents kept: Rows(width), resize(rows),
//                    rows(), view()
//   Array<T>         owning array of small values (norm weights, biases, key positions)
//   array(host)      an Array holding a copy of host values
//   stage(host, a)   host values as the backend's functions read them: the host span itself for
//                    host memory, else a copy in `a`, valid for work queued after it
//   gather(sources, to, a)  row r of `to` = the to.cols floats at address sources[r] (in this
//                    memory); `a` (an Array<const float*>) stages the addresses
//   copy(from, to)   [rows, cols] within this memory (the views must not overlap)
//   round_to_bf16(from, to)  [rows, cols] floats to bf16 within this memory (nearest even)
//   upload(host, to), download(from, host): between host memory and this memory
//   fill_zero(to)
//   Stream           where a session's work is queued; StreamScope(stream) makes it the calling
//                    thread's for its lifetime (the model's forward runs inside one)
// HostMemory is all of it on the host: upload, download and copy are the same row copies, and
// stage is free.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>
#include <vector>

#include "dtype.hpp"
#include "row_buffer.hpp"
#include "tensor.hpp"

namespace recurrent_depth {

struct HostMemory {
  static constexpr bool host_visible = true;  // views may be read on the host

  struct Stream {};  // work runs as it is called
  struct StreamScope {
    explicit StreamScope(const Stream&) {}
  };

  using Matrix = recurrent_depth::Matrix<float>;
  template <class T>
  using Array = std::vector<T>;

  // RowBuffer with the views the KV cache reads.
  class Rows : public RowBuffer {
   public:
    using RowBuffer::RowBuffer;
    MatrixView<float> view() { return {data(), rows(), width()}; }
    ConstMatrixView<float> view() const { return {data(), rows(), width()}; }
  };

  template <class T>
  static Array<T> array(std::span<const T> host) {
    return Array<T>(host.begin(), host.end());
  }
  template <class T>
  static std::span<const T> stage(std::span<const T> host, Array<T>&) {
    return host;
  }

  static void gather(std::span<const float* const> sources, MatrixView<float> to,
                     Array<const float*>&) {
    for (std::size_t r = 0; r < sources.size(); ++r)
      std::memcpy(to.row(r), sources[r], to.cols * sizeof(float));
  }

  // Row copies; a large copy (a prompt's keys landing on fresh pages of the cache) is split over
  // the threads, so are the first touches of its pages.
  static void copy(ConstMatrixView<float> from, MatrixView<float> to) {
    if (to.rows == 0 || to.cols == 0) return;
    const auto rows = static_cast<std::ptrdiff_t>(to.rows);
#pragma omp parallel for schedule(static) if (to.rows * to.cols >= (std::size_t(1) << 16))
    for (std::ptrdiff_t r = 0; r < rows; ++r)
      std::memcpy(to.row(std::size_t(r)), from.row(std::size_t(r)), to.cols * sizeof(float));
  }
  static void round_to_bf16(ConstMatrixView<float> from, MatrixView<bf16> to) {
    const auto rows = static_cast<std::ptrdiff_t>(to.rows);
#pragma omp parallel for schedule(static) if (to.rows * to.cols >= (std::size_t(1) << 16))
    for (std::ptrdiff_t r = 0; r < rows; ++r)
      std::transform(from.row(std::size_t(r)), from.row(std::size_t(r)) + to.cols,
                     to.row(std::size_t(r)), [](float x) { return to_bf16(x); });
  }
  static void upload(ConstMatrixView<float> host, MatrixView<float> to) {
    copy(host, to);
  }
  static void download(ConstMatrixView<float> from, MatrixView<float> host) {
    copy(from, host);
  }
  static void fill_zero(MatrixView<float> to) {
    for (std::size_t r = 0; r < to.rows; ++r) std::fill_n(to.row(r), to.cols, 0.0f);
  }
};

}  // namespace recurrent_depth
