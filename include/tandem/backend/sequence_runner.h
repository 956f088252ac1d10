// Drives a ModelRunner for a handful of sequences with a private, fixed block allocation (each
// sequence reserves the blocks for its maximum length up front). For `tandem generate`, the golden
// and batch-invariance tests and the benchmarks; the engine's scheduler and kvcache module do this
// job when serving.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "tandem/backend/kv_pool.h"
#include "tandem/backend/model_runner.h"

namespace tandem::backend {

class SequenceRunner {
 public:
  // `cache` must come from runner->MakeKvCacheSpec; both must outlive this object.
  SequenceRunner(ModelRunner* runner, KvPool* cache);

  // Adds a sequence whose tokens will never exceed max_len. Its prompt is pending (not yet in the
  // cache). ResourceExhausted when the cache has too few free blocks.
  absl::StatusOr<int> AddSequence(std::vector<int32_t> prompt, int max_len);

  // Appends a token (e.g. the one just sampled) to a sequence; it is pending until the next step.
  absl::Status Append(int seq, int32_t token);

  // One forward step where each (seq, count) pair feeds the next `count` pending tokens of `seq`
  // (count 0 or past the pending ones: all pending). Returns, for each sequence whose pending tokens
  // are now all in the cache, its logits row [vocab], in the order of `work`.
  absl::StatusOr<std::vector<std::pair<int, std::vector<float>>>> Step(const std::vector<std::pair<int, int>>& work);

  const std::vector<int32_t>& tokens(int seq) const { return seqs_[static_cast<size_t>(seq)].tokens; }
  int cached(int seq) const { return seqs_[static_cast<size_t>(seq)].cached; }
  int pending(int seq) const;

 private:
  struct Seq {
    std::vector<int32_t> tokens;
    int cached = 0;
    int max_len = 0;
    std::vector<int32_t> block_table;
  };
  ModelRunner* runner_;
  KvPool* cache_;
  int next_block_ = 0;
  std::vector<Seq> seqs_;
};

// Index of the largest logit (the first one on ties).
int32_t Argmax(const float* logits, int vocab);

}  // namespace tandem::backend
