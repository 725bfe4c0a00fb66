// rdepth eval: exact-match accuracy of greedy answers per number of core iterations r, on task
// files of JSON lines {"prompt": TEXT, "answer": TEXT} (other keys ignored), tokenized by the
// model directory's tokenizer.json. Prints a table (tasks x r), or with --json one object whose
// "results" hold one object per task file and r (steps, accuracy, mean_iterations, ...);
// --plot FILE.svg draws accuracy against r.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>

#include <nlohmann/json.hpp>

#include "common.hpp"
#include "generation_flags.hpp"
#include "recurrent_depth/generate/exact_match.hpp"
#include "svg_plot.hpp"
#include "test_time.hpp"

namespace rdepth {
namespace {

Arguments eval_arguments() {
  return Arguments(
      "eval",
      "--model DIR --tasks FILE.jsonl[,FILE2.jsonl] [--steps 1,2,4,8,16,32,64] [--limit N]\n"
      "                   [--exit CRITERION --exit-threshold X] [--cache RULE] [--weights FMT]\n"
      "                   [--threads N] [--json] [--plot FILE.svg] [--show N]",
      "Answers every problem of the task files greedily from a zero initial state, at each r of\n"
      "--steps (with --exit: the prompt but its last token at r, as generate prefills it, then\n"
      "early exit for each token that decides an answer token, at most r iterations), and\n"
      "reports the share answered exactly. A task file holds one JSON object per line with the\n"
      "strings \"prompt\" (encoded with BOS, as --prompt is) and \"answer\" (the exact\n"
      "continuation expected).\n"
      "mean_iterations is the core iterations per answer token (r without --exit);\n"
      "mean_iterations_all_tokens counts the prompts' tokens too.",
      concat(concat({model_flag(),
                     {"--tasks", "FILES", "comma-separated JSONL task files (required)"},
                     {"--steps", "LIST", "core iterations to evaluate (default 1,2,4,8,16,32,64)"},
                     {"--limit", "N", "evaluate the first N problems of each file only"},
                     {"--show", "N", "print the first N problems of each file with the answers"},
                     cache_flag(),
                     kv_format_flag()},
                    exit_flags()),
             {weights_flag(),
              backend_flag(),
              threads_flag(),
              {"--json", "", "print one JSON object on stdout instead of the table"},
              {"--plot", "FILE.svg", "also draw accuracy against r as an SVG line chart"}}));
}

struct TaskFile {
  std::string path;
  std::vector<rd::ExactMatchProblem> problems;
  std::vector<std::string> prompts, answers;  // the text, for --show
};

TaskFile read_tasks(const std::string& path, const rd::tokenizer::Tokenizer& tokenizer,
                    std::size_t limit, std::size_t context) {
  std::ifstream in(path);
  if (!in) fail("--tasks ", path, ": cannot open the file");
  TaskFile file{path, {}, {}, {}};
  std::string line;
  for (std::size_t number = 1; std::getline(in, line) && file.problems.size() < limit; ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(number);
    nlohmann::json item;
    try {
      item = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {  // also out_of_range (1e400)
      fail(where, ": malformed JSON (", e.what(), ")");
    }
    for (const char* key : {"prompt", "answer"})
      if (!item.is_object() || !item.contains(key) || !item[key].is_string())
        fail(where, ": expected an object with the string \"", key, "\"");
    rd::ExactMatchProblem problem{tokenizer.encode(item["prompt"].get<std::string>(), true),
                                  tokenizer.encode(item["answer"].get<std::string>(), false)};
    if (problem.answer.empty()) fail(where, ": the answer is empty");
    if (problem.prompt.size() + problem.answer.size() - 1 > context) {
      fail(where, ": prompt and answer take ", problem.prompt.size() + problem.answer.size() - 1,
           " positions, more than the model's context of ", context, " (block_size)");
    }
    file.problems.push_back(std::move(problem));
    file.prompts.push_back(item["prompt"].get<std::string>());
    file.answers.push_back(item["answer"].get<std::string>());
  }
  if (file.problems.empty()) fail("--tasks ", path, ": no problems in the file");
  return file;
}

// The first `count` problems of `file`: prompt, expected answer, and the answer at each r.
void show_problems(const TaskFile& file, const std::vector<rd::ExactMatchResult>& results,
                   const rd::tokenizer::Tokenizer& tokenizer, std::size_t count) {
  std::size_t width = 8;
  for (std::size_t i = 0; i < std::min(count, file.prompts.size()); ++i)
    width = std::max(width, file.prompts[i].size());
  std::printf("%s\n%-*s  %-8s", file.path.c_str(), static_cast<int>(width), "prompt", "expected");
  for (const rd::ExactMatchResult& r : results) std::printf("  r=%-7d", r.steps);
  std::printf("\n");
  for (std::size_t i = 0; i < std::min(count, file.prompts.size()); ++i) {
    std::printf("%-*s  %-8s", static_cast<int>(width), file.prompts[i].c_str(),
                file.answers[i].c_str());
    for (const rd::ExactMatchResult& r : results) {
      std::string text;
      for (std::int32_t id : r.answers[i]) text += token_text(tokenizer, id);
      std::printf("  %-6s %s", nlohmann::json(text).dump().c_str(),
                  r.right[i] ? "\u2713" : "\u2717");
    }
    std::printf("\n");
  }
  std::printf("\n");
}

}  // namespace

int command_eval(const std::vector<std::string>& words) {
  Arguments args = eval_arguments();
  if (!args.parse(words)) {
    std::cout << args.help();
    return 0;
  }
  const std::filesystem::path dir = model_directory(args);
  const rd::WeightFormat format = weight_format(args);
  args.required("--tasks");
  const std::vector<std::string> task_paths = *args.string_list("--tasks", "file names");
  std::vector<int> depths = {1, 2, 4, 8, 16, 32, 64};
  if (const auto list = args.integer_list("--steps", 1, std::numeric_limits<int>::max()))
    depths.assign(list->begin(), list->end());
  const std::size_t limit = args.integer("--limit", 1, std::numeric_limits<std::int64_t>::max())
                                .value_or(std::numeric_limits<std::int64_t>::max());
  rd::ExactMatchOptions options;
  options.exit = exit_options(args);
  options.cache = cache_rule(args);
  const bool json = args.has("--json");
  const std::size_t show = args.integer("--show", 0, 1 << 20).value_or(0);
  const auto plot = args.get("--plot");
  if (plot && !plot->ends_with(".svg"))
    fail("--plot ", *plot, ": expected a file name ending in .svg");
  apply_threads(args);

  const rd::ModelConfig config = rd::load_model_config(dir / "config.json");
  const rd::tokenizer::Tokenizer tokenizer =
      load_tokenizer(dir, config, "rdepth eval encodes the prompts and answers with it");
  std::vector<TaskFile> files;
  for (const std::string& path : task_paths) {
    files.push_back(
        read_tasks(path, tokenizer, limit, static_cast<std::size_t>(config.block_size)));
  }

  return with_model(dir, format, backend(args), [&](const auto& model) {
    std::vector<std::vector<rd::ExactMatchResult>> results(files.size());
    for (std::size_t f = 0; f < files.size(); ++f)
      for (int r : depths) {
        options.steps = r;
        results[f].push_back(rd::evaluate_exact_match(model, files[f].problems, options));
      }

    if (plot) {
      std::vector<PlotSeries> series;
      for (std::size_t f = 0; f < files.size(); ++f) {
        PlotSeries s{std::filesystem::path(files[f].path).stem().string(), {}};
        for (const rd::ExactMatchResult& r : results[f])
          s.points.emplace_back(options.exit ? r.mean_iterations : r.steps, r.accuracy);
        series.push_back(std::move(s));
      }
      std::ofstream out(*plot);
      if (!out) fail("--plot ", *plot, ": cannot write the file");
      out << svg_line_chart("exact-match accuracy, " + dir.filename().string(),
                            options.exit ? "mean core iterations per answer token (log scale)"
                                         : "core iterations r (log scale)",
                            "accuracy", series);
    }
    if (json) {
      nlohmann::ordered_json out;
      out["model"] = dir.string();
      out["weights"] = std::string(rd::weight_format_name(format));
      out["cache"] = options.cache.name();
      if (options.exit) {
        out["exit"] = std::string(rd::exit_criterion_name(options.exit->criterion));
        out["exit_threshold"] = options.exit->threshold;
      }
      out["results"] = nlohmann::ordered_json::array();
      for (std::size_t f = 0; f < files.size(); ++f)
        for (const rd::ExactMatchResult& r : results[f])
          out["results"].push_back({{"tasks", files[f].path},
                                    {"steps", r.steps},
                                    {"problems", r.problems},
                                    {"correct", r.correct},
                                    {"accuracy", r.accuracy},
                                    {"mean_iterations", r.mean_iterations},
                                    {"mean_iterations_all_tokens", r.mean_iterations_all_tokens}});
      std::cout << out.dump() << std::endl;
      return 0;
    }
    for (std::size_t f = 0; f < files.size() && show > 0; ++f)
      show_problems(files[f], results[f], tokenizer, show);
    std::printf("exact-match accuracy (%s weights, cache %s%s)\n",
                std::string(rd::weight_format_name(format)).c_str(), options.cache.name().c_str(),
                options.exit ? ", early exit: accuracy / mean iterations per answer token" : "");
    std::printf("%6s", "r");
    for (const TaskFile& file : files)
      std::printf("  %22s", std::filesystem::path(file.path).stem().string().c_str());
    std::printf("\n");
    for (std::size_t d = 0; d < depths.size(); ++d) {
      std::printf("%6d", depths[d]);
      for (std::size_t f = 0; f < files.size(); ++f) {
        const rd::ExactMatchResult& r = results[f][d];
        if (options.exit)
          std::printf("  %14.1f%% / %5.2f", 100.0 * r.accuracy, r.mean_iterations);
        else
          std::printf("  %21.1f%%", 100.0 * r.accuracy);
      }
      std::printf("\n");
    }
    for (const TaskFile& file : files)
      std::printf("%s: %zu problems\n", file.path.c_str(), file.problems.size());
    return 0;
  });
}

}  // namespace rdepth
