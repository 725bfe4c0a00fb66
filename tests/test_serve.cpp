// rdepth serve against the official OpenAI client: runs tests/serve/client_test.mjs with node,
// which starts servers on 127.0.0.1 (the chat test model of test_chat_model.hpp and the shipped
// model) and drives them with the openai npm package installed at set-up
// (tests/npm_install.sh). Fails when the client is missing from a build that installs it, or in
// CI (CI set); skips otherwise.
#include <catch2/catch.hpp>

#ifdef RECURRENT_DEPTH_RDEPTH

#include <cstdlib>
#include <filesystem>
#include <string>

#include "cli_support.hpp"
#include "test_chat_model.hpp"

using namespace recurrent_depth::testing::cli;
using recurrent_depth::testing::chat::chat_model_dir;

TEST_CASE(
    "rdepth serve with the openai npm client: completions, chat, streaming, batching, "
    "errors, load limits, shutdown",
    "[cli][serve]") {
  const fs::path client = RECURRENT_DEPTH_SERVE_CLIENT_DIR;
  if (!fs::exists(client / "node_modules" / "openai")) {
    const std::string message =
        "the openai npm client is not installed in " + client.string() +
        " (node and npm at configure time install it: tests/npm_install.sh)";
#ifdef RECURRENT_DEPTH_SERVE_CLIENT_BUILT
    FAIL(message);
#endif
    if (std::getenv("CI") != nullptr) FAIL(message);
    WARN(message);
    return;
  }
  const fs::path script = fs::path(RECURRENT_DEPTH_SERVE_TEST_DIR) / "client_test.mjs";
  const Run run =
      run_program("node",
                  quote(script.string()) + " --rdepth " + quote(RECURRENT_DEPTH_RDEPTH) +
                      " --client " + quote(client.string()) + " --chat-model " +
                      quote(chat_model_dir().string()) + " --shipped-model " +
                      quote((fs::path(RECURRENT_DEPTH_MODELS_DIR) / "arithmetic").string()),
                  "OMP_WAIT_POLICY=PASSIVE");
  INFO(run.out << run.err);
  CHECK(run.out.find("not ok") == std::string::npos);
  REQUIRE(run.code == 0);
}

#endif  // RECURRENT_DEPTH_RDEPTH
