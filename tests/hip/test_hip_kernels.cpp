// HIP kernel tests: every HipBackend kernel against the CPU backend's scalar twin (cpu::scalar) on
// fresh seeded random data, with the CPU kernel tests' method and tolerances
// (kernel_test_support.hpp, kernel_test_cases.hpp): device views that start one element into their
// buffer with padded rows (the guards around them go to the device and back, and must survive),
// sizes that are not multiples of the wavefront (32 or 64) or of the 16-byte vectors, and both
// attention kernels. The device side is hip_kernel_runner.cpp (hipcc); this file is compiled by the
// project's compiler. Built with RECURRENT_DEPTH_HIP=ON. Without a GPU (hipGetDeviceCount fails or
// finds none) each test says that it skips with a WARN and passes: Catch2 2.13 has no SKIP.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "../kernel_test_cases.hpp"
#include "../kernel_test_support.hpp"
#include "hip_kernel_runner.hpp"
#include "recurrent_depth/backends/cpu/cpu_backend.hpp"
#include "recurrent_depth/backends/cpu/scalar_reference.hpp"
#include "recurrent_depth/backends/hip/device_memory.hpp"
#include "recurrent_depth/blocks/block_context.hpp"
#include "skip_without_gpu.hpp"

using namespace recurrent_depth;
using namespace recurrent_depth::kernel_test;
namespace device = recurrent_depth::hip_test;

namespace {

bool skipped_without_gpu() {
  return hip_test::skipped_without_gpu("the HIP kernels");
}

device::HostView on(Strided& host) {
  return {&host.buffer, host.offset, host.view.rows, host.view.cols, host.view.stride};
}

// ---------------------------------------------------------------------------------------------
// linear

template <class W>
void check_linear(std::size_t M, std::size_t N, std::size_t K, bool accumulate, Rng& rng) {
  Strided x(M, K, 1, 3);
  x.randomize(rng);
  const StridedWeights<W> w(N, K, rng);
  Strided fast(M, N, 1, 2), reference(M, N, 0, 0);
  const std::vector<float> initial = start_outputs(fast, reference, accumulate, rng);
  device::linear(on(x), w.view, on(fast), accumulate);
  cpu::scalar::linear(x.cview(), w.view, reference.view, accumulate);
  INFO("M " << M << " N " << N << " K " << K << " accumulate " << accumulate);
  REQUIRE(fast.guards_intact());
  REQUIRE(linear_error_ratio(x.cview(), w.view, initial, reference.cview(), fast.cview()) <= 1.0);
}

void check_linear_int8(std::size_t M, std::size_t N, std::size_t K, bool accumulate, Rng& rng) {
  Strided x(M, K, 1, 3);
  x.randomize(rng, 0.01, 3.0);
  const Int8Weights w = random_int8(N, K, rng);
  const Matrix<std::int8_t> q = unpacked(w);
  Strided fast(M, N, 1, 2), reference(M, N, 0, 0);
  const std::vector<float> initial = start_outputs(fast, reference, accumulate, rng);
  device::linear_int8(on(x), w, on(fast), accumulate);
  cpu::scalar::linear_int8(x.cview(), q.view(), w.scales(), reference.view, accumulate);
  INFO("int8 M " << M << " N " << N << " K " << K << " accumulate " << accumulate);
  REQUIRE(fast.guards_intact());
  REQUIRE(int8_error_ratio(initial, reference.cview(), fast.cview()) <= 1.0);
}

void check_linear_q4(std::size_t M, std::size_t N, std::size_t K, bool accumulate, Rng& rng) {
  check_linear_q4_case(M, N, K, accumulate, rng,
                       [](Strided& x, const Q4Weights& w, Strided& y, bool add) {
                         device::linear_q4(on(x), w, on(y), add);
                       });
}

// Every (M, N, K): GEMV (1 and up to 8 positions) and the tiled GEMM (9 and more, tiles of 64
// with part-empty last tiles), rows not filling a block of wavefronts, K not whole vectors.
template <class Check>
void for_linear_shapes(Check&& check) {
  for (bool accumulate : {false, true})
    for (std::size_t M : {1, 2, 5, 8, 9, 33})
      for (std::size_t N : {1, 7, 18})
        for (std::size_t K : kColumns) check(M, N, K, accumulate);
  check(1, 67, 1000, false);   // many wavefronts, a long reduction
  check(3, 203, 300, true);    // 203 rows: blocks of wavefronts with a part-empty last one
  check(70, 29, 257, false);   // GEMM: two position tiles, the second part empty
  check(65, 130, 1100, true);  // GEMM: several tiles both ways, many K stages
}

// ---------------------------------------------------------------------------------------------
// the row-wise kernels

std::vector<std::pair<std::size_t, std::size_t>> row_shapes() {
  std::vector<std::pair<std::size_t, std::size_t>> shapes;
  for (std::size_t rows : kRowCounts)
    for (std::size_t cols : kColumns) shapes.push_back({rows, cols});
  shapes.push_back({130, 257});
  shapes.push_back({2, 5280});  // Huginn's width: many elements per thread
  return shapes;
}

}  // namespace

// =============================================================================================

TEST_CASE("hip kernels: linear with float weights matches the scalar twin", "[hip][linear]") {
  if (skipped_without_gpu()) return;
  Rng rng(1101);
  for_linear_shapes([&](std::size_t M, std::size_t N, std::size_t K, bool accumulate) {
    check_linear<float>(M, N, K, accumulate, rng);
  });
}

TEST_CASE("hip kernels: linear with bf16 weights matches the scalar twin", "[hip][linear]") {
  if (skipped_without_gpu()) return;
  Rng rng(1102);
  for_linear_shapes([&](std::size_t M, std::size_t N, std::size_t K, bool accumulate) {
    check_linear<bf16>(M, N, K, accumulate, rng);
  });
}

TEST_CASE("hip kernels: linear with int8 weights matches the scalar twin", "[hip][int8]") {
  if (skipped_without_gpu()) return;
  Rng rng(1103);
  for_linear_shapes([&](std::size_t M, std::size_t N, std::size_t K, bool accumulate) {
    check_linear_int8(M, N, K, accumulate, rng);
  });
}

TEST_CASE("hip kernels: linear with q4 weights matches the scalar twin", "[hip][q4]") {
  if (skipped_without_gpu()) return;
  Rng rng(1106);
  for_linear_shapes([&](std::size_t M, std::size_t N, std::size_t K, bool accumulate) {
    check_linear_q4(M, N, K, accumulate, rng);
  });
  check_linear_q4(2, 5, 1056, false, rng);  // huginn-mini's width: 33 groups
  check_linear_q4(40, 9, 3584, true, rng);  // its MLP's: 112 groups, on the GEMM
}

TEST_CASE("hip kernels: int8 products on two streams of one thread", "[hip][int8]") {
  if (skipped_without_gpu()) return;
  Rng rng(1105);
  const std::size_t K = 300, N = 67;
  const Int8Weights w = random_int8(N, K, rng);
  const Matrix<std::int8_t> q = unpacked(w);
  for (std::size_t M : {1, 5, 20}) {
    Strided x1(M, K), x2(M, K), y1(M, N), y2(M, N), reference(M, N, 0, 0);
    x1.randomize(rng, 0.01, 3.0);
    x2.randomize(rng, 0.01, 3.0);
    y1.fill(kNaN);
    y2.fill(kNaN);
    device::linear_int8_two_streams(on(x1), on(x2), w, on(y1), on(y2));
    INFO("M " << M);
    cpu::scalar::linear_int8(x1.cview(), q.view(), w.scales(), reference.view);
    REQUIRE(int8_error_ratio({}, reference.cview(), y1.cview()) <= 1.0);
    cpu::scalar::linear_int8(x2.cview(), q.view(), w.scales(), reference.view);
    REQUIRE(int8_error_ratio({}, reference.cview(), y2.cview()) <= 1.0);
  }
}

TEST_CASE("hip kernels: errors name the shapes or the HIP call", "[hip][errors]") {
  if (skipped_without_gpu()) return;
  Rng rng(1104);
  Strided x(2, 10), y(2, 3);
  x.randomize(rng);
  const StridedWeights<float> w(3, 11, rng);
  REQUIRE_THROWS_WITH(device::linear(on(x), w.view, on(y), false), Catch::Contains("hip::linear"));
  // 2^60 bytes: more than any GPU has.
  REQUIRE_THROWS_WITH(device::allocate_floats(std::size_t(1) << 58), Catch::Contains("hipMalloc"));
}

TEST_CASE("hip kernels: rms_norm and add_rms_norm match the scalar twins", "[hip][norm]") {
  if (skipped_without_gpu()) return;
  Rng rng(1201);
  for (const auto& [rows, cols] : row_shapes())
    for (float eps : {1e-6f, 0.25f}) {
      Strided in(rows, cols, 1, 3), delta(rows, cols, 1, 1);
      in.randomize(rng, 0.25, 2.0);
      delta.randomize(rng, 0.25, 2.0);
      const std::vector<float> weight = nonzero_vector(cols, rng, 0.5, 1.5);
      INFO("rows " << rows << " cols " << cols << " eps " << eps);

      Strided fast(rows, cols, 1, 2), reference(rows, cols, 0, 0);
      fast.fill(kNaN);
      device::rms_norm(on(in), weight, eps, on(fast));
      cpu::scalar::rms_norm(in.cview(), weight, eps, reference.view);
      REQUIRE(fast.guards_intact());
      REQUIRE(norm_error_ratio(reference.cview(), fast.cview()) <= 1.0);

      // In place: the same result, bit for bit.
      Strided in_place(rows, cols, 1, 3);
      in_place.buffer = in.buffer;
      device::rms_norm_in_place(on(in_place), weight, eps);
      REQUIRE(in_place.guards_intact());
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < cols; ++c) REQUIRE(in_place.view(r, c) == fast.view(r, c));

      // x = rms_norm(x + delta).
      reference.copy_from(in.cview());
      device::add_rms_norm(on(in), on(delta), weight, eps);
      cpu::scalar::add_rms_norm(reference.view, delta.cview(), weight, eps);
      REQUIRE(in.guards_intact());
      REQUIRE(norm_error_ratio(reference.cview(), in.cview()) <= 1.0);
    }
}

TEST_CASE("hip kernels: silu_gate matches the scalar twin", "[hip][mlp]") {
  if (skipped_without_gpu()) return;
  Rng rng(1301);
  for (const auto& [rows, n] : row_shapes()) {
    Strided fc = silu_input(rows, n, rng);
    Strided fast(rows, n, 1, 2), reference(rows, n, 0, 0);
    fast.fill(kNaN);
    device::silu_gate(on(fc), on(fast));
    cpu::scalar::silu_gate(fc.cview(), reference.view);
    INFO("rows " << rows << " n " << n);
    REQUIRE(fast.guards_intact());
    REQUIRE(silu_error_ratio(reference.cview(), fast.cview()) <= 1.0);
  }
}

TEST_CASE("hip kernels: rope_adjacent_pairs rotates adjacent pairs by the double-precision angle",
          "[hip][rope]") {
  if (skipped_without_gpu()) return;
  Rng rng(1401);
  const double base = 50000.0;
  for (std::size_t d : {6, 16, 96})
    for (std::size_t heads : {1, 3})
      for (std::size_t rows : kRowCounts)
        for (std::size_t first : {0, 37, 250})
          for (bool with_bias : {false, true}) {
            const std::size_t width = heads * d;
            const Matrix<float> table = rope_table(first + rows + 3, d, base);
            Strided x(rows, width, 1, 7), rotated(rows, width, 1, 7);
            x.randomize(rng, 0.25, 2.0);
            rotated.buffer = x.buffer;
            std::vector<float> bias;
            if (with_bias) bias = nonzero_vector(width, rng, 0.01, 0.5);
            device::rope_adjacent_pairs(on(rotated), heads, d, bias, table.view(), first);
            INFO("d " << d << " heads " << heads << " rows " << rows << " first " << first
                      << " bias " << with_bias);
            REQUIRE(rotated.guards_intact());
            REQUIRE(rope_error_ratio(x.cview(), heads, d, bias, first, base, rotated.cview()) <=
                    1.0);
          }
}

TEST_CASE("hip kernels: both causal_attention kernels match the scalar twin, float and bf16 keys",
          "[hip][attention]") {
  if (skipped_without_gpu()) return;
  Rng rng(1501);
  const std::pair<const char*, device::AttentionKernel> kernels[] = {
      {"decode", device::AttentionKernel::decode},
      {"prefill", device::AttentionKernel::prefill},
      {"dispatch", device::AttentionKernel::dispatch}};
  for (const AttentionCase& c : attention_cases())
    for (const bool bf16_keys : {false, true}) {
      // bf16: the device rounds the keys and values; the twin reads the host's rounding of them.
      AttentionData data(c, rng, bf16_keys);
      const std::size_t width = c.heads * c.head_dim;
      const std::span<const std::int32_t> positions(c.key_positions);
      Strided reference(c.queries, width, 0, 0);
      data.scalar_attention(c, reference.view);
      for (const auto& [name, kernel] : kernels) {
        if (kernel == device::AttentionKernel::prefill &&
            c.head_dim > device::prefill_max_head_dim())
          continue;
        Strided fast(c.queries, width, 1, 2);
        fast.fill(kNaN);
        device::causal_attention(kernel, on(data.q), on(data.keys), on(data.values), c.heads,
                                 c.head_dim, c.first_position, on(fast), positions, bf16_keys);
        INFO(name << (bf16_keys ? " (bf16 keys)" : "") << ": heads " << c.heads << " head_dim "
                  << c.head_dim << " queries " << c.queries << " first " << c.first_position
                  << " keys " << c.keys << " positions " << c.key_positions.size());
        REQUIRE(fast.guards_intact());
        REQUIRE(attention_error_ratio(data.q.cview(), data.entry_keys(), data.entry_values(), c,
                                      reference.cview(), fast.cview()) <= 1.0);
      }
    }
}

TEST_CASE("hip kernels: add, copy and gather_rows give the CPU's values exactly",
          "[hip][elementwise]") {
  if (skipped_without_gpu()) return;
  Rng rng(1601);
  check_add_and_copy(
      rng, [](Strided& a, Strided& b, Strided& out) { device::add(on(a), on(b), on(out)); },
      [](Strided& in, Strided& out) { device::copy(on(in), on(out)); },
      [](Strided& a, Strided& b) { device::add_in_place(on(a), on(b)); });

  const std::size_t vocab = 11, width = 37;
  const std::vector<float> source = nonzero_vector(vocab * width, rng, 0.05, 2.0);
  const std::vector<std::int32_t> ids = {3, 0, 10, 3, 7};
  const auto check_gather = [&](const auto& table) {
    Strided expected(ids.size(), width, 0, 0), gathered(ids.size(), width, 1, 2);
    CpuBackend::gather_rows(table, ids, 1.5f, expected.view);
    device::gather_rows(table, ids, 1.5f, on(gathered));
    REQUIRE(gathered.guards_intact());
    for (std::size_t t = 0; t < ids.size(); ++t)
      for (std::size_t c = 0; c < width; ++c) REQUIRE(gathered.view(t, c) == expected.view(t, c));
  };
  const std::span<const float> rows(source);
  check_gather(cpu::PackedWeights<float>::from_rows(rows, vocab, width));
  check_gather(cpu::PackedWeights<bf16>::from_rows(rows, vocab, width));
  check_gather(cpu::PackedWeights<std::int8_t>::from_rows(rows, vocab, width));
}

// The KV cache's latest-m4 gather on the device (DeviceMemory::gather: one kernel over staged row
// addresses): repeated and reordered rows of a padded matrix, into a padded one.
TEST_CASE("hip memory: gather copies the addressed rows exactly", "[hip][memory]") {
  if (skipped_without_gpu()) return;
  namespace rdhip = recurrent_depth::hip;  // HIP-CPU has a global namespace hip
  Rng rng(1607);
  const std::size_t rows = 9, width = 300;  // more columns than a block's threads, not a multiple
  Matrix<float> host(rows, width);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < width; ++c) host(r, c) = nonzero(rng, 0.25, 4.0);
  rdhip::DeviceMatrix<float> source(rows, width, width + 3);
  source.upload(host.view());
  const std::vector<std::size_t> order = {4, 0, 8, 4, 2, 7};
  std::vector<const float*> addresses;
  for (const std::size_t r : order) addresses.push_back(source.view().data + r * source.stride());
  rdhip::DeviceMatrix<float> gathered(order.size(), width, width + 2);
  rdhip::DeviceBuffer<const float*> staged;
  rdhip::DeviceMemory::gather(addresses, gathered.view(), staged);
  Matrix<float> back(order.size(), width);
  gathered.download(back.view());
  for (std::size_t i = 0; i < order.size(); ++i)
    for (std::size_t c = 0; c < width; ++c) REQUIRE(back(i, c) == host(order[i], c));
}
