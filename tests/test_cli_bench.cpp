// rdepth bench through the binary: the JSON report of a small run (random-weight shape and a model
// directory, every weight format) holds positive, mutually consistent figures; bad input is
// refused. (Speed itself is measured by rdepth bench and the benchmarks, never asserted here.)
#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_support.hpp"
#include "recurrent_depth/backends/cpu/kernel_dispatch.hpp"
#include "recurrent_depth/backends/cpu/machine_limits.hpp"

using namespace recurrent_depth;
using namespace recurrent_depth::testing::cli;

TEST_CASE("rdepth bench reports speed next to the machine's limits", "[cli][bench]") {
  for (const std::string& source :
       {std::string("--shape tiny"), "--model " + model_dir("tiny_huginn")}) {
    for (const char* weights : {"f32", "bf16", "int8", "q4"}) {
      INFO(source << " " << weights);
      const Run run = rdepth("bench " + source + " --weights " + weights +
                             " --steps 3 --prompt 5 --gen 3 --threads 1 --json");
      REQUIRE_SUCCESS(run);
      const nlohmann::json out = nlohmann::json::parse(run.out);
      CHECK(out["weights"] == weights);
      CHECK(out["steps"] == 3);
      for (const char* key :
           {"prefill_tokens_per_second", "decode_tokens_per_second", "weight_bytes_per_token",
            "flops_per_token", "read_bandwidth_gbs", "peak_gflops", "resident_bytes", "kv_bytes"})
        CHECK(out[key].get<double>() > 0.0);
      // Consistency: each decode step is compared with the bandwidth probed right before it,
      // and the fraction of the roofline is the median of these ratios.
      auto seconds = out["decode_step_seconds"].get<std::vector<double>>();
      auto bandwidth = out["read_bandwidth_gbs_per_step"].get<std::vector<double>>();
      REQUIRE(seconds.size() == 3);
      REQUIRE(bandwidth.size() == 3);
      std::vector<double> fractions;
      for (std::size_t i = 0; i < 3; ++i)
        fractions.push_back(out["weight_bytes_per_token"].get<double>() / seconds[i] / 1e9 /
                            bandwidth[i]);
      std::sort(fractions.begin(), fractions.end());
      CHECK(out["decode_fraction_of_roofline"].get<double>() == Approx(fractions[1]));
      // With the KV cache read counted too (the model's default format: bf16 with int8 and q4).
      const bool quantised = std::string(weights) == "int8" || std::string(weights) == "q4";
      CHECK(out["kv_format"] == (quantised ? "bf16" : "f32"));
      CHECK(out["decode_kv_bytes_read_median"].get<double>() > 0.0);
      CHECK(out["decode_fraction_of_roofline_with_kv"].get<double>() >
            out["decode_fraction_of_roofline"].get<double>());
      std::sort(bandwidth.begin(), bandwidth.end());
      CHECK(out["read_bandwidth_gbs"].get<double>() == Approx(bandwidth[1]));
      std::sort(seconds.begin(), seconds.end());
      CHECK(out["decode_tokens_per_second"].get<double>() == Approx(1.0 / seconds[1]));
      CHECK(out["peer"]["eigen_gemv_gbs"].get<double>() > 0.0);
      // The memory probe reads beyond the last-level cache (twice it, at least 256 MiB, whole
      // read units).
      const double probe_bytes = out["read_probe_bytes"].get<double>();
      CHECK(probe_bytes <= double(cpu::memory_probe_bytes()));
      CHECK(probe_bytes > double(cpu::memory_probe_bytes() - cpu::kReadUnit * sizeof(float)));
      CHECK(probe_bytes >= double(std::size_t(256) << 20) - double(cpu::kReadUnit * sizeof(float)));
      CHECK(probe_bytes > 1.9 * double(cpu::last_level_cache_bytes()));
      // The cached roofline: the weights read once per token at the memory's bandwidth, those of
      // a core iteration (3 of them) at the bandwidth of a buffer of their size.
      const double once = out["once_weight_bytes"].get<double>(),
                   iteration = out["iteration_weight_bytes"].get<double>();
      CHECK(iteration > 0.0);
      CHECK(out["weight_bytes_per_token"].get<double>() == Approx(once + 3 * iteration));
      const double cached_roofline =
          1e9 / (once / out["read_bandwidth_gbs"].get<double>() +
                 3 * iteration / out["iteration_read_bandwidth_gbs"].get<double>());
      CHECK(out["decode_cached_roofline_tokens_per_second"].get<double>() ==
            Approx(cached_roofline));
      CHECK(out["decode_fraction_of_cached_roofline"].get<double>() ==
            Approx(out["decode_tokens_per_second"].get<double>() / cached_roofline));
      // The probe reads in the fastest of its patterns.
      CHECK(out["read_pattern"]["streams"].get<int>() >= 1);
      CHECK(out["read_pattern"]["streams"].get<int>() <= cpu::kMaxReadStreams);
      CHECK(out["read_pattern"]["prefetch"].is_boolean());
      // The kernels the tool chose are the ones this program chooses (same machine, same
      // variants linked). int8 and q4 weights (whose nibbles meet int8 activations) with kernels
      // that have an int8 dot-product instruction: prefill also against its measured peak.
      const cpu::CpuKernels& kernels = cpu::selected_kernels();
      CHECK(out["kernels"] == kernels.name);
      CHECK(out["simd"] == kernels.simd);
      const bool int8_peak =
          (std::string(weights) == "int8" || std::string(weights) == "q4") && kernels.int8_dot_peak;
      REQUIRE(out.contains("int8_dot_peak_gops") == int8_peak);
      if (int8_peak)
        CHECK(
            out["prefill_fraction_of_int8_peak"].get<double>() ==
            Approx(out["prefill_gflops"].get<double>() / out["int8_dot_peak_gops"].get<double>()));
      // bf16 weights with kernels that multiply them on the AMX tiles: against the tiles' peak.
      const bool bf16_peak = std::string(weights) == "bf16" && kernels.bf16_tile_peak;
      REQUIRE(out.contains("bf16_dot_peak_gflops") == bf16_peak);
      if (bf16_peak)
        CHECK(out["prefill_fraction_of_bf16_peak"].get<double>() ==
              Approx(out["prefill_gflops"].get<double>() /
                     out["bf16_dot_peak_gflops"].get<double>()));
      const bool bf16_vector_peak = std::string(weights) == "bf16" &&
                                    kernels.bf16_vector_dot_peak &&
                                    cpu::missing_cpu_features(cpu::kAvx512bf16).empty();
      REQUIRE(out.contains("bf16_vector_dot_peak_gflops") == bf16_vector_peak);
      if (bf16_vector_peak)
        CHECK(out["prefill_fraction_of_bf16_vector_peak"].get<double>() ==
              Approx(out["prefill_gflops"].get<double>() /
                     out["bf16_vector_dot_peak_gflops"].get<double>()));
      // The attainable prompt rate: the lower of the peak of the units the products run on and
      // reading every weight once per core iteration for the prompt's positions.
      const double vector_peak =
          std::max(out["peak_gflops"].get<double>(),
                   bf16_vector_peak ? out["bf16_vector_dot_peak_gflops"].get<double>() : 0.0);
      const double units_peak = int8_peak   ? out["int8_dot_peak_gops"].get<double>()
                                : bf16_peak ? out["bf16_dot_peak_gflops"].get<double>()
                                            : vector_peak;
      CHECK(out["prefill_units_peak_gflops"].get<double>() == Approx(units_peak));
      CHECK(out["prefill_bandwidth_roofline_tokens_per_second"].get<double>() ==
            Approx(out["decode_roofline_tokens_per_second"].get<double>() *
                   out["prompt_tokens"].get<double>()));
      const double attainable =
          std::min(units_peak * 1e9 / out["flops_per_token"].get<double>(),
                   out["prefill_bandwidth_roofline_tokens_per_second"].get<double>());
      CHECK(out["prefill_attainable_tokens_per_second"].get<double>() == Approx(attainable));
      CHECK(out["prefill_fraction_of_attainable"].get<double>() ==
            Approx(out["prefill_tokens_per_second"].get<double>() / attainable));
    }
  }
  // Bytes per token grow with r by one core iteration each; int8 streams about half of bf16
  // (here 2/3: tiny's 96 columns are padded to a whole 64-byte block of 128 int8 values).
  const auto bytes = [](const std::string& flags) {
    const Run run = rdepth("bench --shape tiny --prompt 2 --gen 1 --threads 1 --json " + flags);
    REQUIRE_SUCCESS(run);
    return nlohmann::json::parse(run.out)["weight_bytes_per_token"].get<double>();
  };
  const double r2 = bytes("--steps 2"), r3 = bytes("--steps 3"), r4 = bytes("--steps 4");
  CHECK(r4 - r3 == Approx(r3 - r2));
  CHECK(bytes("--steps 3 --weights int8") < 0.7 * bytes("--steps 3 --weights bf16"));
  // q4: 4.5 bits per weight against int8's 8 (both padded alike: 128 columns) and a row's scale
  // and sum: 72 bytes per row against 136.
  CHECK(bytes("--steps 3 --weights q4") < 0.55 * bytes("--steps 3 --weights int8"));
}

TEST_CASE("rdepth bench times warm prefills and decodes after the prompt alone", "[cli][bench]") {
  // The prefill is the median of --prefill-runs forwards after a warm-up; the cache is emptied
  // between them, so the decode steps read the same cache (one prompt) with 1 or 4 runs.
  const auto report = [](const std::string& runs) {
    const Run run =
        rdepth("bench --shape tiny --steps 2 --prompt 7 --gen 3 --threads 1 --json" + runs);
    REQUIRE_SUCCESS(run);
    return nlohmann::json::parse(run.out);
  };
  const nlohmann::json once = report(" --prefill-runs 1"), standard = report(""),
                       four = report(" --prefill-runs 4");
  CHECK(once["prefill_runs"] == 1);
  CHECK(standard["prefill_runs"] == 3);
  CHECK(four["prefill_runs"] == 4);
  const double kv = once["decode_kv_bytes_read_median"].get<double>();
  CHECK(kv > 0.0);
  CHECK(standard["decode_kv_bytes_read_median"].get<double>() == kv);
  CHECK(four["decode_kv_bytes_read_median"].get<double>() == kv);
}

TEST_CASE("rdepth bench refuses bad input", "[cli][bench]") {
  const std::pair<std::string, std::string> cases[] = {
      {"bench --shape tiny --model " + model_dir("tiny_huginn"), "either --model DIR or --shape"},
      {"bench", "either --model DIR or --shape"},
      {"bench --shape huge", "unknown model shape 'huge'"},
      {"bench --shape tiny --prompt 0", "--prompt"},
      {"bench --shape tiny --gen -1", "--gen"},
      {"bench --shape tiny --prefill-runs 0", "--prefill-runs"},
      {"bench --shape tiny --prompt 250 --gen 10", "exceed the context"},
      {"bench --shape tiny --weights int4", "unknown weight format"},
      {"bench --shape tiny --weights Q4", "expected f32, bf16, int8 or q4"},
      {"bench --shape tiny --backend gpu", "--backend gpu is not one of: cpu, hip"},
      {"bench --shape tiny --backend hip", "built without the HIP backend"},
      {"bench --shape tiny --kv-format f16", "--kv-format f16: expected f32 or bf16"},
  };
  for (const auto& [arguments, message] : cases) {
    INFO(arguments);
    const Run run = rdepth(arguments);
    CHECK(run.code == 1);
    CHECK_THAT(run.err, Catch::Contains(message));
  }
}
