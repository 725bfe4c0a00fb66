// A second file that includes the HIP backend and launches its kernels, linked into the HIP tests
// with hip_kernel_runner.cpp: a header-only backend must define its kernels in every including file
// without two definitions of anything (hip_runtime.hpp says how).
#include "recurrent_depth/backends/hip/hip_backend.hpp"

namespace recurrent_depth::hip_test {

// Instantiates (never runs) one launch of each kernel family.
void second_translation_unit(const hip::DeviceWeights<float>& w, MatrixView<float> x,
                             MatrixView<float> y) {
  HipBackend::linear(x, w, y);
  HipBackend::rms_norm(x, {}, 1e-6f, y);
  HipBackend::causal_attention(x, x, x, 1, x.cols, 0, y);
  HipBackend::gather_rows(w, {}, 1.0f, y);
}

}  // namespace recurrent_depth::hip_test
