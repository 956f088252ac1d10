// Building a worker's engine from the deployment file: the scheduler keys of its pool
// (max_num_seqs, max_num_batched_tokens), kv_cache (block_size, prefix_caching, the CPU KV pool
// size cpu_memory_mib), model.max_model_len, then the model (LoadModel), the backend, the
// ModelRunner and the KV pool, and the EOS tokens from the model's generation config.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "tandem/backend/kv_cache.h"
#include "tandem/core/config.h"
#include "tandem/engine/engine.h"
#include "tandem/engine/scheduler.h"

namespace tandem::engine {

// The scheduler settings for one worker of `pool` (EOS tokens are left for the model to fill).
SchedulerConfig SchedulerConfigFromDeployment(const DeploymentConfig& config, const PoolSection& pool);

// Loads the model and builds the whole engine for one worker of `pool`, its KV pools from
// `kv_allocator` when given (a worker passes its transport's shared memory), else from the backend.
// backend: cuda builds the CUDA model runner (its KV pool in device memory; `kv_allocator` is for the
// CPU backend's pools); in a build without CUDA it is Unimplemented, saying so.
absl::StatusOr<std::unique_ptr<Engine>> CreateEngineFromDeployment(const DeploymentConfig& config,
                                                                   const PoolSection& pool,
                                                                   const backend::KvPoolAllocator& kv_allocator = {});

}  // namespace tandem::engine
