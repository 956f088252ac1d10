// Drives a ModelExecutor the way the engine would, without the scheduler: every prompt prefilled in
// one step, then all of them decoded greedily together, each sequence on its own run of blocks from 0.
// For tests that compare two executors (tensor-parallel widths, backends) step by step.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "gtest/gtest.h"
#include "tandem/engine/model_executor.h"

namespace tandem::test_support {

struct GreedyRun {
  std::vector<std::vector<float>> logits;    // every step's rows, step-major (step * prompts + prompt)
  std::vector<std::vector<int32_t>> tokens;  // per prompt, the greedy tokens (one per step)
};

inline GreedyRun RunGreedy(engine::ModelExecutor& ex, const std::vector<std::vector<int32_t>>& prompts, int steps) {
  const int bs = ex.block_size();
  const size_t n = prompts.size();
  std::vector<std::vector<kvcache::BlockId>> tables(n);
  std::vector<std::vector<int32_t>> seqs = prompts;
  int32_t next_block = 0;
  for (size_t s = 0; s < n; ++s) {
    const int blocks = (static_cast<int>(prompts[s].size()) + steps + bs - 1) / bs;
    for (int b = 0; b < blocks; ++b) tables[s].push_back(next_block++);
  }
  EXPECT_LE(next_block, ex.num_kv_blocks());
  GreedyRun out;
  out.tokens.resize(n);
  const size_t vocab = static_cast<size_t>(ex.vocab_size());
  for (int step = 0; step < steps; ++step) {
    engine::StepPlan plan;
    for (size_t s = 0; s < n; ++s) {
      engine::ExecSequence e;
      const int32_t done = step == 0 ? 0 : static_cast<int32_t>(seqs[s].size()) - 1;
      e.token_ids = std::span<const int32_t>(seqs[s]).subspan(static_cast<size_t>(done));
      e.start_position = done;
      e.block_table = tables[s];
      e.needs_logits = true;
      plan.num_tokens += static_cast<int32_t>(e.token_ids.size());
      plan.seqs.push_back(e);
    }
    plan.num_logit_rows = static_cast<int32_t>(n);
    auto logits = ex.Execute(plan);
    EXPECT_TRUE(logits.ok()) << logits.status();
    if (!logits.ok()) return out;
    for (size_t s = 0; s < n; ++s) {
      std::span<const float> row = logits->subspan(s * vocab, vocab);
      out.logits.emplace_back(row.begin(), row.end());
      const int32_t next = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
      out.tokens[s].push_back(next);
      seqs[s].push_back(next);
    }
  }
  return out;
}

}  // namespace tandem::test_support
