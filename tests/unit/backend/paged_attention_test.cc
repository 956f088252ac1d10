// Paged attention and K/V writes against a dense naive causal attention, for block sizes 1 and 16,
// GQA, several sequences with scattered block tables, and prompts split into chunks.
#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tandem/backend/batch.h"
#include "tandem/backend/cpu_backend.h"

namespace tandem::backend {
namespace {

struct Case {
  int block_size;
  int num_heads;
  int num_kv_heads;
  int head_dim;
};

class PagedAttentionTest : public ::testing::TestWithParam<Case> {};

TEST_P(PagedAttentionTest, MatchesDenseCausalAttentionUnderAnyChunking) {
  const Case c = GetParam();
  auto backend_or = CreateCpuBackend({});
  ASSERT_TRUE(backend_or.ok());
  Backend& backend = **backend_or;
  const std::vector<int> lengths = {1, 17, 40};  // tokens per sequence
  const int num_blocks = 64;
  KvCacheSpec spec{.num_layers = 2, .num_kv_heads = c.num_kv_heads, .head_dim = c.head_dim,
                   .block_size = c.block_size, .num_blocks = num_blocks};
  auto cache_or = KvPool::Create(backend, spec);
  ASSERT_TRUE(cache_or.ok()) << cache_or.status();
  KvPool& cache = **cache_or;
  const int layer = 1;
  const int qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;

  // Random q/k/v per sequence position; block tables hand out blocks in a scrambled order.
  std::mt19937 rng(7);
  std::normal_distribution<float> dist;
  std::vector<std::vector<float>> q(lengths.size()), k(lengths.size()), v(lengths.size());
  std::vector<std::vector<int32_t>> tables(lengths.size());
  std::vector<int32_t> free_blocks(num_blocks);
  for (int i = 0; i < num_blocks; ++i) free_blocks[i] = (i * 37) % num_blocks;
  size_t next_block = 0;
  for (size_t s = 0; s < lengths.size(); ++s) {
    for (int i = 0; i < lengths[s] * qd; ++i) q[s].push_back(dist(rng));
    for (int i = 0; i < lengths[s] * kvd; ++i) k[s].push_back(dist(rng));
    for (int i = 0; i < lengths[s] * kvd; ++i) v[s].push_back(dist(rng));
    for (int b = 0; b < (lengths[s] + c.block_size - 1) / c.block_size; ++b) tables[s].push_back(free_blocks[next_block++]);
  }

  // Dense reference (double).
  const int group = c.num_heads / c.num_kv_heads;
  const double scale = 1.0 / std::sqrt(double(c.head_dim));
  auto reference = [&](size_t s, int pos, int h, int d) {
    std::vector<double> scores(static_cast<size_t>(pos) + 1);
    double mx = -1e300;
    for (int j = 0; j <= pos; ++j) {
      double dot = 0;
      for (int i = 0; i < c.head_dim; ++i) {
        dot += double{q[s][static_cast<size_t>(pos) * qd + h * c.head_dim + i]} *
               k[s][static_cast<size_t>(j) * kvd + (h / group) * c.head_dim + i];
      }
      scores[j] = dot * scale;
      mx = std::max(mx, scores[j]);
    }
    double sum = 0, out = 0;
    for (int j = 0; j <= pos; ++j) sum += std::exp(scores[j] - mx);
    for (int j = 0; j <= pos; ++j) {
      out += std::exp(scores[j] - mx) / sum * v[s][static_cast<size_t>(j) * kvd + (h / group) * c.head_dim + d];
    }
    return out;
  };

  // Runs every sequence in chunks of `chunk` tokens (all sequences in each step) and returns each
  // sequence's attention outputs, [len, qd].
  auto run = [&](int chunk) {
    std::vector<std::vector<float>> outs(lengths.size());
    std::vector<int> done(lengths.size(), 0);
    while (true) {
      std::vector<SequenceStep> steps;
      std::vector<size_t> which;
      for (size_t s = 0; s < lengths.size(); ++s) {
        if (done[s] == lengths[s]) continue;
        const int take = std::min(chunk, lengths[s] - done[s]);
        SequenceStep step;
        step.start_position = done[s];
        step.token_ids.assign(static_cast<size_t>(take), 0);
        step.block_table = tables[s];
        steps.push_back(step);
        which.push_back(s);
      }
      if (steps.empty()) break;
      auto plan_or = PlanBatch(steps, c.block_size, num_blocks, 1, 0);
      EXPECT_TRUE(plan_or.ok()) << plan_or.status();
      const BatchPlan& plan = *plan_or;
      std::vector<float> qb, kb, vb;
      for (size_t i = 0; i < which.size(); ++i) {
        const size_t s = which[i];
        const int take = static_cast<int>(steps[i].token_ids.size());
        qb.insert(qb.end(), q[s].begin() + static_cast<int64_t>(done[s]) * qd, q[s].begin() + static_cast<int64_t>(done[s] + take) * qd);
        kb.insert(kb.end(), k[s].begin() + static_cast<int64_t>(done[s]) * kvd, k[s].begin() + static_cast<int64_t>(done[s] + take) * kvd);
        vb.insert(vb.end(), v[s].begin() + static_cast<int64_t>(done[s]) * kvd, v[s].begin() + static_cast<int64_t>(done[s] + take) * kvd);
      }
      BatchView view{.num_tokens = plan.num_tokens, .num_seqs = plan.num_seqs, .block_size = plan.block_size,
                     .max_blocks_per_seq = plan.max_blocks_per_seq, .max_context_len = plan.max_context_len,
                     .num_logits = plan.num_logits(), .token_ids = plan.token_ids.data(),
                     .positions = plan.positions.data(), .token_seq = plan.token_seq.data(),
                     .slot_mapping = plan.slot_mapping.data(), .block_tables = plan.block_tables.data(),
                     .context_lens = plan.context_lens.data(), .logits_token_index = plan.logits_token_index.data()};
      backend.WriteKv(kb.data(), vb.data(), kvd, view, cache, layer);
      std::vector<float> out(static_cast<size_t>(plan.num_tokens) * qd, std::numeric_limits<float>::quiet_NaN());
      backend.PagedAttention(qb.data(), qd, view, cache, layer, c.num_heads, static_cast<float>(scale), out.data());
      for (size_t i = 0; i < which.size(); ++i) {
        const size_t s = which[i];
        const int begin = plan.seq_token_start[i], end = plan.seq_token_start[i + 1];
        outs[s].insert(outs[s].end(), out.begin() + static_cast<int64_t>(begin) * qd, out.begin() + static_cast<int64_t>(end) * qd);
        done[s] += end - begin;
      }
    }
    return outs;
  };

  const auto whole = run(1000);
  for (size_t s = 0; s < lengths.size(); ++s) {
    for (int pos = 0; pos < lengths[s]; ++pos)
      for (int h = 0; h < c.num_heads; ++h)
        for (int d = 0; d < c.head_dim; ++d) {
          const float got = whole[s][static_cast<size_t>(pos) * qd + h * c.head_dim + d];
          ASSERT_NEAR(got, reference(s, pos, h, d), 2e-5) << "seq " << s << " pos " << pos << " head " << h;
        }
  }
  for (int chunk : {1, 5, 16}) {
    const auto chunked = run(chunk);
    for (size_t s = 0; s < lengths.size(); ++s) {
      ASSERT_EQ(chunked[s].size(), whole[s].size());
      for (size_t i = 0; i < whole[s].size(); ++i) {
        ASSERT_EQ(std::bit_cast<uint32_t>(chunked[s][i]), std::bit_cast<uint32_t>(whole[s][i]))
            << "chunk " << chunk << " seq " << s << " element " << i;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, PagedAttentionTest,
                         ::testing::Values(Case{1, 4, 2, 16}, Case{16, 4, 2, 16}, Case{16, 9, 3, 64},
                                           Case{3, 2, 2, 17}, Case{16, 1, 1, 1}));

}  // namespace
}  // namespace tandem::backend
