// Kernel tests, dense part: cpu::linear with float and bf16 weights (raw views, PackedWeights and
// CpuBackend), and the bf16 -> float loads the bf16 kernels are built on.
// Method and tolerances: see kernel_test_support.hpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "kernel_test_support.hpp"
#include "recurrent_depth/backends/cpu/cpu_backend.hpp"
#include "recurrent_depth/backends/cpu/scalar_reference.hpp"

using namespace recurrent_depth;
using namespace recurrent_depth::kernel_test;

namespace {

// ---------------------------------------------------------------------------------------------
// linear

template <class W>
void check_linear(const cpu::CpuKernels& kernels, std::size_t M, std::size_t N, std::size_t K,
                  bool accumulate, Rng& rng) {
  Strided x(M, K, 1, 3);
  x.randomize(rng);
  const StridedWeights<W> w(N, K, rng);
  Strided fast(M, N, 1, 2), reference(M, N, 0, 0);
  const std::vector<float> initial = start_outputs(fast, reference, accumulate, rng);
  kernels.linear(x.cview(), cpu::PackedWeights<W>::from_view(w.view), fast.view, accumulate);
  cpu::scalar::linear(x.cview(), w.view, reference.view, accumulate);
  INFO("M " << M << " N " << N << " K " << K << " accumulate " << accumulate);
  REQUIRE(fast.guards_intact());
  // The products with bf16 weights may take x in two bf16 parts (AMX): their error bound.
  const double activation_error = std::is_same_v<W, bf16> ? kernels.bf16_activation_error : 0.0;
  REQUIRE(linear_error_ratio(x.cview(), w.view, initial, reference.cview(), fast.cview(),
                             activation_error) <= 1.0);
}

template <class W>
void check_linear_sizes(const cpu::CpuKernels& kernels, std::uint64_t seed) {
  Rng rng(seed);
  for (bool accumulate : {false, true})
    for (std::size_t M : {1, 2, 3, 4, 5, 9})
      for (std::size_t N : {1, 3, 6, 7, 13, 18})
        for (std::size_t K : kColumns) check_linear<W>(kernels, M, N, K, accumulate, rng);
  // Larger shapes: many 4-row tiles (a count that the decode path's kStreams streams do not
  // divide) with a long reduction; decode over threads (positions x rows x columns >= 2^18: 151
  // tiles, 75 and 76 per thread); one whose columns come in several chunks (more than 4 positions
  // and more than 32 KB of tile: 2100 columns of float); one with more tiles per thread than a
  // prefill tile group holds.
  check_linear<W>(kernels, 1, 67, 1000, false, rng);
  check_linear<W>(kernels, 1, 603, 450, false, rng);
  check_linear<W>(kernels, 3, 603, 450, true, rng);
  check_linear<W>(kernels, 5, 67, 1000, false, rng);
  check_linear<W>(kernels, 9, 67, 1000, true, rng);
  check_linear<W>(kernels, 6, 13, 2100, true, rng);
  check_linear<W>(kernels, 5, 203, 40, true, rng);  // 51 tiles: several tile groups per thread
  // 8 positions or more (bf16): the AMX tiles where the table has them (groups of 16 positions, two
  // weight tiles and two groups at a time; odd counts of each, a last group part empty).
  for (std::size_t M : {8, 16, 17, 35})
    for (std::size_t N : {1, 7, 13})
      for (std::size_t K : {1, 33, 257}) check_linear<W>(kernels, M, N, K, M == 17, rng);
  check_linear<W>(kernels, 40, 67, 1000, true, rng);  // over threads, a long reduction
  // AMX bf16 in column chunks, the sums carried from one to the next (kAmxActivationChunkBytes,
  // 768 KB: 17 positions take 4 KB of activation tiles per 32 columns, so 6300 make two).
  check_linear<W>(kernels, 17, 13, 6300, true, rng);
  check_linear<W>(kernels, 17, 13, 6300, false, rng);
  // 32 positions or more: the register-tiled GEMM (linear_gemm.hpp) where the table has no
  // AMX bf16. Position blocks with a part-empty last one (M 33: 1 position, 50: 18, leaving by
  // 16 at a time, 70: 6); row groups of 3, 2 and 1 tiles (N 29: 8 tiles, 3 + 3 + 2; N 13: 3 + 1);
  // K in one, two and three chunks (2048 columns at most), each widened in one or more pieces of
  // at most 256 columns (K 257: two).
  for (std::size_t M : {32, 33, 50, 70})
    for (std::size_t N : {1, 5, 13, 29})
      for (std::size_t K : {1, 31, 257}) check_linear<W>(kernels, M, N, K, N == 13, rng);
  check_linear<W>(kernels, 33, 29, 2100, true, rng);
  check_linear<W>(kernels, 40, 13, 4500, false, rng);
  check_linear<W>(kernels, 65, 203, 300, true, rng);  // 51 tiles: groups over both threads
}

// ---------------------------------------------------------------------------------------------
// bf16 loads

template <class A>
void check_bf16_loads() {
  constexpr std::size_t lanes = xsimd::batch<float, A>::size;
  // Every bf16 bit pattern (NaNs, infinities, subnormals included), then a wrap-around tail.
  std::vector<bf16> all(lanes + 65536 + lanes);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = bf16{std::uint16_t(i * 7919u)};
  alignas(64) float out[lanes];
  std::size_t mismatches = 0, checked = 0;
  for (std::size_t offset : {std::size_t(0), std::size_t(1), lanes - 1}) {
    for (std::size_t start = offset; start + lanes <= all.size(); start += lanes) {
      const bf16* p = all.data() + start;
      cpu::load_floats<A>(p).store_aligned(out);
      for (std::size_t l = 0; l < lanes; ++l, ++checked)
        if (std::bit_cast<std::uint32_t>(out[l]) != std::bit_cast<std::uint32_t>(to_float(p[l])))
          ++mismatches;
    }
  }
  INFO("architecture " << A::name() << ", " << lanes << " lanes");
  CHECK(checked > 3 * 65536 - 3 * lanes);
  REQUIRE(mismatches == 0);
  // Float loads from a misaligned address are plain loads.
  std::vector<float> floats(lanes + 1);
  for (std::size_t i = 0; i < floats.size(); ++i) floats[i] = float(i) + 0.5f;
  cpu::load_floats<A>(floats.data() + 1).store_aligned(out);
  for (std::size_t l = 0; l < lanes; ++l) REQUIRE(out[l] == floats[l + 1]);
}

}  // namespace

// =============================================================================================

TEST_CASE("kernels: linear with float weights matches the scalar twin", "[kernels][linear]") {
  for_each_kernel_table(
      [](const cpu::CpuKernels& kernels) { check_linear_sizes<float>(kernels, 101); });
}

TEST_CASE("kernels: linear with bf16 weights matches the scalar twin", "[kernels][linear]") {
  for_each_kernel_table(
      [](const cpu::CpuKernels& kernels) { check_linear_sizes<bf16>(kernels, 102); });
}

TEST_CASE("kernels: bf16 prompts on vdpbf16ps equal x rounded to bf16 then the scalar twin",
          "[kernels][linear]") {
  for_each_kernel_table([&](const cpu::CpuKernels& kernels) {
    if (!kernels.by_name_only) return;  // the x86_64_v4_bf16 table only
    Rng rng(141);
    // 32 positions or more (linear_gemm_bf16_dot.hpp): part-empty position blocks, row groups
    // of 3, 2 and 1 tiles, odd K (a pair half past K), K in two chunks.
    const auto check = [&](std::size_t M, std::size_t N, std::size_t K, bool accumulate) {
      Strided x(M, K, 1, 3);
      x.randomize(rng);
      Matrix<float> rounded(M, K);
      for (std::size_t m = 0; m < M; ++m)
        for (std::size_t k = 0; k < K; ++k) rounded(m, k) = to_float(to_bf16(x.view(m, k)));
      const StridedWeights<bf16> w(N, K, rng);
      Strided fast(M, N, 1, 2), reference(M, N, 0, 0), unrounded(M, N, 0, 0);
      const std::vector<float> initial = start_outputs(fast, reference, accumulate, rng);
      for (std::size_t m = 0; m < M; ++m)
        for (std::size_t n = 0; n < N; ++n) unrounded.view(m, n) = reference.view(m, n);
      kernels.linear(x.cview(), cpu::PackedWeights<bf16>::from_view(w.view), fast.view, accumulate);
      cpu::scalar::linear(std::as_const(rounded).view(), w.view, reference.view, accumulate);
      INFO("M " << M << " N " << N << " K " << K << " accumulate " << accumulate);
      REQUIRE(fast.guards_intact());
      REQUIRE(linear_error_ratio(std::as_const(rounded).view(), w.view, initial, reference.cview(),
                                 fast.cview()) <= 1.0);
      // The comparison is sharp enough to tell rounded activations from float ones.
      cpu::scalar::linear(x.cview(), w.view, unrounded.view, accumulate);
      if (K > 1)
        CHECK(linear_error_ratio(std::as_const(rounded).view(), w.view, initial, reference.cview(),
                                 unrounded.cview()) > 1.0);
    };
    for (std::size_t M : {32, 33, 70})
      for (std::size_t N : {1, 5, 13, 29})
        for (std::size_t K : {1, 31, 257}) check(M, N, K, N == 13);
    check(33, 29, 2100, true);
    check(65, 203, 300, false);  // 51 tiles: groups over both threads
  });
}

TEST_CASE("kernels: prompt GEMMs carry each activation exactly, or rounded as to_bf16",
          "[kernels][linear]") {
  // y = x I through the GEMMs' packing of x^T (70 positions: 32, 32 and 6; 37 columns: a
  // part-filled 16-column transpose and an odd pair): y equals x in the float tables, and
  // to_bf16(x) bit for bit where vdpbf16ps takes x rounded (x86_64_v4_bf16). The values are
  // random normal floats of every exponent whose rounding stays normal (vdpbf16ps flushes
  // subnormals), ties to even among them; NaN and infinities through a 1-column product.
  Rng rng(143);
  const std::size_t M = 70, K = 37;
  Matrix<float> x(M, K), y(M, K), wide(M, 1), narrow(M, 1);
  for (std::size_t m = 0; m < M; ++m)
    for (std::size_t k = 0; k < K; ++k) {
      std::uint32_t bits = std::uint32_t(rng.next());
      const std::uint32_t exponent = 1 + (bits >> 23 & 0xff) % 0xfd;  // 1 .. 253
      bits = (bits & 0x807fffffu) | exponent << 23;
      if (k % 5 == 0) bits = (bits & 0xffff0000u) | 0x8000u;  // a tie
      x(m, k) = std::bit_cast<float>(bits);
    }
  const float specials[] = {
      std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
      std::bit_cast<float>(0x7f800001u),  // a signalling NaN
      std::numeric_limits<float>::infinity(),  -std::numeric_limits<float>::infinity(),  1.0f};
  for (std::size_t m = 0; m < M; ++m) wide(m, 0) = specials[m % std::size(specials)];
  std::vector<float> identity(K * K, 0.0f), one(1, 1.0f);
  for (std::size_t k = 0; k < K; ++k) identity[k * K + k] = 1.0f;
  const auto eye = cpu::PackedWeights<bf16>::from_rows(std::span<const float>(identity), K, K);
  const auto unit = cpu::PackedWeights<bf16>::from_rows(std::span<const float>(one), 1, 1);
  for_each_kernel_table([&](const cpu::CpuKernels& kernels) {
    const bool rounds = kernels.by_name_only;
    if (!rounds && kernels.bf16_activation_error > 0) return;  // x in two bf16 parts (AMX)
    kernels.linear(std::as_const(x).view(), eye, y.view(), false);
    kernels.linear(std::as_const(wide).view(), unit, narrow.view(), false);
    for (std::size_t m = 0; m < M; ++m) {
      for (std::size_t k = 0; k < K; ++k) {
        const float expected = rounds ? to_float(to_bf16(x(m, k))) : x(m, k);
        INFO("position " << m << " column " << k << " x bits " << std::hex
                         << std::bit_cast<std::uint32_t>(x(m, k)));
        REQUIRE(y(m, k) == expected);
      }
      const float special = wide(m, 0);
      INFO("position " << m << " special " << special);
      if (std::isnan(special))
        REQUIRE(std::isnan(narrow(m, 0)));
      else
        REQUIRE(narrow(m, 0) == special);
    }
  });
}

TEST_CASE("kernels: PackedWeights tiles, pads and reads back rows", "[kernels][linear]") {
  Rng rng(103);
  const std::size_t M = 7, N = 19, K = 45;
  const std::vector<float> source = nonzero_vector(N * K, rng, 0.25, 1.0);
  std::vector<bf16> rounded(source.size());
  for (std::size_t i = 0; i < source.size(); ++i) rounded[i] = to_bf16(source[i]);
  const ConstMatrixView<float> rows_f32(source.data(), N, K);
  const ConstMatrixView<bf16> rows_b16(rounded.data(), N, K);
  const auto f32 = cpu::PackedWeights<float>::from_rows(std::span<const float>(source), N, K);
  const auto b16 = cpu::PackedWeights<bf16>::from_rows(std::span<const float>(source), N, K);
  // 19 rows -> 5 tiles of 4; 45 columns -> 3 blocks of 16 floats or 2 blocks of 32 bf16.
  REQUIRE(f32.tile_count() == 5);
  REQUIRE(f32.padded_cols() == 48);
  REQUIRE(b16.padded_cols() == 64);
  REQUIRE(f32.bytes() == 20 * 48 * 4);
  REQUIRE(b16.bytes() == 20 * 64 * 2);
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t k = 0; k < K; ++k) {
      REQUIRE(f32.value(n, k) == source[n * K + k]);
      REQUIRE(b16.value(n, k).bits == rounded[n * K + k].bits);
    }
  // The tile layout: row 5 (tile 1, slot 1), column 40 (block 2, lane 8).
  REQUIRE(f32.tile(1)[(2 * 4 + 1) * 16 + 8] == source[5 * K + 40]);
  // Padding columns and rows hold zeros (the kernels read them).
  for (std::size_t i = 0; i < 48 * 4; ++i) {
    const std::size_t block = i / 64, slot = (i / 16) % 4, lane = i % 16;
    const bool padding = slot >= 3 || block * 16 + lane >= K;  // tile 4 holds rows 16..18
    if (padding) REQUIRE(f32.tile(4)[i] == 0.0f);
  }
  Strided x(M, K);
  x.randomize(rng);
  Matrix<float> fast(M, N), reference(M, N);
  CpuBackend::linear(x.cview(), f32, fast.view());
  cpu::scalar::linear(x.cview(), rows_f32, reference.view());
  CHECK(linear_error_ratio(x.cview(), rows_f32, {}, reference.view(), fast.view()) <= 1.0);
  CpuBackend::linear(x.cview(), b16, fast.view());
  cpu::scalar::linear(x.cview(), rows_b16, reference.view());
  CHECK(linear_error_ratio(x.cview(), rows_b16, {}, reference.view(), fast.view()) <= 1.0);
  Matrix<float> bad(M, N);
  const auto narrow = cpu::PackedWeights<float>::from_view(rows_f32.middle_cols(0, K - 1));
  REQUIRE_THROWS_AS(cpu::linear(x.cview(), narrow, bad.view()), Error);
}

TEST_CASE("kernels: the linear comparison rejects plausibly wrong kernels", "[kernels][sanity]") {
  Rng rng(104);
  for (std::size_t K : {15, 100, 257}) {
    const std::size_t M = 3, N = 5;
    Strided x(M, K);
    x.randomize(rng);
    const StridedWeights<float> w(N, K, rng);
    Matrix<float> reference(M, N), wrong(M, N);
    cpu::scalar::linear(x.cview(), w.view, reference.view());
    REQUIRE(linear_error_ratio(x.cview(), w.view, {}, reference.view(), reference.view()) == 0.0);

    // A kernel that drops the last element of the reduction (a tail bug).
    cpu::scalar::linear(x.cview().middle_cols(0, K - 1), w.view.middle_cols(0, K - 1),
                        wrong.view());
    CHECK(linear_error_ratio(x.cview(), w.view, {}, reference.view(), wrong.view()) > 1.0);

    // A kernel that rounds the activations to bf16.
    Strided rounded(M, K);
    for (std::size_t m = 0; m < M; ++m)
      for (std::size_t k = 0; k < K; ++k) rounded.view(m, k) = to_float(to_bf16(x.view(m, k)));
    cpu::scalar::linear(rounded.cview(), w.view, wrong.view());
    CHECK(linear_error_ratio(x.cview(), w.view, {}, reference.view(), wrong.view()) > 1.0);

    // A kernel that ignores accumulate.
    const std::vector<float> initial = nonzero_vector(M * N, rng, 0.5, 4.0);
    Matrix<float> accumulated(M, N);
    for (std::size_t m = 0; m < M; ++m)
      for (std::size_t n = 0; n < N; ++n) accumulated(m, n) = initial[m * N + n];
    cpu::scalar::linear(x.cview(), w.view, accumulated.view(), true);
    CHECK(linear_error_ratio(x.cview(), w.view, initial, accumulated.view(), reference.view()) >
          1.0);
  }
}

TEST_CASE("kernels: load_floats(bf16) widens exactly like to_float", "[kernels][bf16]") {
  SECTION("default architecture") {
    check_bf16_loads<cpu::Arch>();
  }
  SECTION("sse2 (generic path)") {
    check_bf16_loads<xsimd::sse2>();
  }
#if defined(__AVX2__)
  SECTION("avx2") {
    check_bf16_loads<xsimd::avx2>();
  }
#endif
#if defined(__AVX512F__)
  SECTION("avx512f") {
    check_bf16_loads<xsimd::avx512f>();
  }
#endif
}

TEST_CASE("kernels: the CPU running the tests has every extension the build targets",
          "[kernels][cpu]") {
  // Built and run on the same machine (or for an older target): nothing is missing, and the
  // model's load-time check passes.
  CHECK(cpu::missing_cpu_features(cpu::compiled_cpu_features()) == "");
  CHECK_NOTHROW(CpuBackend::check_machine());
}

TEST_CASE("kernels: matrices are 64-byte aligned, and from 2 MiB on 2 MiB aligned",
          "[kernels][memory]") {
  const auto address = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p); };
  Matrix<float> small(3, 17), large(600, 1000);  // 3 x 32 floats; 600 x 1008 floats = 2.4 MB
  CHECK(address(small.row(0)) % kAlignment == 0);
  CHECK(address(small.row(1)) % kAlignment == 0);
  CHECK(address(large.row(0)) % kHugePageBytes == 0);
  CHECK(address(large.row(599)) % kAlignment == 0);
  // Rows of a multiple of 16 lines get one more (a column's rows then spread over the cache sets).
  CHECK(Matrix<float>(4, 1024).stride() == 1040);
  CHECK(Matrix<float>(4, 1000).stride() == 1008);
  CHECK(Matrix<float>(1, 1024).stride() == 1024);
  CHECK(alignment_for(kHugePageBytes - 1) == kAlignment);
  CHECK(alignment_for(kHugePageBytes) == kHugePageBytes);
  // Packed weights of that size: the kernels stream them from huge pages where granted.
  Rng rng(104);
  const std::vector<float> source = nonzero_vector(1024 * 1100, rng, 0.25, 1.0);
  const auto packed =
      cpu::PackedWeights<bf16>::from_rows(std::span<const float>(source), 1024, 1100);
  CHECK(address(packed.tile(0)) % kHugePageBytes == 0);
}
