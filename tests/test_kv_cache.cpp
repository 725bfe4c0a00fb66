// The KV cache: a slot stores key/value rows by position (dense when written in order, with
// explicit key positions otherwise), overwrites an existing position in place, truncates by
// position; the cache truncates every slot, refuses to truncate beyond its length and accounts
// its bytes. Attention over a slot does not depend on the order its entries were written in.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <vector>

#include "recurrent_depth/backends/cpu/scalar_reference.hpp"
#include "recurrent_depth/cache/kv_cache.hpp"
#include "recurrent_depth/core/random.hpp"

using namespace recurrent_depth;

namespace {

constexpr std::size_t kWidth = 6;

// Rows of fused [q ; k ; v] activations, as the attention writes them: k and v are column ranges
// of one matrix, so their row stride is three times their width (and the view starts off-aligned).
struct QkvRows {
  std::vector<float> buffer;
  MatrixView<float> qkv;
  QkvRows(std::size_t rows, Rng& rng) : buffer(1 + rows * 3 * kWidth) {
    for (float& x : buffer) x = static_cast<float>(rng.uniform() * 2.0 - 1.0) + 3.0f;  // nonzero
    qkv = MatrixView<float>(buffer.data() + 1, rows, 3 * kWidth, 3 * kWidth);
  }
  ConstMatrixView<float> k() const { return qkv.middle_cols(kWidth, kWidth); }
  ConstMatrixView<float> v() const { return qkv.middle_cols(2 * kWidth, kWidth); }
};

bool row_equals(ConstMatrixView<float> m, std::size_t row, ConstMatrixView<float> source,
                std::size_t source_row) {
  return std::equal(m.row(row), m.row(row) + m.cols, source.row(source_row));
}

std::vector<std::int32_t> positions_of(const KvSlot& slot) {
  const auto span = slot.key_positions();
  return {span.begin(), span.end()};
}

}  // namespace

TEST_CASE("kv_cache: a slot written in position order is dense", "[kv_cache]") {
  Rng rng(1);
  const QkvRows a(3, rng), b(2, rng);
  KvSlot slot(kWidth);
  CHECK(slot.entries() == 0);
  CHECK(slot.bytes() == 0);
  CHECK_FALSE(slot.has(0));

  slot.write(0, a.k(), a.v());
  slot.write(3, b.k(), b.v());
  REQUIRE(slot.entries() == 5);
  CHECK(slot.key_positions().empty());  // entry j is at position j
  CHECK(slot.keys().rows == 5);
  CHECK(slot.keys().cols == kWidth);
  CHECK(slot.values().rows == 5);
  for (std::size_t p = 0; p < 5; ++p) CHECK(slot.has(p));
  CHECK_FALSE(slot.has(5));
  CHECK_FALSE(slot.has(1000));
  for (std::size_t t = 0; t < 3; ++t) {
    CHECK(row_equals(slot.keys(), t, a.k(), t));
    CHECK(row_equals(slot.values(), t, a.v(), t));
  }
  for (std::size_t t = 0; t < 2; ++t) {
    CHECK(row_equals(slot.keys(), 3 + t, b.k(), t));
    CHECK(row_equals(slot.values(), 3 + t, b.v(), t));
  }
  CHECK(slot.bytes() == 5 * kWidth * 2 * sizeof(float));
}

TEST_CASE("kv_cache: writing an existing position replaces that entry in place", "[kv_cache]") {
  Rng rng(2);
  const QkvRows a(4, rng), replacement(2, rng);
  KvSlot slot(kWidth);
  slot.write(0, a.k(), a.v());
  slot.write(1, replacement.k(), replacement.v());  // positions 1 and 2 again
  REQUIRE(slot.entries() == 4);
  CHECK(slot.key_positions().empty());
  CHECK(row_equals(slot.keys(), 0, a.k(), 0));
  CHECK(row_equals(slot.keys(), 1, replacement.k(), 0));
  CHECK(row_equals(slot.values(), 1, replacement.v(), 0));
  CHECK(row_equals(slot.keys(), 2, replacement.k(), 1));
  CHECK(row_equals(slot.values(), 2, replacement.v(), 1));
  CHECK(row_equals(slot.keys(), 3, a.k(), 3));
  CHECK(slot.bytes() == 4 * kWidth * 2 * sizeof(float));

  // A write that overlaps the end: position 3 replaced, position 4 appended, still dense.
  slot.write(3, replacement.k(), replacement.v());
  REQUIRE(slot.entries() == 5);
  CHECK(slot.key_positions().empty());
  CHECK(row_equals(slot.keys(), 3, replacement.k(), 0));
  CHECK(row_equals(slot.keys(), 4, replacement.k(), 1));
}

TEST_CASE("kv_cache: writes with gaps keep explicit key positions", "[kv_cache]") {
  Rng rng(3);
  const QkvRows first(2, rng), later(1, rng), filler(1, rng), filler2(1, rng), again(1, rng);
  KvSlot slot(kWidth);
  slot.write(0, first.k(), first.v());
  slot.write(5, later.k(), later.v());  // positions 2..4 skipped (tokens that exited early)
  REQUIRE(slot.entries() == 3);
  CHECK(positions_of(slot) == std::vector<std::int32_t>{0, 1, 5});
  CHECK(slot.has(5));
  CHECK_FALSE(slot.has(2));
  CHECK_FALSE(slot.has(4));
  CHECK(row_equals(slot.keys(), 2, later.k(), 0));

  // Filling gaps appends entries after the later position: the slot stays non-dense.
  slot.write(3, filler.k(), filler.v());
  slot.write(2, filler2.k(), filler2.v());
  REQUIRE(slot.entries() == 5);
  CHECK(positions_of(slot) == std::vector<std::int32_t>{0, 1, 5, 3, 2});
  CHECK(row_equals(slot.keys(), 3, filler.k(), 0));
  CHECK(row_equals(slot.values(), 4, filler2.v(), 0));

  // Overwriting a position of a non-dense slot is in place as well.
  slot.write(5, again.k(), again.v());
  REQUIRE(slot.entries() == 5);
  CHECK(positions_of(slot) == std::vector<std::int32_t>{0, 1, 5, 3, 2});
  CHECK(row_equals(slot.keys(), 2, again.k(), 0));
  CHECK(row_equals(slot.values(), 2, again.v(), 0));
  CHECK(slot.bytes() == 5 * kWidth * 2 * sizeof(float));

  // A slot whose first write is not at position 0 is not dense either.
  KvSlot late(kWidth);
  late.write(2, first.k(), first.v());
  CHECK(positions_of(late) == std::vector<std::int32_t>{2, 3});
  CHECK_FALSE(late.has(0));
}

TEST_CASE("kv_cache: truncating a slot drops rows and recomputes density", "[kv_cache]") {
  Rng rng(4);
  const QkvRows rows(6, rng);
  const auto row = [&](std::size_t i) { return rows.k().middle_rows(i, 1); };
  const auto vrow = [&](std::size_t i) { return rows.v().middle_rows(i, 1); };
  KvSlot slot(kWidth);
  // Positions in entry order: 0, 1, 5, 3, 2 (source rows 0, 1, 2, 3, 4).
  slot.write(0, rows.k().middle_rows(0, 2), rows.v().middle_rows(0, 2));
  slot.write(5, row(2), vrow(2));
  slot.write(3, row(3), vrow(3));
  slot.write(2, row(4), vrow(4));

  SECTION("beyond the last position: nothing changes") {
    slot.truncate(6);
    slot.truncate(100);
    CHECK(slot.entries() == 5);
    CHECK(positions_of(slot) == std::vector<std::int32_t>{0, 1, 5, 3, 2});
  }
  SECTION("dropping a later entry keeps the others in order") {
    slot.truncate(4);  // drops position 5
    REQUIRE(slot.entries() == 4);
    CHECK(positions_of(slot) == std::vector<std::int32_t>{0, 1, 3, 2});  // not in order: not dense
    CHECK_FALSE(slot.has(5));
    CHECK_FALSE(slot.has(4));
    CHECK(slot.has(3));
    CHECK(row_equals(slot.keys(), 2, rows.k(), 3));
    CHECK(row_equals(slot.values(), 2, rows.v(), 3));
    CHECK(row_equals(slot.keys(), 3, rows.k(), 4));
    CHECK(slot.bytes() == 4 * kWidth * 2 * sizeof(float));
    // Positions kept are still found: overwriting 3 replaces entry 2.
    slot.write(3, row(5), vrow(5));
    CHECK(slot.entries() == 4);
    CHECK(row_equals(slot.keys(), 2, rows.k(), 5));
  }
  SECTION("down to a prefix written in order: dense again") {
    slot.truncate(2);
    REQUIRE(slot.entries() == 2);
    CHECK(slot.key_positions().empty());
    CHECK(row_equals(slot.keys(), 0, rows.k(), 0));
    CHECK(row_equals(slot.keys(), 1, rows.k(), 1));
    CHECK_FALSE(slot.has(2));
    // Appending the next position keeps it dense.
    slot.write(2, row(5), vrow(5));
    CHECK(slot.entries() == 3);
    CHECK(slot.key_positions().empty());
    CHECK(row_equals(slot.keys(), 2, rows.k(), 5));
  }
  SECTION("a gap dropped by truncation makes the slot dense") {
    KvSlot gap(kWidth);
    gap.write(0, rows.k().middle_rows(0, 3), rows.v().middle_rows(0, 3));
    gap.write(7, row(3), vrow(3));
    CHECK(positions_of(gap) == std::vector<std::int32_t>{0, 1, 2, 7});
    gap.truncate(5);
    CHECK(gap.entries() == 3);
    CHECK(gap.key_positions().empty());
  }
  SECTION("to zero") {
    slot.truncate(0);
    CHECK(slot.entries() == 0);
    CHECK(slot.bytes() == 0);
    CHECK(slot.key_positions().empty());
    CHECK_FALSE(slot.has(0));
    slot.write(0, row(1), vrow(1));
    CHECK(slot.entries() == 1);
    CHECK(row_equals(slot.keys(), 0, rows.k(), 1));
  }
}

TEST_CASE("kv_cache: attention over a slot does not depend on the write order", "[kv_cache]") {
  // Positions 0..6 written as 0,1,2 then 6, 4, 3, 5 (non-dense), against the same rows written in
  // order (dense): the scalar attention of a query at each position sees the same keys.
  Rng rng(5);
  const std::size_t heads = 2, head_dim = kWidth / heads, n = 7;
  const QkvRows rows(n, rng);
  KvSlot ordered(kWidth), shuffled(kWidth);
  ordered.write(0, rows.k(), rows.v());
  shuffled.write(0, rows.k().middle_rows(0, 3), rows.v().middle_rows(0, 3));
  for (std::size_t p : {6, 4, 3, 5})
    shuffled.write(p, rows.k().middle_rows(p, 1), rows.v().middle_rows(p, 1));
  REQUIRE_FALSE(shuffled.key_positions().empty());
  REQUIRE(ordered.key_positions().empty());

  const ConstMatrixView<float> queries = rows.qkv.middle_cols(0, kWidth);
  Matrix<float> a(n, kWidth), b(n, kWidth);
  cpu::scalar::causal_attention(queries, ordered.keys(), ordered.values(), heads, head_dim, 0,
                                a.view(), ordered.key_positions());
  cpu::scalar::causal_attention(queries, shuffled.keys(), shuffled.values(), heads, head_dim, 0,
                                b.view(), shuffled.key_positions());
  // Both are float roundings of the same double computation up to summation order: within an
  // ulp or two of the values' scale (the values lie in [2, 4]).
  for (std::size_t t = 0; t < n; ++t)
    for (std::size_t i = 0; i < kWidth; ++i)
      CHECK(std::abs(a(t, i) - b(t, i)) <= 4.0f * FLT_EPSILON * 4.0f);
}

TEST_CASE("kv_cache: the cache holds slots by id, commits and truncates", "[kv_cache]") {
  Rng rng(6);
  KvCache cache(kWidth);
  CHECK(cache.width() == kWidth);
  CHECK(cache.length() == 0);
  CHECK(cache.slot_count() == 0);
  CHECK(cache.find(0) == nullptr);
  CHECK(cache.bytes() == 0);

  // Prelude slot 0, a core slot, a coda slot (negative ids), as a forward over 4 tokens makes them.
  const QkvRows rows(4, rng);
  for (int id : {0, 2, -1}) cache.storage(id).write(0, rows.k(), rows.v());
  cache.commit(4);
  CHECK(cache.length() == 4);
  CHECK(cache.slot_count() == 3);
  REQUIRE(cache.find(-1) != nullptr);
  CHECK(cache.find(-1)->entries() == 4);
  CHECK(cache.find(1) == nullptr);
  CHECK(&cache.storage(2) == cache.find(2));  // slot() returns the existing slot
  CHECK(cache.slot_count() == 3);
  CHECK(cache.bytes() == 3 * 4 * kWidth * 2 * sizeof(float));

  // A core slot of a later iteration only sees the last token (it ran deeper than the others).
  cache.storage(6).write(3, rows.k().middle_rows(3, 1), rows.v().middle_rows(3, 1));
  CHECK(cache.bytes() == (3 * 4 + 1) * kWidth * 2 * sizeof(float));

  REQUIRE_THROWS_AS(cache.truncate(5), Error);
  REQUIRE_THROWS_WITH(cache.truncate(5), Catch::Contains("truncate") && Catch::Contains("4"));
  CHECK(cache.length() == 4);  // unchanged by the refused call
  CHECK(cache.find(0)->entries() == 4);

  cache.truncate(4);  // a no-op
  CHECK(cache.length() == 4);
  CHECK(cache.find(0)->entries() == 4);

  cache.truncate(2);
  CHECK(cache.length() == 2);
  for (int id : {0, 2, -1}) {
    REQUIRE(cache.find(id) != nullptr);
    CHECK(cache.find(id)->entries() == 2);
    CHECK(cache.find(id)->key_positions().empty());
  }
  CHECK(cache.find(6)->entries() == 0);  // its only entry was at position 3
  CHECK(cache.bytes() == 3 * 2 * kWidth * 2 * sizeof(float));

  cache.clear();
  CHECK(cache.length() == 0);
  CHECK(cache.slot_count() == 0);
  CHECK(cache.bytes() == 0);
  CHECK(cache.find(0) == nullptr);
}

TEST_CASE("kv_cache: a prompt's rows written by the threads land at their positions",
          "[kv_cache]") {
  // Enough values (rows x width >= 2^16) for the copy to be split over the threads; five of the
  // positions exist already (replaced in place), the others are new.
  constexpr std::size_t width = 257, rows = 300;
  Rng rng(11);
  std::vector<float> keys(rows * width), values(rows * width);
  for (float& x : keys) x = static_cast<float>(rng.uniform()) + 1.0f;
  for (float& x : values) x = static_cast<float>(rng.uniform()) - 2.0f;
  const ConstMatrixView<float> k(keys.data(), rows, width), v(values.data(), rows, width);
  KvSlot slot(width);
  // Positions 100-104 first: they are entries 0-4, so entry and position differ for every row.
  slot.write(100, k.middle_rows(0, 5), v.middle_rows(0, 5));
  slot.write(0, k, v);
  REQUIRE(slot.entries() == rows);
  for (std::size_t position = 0; position < rows; ++position) {
    const float* key = slot.key_words(position);
    const float* value = slot.value_words(position);
    REQUIRE(std::equal(key, key + width, k.row(position)));
    REQUIRE(std::equal(value, value + width, v.row(position)));
  }
  CHECK(slot.bytes() == 2 * rows * width * sizeof(float));

  // The same in bf16, the odd width packed in (width + 1) / 2 words per row: each number rounded
  // to the nearest bf16 (ties to even), and the rows in entry order as keys<bf16>() reads them.
  KvSlot rounded(width, KvFormat::bf16);
  rounded.write(100, k.middle_rows(0, 5), v.middle_rows(0, 5));
  rounded.write(0, k, v);
  const ConstMatrixView<bf16> rounded_keys = rounded.keys<bf16>();
  REQUIRE(rounded_keys.rows == rows);
  CHECK(rounded_keys.stride == width + 1);
  for (std::size_t position = 0; position < rows; ++position) {
    const auto* key = reinterpret_cast<const bf16*>(rounded.key_words(position));
    const auto* value = reinterpret_cast<const bf16*>(rounded.value_words(position));
    for (std::size_t i = 0; i < width; ++i) {
      REQUIRE(key[i].bits == to_bf16(k(position, i)).bits);
      REQUIRE(value[i].bits == to_bf16(v(position, i)).bits);
      REQUIRE(std::abs(to_float(key[i]) - k(position, i)) <= std::abs(k(position, i)) / 256);
    }
  }
  CHECK(rounded_keys(5, 3).bits == to_bf16(k(0, 3)).bits);  // entry 5 holds position 0
  CHECK(rounded_keys(0, 0).bits == to_bf16(k(100, 0)).bits);
  CHECK(rounded.bytes() == 2 * rows * (width + 1) / 2 * sizeof(float));
  CHECK_THROWS_WITH(rounded.keys<float>(), Catch::Contains("bf16"));
}

TEST_CASE("kv_cache: RowBuffer keeps its rows as it grows, copies deeply, moves", "[kv_cache]") {
  RowBuffer rows(7);
  CHECK(rows.rows() == 0);
  for (std::size_t n = 1; n <= 40; ++n) {  // grows past its first capacities
    rows.resize(n);
    std::fill_n(rows.row(n - 1), 7, float(n));
    REQUIRE(rows.capacity() >= n);
    for (std::size_t r = 0; r < n; ++r) REQUIRE(rows.row(r)[6] == float(r + 1));
  }
  RowBuffer copy = rows;
  copy.row(3)[0] = -1.0f;
  CHECK(rows.row(3)[0] == 4.0f);
  CHECK(copy.rows() == 40);
  CHECK(copy.row(39)[6] == 40.0f);
  rows.resize(10);  // shrinking keeps the first rows
  CHECK(rows.row(9)[0] == 10.0f);
  RowBuffer moved = std::move(copy);
  CHECK(moved.rows() == 40);
  CHECK(moved.row(3)[0] == -1.0f);
  copy = moved;  // a moved-from buffer takes a copy
  CHECK(copy.rows() == 40);
  CHECK(copy.width() == 7);
}
