#include "tandem/engine/engine_factory.h"

#include <algorithm>
#include <limits>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tandem/backend/collective.h"
#include "tandem/backend/cpu_backend.h"
#include "tandem/backend/model_runner.h"
#include "tandem/core/logging.h"
#include "tandem/core/status.h"
#include "tandem/engine/backend_model_executor.h"
#include "tandem/engine/tensor_parallel_executor.h"
#ifdef TANDEM_HAS_CUDA
#include "tandem/backend/cuda_model_runner.h"
#include "tandem/backend/nccl_collective.h"
#include "tandem/engine/cuda_model_executor.h"
#endif
#include "tandem/kvcache/block_hash.h"
#include "tandem/model/loader.h"
#include "tandem/model/tensor_parallel.h"

namespace tandem::engine {
namespace {

model::LoadFormat ToModelFormat(LoadFormat f) {
  switch (f) {
    case LoadFormat::kAuto:
      return model::LoadFormat::kAuto;
    case LoadFormat::kSafetensors:
      return model::LoadFormat::kSafetensors;
    case LoadFormat::kGguf:
      return model::LoadFormat::kGguf;
    case LoadFormat::kDummy:
      return model::LoadFormat::kDummy;
  }
  return model::LoadFormat::kAuto;
}

int32_t ClampToInt32(int64_t v) {
  return static_cast<int32_t>(std::clamp<int64_t>(v, 0, std::numeric_limits<int32_t>::max()));
}

// The model KV heads each of `tp` ranks holds (a worker's advertised KV layout); empty when the
// model cannot be split that way (the runners then fail with the reason).
std::vector<std::vector<int>> RankKvHeads(const model::ModelConfig& config, int tp) {
  std::vector<std::vector<int>> heads;
  for (int r = 0; r < tp; ++r) {
    absl::StatusOr<model::TensorParallelShard> shard = model::PlanTensorParallelShard(config, r, tp);
    if (!shard.ok()) return {};
    heads.push_back(shard->kv_heads);
  }
  return heads;
}

// backend: cuda — the CUDA model runner on the pool's first device (device 0 when the pool names none),
// its KV pool sized by kv_cache.gpu_memory_utilization.
absl::StatusOr<std::unique_ptr<Engine>> CreateCudaEngine(const DeploymentConfig& config, const PoolSection& pool,
                                                         const model::LoadedModel& loaded, const EngineConfig& ec,
                                                         int device) {
#ifdef TANDEM_HAS_CUDA
  backend::CudaModelRunnerOptions options;
  options.device = device >= 0 ? device : (pool.devices.empty() ? 0 : pool.devices.front());
  options.max_num_tokens = ClampToInt32(pool.max_num_batched_tokens);
  options.max_num_seqs = ClampToInt32(pool.max_num_seqs);
  options.max_model_len = ClampToInt32(config.model.max_model_len);
  options.block_size = config.kv_cache.block_size;
  options.gpu_memory_utilization = config.kv_cache.gpu_memory_utilization;
  options.batch_invariant = config.engine.batch_invariant;
  const int tp = pool.tensor_parallel;
  if (tp == 1) {
    TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<backend::CudaModelRunner> runner,
                            backend::CudaModelRunner::Create(loaded.config, loaded.weights, options, &loaded.nvfp4,
                                                             &loaded.dummy));
    return Engine::Create(ec, std::make_unique<CudaModelExecutor>(std::move(runner)));
  }
  // Tensor parallelism: this worker's tensor_parallel devices are the run of the pool's list that
  // starts at its first device (consecutive ordinals when the pool names none).
  std::vector<int> devices;
  const auto at = std::find(pool.devices.begin(), pool.devices.end(), options.device);
  if (at != pool.devices.end() && (at - pool.devices.begin()) % tp == 0 && pool.devices.end() - at >= tp) {
    devices.assign(at, at + tp);
  } else {
    for (int r = 0; r < tp; ++r) devices.push_back(options.device + r);
  }
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<backend::NcclCollectiveGroup> made,
                          backend::NcclCollectiveGroup::Create(devices));
  std::shared_ptr<backend::NcclCollectiveGroup> group = std::move(made);
  TANDEM_ASSIGN_OR_RETURN(
      std::unique_ptr<TensorParallelExecutor> executor,
      TensorParallelExecutor::Create(
          tp,
          [&](int r) -> absl::StatusOr<std::unique_ptr<ModelExecutor>> {
            backend::CudaModelRunnerOptions rank_options = options;
            rank_options.device = devices[static_cast<size_t>(r)];
            rank_options.collective = &group->rank(r);
            TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<backend::CudaModelRunner> runner,
                                    backend::CudaModelRunner::Create(loaded.config, loaded.weights, rank_options,
                                                                     &loaded.nvfp4));
            return std::unique_ptr<ModelExecutor>(std::make_unique<CudaModelExecutor>(std::move(runner)));
          },
          [group](const absl::Status&) { group->Abort(); }, RankKvHeads(loaded.config, tp)));
  TLOG_INFO("engine: tensor_parallel {} on GPUs [{}]", tp, absl::StrJoin(devices, ", "));
  return Engine::Create(ec, std::move(executor));
#else
  (void)pool;
  (void)loaded;
  (void)ec;
  (void)device;
  return absl::UnimplementedError(absl::StrCat(
      config.source, ": backend: cuda: this build of tandem has no CUDA backend (built without nvcc); use backend: cpu "
                     "or rebuild with the CUDA Toolkit (scripts/setup.sh, TANDEM_CUDA=ON)"));
#endif
}

}  // namespace

SchedulerConfig SchedulerConfigFromDeployment(const DeploymentConfig& config, const PoolSection& pool) {
  SchedulerConfig s;
  s.max_num_seqs = ClampToInt32(pool.max_num_seqs);
  s.max_num_batched_tokens = ClampToInt32(pool.max_num_batched_tokens);
  s.max_model_len = ClampToInt32(config.model.max_model_len);
  s.enable_chunked_prefill = true;
  s.policy = SchedulingPolicy::kFcfs;
  return s;
}

absl::StatusOr<model::LoadedModel> LoadDeploymentModel(const DeploymentConfig& config) {
  model::LoadOptions options;
  options.path = config.model.path;
  options.format = ToModelFormat(config.model.load_format);
  options.dummy_config = config.model.dummy_config;
  options.seed = config.model.seed;
  // The CUDA runner streams 16-bit checkpoints to the device as they are (no fp32 host copy), and
  // generates dummy weights there (no host copy at all) unless a pool shards them over GPUs.
  options.keep_16bit = config.backend == BackendKind::kCuda;
  options.dummy_on_device = config.backend == BackendKind::kCuda &&
                            config.model.quantization == Quantization::kNone && config.pools.prefill.tensor_parallel <= 1 &&
                            config.pools.decode.tensor_parallel <= 1 && config.pools.both.tensor_parallel <= 1;
  switch (config.model.quantization) {
    case Quantization::kNone:
      break;
    case Quantization::kNvfp4:
      options.quantize_nvfp4 = true;
      break;
    case Quantization::kFp8:
      return absl::UnimplementedError(absl::StrCat(
          config.source, ": model.quantization: fp8 weights are not implemented; use none or nvfp4"));
  }
  return model::LoadModel(options);
}

absl::StatusOr<std::unique_ptr<Engine>> CreateEngine(const DeploymentConfig& config, const PoolSection& pool,
                                                     model::LoadedModel& loaded, const EngineBuildOptions& options) {
  if (config.model.max_model_len > loaded.config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat(
        config.source, ": model.max_model_len: expected at most the model's max_position_embeddings (",
        loaded.config.max_position_embeddings, "), found ", config.model.max_model_len));
  }
  EngineConfig ec;
  ec.scheduler = SchedulerConfigFromDeployment(config, pool);
  ec.scheduler.eos_token_ids.assign(loaded.config.eos_token_ids.begin(), loaded.config.eos_token_ids.end());
  for (int32_t id : options.extra_eos_token_ids) {
    auto& eos = ec.scheduler.eos_token_ids;
    if (std::find(eos.begin(), eos.end(), id) == eos.end()) eos.push_back(id);
  }
  ec.enable_prefix_caching = config.kv_cache.prefix_caching;
  ec.recompute_failed_remote_prefill = config.disaggregation.on_prefill_failure == PrefillFailurePolicy::kRecompute;
  ec.hash_salt = kvcache::HashSalt(loaded.config.name);
  switch (config.backend) {
    case BackendKind::kCpu:
      break;
    case BackendKind::kCuda: {
      auto engine = CreateCudaEngine(config, pool, loaded, ec, options.device);
      loaded.weights = {};  // on the device now
      return engine;
    }
  }
  // KV pool: kv_cache.cpu_memory_mib over all layers (at tensor_parallel > 1, the ranks' pools hold
  // their own KV heads, as many blocks each).
  backend::KvCacheSpec model_spec;  // the whole model's heads, fp32
  model_spec.num_layers = loaded.config.num_layers;
  model_spec.num_kv_heads = loaded.config.num_kv_heads;
  model_spec.head_dim = loaded.config.head_dim;
  model_spec.block_size = config.kv_cache.block_size;
  const int64_t bytes_per_block = static_cast<int64_t>(model_spec.BytesPerBlock()) * model_spec.num_layers;
  const int64_t num_blocks = config.kv_cache.cpu_memory_mib * (int64_t{1} << 20) / bytes_per_block;
  const int64_t blocks_for_one =
      (config.model.max_model_len + config.kv_cache.block_size - 1) / config.kv_cache.block_size;
  if (num_blocks < blocks_for_one) {
    return absl::InvalidArgumentError(
        absl::StrCat(config.source, ": kv_cache.cpu_memory_mib: ", config.kv_cache.cpu_memory_mib,
                     " MiB holds ", num_blocks, " blocks of ", bytes_per_block, " bytes, expected at least ",
                     blocks_for_one, " (one max_model_len sequence)"));
  }
  const int tp = pool.tensor_parallel;
  // One rank's executor: its CPU backend, its runner over its shard, its KV pool.
  auto make_rank = [&](backend::Collective* collective, int threads) -> absl::StatusOr<std::unique_ptr<ModelExecutor>> {
    TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<backend::Backend> be, backend::CreateCpuBackend({.num_threads = threads}));
    backend::ModelRunnerOptions runner_options;
    runner_options.gguf_path = loaded.gguf.has_value() ? config.model.path : "";
    runner_options.collective = collective;
    TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<backend::ModelRunner> runner,
                            backend::ModelRunner::Create(be.get(), loaded.config, loaded.weights, runner_options));
    TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<BackendModelExecutor> executor,
                            BackendModelExecutor::Create(std::move(be), std::move(runner), ClampToInt32(num_blocks),
                                                         config.kv_cache.block_size, options.kv_allocator));
    return std::unique_ptr<ModelExecutor>(std::move(executor));
  };
  std::unique_ptr<ModelExecutor> executor;
  if (tp == 1) {
    TANDEM_ASSIGN_OR_RETURN(executor, make_rank(nullptr, options.cpu_threads));
  } else {
    // The cores are shared out among the ranks.
    const int cores = options.cpu_threads > 0 ? options.cpu_threads
                                              : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    auto group = std::make_shared<backend::HostCollectiveGroup>(tp);
    TANDEM_ASSIGN_OR_RETURN(
        executor, TensorParallelExecutor::Create(
                      tp, [&](int r) { return make_rank(&group->rank(r), std::max(1, cores / tp)); },
                      [group](const absl::Status& why) { group->Abort(why); }, RankKvHeads(loaded.config, tp)));
  }
  loaded.weights = {};  // the runners hold their own copies
  TLOG_INFO("engine: {} KV blocks of {} tokens ({} MiB), max_num_seqs {}, max_num_batched_tokens {}, tensor_parallel {}",
            num_blocks, config.kv_cache.block_size, config.kv_cache.cpu_memory_mib, ec.scheduler.max_num_seqs,
            ec.scheduler.max_num_batched_tokens, tp);
  return Engine::Create(ec, std::move(executor));
}

absl::StatusOr<std::unique_ptr<Engine>> CreateEngineFromDeployment(const DeploymentConfig& config,
                                                                   const PoolSection& pool,
                                                                   const backend::KvPoolAllocator& kv_allocator,
                                                                   int device) {
  TANDEM_ASSIGN_OR_RETURN(model::LoadedModel loaded, LoadDeploymentModel(config));
  return CreateEngine(config, pool, loaded, EngineBuildOptions{.kv_allocator = kv_allocator, .device = device});
}

}  // namespace tandem::engine
