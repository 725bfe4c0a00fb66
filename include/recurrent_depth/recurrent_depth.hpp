// recurrent_depth: header-only C++20 engine for recurrent-depth language models (Huginn-0125).
// Include this umbrella header, or the module headers below it.
#pragma once

#include "backends/cpu/cpu_backend.hpp"
#include "core/precision.hpp"
#include "generate/chat.hpp"
#include "generate/exact_match.hpp"
#include "generate/generate.hpp"
#include "generate/latent_trace.hpp"
#include "io/checkpoint.hpp"
#include "io/config.hpp"
#include "io/model_directory.hpp"
#include "io/safetensors.hpp"
#include "model/architecture.hpp"
#include "model/load_model.hpp"
#include "model/recurrent_depth_model.hpp"
#include "model/synthetic_weights.hpp"
#include "tokenizer/tokenizer.hpp"
