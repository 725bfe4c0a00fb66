// Device memory of the HIP backend. DeviceBuffer<T>: an owned array of T in device memory (float,
// bf16, int8, int32, ...), freed on destruction, with whole-array uploads and downloads.
// DeviceMatrix<T>: a [rows, cols] row-major matrix in a DeviceBuffer, rows `stride` elements apart,
// whose view() is the MatrixView<T> over device memory that HipBackend's functions take (such a
// view must never be dereferenced on the host). Uploads and downloads of host views copy row by
// row when either side is strided; downloads wait for the current stream's work.
#pragma once

#include <cstddef>
#include <span>
#include <type_traits>
#include <utility>

#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "hip_runtime.hpp"

namespace recurrent_depth::hip {

template <class T>
class DeviceBuffer {
  static_assert(std::is_trivially_copyable_v<T>, "device buffers hold plain values");

 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t count) { resize(count); }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { release(); }

  // Drops the contents; allocates `count` elements (none for 0).
  void resize(std::size_t count) {
    release();
    if (count == 0) return;
    void* memory = nullptr;
    const hipError_t status = hipMalloc(&memory, count * sizeof(T));
    if (status != hipSuccess)
      fail("HIP: hipMalloc of ", count * sizeof(T), " bytes failed: ", hipGetErrorString(status));
    // HIP-CPU's hipMalloc reports success with no memory when malloc refuses.
    if (memory == nullptr)
      fail("HIP: hipMalloc of ", count * sizeof(T), " bytes returned no memory");
    data_ = static_cast<T*>(memory);
    size_ = count;
  }

  // Bytes set to `byte` (queued on the current stream).
  void fill_bytes(int byte) {
    if (size_ > 0)
      check(hipMemsetAsync(data_, byte, size_ * sizeof(T), current_stream()), "hipMemsetAsync");
  }
  // The first host.size() elements from the host (waits until the copy is done).
  void upload(std::span<const T> host) {
    require(host.size() <= size_, "DeviceBuffer::upload: ", host.size(), " values into ", size_);
    if (!host.empty())
      check(hipMemcpy(data_, host.data(), host.size_bytes(), hipMemcpyHostToDevice),
            "hipMemcpy (host to device)");
  }
  // The first host.size() elements to the host, after the current stream's work.
  void download(std::span<T> host) const {
    require(host.size() <= size_, "DeviceBuffer::download: ", host.size(), " values from ", size_);
    synchronize();
    if (!host.empty())
      check(hipMemcpy(host.data(), data_, host.size_bytes(), hipMemcpyDeviceToHost),
            "hipMemcpy (device to host)");
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Device addresses, so that a buffer converts to a std::span for the kernels.
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  std::span<T> span() { return {data_, size_}; }  // device memory: for kernels only
  std::span<const T> span() const { return {data_, size_}; }

 private:
  void release() noexcept {
    if (data_) (void)hipFree(data_);  // a failing free in a destructor is not reportable
    data_ = nullptr;
    size_ = 0;
  }

  T* data_ = nullptr;
  std::size_t size_ = 0;
};

template <class T>
class DeviceMatrix {
 public:
  DeviceMatrix() = default;
  // stride 0: rows packed (stride = cols).
  DeviceMatrix(std::size_t rows, std::size_t cols, std::size_t stride = 0)
      : rows_(rows), cols_(cols), stride_(stride ? stride : cols) {
    require(stride_ >= cols_, "DeviceMatrix: stride ", stride_, " below ", cols_, " columns");
    buffer_.resize(rows_ == 0 ? 0 : (rows_ - 1) * stride_ + cols_);
  }

  std::size_t rows() const { return rows_; }
  std::size_t cols() const { return cols_; }
  std::size_t stride() const { return stride_; }
  DeviceBuffer<T>& buffer() { return buffer_; }

  // [rows, cols], rows packed; keeps nothing of the old contents and reuses the allocation when it
  // is large enough.
  void resize(std::size_t rows, std::size_t cols) {
    if (rows * cols > buffer_.size()) buffer_.resize(rows * cols);
    rows_ = rows;
    cols_ = cols;
    stride_ = cols;
  }
  MatrixView<T> view() { return {buffer_.data(), rows_, cols_, stride_}; }
  ConstMatrixView<T> view() const { return {buffer_.data(), rows_, cols_, stride_}; }

  // The host matrix's values (same shape) into this one.
  void upload(ConstMatrixView<T> host) {
    require(host.rows == rows_ && host.cols == cols_, "DeviceMatrix::upload: [", host.rows, ", ",
            host.cols, "] into [", rows_, ", ", cols_, "]");
    if (rows_ == 0 || cols_ == 0) return;
    check(hipMemcpy2D(buffer_.data(), stride_ * sizeof(T), host.data, host.stride * sizeof(T),
                      cols_ * sizeof(T), rows_, hipMemcpyHostToDevice),
          "hipMemcpy2D (host to device)");
  }
  // This matrix's values into the host matrix (same shape), after the current stream's work.
  void download(MatrixView<T> host) const {
    require(host.rows == rows_ && host.cols == cols_, "DeviceMatrix::download: [", rows_, ", ",
            cols_, "] into [", host.rows, ", ", host.cols, "]");
    synchronize();
    if (rows_ == 0 || cols_ == 0) return;
    check(hipMemcpy2D(host.data, host.stride * sizeof(T), buffer_.data(), stride_ * sizeof(T),
                      cols_ * sizeof(T), rows_, hipMemcpyDeviceToHost),
          "hipMemcpy2D (device to host)");
  }

 private:
  std::size_t rows_ = 0, cols_ = 0, stride_ = 0;
  DeviceBuffer<T> buffer_;
};

}  // namespace recurrent_depth::hip
