// Building a worker's engine from the deployment file: the scheduler keys of its pool
// (max_num_seqs, max_num_batched_tokens), kv_cache (block_size, prefix_caching, the CPU KV pool
// size cpu_memory_mib), model.max_model_len, then the model (LoadModel), the backend, the
// ModelRunner and the KV pool, and the EOS tokens from the model's generation config.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "tandem/backend/kv_pool.h"
#include "tandem/core/config.h"
#include "tandem/engine/engine.h"
#include "tandem/engine/scheduler.h"
#include "tandem/model/loader.h"

namespace tandem::engine {

// The scheduler settings for one worker of `pool` (EOS tokens are left for the model to fill).
SchedulerConfig SchedulerConfigFromDeployment(const DeploymentConfig& config, const PoolSection& pool);

struct EngineBuildOptions {
  int cpu_threads = 0;                       // CPU backend threads (0: all cores)
  std::vector<int32_t> extra_eos_token_ids;  // stop tokens beyond the model's (e.g. the tokenizer's)
  backend::KvPoolAllocator kv_allocator;     // CPU KV pools from here when set (a worker's transport)
  int device = -1;                           // CUDA ordinal; -1: the pool's first device (0 when none)
};

// Loads config.model (path, load_format, dummy_config, seed).
absl::StatusOr<model::LoadedModel> LoadDeploymentModel(const DeploymentConfig& config);

// Builds the engine for one worker of `pool` from a loaded model, on config.backend: the runner takes
// the weights (loaded.weights is released afterwards), the KV pool is sized by kv_cache.cpu_memory_mib
// (cpu) or kv_cache.gpu_memory_utilization (cuda, on the pool's first device), the scheduler from the
// pool's keys and model.max_model_len (at most the model's max_position_embeddings, else
// InvalidArgument), prefix hashes salted with the model's name.
absl::StatusOr<std::unique_ptr<Engine>> CreateEngine(const DeploymentConfig& config, const PoolSection& pool,
                                                     model::LoadedModel& loaded, const EngineBuildOptions& options);

// LoadDeploymentModel + CreateEngine: the whole engine for one worker of `pool`, its KV pools from
// `kv_allocator` when given (a worker passes its transport's shared memory), else from the backend.
// backend: cuda builds the CUDA model runner (its KV pool in device memory; `kv_allocator` is for the
// CPU backend's pools); in a build without CUDA it is Unimplemented, saying so.
absl::StatusOr<std::unique_ptr<Engine>> CreateEngineFromDeployment(const DeploymentConfig& config,
                                                                   const PoolSection& pool,
                                                                   const backend::KvPoolAllocator& kv_allocator = {},
                                                                   int device = -1);

}  // namespace tandem::engine
