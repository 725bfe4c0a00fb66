// Element types and the seeded generator: float -> bf16 rounds to nearest even (ties, overflow,
// subnormals, NaN kept NaN), bf16 -> float is exact, IEEE half -> float is exact on every bit
// pattern, and Rng is the documented xoshiro256** stream seeded by splitmix64, the same on every
// platform.
#include <catch2/catch.hpp>

#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "recurrent_depth/core/dtype.hpp"
#include "recurrent_depth/core/random.hpp"

using namespace recurrent_depth;

namespace {

float from_bits(std::uint32_t u) {
  return std::bit_cast<float>(u);
}
std::uint32_t bits_of(float f) {
  return std::bit_cast<std::uint32_t>(f);
}
std::uint16_t bf16_bits(std::uint32_t float_bits) {
  return to_bf16(from_bits(float_bits)).bits;
}

// Round to nearest even by comparing distances in double to the two neighbouring bf16 values;
// independent of the library's integer trick. Finite, non-NaN inputs only.
std::uint16_t reference_bf16(std::uint32_t u) {
  const double v = from_bits(u);
  const std::uint16_t down = std::uint16_t(u >> 16);  // truncation: toward zero
  const std::uint16_t up = std::uint16_t(down + 1);   // away from zero (may become infinity)
  const double low = to_float(bf16{down});
  // Past the largest finite bf16 the next value is 2^128 with an unbounded exponent; rounding
  // to it means overflowing to infinity (IEEE 754).
  double high = to_float(bf16{up});
  if (std::isinf(high)) high = std::copysign(std::ldexp(1.0, 128), v);
  const double to_low = std::abs(v - low), to_high = std::abs(high - v);
  if (to_low < to_high) return down;
  if (to_high < to_low) return up;
  return (down & 1u) ? up : down;
}

// IEEE binary16 by its definition, in double.
double reference_half(std::uint16_t h) {
  const double sign = (h & 0x8000u) ? -1.0 : 1.0;
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  if (exponent == 0) return sign * std::ldexp(double(mantissa), -24);
  if (exponent == 31)
    return mantissa ? std::numeric_limits<double>::quiet_NaN()
                    : sign * std::numeric_limits<double>::infinity();
  return sign * std::ldexp(1.0 + mantissa / 1024.0, exponent - 15);
}

// The published generators, written out independently of core/random.hpp.
std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

struct ReferenceXoshiro {
  std::uint64_t s[4];
  explicit ReferenceXoshiro(std::uint64_t seed) {
    for (auto& w : s) w = splitmix64(seed);
  }
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t next() {
    const std::uint64_t result = rotl(s[1] * 5, 7) * 9;
    const std::uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
  }
};

}  // namespace

TEST_CASE("dtype: sizes, names and parsing", "[dtype]") {
  const DType all[] = {DType::F32, DType::BF16, DType::F16, DType::F64, DType::I64,
                       DType::I32, DType::I16,  DType::I8,  DType::U8,  DType::BOOL};
  const std::size_t sizes[] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1};
  for (std::size_t i = 0; i < std::size(all); ++i) {
    CHECK(dtype_size(all[i]) == sizes[i]);
    DType parsed = DType::BOOL;
    REQUIRE(parse_dtype(dtype_name(all[i]), parsed));
    CHECK(parsed == all[i]);
  }
  DType untouched = DType::I8;
  CHECK_FALSE(parse_dtype("f32", untouched));  // safetensors names are upper case
  CHECK_FALSE(parse_dtype("FP8", untouched));
  CHECK_FALSE(parse_dtype("", untouched));
  CHECK(untouched == DType::I8);
}

TEST_CASE("dtype: bf16 -> float is exact and float -> bf16 round-trips every value",
          "[dtype][bf16]") {
  for (std::uint32_t b = 0; b < 0x10000u; ++b) {
    const float f = to_float(bf16{std::uint16_t(b)});
    REQUIRE(bits_of(f) == b << 16);
    if (std::isnan(f)) {
      REQUIRE(std::isnan(to_float(to_bf16(f))));
    } else {
      REQUIRE(to_bf16(f).bits == b);
    }
  }
}

TEST_CASE("dtype: float -> bf16 rounds to nearest, ties to even", "[dtype][bf16]") {
  // 1 + 2^-8 lies halfway between 1 (even mantissa) and 1 + 2^-7 (odd): down to the even one.
  CHECK(bf16_bits(0x3f808000u) == 0x3f80u);
  CHECK(bf16_bits(0x3f808001u) == 0x3f81u);  // just above the tie
  CHECK(bf16_bits(0x3f807fffu) == 0x3f80u);  // just below
  // Halfway between 0x3f81 (odd) and 0x3f82 (even): up to the even one.
  CHECK(bf16_bits(0x3f818000u) == 0x3f82u);
  CHECK(bf16_bits(0x3f817fffu) == 0x3f81u);
  // The same for negative numbers (the magnitude rounds, the sign stays).
  CHECK(bf16_bits(0xbf808000u) == 0xbf80u);
  CHECK(bf16_bits(0xbf818000u) == 0xbf82u);
  CHECK(bf16_bits(0xbf808001u) == 0xbf81u);
  // A carry out of the mantissa moves the exponent: 1.99999988 -> 2.
  CHECK(bf16_bits(0x3fffffffu) == 0x4000u);
  CHECK(to_float(to_bf16(1.0f + 0x1.0p-8f)) == 1.0f);
  CHECK(to_float(to_bf16(3.14159265f)) == 3.140625f);

  // Zeros and subnormals round the same way.
  CHECK(bf16_bits(0x00000000u) == 0x0000u);
  CHECK(bf16_bits(0x80000000u) == 0x8000u);  // -0 keeps its sign
  CHECK(bf16_bits(0x00000001u) == 0x0000u);
  CHECK(bf16_bits(0x00008000u) == 0x0000u);  // tie, to even (zero)
  CHECK(bf16_bits(0x00008001u) == 0x0001u);
  CHECK(bf16_bits(0x00018000u) == 0x0002u);  // tie, to even
  CHECK(bf16_bits(0x807fffffu) == 0x8080u);  // largest subnormal rounds up to -FLT_MIN

  // Overflow: the largest float rounds to infinity; the largest finite bf16 is kept.
  CHECK(bf16_bits(bits_of(FLT_MAX)) == 0x7f80u);
  CHECK(bf16_bits(bits_of(-FLT_MAX)) == 0xff80u);
  CHECK(bf16_bits(0x7f7f7fffu) == 0x7f7fu);
  CHECK(bf16_bits(0x7f7f8000u) == 0x7f80u);  // tie between 0x7f7f (odd) and infinity (even)
}

TEST_CASE("dtype: float -> bf16 matches a distance-based reference on random floats",
          "[dtype][bf16]") {
  Rng rng(11);
  std::size_t checked = 0;
  for (int i = 0; i < 400000; ++i) {
    std::uint32_t u = std::uint32_t(rng.next() >> 32);
    if (i % 4 == 0) u = (u & 0xffff0000u) | 0x8000u;  // a quarter exactly on ties
    const float f = from_bits(u);
    if (std::isnan(f) || std::isinf(f)) continue;
    ++checked;
    const std::uint16_t got = to_bf16(f).bits, expected = reference_bf16(u);
    if (got != expected) {
      INFO("float bits 0x" << std::hex << u << ": got 0x" << got << ", expected 0x" << expected);
      REQUIRE(got == expected);
    }
  }
  CHECK(checked > 390000);
}

TEST_CASE("dtype: bf16 keeps infinities and NaN", "[dtype][bf16]") {
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(to_bf16(inf).bits == 0x7f80u);
  CHECK(to_bf16(-inf).bits == 0xff80u);
  CHECK(std::isinf(to_float(to_bf16(inf))));
  // NaNs whose payload sits only in the low 16 bits would truncate or round to infinity (or,
  // for 0x7fffffff, carry into the sign and become -0): they must stay NaN.
  for (std::uint32_t u : {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u, 0x7f80ffffu,
                          0x7fffffffu, 0xffffffffu, 0x7fbfffffu, 0x7fff8000u}) {
    const bf16 b = to_bf16(from_bits(u));
    INFO("float bits 0x" << std::hex << u << " -> 0x" << b.bits);
    CHECK(std::isnan(to_float(b)));
    CHECK((b.bits & 0x8000u) == ((u >> 16) & 0x8000u));  // sign kept
    CHECK((b.bits & 0x0040u) != 0);                      // quiet
  }
}

TEST_CASE("dtype: half_bits_to_float is exact on every bit pattern", "[dtype][f16]") {
  // Named cases first.
  CHECK(half_bits_to_float(0x3c00u) == 1.0f);
  CHECK(half_bits_to_float(0xc000u) == -2.0f);
  CHECK(half_bits_to_float(0x7bffu) == 65504.0f);           // largest normal
  CHECK(half_bits_to_float(0x0400u) == 0x1.0p-14f);         // smallest normal
  CHECK(half_bits_to_float(0x0001u) == 0x1.0p-24f);         // smallest subnormal
  CHECK(half_bits_to_float(0x03ffu) == 1023 * 0x1.0p-24f);  // largest subnormal
  CHECK(half_bits_to_float(0x8001u) == -0x1.0p-24f);
  CHECK(half_bits_to_float(0x3555u) == 0x1.554p-2f);
  CHECK(bits_of(half_bits_to_float(0x0000u)) == 0x00000000u);
  CHECK(bits_of(half_bits_to_float(0x8000u)) == 0x80000000u);  // -0
  CHECK(half_bits_to_float(0x7c00u) == std::numeric_limits<float>::infinity());
  CHECK(half_bits_to_float(0xfc00u) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(half_bits_to_float(0x7e00u)));
  CHECK(std::isnan(half_bits_to_float(0x7c01u)));  // signalling NaN with the smallest payload
  CHECK(std::isnan(half_bits_to_float(0xfe00u)));

  for (std::uint32_t h = 0; h < 0x10000u; ++h) {
    const float got = half_bits_to_float(std::uint16_t(h));
    const double expected = reference_half(std::uint16_t(h));
    if (std::isnan(expected)) {
      REQUIRE(std::isnan(got));
      REQUIRE(std::signbit(got) == bool(h & 0x8000u));
    } else {
      INFO("half bits 0x" << std::hex << h);
      REQUIRE(double(got) == expected);
      REQUIRE(std::signbit(got) == bool(h & 0x8000u));
    }
  }
}

TEST_CASE("dtype: Rng is xoshiro256** seeded by splitmix64", "[dtype][random]") {
  // The published splitmix64 stream from 0 (checks the reference written above).
  std::uint64_t x = 0;
  CHECK(splitmix64(x) == 0xe220a8397b1dcdafull);
  CHECK(splitmix64(x) == 0x6e789e6aa1b965f4ull);

  for (std::uint64_t seed : {0ull, 1ull, 42ull, 0xffffffffffffffffull}) {
    Rng rng(seed);
    ReferenceXoshiro reference(seed);
    for (int i = 0; i < 1000; ++i) REQUIRE(rng.next() == reference.next());
  }
}

TEST_CASE("dtype: Rng streams are deterministic and seed-dependent", "[dtype][random]") {
  Rng a(1234), b(1234), c(1235);
  std::size_t same_as_other_seed = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t va = a.next();
    REQUIRE(va == b.next());
    if (va == c.next()) ++same_as_other_seed;
  }
  CHECK(same_as_other_seed == 0);

  Rng u1(5), u2(5);
  for (int i = 0; i < 1000; ++i) {
    const double u = u1.uniform();
    REQUIRE(u == u2.uniform());
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
  }
  Rng n1(6), n2(6);
  for (int i = 0; i < 1000; ++i) REQUIRE(n1.normal() == n2.normal());

  // uniform() is the top 53 bits of next() scaled by 2^-53.
  Rng raw(7), scaled(7);
  for (int i = 0; i < 100; ++i) REQUIRE(scaled.uniform() == double(raw.next() >> 11) * 0x1.0p-53);
}

TEST_CASE("dtype: Rng uniform and normal have the right moments", "[dtype][random]") {
  // Fixed seeds: these bounds are about 6 standard errors, so they cannot flake, yet a wrong
  // scale (e.g. a normal with variance 2, or uniform in [0, 2)) fails them.
  const int n = 100000;
  Rng rng(99);
  double sum = 0.0, squares = 0.0;
  for (int i = 0; i < n; ++i) {
    const double u = rng.uniform();
    sum += u;
    squares += u * u;
  }
  CHECK(std::abs(sum / n - 0.5) < 6.0 * std::sqrt(1.0 / 12.0 / n));
  CHECK(std::abs(squares / n - 1.0 / 3.0) < 6.0 * 0.3 / std::sqrt(double(n)));

  sum = squares = 0.0;
  double fourth = 0.0;
  for (int i = 0; i < n; ++i) {
    const double z = rng.normal();
    REQUIRE(std::isfinite(z));
    sum += z;
    squares += z * z;
    fourth += z * z * z * z;
  }
  CHECK(std::abs(sum / n) < 6.0 / std::sqrt(double(n)));
  CHECK(std::abs(squares / n - 1.0) < 6.0 * std::sqrt(2.0 / n));
  CHECK(std::abs(fourth / n - 3.0) < 6.0 * std::sqrt(96.0 / n));  // the normal's kurtosis
}
