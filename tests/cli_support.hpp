// Test support for the rdepth command-line tests: runs the tool as a process (capturing exit code,
// stdout and stderr), a scratch directory per test process, shell quoting, and reading the
// tool's safetensors output. Only quote() is there without RECURRENT_DEPTH_RDEPTH (the binary).
#pragma once

#include <string>

namespace recurrent_depth::testing::cli {

// `text` as one single-quoted shell word.
inline std::string quote(const std::string& text) {
  std::string q = "'";
  for (char c : text) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
}  // namespace recurrent_depth::testing::cli

#ifdef RECURRENT_DEPTH_RDEPTH

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "golden.hpp"
#include "test_files.hpp"

namespace recurrent_depth::testing::cli {

namespace fs = std::filesystem;

// A scratch directory for this test process, removed at exit.
struct ScratchDirectory {
  fs::path path = fs::temp_directory_path() / ("rdepth_cli_test_" + std::to_string(::getpid()));
  ScratchDirectory() { fs::create_directories(path); }
  ~ScratchDirectory() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

inline fs::path scratch(const std::string& name) {
  static ScratchDirectory directory;
  return directory.path / name;
}

using testing::read_text;

struct Run {
  int code;  // exit status; -1 if killed by a signal
  std::string out, err;
};

// Runs `program <arguments>` (arguments already quoted where needed), capturing both streams;
// `environment` ("NAME=value ...") is set for that run only.
inline Run run_program(const std::string& program, const std::string& arguments,
                       const std::string& environment = "") {
  static int counter = 0;
  const std::string id = std::to_string(counter++);
  const fs::path out = scratch("stdout" + id), err = scratch("stderr" + id);
  const std::string command = environment + " " + quote(program) + " " + arguments + " >" +
                              quote(out.string()) + " 2>" + quote(err.string());
  const int status = std::system(command.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text(out), read_text(err)};
}

// Runs `rdepth <arguments>`.
inline Run rdepth(const std::string& arguments, const std::string& environment = "") {
  return run_program(RECURRENT_DEPTH_RDEPTH, arguments, environment);
}

// A successful run; shows stderr otherwise.
#define REQUIRE_SUCCESS(run)     \
  do {                           \
    INFO("stderr: " << run.err); \
    REQUIRE(run.code == 0);      \
  } while (false)

inline std::string model_dir(const std::string& model) {
  return quote((data_dir() / model).string());
}

// A tensor of a safetensors file as [product of leading dims, last dim].
inline Matrix<float> matrix(const SafetensorsFile& file, const std::string& name) {
  return tensor_matrix(file, name);
}

// The first `count` ids, comma-separated (a --prompt-ids value).
inline std::string join(const std::vector<std::int32_t>& ids, std::size_t count) {
  std::string s;
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) s += ',';
    s += std::to_string(ids[i]);
  }
  return s;
}

}  // namespace recurrent_depth::testing::cli

#endif  // RECURRENT_DEPTH_RDEPTH
