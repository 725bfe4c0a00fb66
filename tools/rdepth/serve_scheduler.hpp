// rdepth serve, the continuous batching scheduler. HTTP handlers submit Jobs into a bounded queue;
// one scheduler thread owns the model's forwards. At each token boundary it lets queued jobs join
// the running batch (up to --max-batch), drops the ones whose client went away or whose time is
// up, and runs one forward_batch for all the others: each job has its own Session, r, exit rule,
// cache rule and sampler (a GenerationSteps), the weights are read once per step for all of them,
// and each gets the tokens it would get alone. A job leaves the batch as soon as it is done, its
// Session kept for a later job: the KV cache's memory is allocated and faulted in once, not per
// request (at most as many sessions live as the batch once held).
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "serve_request.hpp"
#include "serve_responses.hpp"

namespace rdepth::serve {

using Clock = std::chrono::steady_clock;

// How a job ended: a finish reason ("stop", "length") with its usage and the text held back
// until the end (the last bytes of a character, or what could have started a stop text), or an
// error.
struct Outcome {
  std::string finish_reason;
  Usage usage;
  std::optional<ApiError> error;
  std::string tail;
};

inline Outcome failure(ApiError error) {
  Outcome outcome;
  outcome.error = std::move(error);
  return outcome;
}

// A request between its HTTP handler (which waits for text) and the scheduler (which produces
// it). The handler reads `request` and `deadline` only; the rest is guarded by the mutex.
class Job {
 public:
  Job(ServeRequest request, Clock::time_point deadline)
      : request_(std::move(request)), deadline_(deadline) {}

  const ServeRequest& request() const { return request_; }
  Clock::time_point deadline() const { return deadline_; }

  // What the handler has not seen yet: one text piece per produced token, and the outcome once
  // the job ended.
  struct Update {
    std::vector<std::string> pieces;
    std::optional<Outcome> outcome;
  };

  // Waits up to `patience` for new pieces or the end, and takes what there is.
  Update wait(Clock::duration patience) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, patience, [&] { return !pieces_.empty() || outcome_; });
    Update update{std::move(pieces_), outcome_};
    pieces_.clear();
    return update;
  }

  // The client went away: the scheduler drops the job at the next token boundary.
  void cancel() {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
  }
  bool cancelled() const {
    std::lock_guard lock(mutex_);
    return cancelled_;
  }

  void add_piece(std::string piece) {
    std::lock_guard lock(mutex_);
    pieces_.push_back(std::move(piece));
    changed_.notify_all();
  }
  void end(Outcome outcome) {
    std::lock_guard lock(mutex_);
    outcome_ = std::move(outcome);
    changed_.notify_all();
  }

 private:
  const ServeRequest request_;
  const Clock::time_point deadline_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> pieces_;
  std::optional<Outcome> outcome_;
  bool cancelled_ = false;
};

inline ApiError timeout_error() {
  return api_error(504, "timeout_error", "the request did not finish within the server's --timeout",
                   "request_timeout");
}

// A job's produced ids as the text its client sees: stop ids leave no text; "stop" texts end it,
// and text that could be the start of one is held back until it cannot.
class TextOutput {
 public:
  TextOutput(const rd::tokenizer::Tokenizer& tokenizer, const ServeRequest& request)
      : stream_(tokenizer, request.endpoint == Endpoint::chat),
        stop_ids_(request.generation.stop_ids),
        stop_texts_(request.stop_texts) {}

  // The text that `id` adds for the client.
  std::string push(std::int32_t id) {
    if (stopped_ || std::find(stop_ids_.begin(), stop_ids_.end(), id) != stop_ids_.end()) return {};
    held_ += stream_.push(id);
    return release(false);
  }
  // The text held back at the end of the generation.
  std::string finish() {
    if (!stopped_) held_ += stream_.finish();
    return release(true);
  }
  bool stopped() const { return stopped_; }

 private:
  std::string release(bool all) {
    std::size_t first = std::string::npos;
    for (const std::string& stop : stop_texts_) first = std::min(first, held_.find(stop));
    if (first != std::string::npos) {
      stopped_ = true;
      std::string text = held_.substr(0, first);
      held_.clear();
      return text;
    }
    std::size_t keep = 0;  // the longest end of held_ that starts a stop text
    if (!all)
      for (const std::string& stop : stop_texts_)
        for (std::size_t n = std::min(stop.size() - 1, held_.size()); n > keep; --n)
          if (held_.compare(held_.size() - n, n, stop, 0, n) == 0) {
            keep = n;
            break;
          }
    std::string text = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return text;
  }

  rd::TextStream stream_;
  std::vector<std::int32_t> stop_ids_;
  std::vector<std::string> stop_texts_;
  std::string held_;
  bool stopped_ = false;
};

struct SchedulerStatus {
  std::size_t running = 0, queued = 0, largest_batch = 0, served = 0;
  std::size_t reused_sessions = 0;  // jobs that ran in a finished job's session
  bool closed = false;
};

enum class Admission { queued, queue_full, closed };

template <class Model>
class Scheduler {
 public:
  Scheduler(const Model& model, const rd::tokenizer::Tokenizer& tokenizer, std::size_t max_batch,
            std::size_t max_queue)
      : model_(model), tokenizer_(tokenizer), max_batch_(max_batch), max_queue_(max_queue) {}

  Admission submit(std::shared_ptr<Job> job) {
    std::lock_guard lock(mutex_);
    if (closed_) return Admission::closed;
    const std::size_t free_places = max_batch_ - std::min(max_batch_, running_count_);
    if (queue_.size() >= max_queue_ + free_places) return Admission::queue_full;
    queue_.push_back(std::move(job));
    wake_.notify_all();
    return Admission::queued;
  }

  // No new jobs from now on; run() returns once the running and queued ones are done.
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    wake_.notify_all();
  }

  SchedulerStatus status() const {
    std::lock_guard lock(mutex_);
    return {running_count_, queue_.size(), largest_batch_, served_, reused_sessions_, closed_};
  }

  // The scheduler thread: admit, drop, step, until closed and empty.
  void run() {
    while (true) {
      std::vector<std::shared_ptr<Job>> joining;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return !queue_.empty() || !running_.empty() || closed_; });
        if (closed_ && queue_.empty() && running_.empty()) return;
        drop_ended_queued();
        while (running_.size() + joining.size() < max_batch_ && !queue_.empty()) {
          joining.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        running_count_ += joining.size();
      }
      for (std::shared_ptr<Job>& job : joining) admit(std::move(job));
      drop_ended_running();
      if (!running_.empty()) step();
    }
  }

 private:
  // A job in the batch: its session and generation, and the text its client sees.
  struct Running {
    std::shared_ptr<Job> job;
    typename Model::SessionType session;
    TextOutput text;
    std::unique_ptr<rd::GenerationSteps<Model>> steps;
  };

  void admit(std::shared_ptr<Job> job) {
    const ServeRequest& request = job->request();
    auto running = std::make_unique<Running>(
        Running{job, session_for(request), TextOutput(tokenizer_, request), nullptr});
    Running& r = *running;
    try {
      r.steps = std::make_unique<rd::GenerationSteps<Model>>(
          model_, r.session, request.prompt, request.generation,
          [&r](const rd::GeneratedToken& token) { r.job->add_piece(r.text.push(token.id)); });
    } catch (const rd::Error& e) {
      recycle(r);
      return leave(*job, failure(invalid_request(e.what())));
    }
    if (r.steps->done()) return complete(r);
    running_.push_back(std::move(running));
  }

  // A new session for the request, or an idle one restarted as its equal.
  typename Model::SessionType session_for(const ServeRequest& request) {
    if (idle_sessions_.empty()) return model_.new_session(request.generation.seed, request.cache);
    typename Model::SessionType session = std::move(idle_sessions_.back());
    idle_sessions_.pop_back();
    model_.restart_session(session, request.generation.seed, request.cache);
    std::lock_guard lock(mutex_);
    ++reused_sessions_;
    return session;
  }

  // A job is done with its session (its generation, which refers to it, goes first).
  void recycle(Running& r) {
    r.steps.reset();
    if (idle_sessions_.size() < max_batch_) idle_sessions_.push_back(std::move(r.session));
  }

  // Queued jobs whose client left or whose time is up (under the lock).
  void drop_ended_queued() {
    const auto now = Clock::now();
    std::erase_if(queue_, [&](const std::shared_ptr<Job>& job) {
      if (job->deadline() <= now) job->end(failure(timeout_error()));
      return job->cancelled() || job->deadline() <= now;
    });
  }

  void drop_ended_running() {
    const auto now = Clock::now();
    std::erase_if(running_, [&](const std::unique_ptr<Running>& r) {
      if (r->job->cancelled())
        leave(*r->job, std::nullopt);
      else if (r->job->deadline() <= now)
        leave(*r->job, failure(timeout_error()));
      else
        return false;
      recycle(*r);
      return true;
    });
  }

  // A running job ends (without an outcome: its client left); its place is free before its
  // client hears of it.
  void leave(Job& job, std::optional<Outcome> outcome) {
    {
      std::lock_guard lock(mutex_);
      --running_count_;
      if (outcome && !outcome->error) ++served_;
    }
    if (outcome) job.end(std::move(*outcome));
  }

  // One forward for the whole batch; the jobs that are done leave it.
  void step() {
    std::vector<typename Model::BatchItemType> items;
    for (const auto& r : running_) items.push_back(r->steps->next_forward());
    {
      std::lock_guard lock(mutex_);
      largest_batch_ = std::max(largest_batch_, items.size());
    }
    std::vector<rd::ForwardResult> results;
    try {
      results = model_.forward_batch(items);
    } catch (const std::exception& e) {  // not the clients' fault: every job of the step ends
      for (const auto& r : running_)
        leave(*r->job, failure(api_error(500, "server_error", cat("forward failed: ", e.what()))));
      running_.clear();
      return;
    }
    for (std::size_t i = 0; i < running_.size(); ++i) {
      Running& r = *running_[i];
      r.steps->take(results[i]);
      if (r.steps->done() || r.text.stopped()) complete(r);
    }
    std::erase_if(running_, [](const std::unique_ptr<Running>& r) { return !r->steps; });
  }

  // Ends a job with its finish reason and usage; its slot is free.
  void complete(Running& r) {
    const rd::Generation generation = r.steps->finish();
    recycle(r);
    const auto& stops = r.job->request().generation.stop_ids;
    const bool stop_id =
        !generation.tokens.empty() &&
        std::find(stops.begin(), stops.end(), generation.tokens.back().id) != stops.end();
    const Usage usage{generation.stats.prompt_tokens, generation.tokens.size(),
                      generation.stats.core_iterations};
    leave(*r.job, Outcome{stop_id || r.text.stopped() ? "stop" : "length", usage, std::nullopt,
                          r.text.finish()});
  }

  const Model& model_;
  const rd::tokenizer::Tokenizer& tokenizer_;
  const std::size_t max_batch_, max_queue_;
  std::vector<std::unique_ptr<Running>> running_;           // the scheduler thread's own
  std::vector<typename Model::SessionType> idle_sessions_;  // finished jobs' (at most max_batch)

  mutable std::mutex mutex_;  // guards what follows
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::size_t running_count_ = 0, largest_batch_ = 0, served_ = 0, reused_sessions_ = 0;
  bool closed_ = false;
};

}  // namespace rdepth::serve
