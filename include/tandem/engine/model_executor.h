// What the step loop asks of the model: run one planned step and return the logits rows it
// asked for. The real implementation drives the backend's ModelRunner
// (backend_model_executor.h); the CUDA backend and tensor-parallel workers plug in the same way.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tandem/backend/row_sampling.h"
#include "tandem/engine/sequence.h"
#include "tandem/kvcache/block_pool.h"

namespace tandem::backend {
class KvPool;
}

namespace tandem::engine {

// One sequence's work in a step.
struct ExecSequence {
  std::span<const int32_t> token_ids;             // the new tokens: a prefill chunk or one decode token
  int32_t start_position = 0;                     // tokens of this sequence already in the KV cache
  std::span<const kvcache::BlockId> block_table;  // covers positions [0, start + new tokens)
  bool needs_logits = false;                      // logits for the last new token
  // The engine samples this row on the host from the full logits. False: the executor samples it where
  // the logits are, as `sampling` says (null: the plain argmax), and LastSampled() has the token.
  bool needs_full_logits = true;
  const backend::RowSampling* sampling = nullptr;  // owned by the engine, valid during Execute
  std::string_view request_id;                    // the sequence's request (valid during Execute)
  KvRole kv_role = KvRole::kLocal;
};

struct StepPlan {
  std::vector<ExecSequence> seqs;
  int32_t num_tokens = 0;
  int32_t num_logit_rows = 0;  // sequences with needs_logits, in order
};

// Called on the engine thread during Execute(plan), once per model layer in order 0..layers-1, as
// soon as that layer's K/V of every sequence in `plan` is in the KV cache (the rest of the step still
// to run). Keep it short: it runs between the layers of the step.
using LayerDoneCallback = std::function<void(const StepPlan& plan, int32_t layer)>;
// Which steps a layer callback wants (null: every step). A step it does not want runs as it would
// with no subscriber (on the GPU: a decode step replays its CUDA graph instead of running eagerly
// with an event per layer).
using LayerStepFilter = std::function<bool(const StepPlan& plan)>;

class ModelExecutor {
 public:
  virtual ~ModelExecutor() = default;
  virtual int32_t vocab_size() const = 0;
  // KV pool geometry the scheduler's block manager must match.
  virtual int32_t num_kv_blocks() const = 0;
  virtual int32_t block_size() const = 0;
  // Runs `plan`, writing every new token's K/V into its blocks. Returns the logits
  // [plan.num_logit_rows, vocab_size] fp32 row-major, rows in the order of the sequences that need
  // them; the span stays valid until the next Execute.
  // Rows of sequences with needs_full_logits false may hold stale values when samples_rows() is true.
  virtual absl::StatusOr<std::span<const float>> Execute(const StepPlan& plan) = 0;
  // Whether Execute samples the rows whose needs_full_logits is false where the logits are (the CUDA
  // executor, on the GPU); false: every row's logits come back and the engine samples them all.
  virtual bool samples_rows() const { return false; }
  // With samples_rows(): the last Execute's token of every logits row, [num_logit_rows] (meaningful
  // for rows whose needs_full_logits was false).
  virtual std::span<const int32_t> LastSampled() const { return {}; }
  // The KV pools Execute writes (a worker registers them with its KV transport), or null when the
  // executor exposes none.
  virtual backend::KvPool* kv_pool() { return nullptr; }
  // Tensor parallelism: how many ranks run each step, and rank `rank`'s KV pool (its KV heads; kv_pool()
  // is null when there are several).
  virtual int tensor_parallel_size() const { return 1; }
  virtual backend::KvPool* rank_kv_pool(int rank) { return rank == 0 ? kv_pool() : nullptr; }
  // The model KV heads rank `rank`'s pool holds, in slot order (every head at tensor_parallel 1), and
  // the CUDA ordinal of its memory (-1: host).
  virtual std::vector<int> rank_kv_heads(int rank);
  virtual int rank_kv_device(int rank) const { return rank == 0 ? kv_device() : -1; }
  // Not OK once the executor cannot run steps any more (a tensor-parallel rank failed and the ranks
  // are out of step): the worker then stops so that its supervisor restarts it. Any thread may ask.
  virtual absl::Status broken() const { return absl::OkStatus(); }
  // The CUDA ordinal of device-memory KV pools, -1 for host memory.
  virtual int kv_device() const { return -1; }
  // The model's name as its config states it (a worker's advertised KV layout).
  virtual std::string model_name() const { return {}; }
  // Subscribes `callback` to the layers of every later Execute that `wants` (null: every one); an
  // empty callback unsubscribes. Call it before the engine runs (not thread-safe against Execute).
  // Executors that cannot report layers say so (Unimplemented).
  virtual absl::Status SetLayerDoneCallback(LayerDoneCallback callback, LayerStepFilter wants = nullptr) {
    (void)callback;
    (void)wants;
    return absl::UnimplementedError("this model executor does not report per-layer completion");
  }
};

}  // namespace tandem::engine
