// rdepth inspect: what a model directory holds (config, every stored tensor by stage) and what it
// costs once loaded (parameters per stage, weight memory in the chosen format, KV bytes per token).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <map>

#include <nlohmann/json.hpp>

#include "common.hpp"

namespace rdepth {
namespace {

Arguments inspect_arguments() {
  return Arguments(
      "inspect", "--model DIR [--weights f32|bf16] [--json]",
      "Prints the model's config, every stored tensor (dtype and shape) grouped by stage, the\n"
      "parameter count of each stage as loaded, the weight memory in the chosen format and the KV\n"
      "cache bytes one token occupies at r = mean_recurrence.",
      {model_flag(),
       weights_flag(),
       backend_flag(),
       threads_flag(),
       {"--json", "", "print one JSON object on stdout"}});
}

// Stages in the order of the forward pass; a tensor belongs to the first whose prefix it has.
struct Stage {
  const char* key;     // JSON key
  const char* title;   // text heading
  const char* prefix;  // tensor name prefix
};
constexpr Stage kStages[] = {
    {"embedding", "embedding", "transformer.wte."},
    {"prelude", "prelude", "transformer.prelude."},
    {"adapter", "adapter", "transformer.adapter."},
    {"core", "core blocks", "transformer.core_block."},
    {"coda", "coda", "transformer.coda."},
    {"final_norm", "final norm", "transformer.ln_f."},
    {"lm_head", "lm_head (stored copy of the head)", "lm_head."},
    {"other", "other (not weights of a stage)", ""},
};

std::size_t stage_of(const std::string& name) {
  for (std::size_t i = 0; i + 1 < std::size(kStages); ++i)
    if (name.rfind(kStages[i].prefix, 0) == 0) return i;
  return std::size(kStages) - 1;
}

// "prelude.2" before "prelude.10": digit runs compare as numbers.
bool natural_less(const std::string& a, const std::string& b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      std::size_t ei = i, ej = j;
      while (ei < a.size() && std::isdigit(static_cast<unsigned char>(a[ei]))) ++ei;
      while (ej < b.size() && std::isdigit(static_cast<unsigned char>(b[ej]))) ++ej;
      const std::string na = a.substr(i, ei - i), nb = b.substr(j, ej - j);
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = ei;
      j = ej;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

std::string mebibytes(std::size_t bytes) {
  char text[64];
  std::snprintf(text, sizeof text, "%.2f MiB", double(bytes) / (1024.0 * 1024.0));
  return text;
}

nlohmann::ordered_json config_json(const rd::ModelConfig& c) {
  return {{"n_embd", c.n_embd},
          {"n_heads", c.n_heads},
          {"head_dim", c.head_dim()},
          {"intermediate_size", c.intermediate_size},
          {"vocab_size", c.vocab_size},
          {"padding_multiple", c.padding_multiple},
          {"block_size", c.block_size},
          {"n_layers_in_prelude", c.n_layers_in_prelude},
          {"n_layers_in_recurrent_block", c.n_layers_in_recurrent_block},
          {"n_layers_in_coda", c.n_layers_in_coda},
          {"mean_recurrence", c.mean_recurrence},
          {"rope_base", c.rope_base},
          {"norm_eps", c.norm_eps},
          {"tie_embeddings", c.tie_embeddings},
          {"qk_bias", c.qk_bias},
          {"bos_token_id", c.bos_token_id},
          {"eos_token_id", c.eos_token_id},
          {"pad_token_id", c.pad_token_id}};
}

}  // namespace

int command_inspect(const std::vector<std::string>& words) {
  Arguments args = inspect_arguments();
  if (!args.parse(words)) {
    std::cout << args.help();
    return 0;
  }
  const std::filesystem::path dir = model_directory(args);
  const rd::WeightFormat format = weight_format(args);
  const bool json = args.has("--json");
  apply_threads(args);

  const rd::ModelConfig config = rd::load_model_config(dir / "config.json");
  const rd::Checkpoint checkpoint = rd::open_checkpoint(dir);
  std::vector<std::string> names = checkpoint.tensor_names();
  std::sort(names.begin(), names.end(), natural_less);
  std::vector<std::vector<const rd::TensorInfo*>> groups(std::size(kStages));
  for (const std::string& name : names) groups[stage_of(name)].push_back(&checkpoint.at(name));

  return with_model(dir, format, backend(args), [&](const auto& model) {
    const rd::ModelSummary s = model.summary();
    const std::string weights(rd::weight_format_name(format));
    const int r = config.mean_recurrence;
    const std::size_t kv_per_token = model.kv_bytes_per_token(r);
    const std::size_t core_blocks = s.core_parameters - s.adapter_parameters;
    const std::pair<const char*, std::size_t> parameters[] = {
        {"embedding", s.embedding_parameters}, {"prelude", s.prelude_parameters},
        {"adapter", s.adapter_parameters},     {"core", core_blocks},
        {"coda", s.coda_parameters},           {"final_norm", s.final_norm_parameters},
        {"total", s.total_parameters()}};

    if (json) {
      nlohmann::ordered_json out;
      out["model"] = dir.string();
      out["config"] = config_json(config);
      nlohmann::ordered_json tensors = nlohmann::ordered_json::object();
      nlohmann::ordered_json counts = nlohmann::ordered_json::object();
      for (std::size_t g = 0; g < groups.size(); ++g) {
        if (groups[g].empty()) continue;
        nlohmann::ordered_json list = nlohmann::ordered_json::array();
        for (const rd::TensorInfo* t : groups[g])
          list.push_back({{"name", t->name},
                          {"dtype", std::string(rd::dtype_name(t->dtype))},
                          {"shape", t->shape}});
        tensors[kStages[g].key] = std::move(list);
        counts[kStages[g].key] = groups[g].size();
      }
      out["tensors"] = std::move(tensors);
      out["tensor_counts"] = std::move(counts);
      out["stored_bytes"] = checkpoint.total_bytes();
      nlohmann::ordered_json params = nlohmann::ordered_json::object();
      for (const auto& [key, n] : parameters) params[key] = n;
      out["parameters"] = std::move(params);
      out["tied_head"] = s.tied_head;
      out["weights"] = weights;
      out["weight_bytes"] = s.weight_bytes;
      out["kv_steps"] = r;
      out["kv_bytes_per_token"] = kv_per_token;
      out["kv_format"] = rd::kv_format_name(model.default_kv_format);
      std::cout << out.dump(2) << std::endl;
      return 0;
    }

    std::cout << "model " << dir.string() << "\n"
              << "config: " << config.to_string() << "\n\n"
              << "stored tensors: " << names.size() << ", " << checkpoint.total_bytes()
              << " bytes (" << mebibytes(checkpoint.total_bytes()) << ")\n";
    for (std::size_t g = 0; g < groups.size(); ++g) {
      if (groups[g].empty()) continue;
      std::size_t stored = 0;
      for (const rd::TensorInfo* t : groups[g]) stored += t->numel();
      std::cout << "  " << kStages[g].title << ": " << groups[g].size()
                << (groups[g].size() == 1 ? " tensor, " : " tensors, ") << stored << " values\n";
      for (const rd::TensorInfo* t : groups[g])
        std::cout << "    " << t->name << "  " << rd::dtype_name(t->dtype) << " "
                  << t->shape_string() << "\n";
    }
    std::cout << "\nparameters (as loaded):\n";
    for (const auto& [key, n] : parameters) {
      std::string label = key;
      if (label == "final_norm") label = "final norm";
      if (label == "core") label = "core blocks";
      std::printf("  %-12s %14zu\n", label.c_str(), n);  // cout is synced with stdio
    }
    std::cout << "  head: " << (s.tied_head ? "tied to the embedding" : "separate lm_head") << "\n"
              << "  unique parameters; each core block runs r times per token\n\n"
              << "weight memory (" << weights << "): " << s.weight_bytes << " bytes ("
              << mebibytes(s.weight_bytes) << ")\n"
              << "KV cache per token at r = " << r << " (mean_recurrence): " << kv_per_token
              << " bytes (" << mebibytes(kv_per_token) << ", "
              << rd::kv_format_name(model.default_kv_format) << ")\n";
    return 0;
  });
}

}  // namespace rdepth
