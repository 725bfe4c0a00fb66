// Safetensors reader and writer: round trips for every dtype, the real tiny_huginn file, one test
// per kind of malformed input (each message must name the file / tensor), and a fixed-seed fuzz
// loop.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "recurrent_depth/io/safetensors.hpp"
#include "test_files.hpp"

namespace fs = std::filesystem;
using namespace recurrent_depth;
using Catch::Contains;

namespace {

const fs::path kTinyModel =
    fs::path(RECURRENT_DEPTH_TEST_DATA) / "tiny_huginn" / "model.safetensors";

using recurrent_depth::testing::read_bytes;
using recurrent_depth::testing::TempDir;

// A file with the given header text (not padded) followed by `data_size` zero bytes.
std::vector<std::byte> make_file(const std::string& header, std::size_t data_size) {
  std::vector<std::byte> out(8 + header.size() + data_size);
  const std::uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

SafetensorsFile parse_header(const std::string& header, std::size_t data_size) {
  return parse_safetensors(make_file(header, data_size), "bad.safetensors");
}

template <class T>
std::span<const std::byte> raw(const std::vector<T>& v) {
  return std::as_bytes(std::span<const T>(v));
}

}  // namespace

TEST_CASE("safetensors: round trip of every dtype", "[io][safetensors]") {
  SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  std::vector<std::byte> pattern(8 * 2 * 3);
  for (std::size_t i = 0; i < pattern.size(); ++i) pattern[i] = std::byte(i * 37 + 11);
  const std::vector<DType> all = {DType::F32, DType::BF16, DType::F16, DType::F64, DType::I64,
                                  DType::I32, DType::I16,  DType::I8,  DType::U8,  DType::BOOL};
  for (DType t : all) {
    writer.add(std::string("t_") + std::string(dtype_name(t)), t, {2, 3},
               std::span(pattern).first(6 * dtype_size(t)));
  }
  writer.add("scalar", DType::F32, {}, std::span(pattern).first(4));
  writer.add("empty", DType::F32, {0, 5}, {});
  const std::vector<std::byte> bytes = writer.bytes();
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  CHECK(header_len % 8 == 0);

  const SafetensorsFile file = parse_safetensors(bytes, "mem.safetensors");
  CHECK(file.source() == "mem.safetensors");
  CHECK(file.metadata().at("format") == "pt");
  REQUIRE(file.tensors().size() == all.size() + 2);
  for (std::size_t i = 0; i < all.size(); ++i) {
    const TensorInfo& t = file.tensors()[i];  // tensors() is in file (= insertion) order
    CHECK(t.name == std::string("t_") + std::string(dtype_name(all[i])));
    CHECK(t.dtype == all[i]);
    CHECK(t.shape == std::vector<std::int64_t>{2, 3});
    CHECK(t.numel() == 6);
    CHECK(t.shape_string() == "[2, 3]");
    CHECK(t.source == "mem.safetensors");
    REQUIRE(t.bytes.size() == 6 * dtype_size(all[i]));
    CHECK(std::memcmp(t.bytes.data(), pattern.data(), t.bytes.size()) == 0);
  }
  CHECK(file.at("scalar").numel() == 1);
  CHECK(file.at("scalar").shape_string() == "[]");
  CHECK(file.at("empty").numel() == 0);
  std::vector<float> none;
  read_values(file.at("empty"), std::span<float>(none));
  CHECK(file.find("absent") == nullptr);
  CHECK(&file.at("t_I8") == file.find("t_I8"));
}

TEST_CASE("safetensors: conversions", "[io][safetensors]") {
  const std::vector<float> f32 = {1.0f, -2.5f, 3.14159274f, 1e-30f, 65504.0f, -0.0f};
  const std::vector<bf16> b16 = {to_bf16(1.0f), to_bf16(-2.5f), to_bf16(0.15625f)};
  const std::vector<std::uint16_t> f16 = {0x3C00, 0xC000, 0x0001, 0x7BFF, 0x3555};
  const std::vector<std::int64_t> i64 = {-5, 0, std::int64_t(1) << 40};
  const std::vector<std::int32_t> i32 = {-7, 65509, 2147483647};
  const std::vector<std::int16_t> i16 = {-32768, 1, 32767};
  const std::vector<std::int8_t> i8 = {-128, 0, 127};
  const std::vector<std::uint8_t> u8 = {0, 200, 255};

  SafetensorsWriter w;
  w.add("odd", DType::U8, {1}, raw(std::vector<std::uint8_t>{7}));  // later data is misaligned
  w.add_f32("f32", {2, 3}, f32);
  w.add_bf16("bf16", {3}, b16);
  w.add_bf16("bf16_rounded", {2}, std::vector<float>{1.00390625f, 3.0f});
  w.add("f16", DType::F16, {5}, raw(f16));
  w.add_i64("i64", {3}, i64);
  w.add_i32("i32", {3}, i32);
  w.add("i16", DType::I16, {3}, raw(i16));
  w.add("i8", DType::I8, {3}, raw(i8));
  w.add("u8", DType::U8, {3}, raw(u8));
  const SafetensorsFile file = parse_safetensors(w.bytes(), "conv.safetensors");
  CHECK(reinterpret_cast<std::uintptr_t>(file.at("f32").bytes.data()) % 4 != 0);

  std::vector<float> out(6);
  read_values(file.at("f32"), std::span<float>(out));
  CHECK(out == f32);
  std::vector<bf16> out_b(6);
  read_values(file.at("f32"), std::span<bf16>(out_b));
  for (int i = 0; i < 6; ++i) CHECK(out_b[i].bits == to_bf16(f32[i]).bits);

  std::vector<float> fb(3);
  read_values(file.at("bf16"), std::span<float>(fb));
  CHECK(fb == std::vector<float>{1.0f, -2.5f, 0.15625f});
  std::vector<bf16> bb(3);
  read_values(file.at("bf16"), std::span<bf16>(bb));
  for (int i = 0; i < 3; ++i) CHECK(bb[i].bits == b16[i].bits);
  std::vector<float> rounded(2);
  read_values(file.at("bf16_rounded"), std::span<float>(rounded));
  CHECK(rounded == std::vector<float>{1.0f, 3.0f});  // 1 + 2^-8 ties to even

  std::vector<float> h(5);
  read_values(file.at("f16"), std::span<float>(h));
  CHECK(h[0] == 1.0f);
  CHECK(h[1] == -2.0f);
  CHECK(h[2] == std::ldexp(1.0f, -24));
  CHECK(h[3] == 65504.0f);
  CHECK(h[4] == Approx(1.0 / 3.0).epsilon(1e-3));
  std::vector<bf16> hb(5);
  read_values(file.at("f16"), std::span<bf16>(hb));
  for (int i = 0; i < 5; ++i) CHECK(hb[i].bits == to_bf16(h[i]).bits);

  CHECK(read_integers(file.at("i64")) == i64);
  CHECK(read_integers(file.at("i32")) == std::vector<std::int64_t>{-7, 65509, 2147483647});
  CHECK(read_integers(file.at("i16")) == std::vector<std::int64_t>{-32768, 1, 32767});
  CHECK(read_integers(file.at("i8")) == std::vector<std::int64_t>{-128, 0, 127});
  CHECK(read_integers(file.at("u8")) == std::vector<std::int64_t>{0, 200, 255});

  std::vector<float> three(3);
  REQUIRE_THROWS_WITH(read_values(file.at("i32"), std::span<float>(three)),
                      Contains("i32") && Contains("conv.safetensors") && Contains("I32") &&
                          Contains("expected F32, BF16 or F16"));
  std::vector<bf16> three_b(3);
  REQUIRE_THROWS_WITH(read_values(file.at("u8"), std::span<bf16>(three_b)),
                      Contains("u8") && Contains("expected F32, BF16 or F16"));
  REQUIRE_THROWS_WITH(read_values(file.at("f32"), std::span<float>(three)),
                      Contains("f32") && Contains("[2, 3]") && Contains("6 elements"));
  REQUIRE_THROWS_WITH(read_integers(file.at("f32")), Contains("f32") && Contains("F32"));
  REQUIRE_THROWS_WITH(file.at("nope"), Contains("conv.safetensors: no tensor nope"));
}

TEST_CASE("safetensors: writer errors and file round trip", "[io][safetensors]") {
  TempDir dir;
  SafetensorsWriter w;
  w.add_f32("a", {2}, std::vector<float>{1, 2});
  REQUIRE_THROWS_WITH(w.add_f32("a", {2}, std::vector<float>{1, 2}), Contains("a added twice"));
  REQUIRE_THROWS_WITH(w.add_f32("b", {3}, std::vector<float>{1, 2}), Contains("tensor b"));
  REQUIRE_THROWS_WITH(w.add_f32("c", {-1}, std::vector<float>{}), Contains("negative"));
  REQUIRE_THROWS_WITH(w.add_f32("__metadata__", {1}, std::vector<float>{1}),
                      Contains("__metadata__"));
  w.set_metadata("k", "v");
  const fs::path path = dir.path / "out.safetensors";
  w.write(path);
  CHECK(read_bytes(path) == w.bytes());

  SafetensorsFile moved = [&] {
    SafetensorsFile f = open_safetensors(path);
    return f;
  }();
  SafetensorsFile file = std::move(moved);  // spans stay valid across moves
  std::vector<float> v(2);
  read_values(file.at("a"), std::span<float>(v));
  CHECK(v == std::vector<float>{1, 2});
  CHECK(file.metadata().at("k") == "v");
  CHECK(file.source() == path.string());

  REQUIRE_THROWS_WITH(w.write(dir.path / "no_such_dir" / "x.safetensors"),
                      Contains("no_such_dir") && Contains("cannot write"));
  REQUIRE_THROWS_WITH(open_safetensors(dir.path / "missing.safetensors"),
                      Contains("missing.safetensors") && Contains("No such file"));
  REQUIRE_THROWS_WITH(open_safetensors(dir.path), Contains("not a regular file"));
  std::ofstream(dir.path / "empty.safetensors").close();
  CHECK(MappedFile::open(dir.path / "empty.safetensors").bytes().empty());
  REQUIRE_THROWS_WITH(open_safetensors(dir.path / "empty.safetensors"),
                      Contains("empty.safetensors") && Contains("too short"));
}

TEST_CASE("safetensors: tiny_huginn model file", "[io][safetensors]") {
  const SafetensorsFile file = open_safetensors(kTinyModel);
  CHECK(file.tensors().size() == 76);
  const TensorInfo& wte = file.at("transformer.wte.weight");
  CHECK(wte.dtype == DType::BF16);
  CHECK(wte.shape_string() == "[384, 96]");
  CHECK(file.at("transformer.prelude.0.attn.Wqkv.weight").shape ==
        std::vector<std::int64_t>{288, 96});
  CHECK(file.at("transformer.prelude.0.attn.qk_bias").shape ==
        std::vector<std::int64_t>{2, 1, 6, 16});
  CHECK(file.at("freqs_cis").dtype == DType::F32);
  CHECK(file.at("freqs_cis").shape_string() == "[1, 256, 1, 8, 2]");
  CHECK(file.find("lm_head.weight") == nullptr);

  std::vector<float> values(wte.numel());
  read_values(wte, std::span<float>(values));
  std::vector<bf16> stored(wte.numel());
  read_values(wte, std::span<bf16>(stored));
  double sum_sq = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    REQUIRE(std::isfinite(values[i]));
    std::uint16_t bits = 0;
    std::memcpy(&bits, wte.bytes.data() + 2 * i, 2);
    REQUIRE(values[i] == to_float(bf16{bits}));
    REQUIRE(stored[i].bits == bits);
    sum_sq += double(values[i]) * values[i];
  }
  CHECK(sum_sq > 0);
  // freqs_cis row 0 (position 0) is cos 1, sin 0.
  std::vector<float> freqs(file.at("freqs_cis").numel());
  read_values(file.at("freqs_cis"), std::span<float>(freqs));
  CHECK(freqs[0] == Approx(1.0f));
  CHECK(freqs[1] == Approx(0.0f).margin(1e-7));
}

TEST_CASE("safetensors: truncated and corrupt real file", "[io][safetensors]") {
  const std::vector<std::byte> full = read_bytes(kTinyModel);
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, full.data(), 8);
  const auto cut = [&](std::size_t n) {
    return parse_safetensors({full.begin(), full.begin() + n}, "cut.safetensors");
  };
  for (std::size_t n : {0, 3, 7}) {
    REQUIRE_THROWS_WITH(cut(n), Contains("cut.safetensors") && Contains("too short"));
  }
  for (std::size_t n : {std::size_t(8), std::size_t(100), std::size_t(8 + header_len / 2),
                        std::size_t(8 + header_len - 1)}) {
    REQUIRE_THROWS_WITH(cut(n),
                        Contains("cut.safetensors") && Contains("past the end of the file"));
  }
  for (std::size_t n :
       {std::size_t(8 + header_len), std::size_t(8 + header_len + 1000), full.size() - 1}) {
    REQUIRE_THROWS_WITH(cut(n), Contains("cut.safetensors") && Contains("tensor ") &&
                                    Contains("past the end of the data section"));
  }
  CHECK_NOTHROW(cut(full.size()));

  std::vector<std::byte> bad = full;
  const std::uint64_t too_long = full.size() - 7;
  std::memcpy(bad.data(), &too_long, 8);
  REQUIRE_THROWS_WITH(parse_safetensors(bad, "long.safetensors"),
                      Contains("long.safetensors: header length"));
  const std::uint64_t absurd = std::uint64_t(1) << 40;
  std::memcpy(bad.data(), &absurd, 8);
  REQUIRE_THROWS_WITH(parse_safetensors(bad, "absurd.safetensors"),
                      Contains("absurd.safetensors") && Contains("absurd"));
}

TEST_CASE("safetensors: malformed headers", "[io][safetensors]") {
  const auto expect = [](const std::string& header, std::size_t data, const std::string& what) {
    INFO(header);
    REQUIRE_THROWS_WITH(parse_header(header, data), Contains("bad.safetensors") && Contains(what));
  };
  const std::string ok = R"("dtype":"F32","shape":[2],"data_offsets":[0,8])";
  CHECK_NOTHROW(parse_header("{\"w\":{" + ok + "}}", 8));
  CHECK_NOTHROW(parse_header("{}", 0));
  expect("{\"w\":", 8, "not valid JSON");
  expect("[1, 2]", 8, "not a JSON object");
  expect(R"({"w":[1,2]})", 8, "tensor w: entry must be an object");
  expect(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", 8, "tensor w: missing \"dtype\"");
  expect(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", 8, "tensor w: missing \"shape\"");
  expect(R"({"w":{"dtype":"F32","shape":[2]}})", 8, "tensor w: missing \"data_offsets\"");
  expect(R"({"w":{"dtype":5,"shape":[2],"data_offsets":[0,8]}})", 8, "\"dtype\" must be a string");
  expect(R"({"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", 8,
         "tensor w: unknown dtype \"F8_E4M3\"");
  expect(R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", 8, "\"shape\" must be");
  expect(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8, "\"shape\" must be");
  expect(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8,
         "tensor w: negative dimension");
  expect(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8, "[begin, end]");
  expect(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-1,7]}})", 8, "[begin, end]");
  expect(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":"0,8"}})", 8, "[begin, end]");
  expect(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, "begin > end");
  expect(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 8,
         "tensor w: data_offsets end 16 is past the end of the data section (8 bytes)");
  expect(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 16,
         "tensor w: data_offsets [0, 8] hold 8 bytes but shape [3] of F32 needs 12");
  expect(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8,
         "too large");
  expect(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
         R"("v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
         16, "tensors w and v overlap");
  expect(R"({"a":{"dtype":"U8","shape":[16],"data_offsets":[0,16]},)"
         R"("b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}})",
         16, "tensors a and b overlap");
  expect(R"({"__metadata__":[1]})", 0, "__metadata__ must be an object of strings");
  expect(R"({"__metadata__":{"k":1}})", 0, "__metadata__ entry k must be a string");
  // Zero-size tensors touch nothing, adjacent ranges do not overlap.
  CHECK_NOTHROW(parse_header(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                             R"("e":{"dtype":"F32","shape":[0,7],"data_offsets":[2,2]},)"
                             R"("b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
                             8));
  // A hostile, deeply nested value is reported, not dumped recursively.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  expect("{\"w\":" + deep + "}", 0, "tensor w: entry must be an object");
}

TEST_CASE("safetensors: fuzzed bytes give a result or an Error", "[io][safetensors][fuzz]") {
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  w.add_f32("a", {2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6});
  w.add_bf16("b", {4}, std::vector<float>{1, -1, 0.5f, 2});
  w.add_i64("ids", {1, 3}, std::vector<std::int64_t>{3, 17, 5});
  w.add("h", DType::F16, {2}, raw(std::vector<std::uint16_t>{0x3C00, 0x0001}));
  const std::vector<std::byte> valid = w.bytes();
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, valid.data(), 8);

  std::mt19937 rng(12345);
  int parsed = 0, rejected = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    std::vector<std::byte> bytes = valid;
    const int mode = iter % 4;
    const auto pick = [&](std::size_t lo, std::size_t hi) {  // in [lo, hi)
      return lo + rng() % (hi - lo);
    };
    if (mode == 0) {  // flip a few bits anywhere, mostly in the header
      for (int k = 0, n = 1 + rng() % 4; k < n; ++k) {
        const std::size_t at = rng() % 4 ? pick(0, 8 + header_len) : pick(0, bytes.size());
        bytes[at] ^= std::byte(1u << (rng() % 8));
      }
    } else if (mode == 1) {  // replace header bytes with JSON-ish characters
      const char chars[] = "{}[]\",:-0123456789eE.FBIU ";
      for (int k = 0, n = 1 + rng() % 3; k < n; ++k) {
        bytes[pick(8, 8 + header_len)] = std::byte(chars[rng() % (sizeof chars - 1)]);
      }
    } else if (mode == 2) {  // truncate
      bytes.resize(pick(0, bytes.size()));
    } else {  // corrupt the length field
      bytes[pick(0, 8)] = std::byte(rng() % 256);
      if (rng() % 2) bytes.resize(pick(0, bytes.size() + 1));
    }
    try {
      const SafetensorsFile f = parse_safetensors(std::move(bytes), "fuzz.safetensors");
      for (const TensorInfo& t : f.tensors()) {
        try {
          std::vector<float> v(t.numel());
          read_values(t, std::span<float>(v));
          std::vector<bf16> b(t.numel());
          read_values(t, std::span<bf16>(b));
        } catch (const Error&) {
        }
        try {
          (void)read_integers(t);
        } catch (const Error&) {
        }
      }
      ++parsed;
    } catch (const Error& e) {
      REQUIRE(std::string(e.what()).find("fuzz.safetensors") != std::string::npos);
      ++rejected;
    } catch (const std::exception& e) {
      FAIL("unexpected exception: " << e.what());
    } catch (...) {
      FAIL("unexpected non-standard exception");
    }
  }
  CHECK(parsed + rejected == 2000);
  CHECK(rejected > 500);
  CHECK(parsed > 20);
}
