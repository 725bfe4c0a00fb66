// Runtime dispatch of the CPU kernels (kernel_dispatch.hpp): the tables linked into this program
// (its own compiled kernels and, on x86-64, the x86_64_v3, x86_64_v4_vnni, x86_64_v4_amx and
// x86_64_v4_bf16 variants), that each is a separate compilation (no function shared between two of
// them), the order of preference, the choice by name and its errors. That every table computes what
// the scalar twins compute is tested by the kernel tests, which run once per table.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "recurrent_depth/backends/cpu/kernel_dispatch.hpp"
#include "recurrent_depth/core/aligned_memory.hpp"
#include "recurrent_depth/core/random.hpp"

using namespace recurrent_depth;

TEST_CASE("dispatch: the kernel tables linked into the program", "[kernels][dispatch]") {
  const auto linked = cpu::linked_kernels();
  REQUIRE(!linked.empty());
  CHECK(std::string(linked.front()->name) == "compiled");
  CHECK(linked.front()->cpu_features == cpu::compiled_cpu_features());
  std::size_t expected = 1;
#if defined(RECURRENT_DEPTH_WITH_KERNELS_X86_64_V3)
  ++expected;
#endif
#if defined(RECURRENT_DEPTH_WITH_KERNELS_X86_64_V4_VNNI)
  ++expected;
#endif
#if defined(RECURRENT_DEPTH_WITH_KERNELS_X86_64_V4_AMX)
  ++expected;
#endif
#if defined(RECURRENT_DEPTH_WITH_KERNELS_X86_64_V4_BF16)
  ++expected;
#endif
  CHECK(linked.size() == expected);

  std::set<std::string> names;
  std::set<const void*> linears, attentions;
  for (const cpu::CpuKernels* table : linked) {
    INFO("table " << table->name);
    names.insert(table->name);
    // Each table has its own code: were two variants' functions merged by the linker, the
    // program would run one variant's instructions under another's name.
    linears.insert(reinterpret_cast<const void*>(table->linear_bf16));
    attentions.insert(reinterpret_cast<const void*>(table->causal_attention));
    CHECK(table->float_lanes >= 1);
    CHECK(table->linear_f32 != nullptr);
    CHECK(table->linear_int8 != nullptr);
    CHECK(table->linear_q4 != nullptr);
    CHECK(table->rms_norm != nullptr);
    CHECK(table->sum_streams != nullptr);
    CHECK(table->fma_peak != nullptr);
    // The vector bf16 probe is there exactly where the table is built for AVX-512.
    CHECK((table->bf16_vector_dot_peak != nullptr) == ((table->cpu_features & cpu::kAvx512f) != 0));
    // The bf16 products round activations exactly where they run on the tiles or, in the table
    // chosen only by name, on vdpbf16ps.
    CHECK((table->bf16_tile_peak != nullptr || table->by_name_only) ==
          (table->bf16_activation_error != 0.0));
  }
  CHECK(names.size() == linked.size());
  CHECK(linears.size() == linked.size());
  CHECK(attentions.size() == linked.size());
}

TEST_CASE("dispatch: the variants' features and their order of preference", "[kernels][dispatch]") {
  const auto linked = cpu::linked_kernels();
  const auto find = [&](const std::string& name) -> const cpu::CpuKernels* {
    for (const cpu::CpuKernels* table : linked)
      if (table->name == name) return table;
    return nullptr;
  };
  const cpu::CpuKernels* v3 = find("x86_64_v3");
  const cpu::CpuKernels* v4 = find("x86_64_v4_vnni");
  const cpu::CpuKernels* amx = find("x86_64_v4_amx");
  const cpu::CpuKernels* bf16 = find("x86_64_v4_bf16");
  if (v3) {
    CHECK((v3->cpu_features & (cpu::kAvx2 | cpu::kFma)) == (cpu::kAvx2 | cpu::kFma));
    CHECK((v3->cpu_features & cpu::kAvx512f) == 0);
    CHECK(v3->float_lanes == 8);
    CHECK(v3->int8_dot_peak == nullptr);
  }
  if (v4) {
    CHECK((v4->cpu_features & (cpu::kAvx512bw | cpu::kAvx512vnni)) ==
          (cpu::kAvx512bw | cpu::kAvx512vnni));
    CHECK(v4->float_lanes == 16);
    CHECK(v4->int8_dot_peak != nullptr);
  }
  if (v3 && v4) CHECK((v3->cpu_features & ~v4->cpu_features) == 0);
  if (amx) {
    CHECK((amx->cpu_features & (cpu::kAmxTile | cpu::kAmxInt8)) == (cpu::kAmxTile | cpu::kAmxInt8));
    CHECK(amx->int8_dot_peak != nullptr);
    CHECK(amx->bf16_tile_peak != nullptr);
    CHECK(amx->bf16_vector_dot_peak != nullptr);
    if (v4) CHECK((v4->cpu_features & ~amx->cpu_features) == 0);
    // Runnable exactly where the CPU has the tiles and the operating system grants them.
    if (cpu::missing_cpu_features(amx->cpu_features).empty())
      CHECK((cpu::cpuid_7_edx_bit(25) && cpu::amx_tiles_permitted()));
  }

  if (bf16) {
    CHECK((bf16->cpu_features & cpu::kAvx512bf16) != 0);
    CHECK(bf16->bf16_activation_error == 1.0 / 256);
    if (v4) CHECK((v4->cpu_features & ~bf16->cpu_features) == 0);
  }
  // Only the table that rounds activations to bf16 waits to be named.
  for (const cpu::CpuKernels* table : linked) CHECK(table->by_name_only == (table == bf16));

  // Runnable: the linked tables whose features the CPU has, most features first.
  const auto runnable = cpu::runnable_kernels();
  REQUIRE(!runnable.empty());  // the compiled table runs wherever the tests run
  for (const cpu::CpuKernels* table : linked)
    CHECK((std::count(runnable.begin(), runnable.end(), table) == 1) ==
          cpu::missing_cpu_features(table->cpu_features).empty());
  for (std::size_t i = 1; i < runnable.size(); ++i)
    CHECK(std::popcount(runnable[i - 1]->cpu_features) >= std::popcount(runnable[i]->cpu_features));

  // The selection: the environment's choice, or the best runnable table.
  const char* chosen = std::getenv("RECURRENT_DEPTH_KERNELS");
  if (chosen && *chosen)
    CHECK(std::string(cpu::selected_kernels().name) == chosen);
  else
    CHECK(&cpu::selected_kernels() ==
          *std::find_if(runnable.begin(), runnable.end(),
                        [](const cpu::CpuKernels* table) { return !table->by_name_only; }));
}

TEST_CASE("dispatch: kernels chosen by name", "[kernels][dispatch]") {
  for (const cpu::CpuKernels* table : cpu::runnable_kernels())
    CHECK(&cpu::kernels_named(table->name) == table);
  CHECK(cpu::missing_cpu_features(0) == "");
  try {
    cpu::kernels_named("x86_64_v9");
    FAIL("an unknown table was accepted");
  } catch (const Error& e) {
    const std::string message = e.what();
    CHECK(message.find("'x86_64_v9'") != std::string::npos);
    CHECK(message.find("not linked") != std::string::npos);
    CHECK(message.find("compiled") != std::string::npos);  // the list of linked tables
  }
  for (const cpu::CpuKernels* table : cpu::linked_kernels())
    if (!cpu::missing_cpu_features(table->cpu_features).empty())
      CHECK_THROWS_WITH(cpu::kernels_named(table->name),
                        Catch::Contains("lacks") && Catch::Contains(table->name));
}

TEST_CASE("kernels: every read pattern of the bandwidth probe reads the whole array",
          "[kernels][dispatch]") {
  // Two units of work: each pattern's streams cover them exactly once; a pattern that skipped or
  // repeated a chunk (1/24 of the array) would be off by several percent.
  const std::size_t n = 2 * cpu::kReadUnit;
  AlignedArray<float> values = allocate_aligned<float>(n);
  Rng rng(77);
  double exact = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    values.get()[i] = static_cast<float>(0.5 + rng.uniform());
    exact += values.get()[i];
  }
  for (const cpu::CpuKernels* table : cpu::runnable_kernels())
    for (int streams = 1; streams <= cpu::kMaxReadStreams; ++streams)
      for (bool prefetch : {false, true}) {
        INFO("kernels " << table->name << ", " << streams << " streams, prefetch " << prefetch);
        const double sum = table->sum_streams(values.get(), n, {streams, prefetch});
        CHECK(std::abs(sum - exact) <= 1e-4 * exact);
      }
}

#ifdef RECURRENT_DEPTH_RDEPTH

#include "cli_support.hpp"
#include "golden.hpp"

using namespace recurrent_depth::testing::cli;

TEST_CASE("dispatch: rdepth runs the golden model on every kernel table the CPU runs",
          "[kernels][dispatch][cli]") {
  const testing::Golden golden("tiny_huginn");
  const int steps = golden.config.mean_recurrence;
  const std::string input = quote((golden.directory / "golden.safetensors").string());
  const std::string prefix = "forward_r" + std::to_string(steps);
  for (const cpu::CpuKernels* table : cpu::runnable_kernels()) {
    DYNAMIC_SECTION("kernels " << table->name) {
      const std::string environment = std::string("RECURRENT_DEPTH_KERNELS=") + table->name;
      const fs::path out = scratch(std::string("dispatch_") + table->name + ".safetensors");
      const Run run = rdepth("forward --model " + model_dir("tiny_huginn") + " --input " + input +
                                 " --output " + quote(out.string()) + " --steps " +
                                 std::to_string(steps) + " --weights f32 --threads 2",
                             environment);
      REQUIRE_SUCCESS(run);
      const SafetensorsFile result = open_safetensors(out);
      CHECK(testing::relative_l2(matrix(result, "logits"), golden.matrix(prefix + "_logits")) <
            1e-4);
      const Run bench =
          rdepth("bench --shape tiny --steps 2 --prompt 3 --gen 1 --threads 1 --json", environment);
      REQUIRE_SUCCESS(bench);
      CHECK(nlohmann::json::parse(bench.out)["kernels"] == table->name);
    }
  }
  SECTION("an unknown table is refused, naming it and the linked ones") {
    const Run run = rdepth("bench --shape tiny --steps 2 --prompt 3 --gen 1 --json",
                           "RECURRENT_DEPTH_KERNELS=x86_64_v9");
    CHECK(run.code == 1);
    CHECK(run.err.find("'x86_64_v9'") != std::string::npos);
    CHECK(run.err.find("compiled") != std::string::npos);
  }
}

// The golden prompts (11 tokens) stay below the 12 positions from which int8 matmuls may take the
// AMX tiles, and the table runs of the golden model above are f32: a longer prompt (the golden one
// repeated to 40 tokens) runs each table in every weight format. f32 on each table matches the
// compiled table; bf16 matches f32 on the same table (the golden weights are bf16 values, so only
// the activations' rounding may differ: within the golden tolerance, or 1e-2 where the prompt's
// activations are rounded to bf16); int8 and q4 stay within their stated bounds (test_golden.cpp)
// of f32.
TEST_CASE("dispatch: a prompt long enough for the tile kernels, every table and weight format",
          "[kernels][dispatch][cli]") {
  const testing::Golden golden("tiny_huginn");
  std::vector<std::int32_t> ids;
  while (ids.size() < 40) ids.push_back(golden.input_ids[ids.size() % golden.input_ids.size()]);
  const fs::path in = scratch("dispatch_long_prompt.safetensors");
  SafetensorsWriter writer;
  writer.add_i32("input_ids", {std::int64_t(ids.size())}, ids);
  writer.write(in);
  const auto logits = [&](const cpu::CpuKernels& table, const std::string& weights) {
    const fs::path out = scratch(std::string("dispatch_long_") + table.name + "_" + weights);
    const Run run =
        rdepth("forward --model " + model_dir("tiny_huginn") + " --input " + quote(in.string()) +
                   " --output " + quote(out.string()) + " --weights " + weights + " --threads 2",
               std::string("RECURRENT_DEPTH_KERNELS=") + table.name);
    REQUIRE_SUCCESS(run);
    return matrix(open_safetensors(out), "logits");
  };
  const Matrix<float> reference = logits(*cpu::linked_kernels().front(), "f32");
  REQUIRE(reference.rows() == ids.size());
  for (const cpu::CpuKernels* table : cpu::runnable_kernels()) {
    INFO("kernels " << table->name);
    Matrix<float> own;  // the compiled table's f32 run is the reference itself
    if (table != cpu::linked_kernels().front()) own = logits(*table, "f32");
    const ConstMatrixView<float> f32 = own.rows() > 0 ? own.view() : reference.view();
    CHECK(testing::relative_l2(f32, reference.view()) < 1e-4);
    // Activations rounded to bf16 (x86_64_v4_bf16's prompts): measured 3.1e-3 here.
    CHECK(testing::relative_l2(logits(*table, "bf16").view(), f32) <
          (table->by_name_only ? 1e-2 : 1e-4));
    CHECK(testing::relative_l2(logits(*table, "int8").view(), f32) < 3e-2);
    CHECK(testing::relative_l2(logits(*table, "q4").view(), f32) < 0.3);
  }
}

#endif
