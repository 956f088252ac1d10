// RemoteGenerator: the frontend's Generator over a deployment of workers. For each request the
// router picks a decode worker (and, when the prompt should be prefilled remotely, a prefill
// worker); the decode worker streams token ids back over gRPC (worker.proto), and this class
// detokenizes them per choice, applies stop strings (cancelling the worker's stream when one
// matches) and emits GenerateEvents. Workers come and go through Discovery; their load and KV
// events reach the router through LoadFeeds.
//
// Threading: one thread per request in flight drives its blocking gRPC stream (fine for the CPU
// slice; an async client is the next step for thousands of streams).
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/cluster/discovery.h"
#include "tandem/core/config.h"
#include "tandem/frontend/generator.h"

namespace tandem::router {
class Router;
class LoadFeeds;
}  // namespace tandem::router
namespace tandem::tokenizer {
class Tokenizer;
}  // namespace tandem::tokenizer
namespace tandem::cluster {
class CallHandle;
}  // namespace tandem::cluster

namespace tandem::frontend {

struct RemoteGeneratorOptions {
  std::string model_name;       // served model id; empty: the model file or directory's name
  int64_t max_model_len = 0;    // 0: config.model.max_model_len
};

class RemoteGenerator final : public Generator {
 public:
  // Loads the tokenizer from config.model.path (no weights), builds the router from config.router /
  // disaggregation, and starts following `discovery` (which must outlive this).
  static absl::StatusOr<std::unique_ptr<RemoteGenerator>> Create(const DeploymentConfig& config,
                                                                 cluster::Discovery* discovery,
                                                                 const RemoteGeneratorOptions& options);
  ~RemoteGenerator() override;

  absl::Status Generate(GenerateRequest request, StreamCallback on_event) override;
  void Cancel(const std::string& request_id) override;
  std::vector<ModelCard> ListModels() const override;
  GeneratorHealth Health() const override;
  GeneratorStats Stats() const override;

  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }
  // Cancels every request in flight and waits for their threads. Idempotent.
  void Shutdown();

 private:
  struct InFlight;
  RemoteGenerator() = default;
  void Run(std::shared_ptr<InFlight> call);
  void WatchWorkers();
  void FailRequestsOnSilentWorkers();

  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  cluster::Discovery* discovery_ = nullptr;
  std::unique_ptr<router::Router> router_;
  std::unique_ptr<router::LoadFeeds> feeds_;
  ModelCard card_;
  DisaggregationMode mode_ = DisaggregationMode::kConditional;
  std::atomic<bool> stopped_{false};
  std::atomic<int64_t> remote_prefills_{0};  // the router's decisions
  std::atomic<int64_t> local_prefills_{0};

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<InFlight>> in_flight_;
  std::condition_variable idle_;  // signalled when a request thread ends
  int active_threads_ = 0;
  double down_after_s_ = 3;  // router.load_report_timeout_s
  // disaggregation.on_prefill_failure: recompute: a silent prefill worker does not fail the requests
  // it was prefilling (their decode worker prefills them itself once the remote prefill fails).
  bool decode_recomputes_prefill_ = false;
  std::thread watchdog_;     // WatchWorkers
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool watch_stop_ = false;
};

}  // namespace tandem::frontend
