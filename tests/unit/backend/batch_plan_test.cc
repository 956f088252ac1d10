#include "tandem/backend/batch.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::backend {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(PlanBatch, FlattensMixedPrefillAndDecode) {
  // Sequence 0: prefill chunk of 3 tokens at positions 2..4 (blocks 7 then 3, block size 4).
  // Sequence 1: one decode token at position 4 (blocks 1, 0), no logits wanted.
  std::vector<SequenceStep> steps = {
      {.token_ids = {10, 11, 12}, .start_position = 2, .block_table = {7, 3}, .needs_logits = true},
      {.token_ids = {5}, .start_position = 4, .block_table = {1, 0, 6}, .needs_logits = false},
  };
  auto plan = PlanBatch(steps, 4, 8, 100, 0);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->num_tokens, 4);
  EXPECT_THAT(plan->token_ids, ElementsAre(10, 11, 12, 5));
  EXPECT_THAT(plan->positions, ElementsAre(2, 3, 4, 4));
  EXPECT_THAT(plan->token_seq, ElementsAre(0, 0, 0, 1));
  EXPECT_THAT(plan->slot_mapping, ElementsAre(7 * 4 + 2, 7 * 4 + 3, 3 * 4 + 0, 0 * 4 + 0));
  EXPECT_EQ(plan->max_blocks_per_seq, 2);
  EXPECT_THAT(plan->block_tables, ElementsAre(7, 3, 1, 0));
  EXPECT_THAT(plan->context_lens, ElementsAre(5, 5));
  EXPECT_THAT(plan->seq_token_start, ElementsAre(0, 3, 4));
  EXPECT_THAT(plan->logits_token_index, ElementsAre(2));
  EXPECT_THAT(plan->logits_seq, ElementsAre(0));
  EXPECT_EQ(plan->max_context_len, 5);
}

TEST(PlanBatch, RejectsBadInput) {
  auto err = [](std::vector<SequenceStep> steps) {
    auto plan = PlanBatch(steps, 4, 8, 100, 16);
    EXPECT_FALSE(plan.ok());
    return std::string(plan.status().message());
  };
  EXPECT_THAT(err({}), HasSubstr("at least one sequence"));
  EXPECT_THAT(err({{.token_ids = {}, .start_position = 0, .block_table = {0}}}), HasSubstr("no new tokens"));
  EXPECT_THAT(err({{.token_ids = {1}, .start_position = -1, .block_table = {0}}}), HasSubstr("negative"));
  EXPECT_THAT(err({{.token_ids = {100}, .start_position = 0, .block_table = {0}}}), HasSubstr("id 100"));
  EXPECT_THAT(err({{.token_ids = {1, 2}, .start_position = 3, .block_table = {0}}}), HasSubstr("needs 2 blocks"));
  EXPECT_THAT(err({{.token_ids = {1}, .start_position = 0, .block_table = {8}}}), HasSubstr("expected [0, 8)"));
  EXPECT_THAT(err({{.token_ids = {1}, .start_position = 16, .block_table = {0, 1, 2, 3, 4}}}),
              HasSubstr("more than the model's 16"));
}

}  // namespace
}  // namespace tandem::backend
