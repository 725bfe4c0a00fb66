// The model side of the HIP model tests (hip_model_runner.hpp): load_model<HipBackend, ...> and its
// forward passes, results copied to the host. A C++ file: HipBackend's kernels are in the
// recurrent_depth::hip library.
#include "hip_model_runner.hpp"

#include <optional>
#include <variant>

#include "recurrent_depth/backends/hip/hip_backend.hpp"
#include "recurrent_depth/model/load_model.hpp"

namespace recurrent_depth::hip_test {

struct HipModel::Loaded {
  std::variant<RecurrentDepthModel<HipBackend, F32>, RecurrentDepthModel<HipBackend, BF16>,
               RecurrentDepthModel<HipBackend, INT8>>
      model;
};

HipModel::HipModel(const std::filesystem::path& directory, std::string_view precision) {
  if (precision == "f32")
    loaded_.reset(new Loaded{load_model<HipBackend, F32>(directory)});
  else if (precision == "bf16")
    loaded_.reset(new Loaded{load_model<HipBackend, BF16>(directory)});
  else if (precision == "int8")
    loaded_.reset(new Loaded{load_model<HipBackend, INT8>(directory)});
  else
    fail("HipModel: precision ", precision, ", expected f32, bf16 or int8");
}

HipModel::~HipModel() = default;

ForwardResult HipModel::forward_from_states(std::span<const std::int32_t> ids,
                                            ConstMatrixView<float> states, int steps) const {
  return std::visit(
      [&](const auto& model) {
        auto session = model.new_session();
        ForwardOptions options;
        options.steps = steps;
        options.init = StateInit::given;
        options.initial_state = states;
        return model.forward(session, ids, options);
      },
      loaded_->model);
}

Matrix<float> HipModel::prefill_then_decode(std::span<const std::int32_t> ids, std::size_t prefill,
                                            std::string_view rule) const {
  return std::visit(
      [&](const auto& model) {
        auto session = model.new_session(0, CacheRule::parse(rule));
        return testing::prefill_then_decode(model, session, ids, prefill);
      },
      loaded_->model);
}

ForwardResult HipModel::prefill_then_chunk(std::span<const std::int32_t> ids,
                                           std::size_t prefill) const {
  return std::visit(
      [&](const auto& model) {
        auto session = model.new_session();
        model.forward(session, ids.first(prefill));
        return model.forward(session, ids.subspan(prefill));
      },
      loaded_->model);
}

std::vector<std::int32_t> HipModel::generated_tokens(std::span<const std::int32_t> prompt,
                                                     const GenerationOptions& options) const {
  return std::visit(
      [&](const auto& model) { return testing::generated_tokens(model, prompt, options); },
      loaded_->model);
}

testing::DecodeRun HipModel::decode_tokens(std::span<const std::int32_t> ids, std::string_view rule,
                                           int steps, std::string_view criterion,
                                           double threshold) const {
  std::optional<CriterionExit> exit;
  if (!criterion.empty()) exit.emplace(ExitOptions{parse_exit_criterion(criterion), threshold});
  return std::visit(
      [&](const auto& model) {
        return testing::decode_tokens(model, ids, CacheRule::parse(rule), steps,
                                      exit ? &*exit : nullptr);
      },
      loaded_->model);
}

}  // namespace recurrent_depth::hip_test
