#include "tandem/frontend/local_generator.h"

#include <algorithm>
#include <ctime>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tandem/core/logging.h"
#include "tandem/core/status.h"
#include "tandem/frontend/choice_text.h"
#include "tandem/engine/engine.h"
#include "tandem/engine/engine_factory.h"
#include "tandem/engine/engine_loop.h"
#include "tandem/model/loader.h"
#include "tandem/tokenizer/tokenizer.h"

namespace tandem::frontend {
namespace {

// One request's state. Touched only on the engine loop thread (stop hooks and output callbacks
// both run there), so it needs no lock.
struct RequestState {
  struct Choice {
    ChoiceText text;  // fed by the stop hook, taken by the output callback
    bool finished = false;
  };
  const tokenizer::Tokenizer* tokenizer = nullptr;
  std::vector<Choice> choices;
  int32_t next_hook = 0;
  int32_t num_finished = 0;
  bool done = false;
  Usage usage;
  StreamCallback on_event;
};

// Feeds each output token to the sequence's detokenizer; stops the sequence on a stop string.
class DetokenizingStopHook final : public engine::StopStringHook {
 public:
  DetokenizingStopHook(std::shared_ptr<RequestState> state, int32_t index)
      : state_(std::move(state)), index_(index) {}
  bool OnToken(int32_t token_id) override {
    ChoiceText& text = state_->choices[static_cast<size_t>(index_)].text;
    text.Push(token_id);
    return text.stopped();
  }

 private:
  std::shared_ptr<RequestState> state_;
  int32_t index_;
};

void OnOutput(const std::shared_ptr<RequestState>& state, engine::RequestOutput out) {
  if (state->done) return;
  GenerateEvent event;
  if (out.finish_reason == engine::FinishReason::kError || !out.status.ok()) {
    if (out.finish_reason != engine::FinishReason::kAborted) {
      event.status = out.status.ok()
                         ? absl::InternalError(absl::StrCat("request ", out.request_id, " failed"))
                         : out.status;
      event.final = true;
      state->done = true;
      state->on_event(std::move(event));
      return;
    }
  }
  if (out.index < 0 || out.index >= static_cast<int32_t>(state->choices.size())) return;
  RequestState::Choice& choice = state->choices[static_cast<size_t>(out.index)];
  if (choice.finished) return;
  ChoiceDelta delta;
  delta.index = out.index;
  delta.token_ids = std::move(out.new_token_ids);
  delta.text = choice.text.Take(out.finished);
  for (const engine::SampleResult& r : out.logprobs) delta.logprobs.push_back(ApiLogprob(*state->tokenizer, r));
  if (out.finished) {
    delta.finish_reason = ApiFinishReason(out.finish_reason);
    choice.finished = true;
    ++state->num_finished;
    state->usage.prompt_tokens = out.num_prompt_tokens;
    state->usage.completion_tokens += out.num_output_tokens;
    state->usage.cached_prompt_tokens = std::max(state->usage.cached_prompt_tokens, out.num_cached_tokens);
  }
  event.choices.push_back(std::move(delta));
  if (state->num_finished == static_cast<int32_t>(state->choices.size())) {
    event.final = true;
    event.usage = state->usage;
    state->done = true;
  }
  state->on_event(std::move(event));
}


}  // namespace

absl::StatusOr<std::unique_ptr<LocalGenerator>> LocalGenerator::Create(const DeploymentConfig& config,
                                                                       const LocalGeneratorOptions& options) {
  TANDEM_ASSIGN_OR_RETURN(model::LoadedModel loaded, engine::LoadDeploymentModel(config));
  std::unique_ptr<tokenizer::Tokenizer> tok;
  if (loaded.gguf.has_value()) {
    TANDEM_ASSIGN_OR_RETURN(tok, tokenizer::Tokenizer::FromGguf(*loaded.gguf));
  } else if (!loaded.tokenizer_json_path.empty()) {
    TANDEM_ASSIGN_OR_RETURN(
        tok, tokenizer::Tokenizer::FromFiles(loaded.tokenizer_json_path, loaded.tokenizer_config_json_path));
  } else {
    return absl::FailedPreconditionError(absl::StrCat("model.path '", config.model.path,
                                                      "': expected a GGUF file or a "
                                                      "directory with tokenizer.json, found no tokenizer"));
  }
  // `tandem serve --model` takes the model's own length when it is shorter than model.max_model_len.
  DeploymentConfig local = config;
  if (loaded.config.max_position_embeddings > 0) {
    local.model.max_model_len = std::min<int64_t>(local.model.max_model_len, loaded.config.max_position_embeddings);
  }
  const int64_t max_model_len = local.model.max_model_len;
  const PoolSection& pool =
      local.disaggregation.mode == DisaggregationMode::kOff && local.pools.both.replicas > 0 ? local.pools.both
                                                                                              : local.pools.decode;
  engine::EngineBuildOptions build;
  build.cpu_threads = options.num_threads;
  build.extra_eos_token_ids.assign(tok->stop_ids().begin(), tok->stop_ids().end());
  const int vocab = loaded.config.vocab_size;
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<engine::Engine> eng, engine::CreateEngine(local, pool, loaded, build));

  std::unique_ptr<LocalGenerator> gen(new LocalGenerator());
  gen->tokenizer_ = std::move(tok);
  gen->card_.id = options.model_name.empty() ? DefaultModelName(config.model.path) : options.model_name;
  gen->card_.created = static_cast<int64_t>(std::time(nullptr));
  gen->card_.max_model_len = max_model_len;
  gen->card_.vocab_size = vocab;
  gen->loop_ = std::make_unique<engine::EngineLoop>(std::move(eng));
  gen->loop_->Start();
  TLOG_INFO("local generator: model '{}' ({} layers, vocab {}) on the {} backend, max_model_len {}", gen->card_.id,
            loaded.config.num_layers, vocab, Name(config.backend), max_model_len);
  return gen;
}

LocalGenerator::~LocalGenerator() { Shutdown(); }

void LocalGenerator::Shutdown() {
  stopped_ = true;
  if (loop_) loop_->Stop();
}

absl::Status LocalGenerator::Generate(GenerateRequest request, StreamCallback on_event) {
  auto state = std::make_shared<RequestState>();
  state->tokenizer = tokenizer_.get();
  state->on_event = std::move(on_event);
  state->choices.reserve(static_cast<size_t>(request.n));
  for (int32_t i = 0; i < request.n; ++i) state->choices.push_back(RequestState::Choice{ChoiceText(*tokenizer_, request)});
  engine::EngineRequest er;
  er.request_id = request.request_id;
  er.params = SamplingParamsOf(request);
  er.prompt_token_ids = std::move(request.prompt_token_ids);
  er.stop_hook_factory = [state]() -> std::unique_ptr<engine::StopStringHook> {
    return std::make_unique<DetokenizingStopHook>(state, state->next_hook++);
  };
  return loop_->Submit(std::move(er),
                       [state](engine::RequestOutput out) { OnOutput(state, std::move(out)); });
}

void LocalGenerator::Cancel(const std::string& request_id) { loop_->Abort(request_id); }

std::vector<ModelCard> LocalGenerator::ListModels() const { return {card_}; }

GeneratorHealth LocalGenerator::Health() const {
  if (stopped_) return GeneratorHealth{false, "the in-process engine is shut down"};
  return GeneratorHealth{true, "in-process engine"};
}

GeneratorStats LocalGenerator::Stats() const {
  const engine::SchedulerStats s = loop_->metrics();
  GeneratorStats out;
  out.num_running = s.num_running;
  out.num_waiting = s.num_waiting;
  out.kv_blocks_used = s.kv_blocks_used;
  out.kv_blocks_total = s.kv_blocks_total;
  out.num_preemptions = s.num_preemptions;
  out.prefix_cache_hit_rate = s.prefix_cache_hit_rate();
  out.num_steps = s.num_steps;
  return out;
}

}  // namespace tandem::frontend
