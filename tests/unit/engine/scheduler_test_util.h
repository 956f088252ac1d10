// Builds sequences and runs scheduler steps with given sampled tokens (no model involved: the
// scheduler only sees token ids).
#pragma once

#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tandem/engine/scheduler.h"
#include "tandem/kvcache/kv_block_manager.h"

namespace tandem::engine::testing {

struct Harness {
  explicit Harness(SchedulerConfig config, int32_t num_blocks, int32_t block_size = 4, bool caching = true)
      : kv(kvcache::KvBlockManagerConfig{.num_blocks = num_blocks,
                                  .block_size = block_size,
                                  .enable_prefix_caching = caching,
                                  .hash_salt = 1}),
        sched(config, &kv) {}

  // Prompt tokens [start, start + len).
  Sequence* Add(int32_t prompt_len, int32_t max_tokens, int32_t start = 100, KvRole role = KvRole::kLocal,
                int32_t priority = 0, std::shared_ptr<SamplingParams> params = nullptr) {
    auto s = std::make_unique<Sequence>();
    s->seq_id = next_id++;
    s->request_id = absl::StrCat("req-", s->seq_id);
    if (params == nullptr) params = std::make_shared<SamplingParams>();
    params->max_tokens = max_tokens;
    s->params = params;
    s->tokens.resize(static_cast<size_t>(prompt_len));
    std::iota(s->tokens.begin(), s->tokens.end(), start);
    s->num_prompt_tokens = prompt_len;
    s->arrival_order = next_id;
    s->priority = priority;
    s->kv_role = role;
    Sequence* raw = s.get();
    const absl::Status st = sched.Add(std::move(s));
    EXPECT_TRUE(st.ok()) << st;
    return st.ok() ? raw : nullptr;
  }

  // One step: every sequence that needs logits samples `token`.
  const SchedulerOutput& Step(int32_t token = 7) {
    const SchedulerOutput& out = sched.Schedule();
    std::vector<int32_t> sampled(static_cast<size_t>(out.num_logit_rows), token);
    sched.Update(sampled);
    const absl::Status st = sched.CheckConsistency();
    EXPECT_TRUE(st.ok()) << st;
    return out;
  }

  const ScheduledSeq* Find(const SchedulerOutput& out, const Sequence* s) {
    for (const ScheduledSeq& e : out.seqs) {
      if (e.seq == s) return &e;
    }
    return nullptr;
  }

  kvcache::KvBlockManager kv;
  Scheduler sched;
  SeqId next_id = 1;
};

}  // namespace tandem::engine::testing
