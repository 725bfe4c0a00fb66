// One model, many threads: a loaded model is const and shared; each thread has its own Session.
// N threads (2, 4, 8) generate at once with different r, exit criteria, cache rules and sampling,
// and each thread's tokens must equal what the same request gives when run alone. (The library's
// scratch buffers are thread_local, and each calling thread gets its own OpenMP team.)
#include <catch2/catch.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "test_models.hpp"

using namespace recurrent_depth;
using namespace recurrent_depth::testing;

namespace {

struct Request {
  GenerationOptions options;
  std::string cache;
  std::uint64_t session_seed = 0;
};

// Request i of a mix: r from 1 to 8, early exit on every third, a compressed or windowed cache on
// some, sampling with its own seed on every fourth.
Request request(int i) {
  Request r;
  r.options.max_new_tokens = 6;
  r.options.steps = 1 + (i * 3) % 8;
  if (i % 3 == 1) r.options.exit = ExitOptions{ExitCriterion::kl, 1e-3, 1, 1};
  static const char* caches[] = {"full", "latest-m4", "full", "compress-s4"};
  r.cache = caches[i % 4];
  if (i % 4 == 3) {
    r.options.sampling.temperature = 0.8f;
    r.options.seed = 100 + std::uint64_t(i);
  }
  r.options.init = i % 2 ? StateInit::random : StateInit::zero;
  r.session_seed = 7 + std::uint64_t(i);
  return r;
}

template <class Model>
std::vector<std::int32_t> run(const Model& model, std::span<const std::int32_t> prompt,
                              const Request& r) {
  Session session = model.new_session(r.session_seed, CacheRule::parse(r.cache));
  return generate(model, session, prompt, r.options).ids();
}

}  // namespace

TEST_CASE("one model shared by many threads gives each thread its own result", "[threads]") {
  const auto& model = huginn_f32();
  const Golden golden("tiny_huginn");
  const std::span<const std::int32_t> prompt = std::span(golden.input_ids).first(5);
  for (const int threads : {2, 4, 8}) {
    std::vector<std::vector<std::int32_t>> alone(threads), together(threads);
    for (int i = 0; i < threads; ++i) alone[i] = run(model, prompt, request(i));
    std::vector<std::thread> team;
    for (int i = 0; i < threads; ++i)
      team.emplace_back([&, i] { together[i] = run(model, prompt, request(i)); });
    for (std::thread& t : team) t.join();
    for (int i = 0; i < threads; ++i) {
      INFO(threads << " threads, request " << i << ": r = " << *request(i).options.steps
                   << ", cache " << request(i).cache);
      REQUIRE(alone[i].size() == 6);
      CHECK(together[i] == alone[i]);
    }
  }
}
