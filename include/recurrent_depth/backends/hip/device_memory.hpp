// The HIP backend's Memory (the policy of core/host_memory.hpp): the sessions' activations, the KV
// cache and the blocks' small parameters in device memory. Copies within it are queued on the
// current stream. Transfers from the host wait until the host's values are copied (the caller may
// reuse its buffer at once); transfers to the host wait for the stream's work before them.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>

#include "../../core/dtype.hpp"
#include "device_buffer.hpp"
#include "hip_runtime.hpp"

namespace recurrent_depth::hip {

namespace detail {

inline void copy_2d(void* to, std::size_t to_stride, const void* from, std::size_t from_stride,
                    std::size_t rows, std::size_t cols, hipMemcpyKind kind, const char* call) {
  if (rows == 0 || cols == 0) return;
  check(hipMemcpy2DAsync(to, to_stride * sizeof(float), from, from_stride * sizeof(float),
                         cols * sizeof(float), rows, kind, current_stream()),
        call);
}

}  // namespace detail

// Defined with the kernels (hip_backend_kernels.hpp): row r of `out` = the row at sources[r]
// (device memory holding device addresses); `out` = `in` rounded to bf16 (nearest even).
void gather_rows_at(std::span<const float* const> sources, MatrixView<float> out);
void round_rows_to_bf16(ConstMatrixView<float> in, MatrixView<bf16> out);

struct DeviceMemory {
  static constexpr bool host_visible = false;

  using Stream = hip::Stream;
  using StreamScope = ScopedStream;
  using Matrix = DeviceMatrix<float>;
  template <class T>
  using Array = DeviceBuffer<T>;

  // Rows of `width` floats that keep their contents as they grow (capacity doubles; the old rows
  // are copied on the device).
  class Rows {
   public:
    explicit Rows(std::size_t width) : width_(width) {}
    std::size_t width() const { return width_; }
    std::size_t rows() const { return rows_; }
    void resize(std::size_t rows) {
      if (rows * width_ > storage_.size()) {
        DeviceBuffer<float> fresh(std::max({rows, 2 * capacity(), std::size_t(16)}) * width_);
        detail::copy_2d(fresh.data(), width_, storage_.data(), width_, rows_, width_,
                        hipMemcpyDeviceToDevice, "hipMemcpy2DAsync (KV rows)");
        storage_ = std::move(fresh);  // hipFree waits for the copy
      }
      rows_ = rows;
    }
    MatrixView<float> view() { return {storage_.data(), rows_, width_}; }
    ConstMatrixView<float> view() const { return {storage_.data(), rows_, width_}; }

   private:
    std::size_t capacity() const { return width_ ? storage_.size() / width_ : 0; }
    std::size_t width_ = 0, rows_ = 0;
    DeviceBuffer<float> storage_;
  };

  template <class T>
  static Array<T> array(std::span<const T> host) {
    Array<T> values(host.size());
    values.upload(host);
    return values;
  }
  // The host values copied into `staged` (grown when needed), as a span of device memory.
  template <class T>
  static std::span<const T> stage(std::span<const T> host, Array<T>& staged) {
    if (host.empty()) return {};
    if (staged.size() < host.size()) staged.resize(std::max(host.size(), 2 * staged.size()));
    check(hipMemcpyAsync(staged.data(), host.data(), host.size_bytes(), hipMemcpyHostToDevice,
                         current_stream()),
          "hipMemcpyAsync (host to device)");
    synchronize();  // the host's values may change once this returns
    return {staged.data(), host.size()};
  }

  // Row r of `to` = the to.cols floats at sources[r] (device addresses, staged in `staged`): one
  // kernel.
  static void gather(std::span<const float* const> sources, MatrixView<float> to,
                     Array<const float*>& staged) {
    if (sources.empty()) return;
    gather_rows_at(stage(sources, staged), to);
  }

  static void copy(ConstMatrixView<float> from, MatrixView<float> to) {
    detail::copy_2d(to.data, to.stride, from.data, from.stride, to.rows, to.cols,
                    hipMemcpyDeviceToDevice, "hipMemcpy2DAsync (device to device)");
  }
  static void round_to_bf16(ConstMatrixView<float> from, MatrixView<bf16> to) {
    round_rows_to_bf16(from, to);
  }
  static void upload(ConstMatrixView<float> host, MatrixView<float> to) {
    detail::copy_2d(to.data, to.stride, host.data, host.stride, to.rows, to.cols,
                    hipMemcpyHostToDevice, "hipMemcpy2DAsync (host to device)");
    synchronize();
  }
  static void download(ConstMatrixView<float> from, MatrixView<float> host) {
    detail::copy_2d(host.data, host.stride, from.data, from.stride, host.rows, host.cols,
                    hipMemcpyDeviceToHost, "hipMemcpy2DAsync (device to host)");
    synchronize();
  }
  static void fill_zero(MatrixView<float> to) {
    if (to.rows == 0 || to.cols == 0) return;
    const std::size_t runs = to.contiguous() ? 1 : to.rows;
    const std::size_t run_floats = to.contiguous() ? to.size() : to.cols;
    for (std::size_t r = 0; r < runs; ++r)
      check(
          hipMemsetAsync(to.data + r * to.stride, 0, run_floats * sizeof(float), current_stream()),
          "hipMemsetAsync");
  }
};

}  // namespace recurrent_depth::hip
