// rdepth serve: an OpenAI-compatible HTTP server (POST /v1/completions, /v1/chat/completions,
// whole or streamed as server-sent events; GET /v1/models, /health) with continuous batching
// (serve_scheduler.hpp), per-request recurrence settings (serve_request.hpp) and OpenAI bodies
// (serve_responses.hpp).
//
// HTTP comes from cpp-httplib (Debian's libcpp-httplib-dev, found with pkg-config): a small
// blocking server with a thread per connection, chunked responses fed by a callback (the
// server-sent events) and a failed write when a client has gone. One thread per connection is
// what this server needs anyway: the handlers only wait for text while the one scheduler thread
// runs the model, and connections are bounded by --max-batch + --max-queue. Boost.Beast (also in
// Debian) would give asynchronous I/O that such a server does not use, for several times the code.
//
// Load and fault: a full queue answers 429; a client that disconnects mid-stream is dropped from
// the batch at the next token; bad requests get 400 with OpenAI's error body; a request that runs
// past --timeout ends with 504; SIGTERM (or SIGINT) stops admitting requests (503), lets the
// running and queued ones finish, then exits with 0.
#include <httplib.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <thread>

#include "common.hpp"
#include "generation_flags.hpp"
#include "serve_request.hpp"
#include "serve_responses.hpp"
#include "serve_scheduler.hpp"

namespace rdepth {
namespace {

using namespace serve;

constexpr std::int64_t kMostInt = std::numeric_limits<int>::max();
constexpr auto kKeepAlive = std::chrono::seconds(1);  // a comment line after a silent second

Arguments serve_arguments() {
  return Arguments(
      "serve",
      "(--model DIR | --shape NAME --tokenizer FILE) [--host 127.0.0.1] [--port 8080] [--max-batch "
      "N] [--max-queue Q]\n"
      "                    [--timeout S] [--max-steps R] [--weights f32|bf16|int8|q4] "
      "[--threads N]",
      "Serves the model in DIR (config.json, weights, tokenizer.json, optionally\n"
      "generation_config.json) over OpenAI's HTTP API:\n"
      "  POST /v1/completions, POST /v1/chat/completions (the model's chat template), with\n"
      "       \"stream\": true as server-sent events (one per token, then data: [DONE])\n"
      "  GET  /v1/models, GET /health\n"
      "Request fields: prompt or messages, max_tokens, temperature, top_p, stop, seed, stream,\n"
      "and the recurrence settings, named as rdepth generate's flags: steps, init, exit,\n"
      "exit_threshold, exit_min_steps, exit_every, cache, continuous, draft_steps, lookahead,\n"
      "accept_ratio, top_k, min_p, repetition_penalty. usage adds core_iterations.\n"
      "\n"
      "Requests join and leave one running batch at token boundaries (continuous batching):\n"
      "each step runs every running request's next forward in one pass over the weights, and\n"
      "each request gets the tokens it would get alone. Past --max-batch running and --max-queue\n"
      "waiting requests, the answer is 429. SIGTERM finishes the accepted requests, then exits.\n"
      "With --port 0 a free port is chosen; the first line on stdout names the address.\n"
      "--shape serves seeded random weights of a named size (for load tests), with Huginn's\n"
      "generation defaults.",
      {model_flag(),
       shape_flag(),
       {"--tokenizer", "FILE", "tokenizer.json (default: DIR/tokenizer.json; needed with --shape)"},
       {"--host", "HOST", "address to listen on (default 127.0.0.1)"},
       {"--port", "PORT", "TCP port, 0 for any free one (default 8080)"},
       {"--max-batch", "N", "most requests generating at once, in one batch (default 16)"},
       {"--max-queue", "Q", "most requests waiting for a place in the batch (default 64)"},
       {"--timeout", "S", "seconds a request may take, queue included (default 600)"},
       {"--max-steps", "R", "most core iterations a request may ask for (default 256)"},
       weights_flag(),
       backend_flag(),
       threads_flag()});
}

// The model's name in /v1/models and in responses: its directory's name.
std::string model_name(const std::filesystem::path& dir) {
  const std::filesystem::path normal = dir.lexically_normal();
  const std::string name =
      normal.has_filename() ? normal.filename().string() : normal.parent_path().filename().string();
  return name.empty() ? "model" : name;
}

void send_error(httplib::Response& res, const ApiError& error) {
  res.status = error.status;
  res.set_content(error.body(), "application/json");
}

struct ServerSettings {
  std::string host;
  int port;
  std::size_t max_batch, max_queue;
  std::chrono::seconds timeout;
  std::string model;
};

// The HTTP side: routes, handlers, and the threads of the scheduler and of shutdown.
template <class Model>
class Server {
 public:
  Server(const Model& model, const ServeContext& context, ServerSettings settings,
         const Arguments& args)
      : context_(context),
        settings_(std::move(settings)),
        scheduler_(model, context.tokenizer, settings_.max_batch, settings_.max_queue),
        args_(args) {}

  int run(const sigset_t& stop_signals) {
    routes();
    const int port = settings_.port == 0 ? http_.bind_to_any_port(settings_.host)
                     : http_.bind_to_port(settings_.host, settings_.port) ? settings_.port
                                                                          : -1;
    if (port < 0) fail("cannot listen on ", settings_.host, ":", settings_.port);
    std::thread scheduler([&] {
      apply_threads(args_);  // OpenMP's thread count is per calling thread
      scheduler_.run();
    });
    std::atomic<bool> signalled = false, listen_returned = false;
    std::thread shutdown([&] {
      int signal = 0;
      sigwait(&stop_signals, &signal);
      signalled = true;
      const SchedulerStatus s = scheduler_.status();
      std::fprintf(stderr,
                   "rdepth serve: %s: finishing %zu running and %zu queued requests, refusing "
                   "new ones\n",
                   signal == SIGINT ? "SIGINT" : "SIGTERM", s.running, s.queued);
      scheduler_.close();
      scheduler.join();
      // The handlers write their last events before the server stops (it ends a stream early).
      // A stop before the server runs would be lost: wait for it to run (or to have failed).
      while (in_flight_ > 0 || (!http_.is_running() && !listen_returned))
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      http_.stop();
    });
    std::printf("rdepth serve: listening on http://%s:%d (model %s, max batch %zu, queue %zu)\n",
                settings_.host.c_str(), port, settings_.model.c_str(), settings_.max_batch,
                settings_.max_queue);
    std::fflush(stdout);
    const bool listened = http_.listen_after_bind();
    listen_returned = true;
    const bool failed = !signalled;
    if (failed) ::kill(::getpid(), SIGTERM);  // the shutdown thread ends the scheduler
    shutdown.join();
    if (failed) fail("the HTTP server stopped unexpectedly", listened ? "" : " (listen failed)");
    std::fprintf(stderr, "rdepth serve: stopped after serving %zu requests\n",
                 scheduler_.status().served);
    return 0;
  }

 private:
  void routes() {
    // A thread per connection: enough for every running and queued request, and a few more for
    // /health and the refusals (at most 1024; further connections wait for a thread).
    const std::size_t connections =
        std::min<std::size_t>(settings_.max_batch + settings_.max_queue + 4, 1024);
    http_.new_task_queue = [connections] { return new httplib::ThreadPool(connections); };
    // Idle connections hold up a shutdown this long; clients stop reusing them a second earlier.
    http_.set_keep_alive_timeout(2);
    http_.set_payload_max_length(8 << 20);
    http_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      const SchedulerStatus s = scheduler_.status();
      res.status = s.closed ? 503 : 200;
      res.set_content(Json{{"status", s.closed ? "shutting_down" : "ok"},
                           {"model", settings_.model},
                           {"running", s.running},
                           {"queued", s.queued},
                           {"largest_batch", s.largest_batch},
                           {"served", s.served},
                           {"reused_sessions", s.reused_sessions},
                           {"max_batch", settings_.max_batch},
                           {"max_queue", settings_.max_queue}}
                          .dump(),
                      "application/json");
    });
    http_.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(models_body(settings_.model, started_), "application/json");
    });
    http_.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      generate(req, res, Endpoint::completions);
    });
    http_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      generate(req, res, Endpoint::chat);
    });
    http_.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req,
                                                                    httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      const bool missing = res.status == 404;
      send_error(res,
                 api_error(res.status, missing ? "not_found_error" : "invalid_request_error",
                           missing ? cat("no route for ", req.method, " ", req.path)
                                   : cat("HTTP ", res.status, " for ", req.method, " ", req.path)));
      return httplib::Server::HandlerResponse::Handled;
    }));
    http_.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
          std::string what = "unexpected error";
          try {
            std::rethrow_exception(error);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          send_error(res, api_error(500, "server_error", what));
        });
  }

  // Counts a generation request from its handler's start until its response is written (for a
  // stream: until httplib lets go of the event callback, which holds a copy).
  struct InFlight {
    explicit InFlight(std::atomic<int>& count) : count(count) { ++count; }
    ~InFlight() { --count; }
    std::atomic<int>& count;
  };

  void generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
    const auto in_flight = std::make_shared<InFlight>(in_flight_);
    std::shared_ptr<Job> job;
    try {
      job = std::make_shared<Job>(parse_request(req.body, endpoint, context_),
                                  Clock::now() + settings_.timeout);
    } catch (const ApiError& error) {
      return send_error(res, error);
    }
    switch (scheduler_.submit(job)) {
      case Admission::queue_full:
        return send_error(res, api_error(429, "rate_limit_exceeded",
                                         cat("the server is busy: ", settings_.max_batch,
                                             " requests running and ", settings_.max_queue,
                                             " waiting (--max-batch, --max-queue); retry later"),
                                         "queue_full"));
      case Admission::closed:
        return send_error(
            res, api_error(503, "server_error", "the server is shutting down", "shutting_down"));
      case Admission::queued:
        break;
    }
    const ResponseWriter writer(endpoint, ++requests_, settings_.model);
    if (job->request().stream) return stream(res, job, writer, in_flight);
    std::string text;
    while (true) {
      Job::Update update = job->wait(kKeepAlive);
      for (const std::string& piece : update.pieces) text += piece;
      if (!update.outcome) continue;
      const Outcome& outcome = *update.outcome;
      if (outcome.error) return send_error(res, *outcome.error);
      return res.set_content(
          writer.complete(text + outcome.tail, outcome.finish_reason, outcome.usage),
          "application/json");
    }
  }

  static void stream(httplib::Response& res, std::shared_ptr<Job> job, const ResponseWriter& writer,
                     std::shared_ptr<InFlight> in_flight) {
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider("text/event-stream", EventStream{job, writer, in_flight},
                                     [job](bool success) {
                                       if (!success) job->cancel();
                                     });
  }

  // The server-sent events of a streamed request, one per token, written as they come; a failed
  // write (the client left) cancels the job.
  struct EventStream {
    std::shared_ptr<Job> job;
    ResponseWriter writer;
    std::shared_ptr<InFlight> in_flight;
    bool started = false;

    // httplib's content provider: writes what there is, waiting up to kKeepAlive for it (a
    // comment line when nothing came); false ends the response.
    bool operator()(std::size_t, httplib::DataSink& sink) {
      try {
        return write(sink);
      } catch (const std::exception&) {  // on a worker thread nothing else would catch it
        job->cancel();
        return false;
      }
    }

    bool write(httplib::DataSink& sink) {
      const auto send = [&](const std::string& text) {
        if (text.empty() || sink.write(text.data(), text.size())) return true;
        job->cancel();
        return false;
      };
      if (!started) {
        started = true;
        return send(writer.role_event());
      }
      const Job::Update update = job->wait(kKeepAlive);
      if (update.pieces.empty() && !update.outcome) return send(": waiting\n\n");
      for (const std::string& piece : update.pieces)
        if (!send(writer.token_event(piece))) return false;
      if (!update.outcome) return true;
      const Outcome& outcome = *update.outcome;
      const bool sent =
          send(outcome.error ? ResponseWriter::error_event(*outcome.error)
                             : writer.final_events(outcome.tail, outcome.finish_reason,
                                                   outcome.usage, job->request().include_usage));
      if (sent) sink.done();
      return sent;
    }
  };

  const ServeContext& context_;
  const ServerSettings settings_;
  Scheduler<Model> scheduler_;
  const Arguments& args_;
  httplib::Server http_;
  std::atomic<std::uint64_t> requests_ = 0;
  std::atomic<int> in_flight_ = 0;
  const std::int64_t started_ = unix_seconds();
};

}  // namespace

int command_serve(const std::vector<std::string>& words) {
  Arguments args = serve_arguments();
  if (!args.parse(words)) {
    std::cout << args.help();
    return 0;
  }
  const rd::WeightFormat format = weight_format(args);
  ServerSettings settings;
  settings.host = args.get("--host").value_or("127.0.0.1");
  settings.port = int(args.integer("--port", 0, 65535).value_or(8080));
  settings.max_batch = std::size_t(args.integer("--max-batch", 1, 4096).value_or(16));
  settings.max_queue = std::size_t(args.integer("--max-queue", 0, 65536).value_or(64));
  settings.timeout = std::chrono::seconds(args.integer("--timeout", 1, kMostInt).value_or(600));
  const int max_steps = int(args.integer("--max-steps", 1, kMostInt).value_or(256));
  if (args.has("--shape") && !args.has("--tokenizer")) {
    fail("--shape needs --tokenizer FILE (e.g. tests/tokenizer/huginn_tokenizer.json)");
  }
  apply_threads(args);

  const ModelSource source = model_source(args, false);
  const std::optional<std::filesystem::path>& dir = source.directory;
  settings.model = dir ? model_name(*dir) : *args.get("--shape");
  const rd::tokenizer::Tokenizer tokenizer =
      args.has("--tokenizer") ? load_tokenizer_file(*args.get("--tokenizer"), source.config)
                              : load_tokenizer(*dir, source.config, "serve needs it");
  const rd::GenerationConfig defaults =
      dir ? rd::GenerationConfig::load(*dir / "generation_config.json")
          : rd::GenerationConfig::huginn_defaults();
  const ServeContext context{source.config, tokenizer, defaults, max_steps};

  // SIGTERM and SIGINT go to the shutdown thread alone (every thread inherits this mask); a
  // write to a closed connection is an error return, not a signal.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  return with_loaded_model(source.config, source.checkpoint, format, backend(args), source.label,
                           ::isatty(STDERR_FILENO), [&](const auto& model) {
                             Server<std::decay_t<decltype(model)>> server(model, context, settings,
                                                                          args);
                             return server.run(stop_signals);
                           });
}

}  // namespace rdepth
