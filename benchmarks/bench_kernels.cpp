// Kernel benchmarks: RMSNorm (the RmsNorm policy over CpuBackend::rms_norm) and the raw dense
// kernel (the selected kernels' linear) at the shapes of a block's four matmuls (Wqkv, attention
// proj, MLP fc, MLP proj), for decode (1 position) and a prefill chunk, f32 and bf16 weights.
#include <span>
#include <string>
#include <vector>

#include "fixtures.hpp"

namespace rdbench {
namespace {

// y = rmsnorm(x) * weight over [T, n_embd]. The norm weight is float32 in both precisions (norms
// are computed in float32); its 4 * n_embd bytes hardly matter, so act_GB/s (x read, y written)
// is the figure to read.
template <class Precision>
struct RmsNormFixture : RotatingFixture {
  using Layer = rd::RmsNorm::Layer<Backend, Precision>;
  std::vector<Layer> layers;
  std::size_t width = 0;
  rd::Matrix<float> x, out;

  explicit RmsNormFixture(const std::string& shape) {
    const rd::ModelConfig config = bench_config(shape);
    width = static_cast<std::size_t>(config.n_embd);
    count = copies_for(width * sizeof(float));
    const rd::Checkpoint& checkpoint = checkpoint_for(shape);
    layers.resize(count);
    for (Layer& layer : layers) layer.load(checkpoint, kBlockName + ".norm_1", config);
  }
  void resize_inputs(std::size_t positions) {
    if (x.rows() != positions) x = random_matrix(positions, width, kSeed + 1, 3.0);
    out.resize(positions, width);
  }
  void run(std::size_t copy, std::size_t) { layers[copy](x.view(), out.view()); }
  Work work(std::size_t positions) const {
    Work w;
    w.weight_bytes = static_cast<double>(width * sizeof(float));
    w.flops = 4.0 * static_cast<double>(width * positions);  // square+add, scale*weight
    w.activation_bytes = 2.0 * sizeof(float) * static_cast<double>(width * positions);
    return w;
  }
};

// The four matmuls of a sandwich block, by checkpoint tensor.
struct MatmulShape {
  const char* label;   // benchmark name part
  const char* tensor;  // suffix after transformer.core_block.0
  std::size_t rows, cols;
};

inline std::vector<MatmulShape> block_matmuls(const rd::ModelConfig& c) {
  const auto h = static_cast<std::size_t>(c.n_embd);
  const auto m = static_cast<std::size_t>(c.intermediate_size);
  return {{"Wqkv", ".attn.Wqkv.weight", 3 * h, h},
          {"attn_proj", ".attn.proj.weight", h, h},
          {"fc", ".mlp.fc.weight", 2 * m, h},
          {"mlp_proj", ".mlp.proj.weight", h, m}};
}

// y [T, rows] = x [T, cols] W^T with the raw kernel, weights packed by PackedWeights::from_rows.
template <class Precision>
struct LinearFixture : RotatingFixture {
  using Source = typename Precision::Source;
  using Packed = rd::CpuBackend::Weights<Precision>;
  std::vector<Packed> weights;
  MatmulShape shape;
  rd::Matrix<float> x, y;

  LinearFixture(const std::string& model_shape, const MatmulShape& matmul) : shape(matmul) {
    std::vector<Source> source(shape.rows * shape.cols);
    checkpoint_for(model_shape)
        .read<Source>(kBlockName + shape.tensor,
                      {std::int64_t(shape.rows), std::int64_t(shape.cols)},
                      std::span<Source>(source));
    const auto pack = [&] {
      return Packed::from_rows(std::span<const Source>(source), shape.rows, shape.cols);
    };
    weights.push_back(pack());
    count = copies_for(weights.front().bytes());
    weights.reserve(count);
    while (weights.size() < count) weights.push_back(pack());
  }
  void resize_inputs(std::size_t positions) {
    if (x.rows() != positions) x = random_matrix(positions, shape.cols, kSeed + 2);
    y.resize(positions, shape.rows);
  }
  void run(std::size_t copy, std::size_t) {
    rd::cpu::selected_kernels().linear(x.view(), weights[copy], y.view());
  }
  Work work(std::size_t positions) const {
    Work w;
    const double params = static_cast<double>(shape.rows * shape.cols);
    w.weight_bytes = static_cast<double>(weights.front().bytes());  // padding and scales included
    w.flops = 2.0 * params * static_cast<double>(positions);
    return w;
  }
};

template <class Precision>
void register_kernels(const std::string& shape) {
  const std::string prefix = shape + "/" + std::string(Precision::name) + "/";
  register_fixture<RmsNormFixture<Precision>>(
      shape, prefix + "rms_norm",
      [shape] { return std::make_unique<RmsNormFixture<Precision>>(shape); },
      /*microseconds=*/true);
  for (const MatmulShape& matmul : block_matmuls(bench_config(shape))) {
    register_fixture<LinearFixture<Precision>>(
        shape, prefix + "linear/" + matmul.label,
        [shape, matmul] { return std::make_unique<LinearFixture<Precision>>(shape, matmul); });
  }
}

}  // namespace

void register_kernel_benchmarks(const std::string& shape, rd::WeightFormat format) {
  rd::with_weight_format(format,
                         [&](auto precision) { register_kernels<decltype(precision)>(shape); });
}

}  // namespace rdbench
