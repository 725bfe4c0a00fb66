// A second file that includes the HIP backend's kernels and launches them, linked into the HIP
// tests with hip_kernel_runner.cpp and the recurrent_depth_hip library: the kernel headers define
// their kernels in every including file without two definitions of anything (kernel_launch.hpp says
// how). It also builds the model on HipBackend, so that the model's headers stay compilable by
// hipcc itself (no JSON, no std::map of move-only values: Debian 12's clang 15 crashes on both).
#include <cstdint>
#include <span>

#include "recurrent_depth/backends/hip/attention.hpp"
#include "recurrent_depth/backends/hip/elementwise.hpp"
#include "recurrent_depth/backends/hip/hip_backend.hpp"
#include "recurrent_depth/backends/hip/linear.hpp"
#include "recurrent_depth/model/recurrent_depth_model.hpp"

namespace recurrent_depth::hip_test {

// Instantiates (never runs) one launch of each kernel family.
void second_translation_unit(const hip::DeviceWeights<float>& w, MatrixView<float> x,
                             MatrixView<float> y) {
  hip::linear(x, w, y);
  hip::rms_norm(x, {}, 1e-6f, y);
  hip::causal_attention<float>(x, x, x, 1, x.cols, 0, y);
  const ConstMatrixView<bf16> entries(reinterpret_cast<const bf16*>(x.data), x.rows, x.cols);
  hip::causal_attention(x, entries, entries, 1, x.cols, 0, y);
  hip::gather_rows(w, {}, 1.0f, y);
}

// Instantiates (never runs) a model's construction and forward pass.
ForwardResult forward_in_hip_file(const ModelConfig& config, const Checkpoint& checkpoint,
                                  std::span<const std::int32_t> ids) {
  const RecurrentDepthModel<HipBackend, BF16> model(config, checkpoint);
  auto session = model.new_session();
  return model.forward(session, ids);
}

}  // namespace recurrent_depth::hip_test
