#include "tandem/engine/scheduler.h"

#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "scheduler_test_util.h"
#include "support/status_matchers.h"

namespace tandem::engine {
namespace {

using testing::Harness;

SchedulerConfig Config(int32_t budget, int32_t max_seqs = 16) {
  SchedulerConfig c;
  c.max_num_batched_tokens = budget;
  c.max_num_seqs = max_seqs;
  c.max_model_len = 256;
  c.eos_token_ids = {2};
  return c;
}

TEST(SchedulerTest, ChunkedPrefillMixesWithDecodeUnderTheBudget) {
  Harness h(Config(8), 64);
  Sequence* a = h.Add(20, 10);
  auto out = &h.Step();
  ASSERT_EQ(out->seqs.size(), 1u);
  EXPECT_EQ(out->seqs[0].start_pos, 0);
  EXPECT_EQ(out->seqs[0].num_new_tokens, 8);
  EXPECT_FALSE(out->seqs[0].needs_logits);
  out = &h.Step();
  EXPECT_EQ(out->seqs[0].start_pos, 8);
  out = &h.Step();
  EXPECT_EQ(out->seqs[0].num_new_tokens, 4);
  EXPECT_TRUE(out->seqs[0].needs_logits);
  EXPECT_EQ(a->num_output_tokens(), 1);
  Sequence* b = h.Add(10, 10, 500);
  out = &h.Step();
  ASSERT_EQ(out->seqs.size(), 2u);
  EXPECT_EQ(out->seqs[0].seq, a);  // running decode first
  EXPECT_EQ(out->seqs[0].num_new_tokens, 1);
  EXPECT_EQ(out->seqs[1].seq, b);
  EXPECT_EQ(out->seqs[1].num_new_tokens, 7);
  EXPECT_EQ(out->num_tokens, 8);
  EXPECT_EQ(out->num_logit_rows, 1);
  out = &h.Step();
  EXPECT_EQ(out->num_tokens, 4);  // a decodes, b finishes its prompt
  EXPECT_EQ(b->num_output_tokens(), 1);
}

TEST(SchedulerTest, LongPrefillThresholdCapsEachChunk) {
  SchedulerConfig c = Config(64);
  c.long_prefill_token_threshold = 16;
  Harness h(c, 64);
  h.Add(40, 4);
  h.Add(40, 4, 900);
  const auto& out = h.Step();
  ASSERT_EQ(out.seqs.size(), 2u);
  EXPECT_EQ(out.seqs[0].num_new_tokens, 16);
  EXPECT_EQ(out.seqs[1].num_new_tokens, 16);
}

TEST(SchedulerTest, WithoutChunkingAPromptWaitsForAWholeBudget) {
  SchedulerConfig c = Config(16);
  c.enable_chunked_prefill = false;
  Harness h(c, 64);
  Sequence* a = h.Add(8, 10);
  h.Step();
  Sequence* b = h.Add(16, 10, 300);
  const auto& out = h.Step();
  ASSERT_EQ(out.seqs.size(), 1u);  // 1 decode token + 16 > 16
  EXPECT_EQ(out.seqs[0].seq, a);
  EXPECT_EQ(b->state, SequenceState::kWaiting);
}

TEST(SchedulerTest, MaxNumSeqsLimitsTheBatch) {
  Harness h(Config(100, 2), 64);
  h.Add(4, 10);
  h.Add(4, 10, 200);
  Sequence* c = h.Add(4, 10, 300);
  const auto& out = h.Step();
  EXPECT_EQ(out.seqs.size(), 2u);
  EXPECT_EQ(c->state, SequenceState::kWaiting);
  EXPECT_EQ(h.sched.stats().num_running, 2);
  EXPECT_EQ(h.sched.stats().num_waiting, 1);
}

TEST(SchedulerTest, PriorityPolicyAdmitsLowerValuesFirst) {
  SchedulerConfig c = Config(100, 1);
  c.policy = SchedulingPolicy::kPriority;
  Harness h(c, 64);
  Sequence* late = h.Add(4, 2, 100, KvRole::kLocal, /*priority=*/5);
  Sequence* urgent = h.Add(4, 2, 200, KvRole::kLocal, /*priority=*/0);
  const auto& out = h.Step();
  ASSERT_EQ(out.seqs.size(), 1u);
  EXPECT_EQ(out.seqs[0].seq, urgent);
  EXPECT_EQ(late->state, SequenceState::kWaiting);
  // FCFS would have taken the first arrival.
  Harness f(Config(100, 1), 64);
  Sequence* first = f.Add(4, 2, 100, KvRole::kLocal, 5);
  f.Add(4, 2, 200, KvRole::kLocal, 0);
  EXPECT_EQ(f.Step().seqs[0].seq, first);
}

TEST(SchedulerTest, PreemptsTheNewestWhenBlocksRunOutAndResumesWithOutputKept) {
  // 6 blocks of 4 tokens: two 8-token prompts (2 blocks each) growing to 16 tokens can't coexist.
  Harness h(Config(64), 6);
  Sequence* a = h.Add(8, 8);
  Sequence* b = h.Add(8, 8, 300);
  int preempted = 0;
  std::vector<int32_t> b_tokens_at_preemption;
  for (int step = 0; step < 60 && (!a->finished() || !b->finished()); ++step) {
    const auto& out = h.Step(10 + step);
    preempted += out.num_preempted;
    if (out.num_preempted > 0 && b_tokens_at_preemption.empty()) {
      EXPECT_EQ(b->state, SequenceState::kWaiting);
      EXPECT_TRUE(b->blocks.blocks.empty());
      EXPECT_EQ(b->num_computed_tokens, 0);
      b_tokens_at_preemption = b->tokens;
    }
  }
  EXPECT_GT(preempted, 0);
  EXPECT_GT(b->num_preemptions, 0);
  EXPECT_EQ(a->num_preemptions, 0);
  ASSERT_TRUE(a->finished() && b->finished());
  EXPECT_EQ(a->num_output_tokens(), 8);
  EXPECT_EQ(b->num_output_tokens(), 8);
  // The output generated before preemption is still the start of b's output.
  ASSERT_FALSE(b_tokens_at_preemption.empty());
  EXPECT_TRUE(std::equal(b_tokens_at_preemption.begin(), b_tokens_at_preemption.end(), b->tokens.begin()));
  EXPECT_EQ(h.sched.stats().num_preemptions, preempted);
  EXPECT_EQ(h.kv.num_used_blocks(), 0);
}

TEST(SchedulerTest, PriorityPreemptionTakesTheLowestPriority) {
  SchedulerConfig c = Config(64);
  c.policy = SchedulingPolicy::kPriority;
  Harness h(c, 6);
  Sequence* low = h.Add(8, 8, 100, KvRole::kLocal, 9);
  Sequence* high = h.Add(8, 8, 300, KvRole::kLocal, 1);
  for (int step = 0; step < 60 && !high->finished(); ++step) h.Step(10);
  EXPECT_EQ(high->num_preemptions, 0);
  EXPECT_GT(low->num_preemptions, 0);
}

TEST(SchedulerTest, StopConditions) {
  Harness h(Config(64), 64);
  // EOS (2) stops.
  Sequence* s = h.Add(4, 10);
  h.Step(5);
  h.Step(2);
  EXPECT_EQ(s->finish_reason, FinishReason::kStop);
  EXPECT_EQ(s->output().back(), 2);
  // ignore_eos keeps going until max_tokens.
  auto p = std::make_shared<SamplingParams>();
  p->ignore_eos = true;
  s = h.Add(4, 3, 100, KvRole::kLocal, 0, p);
  for (int i = 0; i < 3; ++i) h.Step(2);
  EXPECT_EQ(s->finish_reason, FinishReason::kLength);
  EXPECT_EQ(s->num_output_tokens(), 3);
  // stop_token_ids.
  p = std::make_shared<SamplingParams>();
  p->stop_token_ids = {9};
  s = h.Add(4, 10, 100, KvRole::kLocal, 0, p);
  h.Step(9);
  EXPECT_EQ(s->finish_reason, FinishReason::kStop);
  // min_tokens: EOS doesn't stop before it.
  p = std::make_shared<SamplingParams>();
  p->min_tokens = 3;
  s = h.Add(4, 10, 100, KvRole::kLocal, 0, p);
  h.Step(2);
  h.Step(2);
  EXPECT_FALSE(s->finished());
  h.Step(2);
  EXPECT_EQ(s->finish_reason, FinishReason::kStop);
  EXPECT_EQ(s->num_output_tokens(), 3);
}

TEST(SchedulerTest, StopStringHookEndsTheSequence) {
  struct Hook : StopStringHook {
    std::vector<int32_t> seen;
    bool OnToken(int32_t t) override {
      seen.push_back(t);
      return seen.size() >= 2 && seen[seen.size() - 2] == 4 && t == 5;  // "45" is the stop string
    }
  };
  Harness h(Config(64), 64);
  Sequence* s = h.Add(4, 10);
  auto hook = std::make_unique<Hook>();
  Hook* raw = hook.get();
  s->stop_hook = std::move(hook);
  h.Step(4);
  h.Step(5);
  EXPECT_EQ(s->finish_reason, FinishReason::kStopString);
  EXPECT_EQ(raw->seen, (std::vector<int32_t>{4, 5}));
}

TEST(SchedulerTest, MaxModelLenEndsTheSequence) {
  SchedulerConfig c = Config(64);
  c.max_model_len = 10;
  Harness h(c, 64);
  Sequence* s = h.Add(8, 100);
  h.Step();
  h.Step();
  EXPECT_EQ(s->finish_reason, FinishReason::kLength);
  EXPECT_EQ(s->num_tokens(), 10);
  // A prompt at the limit is refused up front.
  auto too_long = std::make_unique<Sequence>();
  too_long->seq_id = 999;
  too_long->tokens.assign(10, 1);
  too_long->num_prompt_tokens = 10;
  EXPECT_ERROR(h.sched.Add(std::move(too_long)), absl::StatusCode::kInvalidArgument,
               "prompt has 10 tokens, expected fewer than max_model_len 10");
}

TEST(SchedulerTest, RefusesASequenceThatCouldNeverFit) {
  Harness h(Config(64), 4);
  auto s = std::make_unique<Sequence>();
  s->seq_id = 1;
  s->tokens.assign(8, 1);
  s->num_prompt_tokens = 8;
  auto p = std::make_shared<SamplingParams>();
  p->max_tokens = 100;  // 108 tokens need 27 blocks
  s->params = p;
  const absl::Status st = h.sched.Add(std::move(s));
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
}

TEST(SchedulerTest, PrefixCacheHitSkipsComputedBlocksAndCountsTheHitRate) {
  Harness h(Config(64), 64);
  Sequence* a = h.Add(10, 1);
  h.Step();
  ASSERT_TRUE(a->finished());
  Sequence* b = h.Add(10, 1);  // same prompt
  const auto& out = h.Step();
  const ScheduledSeq* e = h.Find(out, b);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->start_pos, 8);  // two full blocks reused
  EXPECT_EQ(e->num_new_tokens, 2);
  EXPECT_EQ(b->num_cached_tokens, 8);
  const SchedulerStats st = h.sched.stats();
  EXPECT_EQ(st.prefix_query_tokens, 20);
  EXPECT_EQ(st.prefix_hit_tokens, 8);
  EXPECT_DOUBLE_EQ(st.prefix_cache_hit_rate(), 0.4);
}

TEST(SchedulerTest, SiblingsShareThePrimarysPromptBlocks) {
  Harness h(Config(64), 64, 4, /*caching=*/false);
  Sequence* primary = h.Add(10, 4);
  Sequence* sib1 = h.Add(10, 4);
  Sequence* sib2 = h.Add(10, 4);
  for (Sequence* s : {sib1, sib2}) {
    s->prompt_source = primary->seq_id;
    primary->waiting_siblings.push_back(s->seq_id);
  }
  auto out = &h.Step();
  ASSERT_EQ(out->seqs.size(), 1u);  // siblings wait for the primary's prefill
  EXPECT_EQ(out->seqs[0].seq, primary);
  // After it, they hold the two full prompt blocks (3 references each) and compute the rest.
  EXPECT_EQ(sib1->blocks.blocks[0], primary->blocks.blocks[0]);
  EXPECT_EQ(sib2->blocks.blocks[1], primary->blocks.blocks[1]);
  EXPECT_EQ(h.kv.ref_count(primary->blocks.blocks[0]), 3);
  EXPECT_EQ(sib1->num_computed_tokens, 8);
  out = &h.Step();
  const ScheduledSeq* e = h.Find(*out, sib1);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->start_pos, 8);
  EXPECT_EQ(e->num_new_tokens, 2);
  EXPECT_NE(sib1->blocks.blocks[2], primary->blocks.blocks[2]);  // the partial block is their own
  EXPECT_EQ(sib1->num_cached_tokens, 8);
}

TEST(SchedulerTest, RemotePrefillHoldsBlocksUntilTheKvArrives) {
  Harness h(Config(64), 64);
  Sequence* d = h.Add(10, 3, 100, KvRole::kRemotePrefill);
  auto out = &h.Step();
  EXPECT_TRUE(out->seqs.empty());
  ASSERT_EQ(out->remote_kv_allocated.size(), 1u);
  EXPECT_EQ(d->state, SequenceState::kWaitingForRemoteKv);
  EXPECT_EQ(d->blocks.num_blocks(), 3);
  EXPECT_EQ(h.sched.stats().num_waiting_for_remote_kv, 1);
  h.Step();  // nothing to do while it waits
  EXPECT_EQ(d->state, SequenceState::kWaitingForRemoteKv);
  ASSERT_TRUE(h.sched.CompleteRemotePrefill(d->seq_id, 42).ok());
  EXPECT_EQ(d->state, SequenceState::kRunning);
  EXPECT_EQ(d->num_computed_tokens, 10);
  EXPECT_EQ(d->output().front(), 42);
  out = &h.Step();
  ASSERT_EQ(out->seqs.size(), 1u);
  EXPECT_EQ(out->seqs[0].start_pos, 10);
  EXPECT_EQ(out->seqs[0].num_new_tokens, 1);
  h.Step();
  EXPECT_EQ(d->finish_reason, FinishReason::kLength);
  EXPECT_EQ(h.kv.num_used_blocks(), 0);
  // Completing twice is an error naming the state.
  EXPECT_ERROR(h.sched.CompleteRemotePrefill(d->seq_id, 42), absl::StatusCode::kFailedPrecondition,
               "expected state waiting_for_remote_kv, found finished");
}

TEST(SchedulerTest, PrefillOnlyPinsBlocksUntilTheTransferIsReleased) {
  Harness h(Config(64), 64);
  Sequence* p = h.Add(10, 100, 100, KvRole::kPrefillOnly);
  h.Step(33);
  EXPECT_EQ(p->state, SequenceState::kPendingTransfer);
  EXPECT_EQ(p->finish_reason, FinishReason::kPrefillHandoff);
  EXPECT_EQ(p->output().front(), 33);
  EXPECT_EQ(p->blocks.num_blocks(), 3);
  EXPECT_EQ(h.kv.num_used_blocks(), 3);
  EXPECT_FALSE(h.sched.has_work());
  ASSERT_TRUE(h.sched.ReleaseTransfer(p->seq_id).ok());
  EXPECT_EQ(h.kv.num_used_blocks(), 0);
  EXPECT_EQ(p->state, SequenceState::kFinished);
  // An abort during the transfer frees the blocks too.
  Sequence* q = h.Add(10, 100, 500, KvRole::kPrefillOnly);
  h.Step();
  EXPECT_TRUE(h.sched.Abort(q->seq_id));
  EXPECT_EQ(h.kv.num_used_blocks(), 0);
  EXPECT_FALSE(h.sched.Abort(q->seq_id));
  EXPECT_TRUE(h.sched.CheckConsistency().ok());
}

TEST(SchedulerTest, AbortFromEveryStateFreesEverything) {
  Harness h(Config(8), 64);
  Sequence* remote = h.Add(6, 10, 600, KvRole::kRemotePrefill);
  Sequence* running = h.Add(20, 10);
  Sequence* waiting = h.Add(20, 10, 300);
  h.Step();
  EXPECT_EQ(remote->state, SequenceState::kWaitingForRemoteKv);
  EXPECT_EQ(running->state, SequenceState::kRunning);
  EXPECT_EQ(waiting->state, SequenceState::kWaiting);
  for (Sequence* s : {running, waiting, remote}) EXPECT_TRUE(h.sched.Abort(s->seq_id));
  EXPECT_EQ(running->finish_reason, FinishReason::kAborted);
  EXPECT_EQ(h.kv.num_used_blocks(), 0);
  EXPECT_FALSE(h.sched.has_work());
  EXPECT_TRUE(h.sched.CheckConsistency().ok());
  h.sched.ReapFinished();
  EXPECT_EQ(h.sched.num_live(), 0);
}

}  // namespace
}  // namespace tandem::engine
