// Block benchmarks: the policies of Huginn's block as the model runs them, loaded with their
// `load` functions from the synthetic checkpoint under the real names: the attention layer, the
// gated MLP, the per-iteration part of the adapter, a whole sandwich block and one core iteration
// (adapter + 4 core blocks), for decode (1 position) and a prefill chunk, in every weight format
// (the KV slots in the format its models use).
#include <string>
#include <vector>

#include "fixtures.hpp"

namespace rdbench {
namespace {

using Attention = rd::CausalSelfAttention<rd::RoPEAdjacentPairs, rd::QkBias>;
using Mlp = rd::GatedMlp<rd::Silu>;

// Attention FLOPs beyond the projections: q.k and p.v, 2 * n_embd each per visible key.
inline double attention_core_flops(std::size_t width, std::size_t positions) {
  return 4.0 * static_cast<double>(width) * visible_keys(positions);
}
// Bytes one call reads from a copy and its KV slot: what the rotation must keep out of cache.
template <class Precision>
std::size_t touched_with_kv(std::size_t weight_bytes, const AttentionState<Precision>& attention) {
  return weight_bytes + static_cast<std::size_t>(attention.attended_bytes(kPrefillChunk));
}

template <class Layer>
double matmul_params(const Layer& layer, std::size_t storage_size) {
  return static_cast<double>(layer.weight_bytes()) / static_cast<double>(storage_size);
}

// The whole CausalSelfAttention layer: Wqkv, q/k bias + RoPE, KV write, attention over kContext
// cached positions, output projection. Copy c uses KV slot c.
template <class Precision>
struct AttentionFixture : RotatingFixture {
  using Layer = typename Attention::template Layer<Backend, Precision>;
  std::vector<Layer> layers;
  AttentionState<Precision> attention;
  std::size_t width = 0;
  rd::Matrix<float> x, out;

  explicit AttentionFixture(const std::string& shape) : attention(bench_config(shape)) {
    const rd::ModelConfig config = bench_config(shape);
    width = static_cast<std::size_t>(config.n_embd);
    const rd::Checkpoint& checkpoint = checkpoint_for(shape);
    Layer first;
    first.load(checkpoint, kBlockName + ".attn", config);
    count = copies_for(touched_with_kv(first.weight_bytes(), attention));
    layers.reserve(count);
    layers.push_back(std::move(first));
    while (layers.size() < count)
      layers.emplace_back().load(checkpoint, kBlockName + ".attn", config);
    std::vector<int> slots;
    for (std::size_t c = 0; c < count; ++c) slots.push_back(static_cast<int>(c));
    attention.populate(slots);
  }
  void resize_inputs(std::size_t positions) {
    if (x.rows() != positions) x = random_matrix(positions, width, kSeed + 3);
    out.resize(positions, width);
  }
  void run(std::size_t copy, std::size_t positions) {
    layers[copy].forward(x.view(), out.view(),
                         attention.context(static_cast<int>(copy), positions));
  }
  Work work(std::size_t positions) const {
    Work w;
    w.weight_bytes = static_cast<double>(layers.front().weight_bytes());
    w.flops = 2.0 * matmul_params(layers.front(), sizeof(typename Precision::Storage)) *
                  static_cast<double>(positions) +
              attention_core_flops(width, positions);
    w.kv_bytes = attention.attended_bytes(positions);
    return w;
  }
};

// The gated MLP: fc [2 * mlp, n_embd], silu(gate) * up, proj [n_embd, mlp].
template <class Precision>
struct MlpFixture : RotatingFixture {
  using Layer = typename Mlp::template Layer<Backend, Precision>;
  std::vector<Layer> layers;
  rd::Workspace workspace;
  std::size_t width = 0;
  rd::Matrix<float> x, out;

  explicit MlpFixture(const std::string& shape) {
    const rd::ModelConfig config = bench_config(shape);
    width = static_cast<std::size_t>(config.n_embd);
    const rd::Checkpoint& checkpoint = checkpoint_for(shape);
    Layer first;
    first.load(checkpoint, kBlockName + ".mlp", config);
    count = copies_for(first.weight_bytes());
    layers.reserve(count);
    layers.push_back(std::move(first));
    while (layers.size() < count)
      layers.emplace_back().load(checkpoint, kBlockName + ".mlp", config);
  }
  void resize_inputs(std::size_t positions) {
    if (x.rows() != positions) x = random_matrix(positions, width, kSeed + 4);
    out.resize(positions, width);
  }
  void run(std::size_t copy, std::size_t) { layers[copy].forward(x.view(), out.view(), workspace); }
  Work work(std::size_t positions) const {
    Work w;
    w.weight_bytes = static_cast<double>(layers.front().weight_bytes());
    w.flops = 2.0 * matmul_params(layers.front(), sizeof(typename Precision::Storage)) *
              static_cast<double>(positions);
    return w;
  }
};

// The adapter's per-iteration work, apply(): out = W_e e (prepared once per forward) + W_s s. Only
// W_s, half of the [n_embd, 2 n_embd] weight, is read per iteration, so that half is what the
// counters and the rotation size count.
template <class Precision>
struct AdapterFixture : RotatingFixture {
  using Layer = typename rd::ConcatLinearAdapter::template Layer<Backend, Precision>;
  std::vector<Layer> layers;
  std::size_t width = 0;
  rd::Matrix<float> state, injected, out;

  explicit AdapterFixture(const std::string& shape) {
    const rd::ModelConfig config = bench_config(shape);
    width = static_cast<std::size_t>(config.n_embd);
    const rd::Checkpoint& checkpoint = checkpoint_for(shape);
    const std::string name = rd::names::kAdapter;
    Layer first;
    first.load(checkpoint, name, config);
    count = copies_for(first.weight_bytes() / 2);
    layers.reserve(count);
    layers.push_back(std::move(first));
    while (layers.size() < count) layers.emplace_back().load(checkpoint, name, config);
  }
  void resize_inputs(std::size_t positions) {
    if (state.rows() != positions) {
      state = random_matrix(positions, width, kSeed + 5);
      injected = random_matrix(positions, width, kSeed + 6);
    }
    out.resize(positions, width);
  }
  void run(std::size_t copy, std::size_t) {
    layers[copy].apply(state.view(), injected.view(), out.view());
  }
  Work work(std::size_t positions) const {
    Work w;
    w.weight_bytes = static_cast<double>(layers.front().weight_bytes()) / 2;
    w.flops = 2.0 * static_cast<double>(width * width * positions);
    return w;
  }
};

// A whole sandwich block, x = n2(x + attn(n1(x))); x = n4(x + mlp(n3(x))), updated in place
// (x stays normalised, so repeated calls keep it bounded). Copy c uses KV slot c.
template <class Precision>
struct BlockFixture : RotatingFixture {
  using Layer = typename rd::HuginnBlock::template Layer<Backend, Precision>;
  std::vector<Layer> layers;
  AttentionState<Precision> attention;
  std::size_t width = 0;
  rd::Matrix<float> x;

  explicit BlockFixture(const std::string& shape) : attention(bench_config(shape)) {
    const rd::ModelConfig config = bench_config(shape);
    width = static_cast<std::size_t>(config.n_embd);
    const rd::Checkpoint& checkpoint = checkpoint_for(shape);
    Layer first;
    first.load(checkpoint, kBlockName, config);
    count = copies_for(touched_with_kv(first.weight_bytes(), attention));
    layers.reserve(count);
    layers.push_back(std::move(first));
    while (layers.size() < count) layers.emplace_back().load(checkpoint, kBlockName, config);
    std::vector<int> slots;
    for (std::size_t c = 0; c < count; ++c) slots.push_back(static_cast<int>(c));
    attention.populate(slots);
  }
  void resize_inputs(std::size_t positions) {
    if (x.rows() != positions) x = random_matrix(positions, width, kSeed + 7);
  }
  void run(std::size_t copy, std::size_t positions) {
    layers[copy].forward(x.view(), attention.context(static_cast<int>(copy), positions));
  }
  Work work(std::size_t positions) const {
    Work w;
    w.weight_bytes = static_cast<double>(layers.front().weight_bytes());
    w.flops = 2.0 * matmul_params(layers.front(), sizeof(typename Precision::Storage)) *
                  static_cast<double>(positions) +
              attention_core_flops(width, positions);
    w.kv_bytes = attention.attended_bytes(positions);
    return w;
  }
};

// One core iteration as RecurrentCore::iterate runs it: next = adapter.apply(state, injected),
// then the 4 core blocks on next, block j of iteration i on KV slot n_prelude + 4 i + j. The
// checkpoint holds one core block (to save memory; RecurrentCore::Layer::load would need all four
// names), so the 4 blocks are loaded from transformer.core_block.0: as 4 independent copies when a
// block is smaller than the rotation, otherwise as one copy run 4 times (its weights are then
// evicted before they are read again anyway; this keeps huginn-0125's f32 fixture at 1.8 GB
// instead of 6.5 GB, and its set-up 4x shorter). Copy c plays iteration c, so every copy has its
// own KV slots, as successive iterations do.
template <class Precision>
struct CoreIterationFixture : RotatingFixture {
  using AdapterLayer = typename rd::ConcatLinearAdapter::template Layer<Backend, Precision>;
  using BlockLayer = typename rd::HuginnBlock::template Layer<Backend, Precision>;
  static constexpr int kCoreLayers = 4;
  struct Iteration {
    AdapterLayer adapter;
    std::vector<BlockLayer> blocks;  // kCoreLayers or 1 (then block j runs blocks[0])
    const BlockLayer& block(int j) const { return blocks[blocks.size() == 1 ? 0 : j]; }
  };
  std::vector<Iteration> iterations;
  AttentionState<Precision> attention;
  std::size_t width = 0;
  int first_slot = 0;
  rd::Matrix<float> state, injected, next;

  explicit CoreIterationFixture(const std::string& shape) : attention(bench_config(shape)) {
    const rd::ModelConfig config = bench_config(shape);
    width = static_cast<std::size_t>(config.n_embd);
    first_slot = config.n_layers_in_prelude;
    const rd::Checkpoint& checkpoint = checkpoint_for(shape);
    const auto load = [&](Iteration& it, std::size_t blocks) {
      it.adapter.load(checkpoint, rd::names::kAdapter, config);
      while (it.blocks.size() < blocks)
        it.blocks.emplace_back().load(checkpoint, kBlockName, config);
    };
    iterations.reserve(1);
    Iteration& first = iterations.emplace_back();
    load(first, 1);
    const std::size_t distinct =
        first.blocks[0].weight_bytes() < rotation_bytes() ? kCoreLayers : 1;
    while (first.blocks.size() < distinct)
      first.blocks.emplace_back().load(checkpoint, kBlockName, config);
    count = copies_for(static_cast<std::size_t>(touched_bytes()) +
                       kCoreLayers * touched_with_kv(0, attention));
    iterations.reserve(count);
    while (iterations.size() < count) load(iterations.emplace_back(), distinct);
    std::vector<int> slots;
    for (std::size_t c = 0; c < count; ++c)
      for (int j = 0; j < kCoreLayers; ++j) slots.push_back(slot_of(c, j));
    attention.populate(slots);
  }
  int slot_of(std::size_t iteration, int layer) const {
    return first_slot + kCoreLayers * static_cast<int>(iteration) + layer;
  }
  // Weight bytes one iteration reads: half the adapter (W_s) and 4 blocks.
  double touched_bytes() const {
    const Iteration& it = iterations.front();
    return static_cast<double>(it.adapter.weight_bytes()) / 2 +
           kCoreLayers * static_cast<double>(it.blocks.front().weight_bytes());
  }
  void resize_inputs(std::size_t positions) {
    if (state.rows() != positions) {
      state = random_matrix(positions, width, kSeed + 8);
      injected = random_matrix(positions, width, kSeed + 9);
    }
    next.resize(positions, width);
  }
  void run(std::size_t copy, std::size_t positions) {
    const Iteration& it = iterations[copy];
    it.adapter.apply(state.view(), injected.view(), next.view());
    const rd::BlockContext context = attention.context(slot_of(copy, 0), positions);
    for (int j = 0; j < kCoreLayers; ++j)
      it.block(j).forward(next.view(), context.at_slot(slot_of(copy, j)));
  }
  Work work(std::size_t positions) const {
    Work w;
    const double storage = sizeof(typename Precision::Storage);
    w.weight_bytes = touched_bytes();
    w.flops = 2.0 * (w.weight_bytes / storage) * static_cast<double>(positions) +
              kCoreLayers * attention_core_flops(width, positions);
    w.kv_bytes = kCoreLayers * attention.attended_bytes(positions);
    return w;
  }
};

template <template <class> class Fixture, class Precision>
void register_one(const std::string& shape, const std::string& name) {
  register_fixture<Fixture<Precision>>(
      shape, name, [shape] { return std::make_unique<Fixture<Precision>>(shape); });
}

template <class Precision>
void register_blocks(const std::string& shape) {
  const std::string prefix = shape + "/" + std::string(Precision::name) + "/";
  register_one<AttentionFixture, Precision>(shape, prefix + "attention");
  register_one<MlpFixture, Precision>(shape, prefix + "mlp");
  register_one<AdapterFixture, Precision>(shape, prefix + "adapter");
  register_one<BlockFixture, Precision>(shape, prefix + "block");
  register_one<CoreIterationFixture, Precision>(shape, prefix + "core_iteration");
}

}  // namespace

void register_block_benchmarks(const std::string& shape, rd::WeightFormat format) {
  rd::with_weight_format(format,
                         [&](auto precision) { register_blocks<decltype(precision)>(shape); });
}

}  // namespace rdbench
