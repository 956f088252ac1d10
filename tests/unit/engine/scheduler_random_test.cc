// Drives the scheduler with thousands of random adds, aborts, steps (with random sampled tokens,
// so sequences finish at random), remote-KV completions, transfer releases and prefix-cache
// resets on a small KV pool (so preemption happens often), checking after every operation that
// each block's reference count equals the number of live block tables holding it, that nothing
// leaks, and at the end that every sequence ended.
#include <memory>
#include <random>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"
#include "scheduler_test_util.h"
#include "tandem/engine/scheduler.h"

namespace tandem::engine {
namespace {

struct Case {
  uint32_t seed;
  SchedulingPolicy policy;
  bool chunked;
  bool caching;
  int32_t block_size;
};

class SchedulerRandomTest : public ::testing::TestWithParam<Case> {};

TEST_P(SchedulerRandomTest, NoLeaksExactRefCountsAndEverySequenceEnds) {
  const Case c = GetParam();
  std::mt19937 rng(c.seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };

  SchedulerConfig config;
  config.max_num_seqs = 12;
  config.max_num_batched_tokens = c.chunked ? 24 : 64;
  config.enable_chunked_prefill = c.chunked;
  config.policy = c.policy;
  config.max_model_len = 64;
  config.eos_token_ids = {1};
  const int32_t num_blocks = 48 / c.block_size * 4;  // 192 token slots
  testing::Harness h(config, num_blocks, c.block_size, c.caching);

  absl::flat_hash_set<SeqId> live;
  absl::flat_hash_set<SeqId> ended;
  int64_t added = 0, preemptions = 0, aborts = 0, remote_done = 0, releases = 0;
  // Prompts share prefixes (a few "system prompts") so the prefix cache is exercised.
  std::vector<std::vector<int32_t>> prefixes;
  for (int i = 0; i < 4; ++i) {
    std::vector<int32_t> p(static_cast<size_t>(uniform(4, 20)));
    for (auto& t : p) t = uniform(2, 50);
    prefixes.push_back(p);
  }

  auto reap = [&]() {
    for (Sequence* s : h.sched.newly_finished()) {
      if (s->state == SequenceState::kFinished) {
        ended.insert(s->seq_id);
        live.erase(s->seq_id);
      }
    }
    h.sched.ReapFinished();
  };
  auto pick_live = [&](SequenceState state) -> Sequence* {
    std::vector<Sequence*> c2;
    for (SeqId id : live) {
      Sequence* s = h.sched.Find(id);
      if (s != nullptr && s->state == state) c2.push_back(s);
    }
    return c2.empty() ? nullptr : c2[static_cast<size_t>(uniform(0, static_cast<int>(c2.size()) - 1))];
  };
  auto check = [&](const char* op, int i) {
    const absl::Status st = h.sched.CheckConsistency();
    ASSERT_TRUE(st.ok()) << "after op " << i << " (" << op << "): " << st;
  };

  SeqId last_primary_id = 0;  // looked up each time: it may have been reaped
  const int kOps = 6000;
  for (int i = 0; i < kOps; ++i) {
    const int op = uniform(0, 99);
    if (op < 25 && live.size() < 40) {
      auto s = std::make_unique<Sequence>();
      s->seq_id = h.next_id++;
      s->request_id = absl::StrCat("r", s->seq_id);
      auto params = std::make_shared<SamplingParams>();
      params->max_tokens = uniform(1, 24);
      params->ignore_eos = uniform(0, 3) == 0;
      params->min_tokens = uniform(0, 1) == 0 ? 0 : uniform(0, params->max_tokens);
      s->params = params;
      s->tokens = prefixes[static_cast<size_t>(uniform(0, 3))];
      const int extra = uniform(0, 16);
      for (int k = 0; k < extra; ++k) s->tokens.push_back(uniform(2, 50));
      s->num_prompt_tokens = s->num_tokens();
      s->priority = uniform(0, 3);
      s->arrival_order = static_cast<uint64_t>(s->seq_id);
      const int role = uniform(0, 9);
      s->kv_role = role == 0 ? KvRole::kRemotePrefill : role == 1 ? KvRole::kPrefillOnly : KvRole::kLocal;
      // Sometimes a sibling of the previous local sequence (n > 1 sharing its prompt).
      Sequence* last_primary = last_primary_id != 0 ? h.sched.Find(last_primary_id) : nullptr;
      if (s->kv_role == KvRole::kLocal && last_primary != nullptr &&
          last_primary->state == SequenceState::kWaiting && last_primary->num_output_tokens() == 0 &&
          last_primary->prompt_source == 0 && uniform(0, 2) == 0) {
        s->tokens = last_primary->tokens;
        s->num_prompt_tokens = last_primary->num_prompt_tokens;
        s->prompt_source = last_primary->seq_id;
        last_primary->waiting_siblings.push_back(s->seq_id);
      }
      const SeqId id = s->seq_id;
      Sequence* raw = s.get();
      const KvRole kv_role = s->kv_role;
      const SeqId source = s->prompt_source;
      const absl::Status st = h.sched.Add(std::move(s));
      ASSERT_TRUE(st.ok()) << st;
      if (kv_role == KvRole::kLocal && source == 0) last_primary_id = raw->seq_id;
      live.insert(id);
      ++added;
      check("add", i);
    } else if (op < 32) {
      if (live.empty()) continue;
      std::vector<SeqId> ids(live.begin(), live.end());
      const SeqId id = ids[static_cast<size_t>(uniform(0, static_cast<int>(ids.size()) - 1))];
      if (h.sched.Abort(id)) ++aborts;
      reap();
      check("abort", i);
    } else if (op < 37) {
      if (Sequence* s = pick_live(SequenceState::kWaitingForRemoteKv)) {
        ASSERT_TRUE(h.sched.CompleteRemotePrefill(s->seq_id, uniform(1, 50)).ok());
        ++remote_done;
        reap();
        check("remote", i);
      }
    } else if (op < 41) {
      if (Sequence* s = pick_live(SequenceState::kPendingTransfer)) {
        ASSERT_TRUE(h.sched.ReleaseTransfer(s->seq_id).ok());
        ++releases;
        reap();
        check("release", i);
      }
    } else if (op < 42) {
      h.kv.ResetPrefixCache();
      check("reset", i);
    } else {
      const SchedulerOutput& out = h.sched.Schedule();
      // Each planned chunk lies inside its blocks and the budget holds.
      int32_t tokens = 0;
      for (const ScheduledSeq& e : out.seqs) {
        ASSERT_GE(e.seq->blocks.num_blocks() * c.block_size, e.start_pos + e.num_new_tokens);
        ASSERT_EQ(e.start_pos, e.seq->num_computed_tokens);
        tokens += e.num_new_tokens;
      }
      ASSERT_LE(tokens, config.max_num_batched_tokens);
      ASSERT_LE(static_cast<int32_t>(out.seqs.size()), config.max_num_seqs);
      preemptions += out.num_preempted;
      std::vector<int32_t> sampled(static_cast<size_t>(out.num_logit_rows));
      for (auto& t : sampled) t = uniform(1, 12);  // 1 is EOS
      h.sched.Update(sampled);
      reap();
      check("step", i);
    }
  }

  // Drain: keep stepping, completing remote prefills and releasing transfers until all ended.
  for (int round = 0; round < 10000 && !live.empty(); ++round) {
    if (Sequence* s = pick_live(SequenceState::kWaitingForRemoteKv)) {
      ASSERT_TRUE(h.sched.CompleteRemotePrefill(s->seq_id, 5).ok());
    }
    if (Sequence* s = pick_live(SequenceState::kPendingTransfer)) {
      ASSERT_TRUE(h.sched.ReleaseTransfer(s->seq_id).ok());
    }
    const SchedulerOutput& out = h.sched.Schedule();
    preemptions += out.num_preempted;
    std::vector<int32_t> sampled(static_cast<size_t>(out.num_logit_rows), 7);
    h.sched.Update(sampled);
    reap();
    check("drain", round);
  }
  EXPECT_TRUE(live.empty()) << live.size() << " sequences never ended";
  EXPECT_EQ(static_cast<int64_t>(ended.size()), added);
  EXPECT_EQ(h.kv.num_used_blocks(), 0);
  EXPECT_EQ(h.kv.num_free_blocks(), num_blocks);
  EXPECT_EQ(h.sched.num_live(), 0);
  EXPECT_GT(added, 500);
  EXPECT_GT(preemptions, 0) << "the pool should be small enough to force preemption";
  std::printf("seed %u: %lld sequences, %lld aborts, %lld preemptions, %lld remote, %lld releases\n", c.seed,
              static_cast<long long>(added), static_cast<long long>(aborts),
              static_cast<long long>(preemptions), static_cast<long long>(remote_done),
              static_cast<long long>(releases));
}

INSTANTIATE_TEST_SUITE_P(Mixes, SchedulerRandomTest,
                         ::testing::Values(Case{1, SchedulingPolicy::kFcfs, true, true, 4},
                                           Case{2, SchedulingPolicy::kPriority, true, true, 4},
                                           Case{3, SchedulingPolicy::kFcfs, false, true, 8},
                                           Case{4, SchedulingPolicy::kFcfs, true, false, 4},
                                           Case{5, SchedulingPolicy::kPriority, false, false, 16},
                                           Case{6, SchedulingPolicy::kFcfs, true, true, 16}));

}  // namespace
}  // namespace tandem::engine
