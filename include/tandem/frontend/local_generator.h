// The Generator over an engine in this process: LoadModel → backend ModelRunner → engine (step
// loop on its own thread). Used until the router (disaggregation) serves requests from remote
// workers through the same Generator interface.
//
// Detokenization and stop strings run here, on the engine loop thread, not in the HTTP layer: the
// engine asks a StopStringHook per token, so the sequence ends (and frees its KV blocks) in the
// very step that completes a stop string, and the same IncrementalDetokenizer yields the text
// deltas, so each token is decoded once. A remote worker will do the same on its side.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/core/config.h"
#include "tandem/frontend/generator.h"

namespace tandem::engine {
class EngineLoop;
}  // namespace tandem::engine
namespace tandem::tokenizer {
class Tokenizer;
}  // namespace tandem::tokenizer

namespace tandem::frontend {

struct LocalGeneratorOptions {
  std::string model_name;  // served model id; empty: the model file or directory's name
  int num_threads = 0;     // CPU backend threads (0: all cores)
};

class LocalGenerator final : public Generator {
 public:
  // Loads config.model and its tokenizer, builds the engine through engine_factory.h (config.backend,
  // cpu or cuda; model.max_model_len capped at the model's positions) and starts the engine loop.
  static absl::StatusOr<std::unique_ptr<LocalGenerator>> Create(const DeploymentConfig& config,
                                                                const LocalGeneratorOptions& options);
  ~LocalGenerator() override;

  absl::Status Generate(GenerateRequest request, StreamCallback on_event) override;
  void Cancel(const std::string& request_id) override;
  std::vector<ModelCard> ListModels() const override;
  GeneratorHealth Health() const override;
  GeneratorStats Stats() const override;

  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }
  int64_t max_model_len() const { return card_.max_model_len; }
  // Aborts every request (each gets its final event) and stops the engine loop. Idempotent.
  void Shutdown();

 private:
  LocalGenerator() = default;

  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  std::unique_ptr<engine::EngineLoop> loop_;
  ModelCard card_;
  std::atomic<bool> stopped_{false};
};

}  // namespace tandem::frontend
