// hipcc's half of the HIP kernel tests: hip_kernel_runner.hpp's functions over HipBackend (and the
// two attention kernels on their own).
#include "hip_kernel_runner.hpp"

#include <span>
#include <vector>

#include "recurrent_depth/backends/hip/attention.hpp"
#include "recurrent_depth/backends/hip/hip_backend.hpp"

namespace recurrent_depth::hip_test {
namespace {

// A HostView's whole buffer in device memory, and the view's place in it.
struct OnDevice {
  hip::DeviceBuffer<float> buffer;
  HostView host;

  explicit OnDevice(HostView view) : buffer(view.buffer->size()), host(view) {
    buffer.upload(*view.buffer);
  }
  MatrixView<float> view() {
    return {buffer.data() + host.offset, host.rows, host.cols, host.stride};
  }
  ConstMatrixView<float> cview() { return view(); }
  void download() { buffer.download(*host.buffer); }  // after the queued kernels
};

template <class T>
hip::DeviceBuffer<T> to_device(std::span<const T> values) {
  hip::DeviceBuffer<T> device(values.size());
  device.upload(values);
  return device;
}

template <class Weights>
void linear_on_device(HostView x, const Weights& weights, HostView y, bool accumulate) {
  OnDevice x_device(x), y_device(y);
  HipBackend::linear(x_device.cview(), weights, y_device.view(), accumulate);
  y_device.download();
}

}  // namespace

int device_count() {
  return hip::device_count();
}

void allocate_floats(std::size_t count) {
  hip::DeviceBuffer<float> buffer(count);
}

template <class W>
void linear(HostView x, ConstMatrixView<W> w, HostView y, bool accumulate) {
  linear_on_device(x, hip::DeviceWeights<W>::from_view(w), y, accumulate);
}
template void linear<float>(HostView, ConstMatrixView<float>, HostView, bool);
template void linear<bf16>(HostView, ConstMatrixView<bf16>, HostView, bool);

void linear_int8(HostView x, const cpu::PackedWeights<std::int8_t>& w, HostView y,
                 bool accumulate) {
  linear_on_device(x, hip::DeviceWeights<std::int8_t>::from_packed(w), y, accumulate);
}

void linear_q4(HostView x, const cpu::PackedQ4Weights& w, HostView y, bool accumulate) {
  linear_on_device(x, hip::DeviceQ4Weights::from_packed(w), y, accumulate);
}

void linear_int8_two_streams(HostView x_first, HostView x_second,
                             const cpu::PackedWeights<std::int8_t>& w, HostView y_first,
                             HostView y_second) {
  const auto weights = hip::DeviceWeights<std::int8_t>::from_packed(w);
  OnDevice x1(x_first), x2(x_second), y1(y_first), y2(y_second);
  hipStream_t streams[2];
  for (hipStream_t& stream : streams) hip::check(hipStreamCreate(&stream), "hipStreamCreate");
  {
    const hip::ScopedStream first(streams[0]);
    HipBackend::linear(x1.cview(), weights, y1.view());
  }
  {
    const hip::ScopedStream second(streams[1]);
    HipBackend::linear(x2.cview(), weights, y2.view());
    y2.download();
  }
  {
    const hip::ScopedStream first(streams[0]);
    y1.download();
  }
  for (hipStream_t stream : streams) hip::check(hipStreamDestroy(stream), "hipStreamDestroy");
}

void rms_norm(HostView in, std::span<const float> weight, float eps, HostView out) {
  const auto weight_device = to_device(weight);
  OnDevice in_device(in), out_device(out);
  HipBackend::rms_norm(in_device.cview(), weight_device.span(), eps, out_device.view());
  out_device.download();
}

void rms_norm_in_place(HostView x, std::span<const float> weight, float eps) {
  const auto weight_device = to_device(weight);
  OnDevice x_device(x);
  HipBackend::rms_norm(x_device.cview(), weight_device.span(), eps, x_device.view());
  x_device.download();
}

void add_rms_norm(HostView x, HostView delta, std::span<const float> weight, float eps) {
  const auto weight_device = to_device(weight);
  OnDevice x_device(x), delta_device(delta);
  HipBackend::add_rms_norm(x_device.view(), delta_device.cview(), weight_device.span(), eps);
  x_device.download();
}

void silu_gate(HostView fc, HostView out) {
  OnDevice fc_device(fc), out_device(out);
  HipBackend::silu_gate(fc_device.cview(), out_device.view());
  out_device.download();
}

void rope_adjacent_pairs(HostView x, std::size_t heads, std::size_t head_dim,
                         std::span<const float> bias, ConstMatrixView<float> cos_sin,
                         std::size_t first_position) {
  hip::DeviceMatrix<float> table(cos_sin.rows, cos_sin.cols, cos_sin.stride);
  table.upload(cos_sin);
  const auto bias_device = to_device(bias);
  OnDevice x_device(x);
  HipBackend::rope_adjacent_pairs(x_device.view(), heads, head_dim, bias_device.span(),
                                  table.view(), first_position);
  x_device.download();
}

void causal_attention(AttentionKernel kernel, HostView q, HostView keys, HostView values,
                      std::size_t heads, std::size_t head_dim, std::size_t first_position,
                      HostView out, std::span<const std::int32_t> key_positions, bool bf16_keys) {
  OnDevice q_device(q), keys_device(keys), values_device(values), out_device(out);
  const auto positions = to_device(key_positions);
  const auto run = [&]<class Key>(ConstMatrixView<Key> k, ConstMatrixView<Key> v) {
    if (kernel == AttentionKernel::decode)
      hip::attention_decode(q_device.cview(), k, v, heads, head_dim, first_position,
                            out_device.view(), positions.span());
    else if (kernel == AttentionKernel::prefill)
      hip::attention_prefill(q_device.cview(), k, v, heads, head_dim, first_position,
                             out_device.view(), positions.span());
    else
      HipBackend::causal_attention(q_device.cview(), k, v, heads, head_dim, first_position,
                                   out_device.view(), positions.span());
  };
  if (!bf16_keys) {
    run(keys_device.cview(), values_device.cview());
  } else {
    hip::DeviceBuffer<bf16> keys16(keys.rows * keys.cols), values16(values.rows * values.cols);
    const MatrixView<bf16> k(keys16.data(), keys.rows, keys.cols),
        v(values16.data(), values.rows, values.cols);
    hip::DeviceMemory::round_to_bf16(keys_device.cview(), k);
    hip::DeviceMemory::round_to_bf16(values_device.cview(), v);
    run(ConstMatrixView<bf16>(k), ConstMatrixView<bf16>(v));
  }
  out_device.download();
}

std::size_t prefill_max_head_dim() {
  return hip::kPrefillMaxHeadDim;
}

void add(HostView a, HostView b, HostView out) {
  OnDevice a_device(a), b_device(b), out_device(out);
  HipBackend::add(a_device.cview(), b_device.cview(), out_device.view());
  out_device.download();
}

void add_in_place(HostView a, HostView b) {
  OnDevice a_device(a), b_device(b);
  HipBackend::add(a_device.cview(), b_device.cview(), a_device.view());
  a_device.download();
}

void copy(HostView in, HostView out) {
  OnDevice in_device(in), out_device(out);
  HipBackend::copy(in_device.cview(), out_device.view());
  out_device.download();
}

template <class W>
void gather_rows(const cpu::PackedWeights<W>& table, std::span<const std::int32_t> ids, float scale,
                 HostView out) {
  const auto weights = hip::DeviceWeights<W>::from_packed(table);
  const auto ids_device = to_device(ids);
  OnDevice out_device(out);
  HipBackend::gather_rows(weights, ids_device.span(), scale, out_device.view());
  out_device.download();
}
template void gather_rows<float>(const cpu::PackedWeights<float>&, std::span<const std::int32_t>,
                                 float, HostView);
template void gather_rows<bf16>(const cpu::PackedWeights<bf16>&, std::span<const std::int32_t>,
                                float, HostView);
template void gather_rows<std::int8_t>(const cpu::PackedWeights<std::int8_t>&,
                                       std::span<const std::int32_t>, float, HostView);

}  // namespace recurrent_depth::hip_test
