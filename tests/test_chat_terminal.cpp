// rdepth chat in a real terminal: tmux runs it in a detached pane; the test types with send-keys
// and reads the screen with capture-pane: the prompt, the streamed reply (the library's text), the
// statistics line, /reset and /quit. tmux is required (scripts/setup_debian.sh installs it): when
// it is missing the test fails with a message instead of skipping.
#include <catch2/catch.hpp>

#ifdef RECURRENT_DEPTH_RDEPTH

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "cli_support.hpp"
#include "test_chat_model.hpp"

using namespace recurrent_depth;
using namespace recurrent_depth::testing::cli;
using namespace recurrent_depth::testing::chat;

namespace {

// A private tmux server (its own socket, no configuration file), killed at the end.
class Tmux {
 public:
  Tmux() : socket_("rdepth_chat_test_" + std::to_string(::getpid())) {}
  ~Tmux() { run("kill-server"); }

  // Runs a tmux command; its stdout goes to `output`.
  int run(const std::string& arguments, const std::string& output = "/dev/null") const {
    const std::string command =
        "tmux -f /dev/null -L " + socket_ + " " + arguments + " >" + quote(output) + " 2>/dev/null";
    return std::system(command.c_str());
  }
  void start(const std::string& command) const {
    REQUIRE(run("new-session -d -s chat -x 160 -y 48 " + quote(command)) == 0);
  }
  void type(const std::string& keys) const {
    REQUIRE(run("send-keys -t chat -l " + quote(keys)) == 0);
    REQUIRE(run("send-keys -t chat Enter") == 0);
  }
  std::string screen() const {
    const fs::path file = scratch("tmux_screen");
    run("capture-pane -p -J -S - -t chat", file.string());
    return read_text(file);
  }
  // The screen once `needle` is on it (`count` times); fails after `seconds`.
  std::string wait_for(const std::string& needle, std::size_t count = 1,
                       double seconds = 60) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    std::string text;
    while (std::chrono::steady_clock::now() < deadline) {
      text = screen();
      std::size_t found = 0;
      for (std::size_t at = text.find(needle); at != std::string::npos;
           at = text.find(needle, at + 1))
        ++found;
      if (found >= count) return text;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL("timed out waiting for '" << needle << "' on the terminal; it shows:\n" << text);
    return text;
  }

 private:
  std::string socket_;
};

std::string without_whitespace(const std::string& text) {
  std::string s;
  for (char c : text)
    if (c != ' ' && c != '\n' && c != '\t' && c != '\r') s += c;
  return s;
}

}  // namespace

TEST_CASE("rdepth chat in a terminal (tmux): prompt, streamed reply, /reset, /quit",
          "[cli][chat][terminal]") {
  if (std::system("command -v tmux >/dev/null 2>&1") != 0) {
    FAIL(
        "tmux is not installed: this test drives rdepth chat in a real terminal through tmux "
        "(apt-get install tmux; scripts/setup_debian.sh installs it)");
  }
  ChatSession chat(chat_model(), huginn_tokenizer(), default_chat_options());
  const ChatTurn turn = chat.send("Hello there");
  REQUIRE(!without_whitespace(turn.text).empty());

  const Tmux tmux;
  tmux.start(std::string(RECURRENT_DEPTH_RDEPTH) + " chat --threads 1 --model " +
             quote(chat_model_dir().string()) + "; echo RDEPTH_EXIT=$?; sleep 600");
  tmux.wait_for("/quit");  // the banner names the commands
  tmux.wait_for("> ");
  tmux.type("Hello there");
  const std::string reply = tmux.wait_for("KV cache");
  const std::string shown = without_whitespace(reply);
  INFO("terminal:\n" << reply);
  CHECK(shown.find(without_whitespace("> Hello there" + turn.text)) != std::string::npos);
  CHECK(reply.find("prefilled " + std::to_string(turn.prompt.size()) + " tokens") !=
        std::string::npos);
  CHECK(reply.find("KV cache " + std::to_string(turn.cached_after) + " tokens") !=
        std::string::npos);
  tmux.wait_for("> ", 2);  // the prompt is back

  tmux.type("/reset");
  tmux.wait_for("(conversation reset)");
  tmux.type("/quit");
  const std::string end = tmux.wait_for("RDEPTH_EXIT=");
  CHECK(end.find("RDEPTH_EXIT=0") != std::string::npos);
}

#endif  // RECURRENT_DEPTH_RDEPTH
