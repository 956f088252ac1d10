// The wire conversions (worker.proto): sampling parameters round-trip, outputs carry errors and
// logprobs, KV events keep their hashes, the layout check names every differing field, and a
// RemotePrefill request is checked against the pools before any work.
#include "tandem/wire/convert.h"

#include "gtest/gtest.h"

namespace tandem::wire {
namespace {

TEST(WireConvertTest, SamplingParamsRoundTrip) {
  engine::SamplingParams s;
  s.n = 3;
  s.temperature = 0.7f;
  s.top_k = 40;
  s.top_p = 0.9f;
  s.min_p = 0.05f;
  s.repetition_penalty = 1.1f;
  s.presence_penalty = 0.5f;
  s.frequency_penalty = -0.5f;
  s.logit_bias = {{7, 2.0f}};
  s.seed = 1234;
  s.max_tokens = 99;
  s.min_tokens = 2;
  s.stop_token_ids = {5, 6};
  s.ignore_eos = true;
  s.logprobs = 3;
  const engine::SamplingParams back = FromProto(ToProto(s));
  EXPECT_EQ(back.n, 3);
  EXPECT_FLOAT_EQ(back.temperature, 0.7f);
  EXPECT_EQ(back.top_k, 40);
  EXPECT_FLOAT_EQ(back.top_p, 0.9f);
  EXPECT_FLOAT_EQ(back.min_p, 0.05f);
  EXPECT_FLOAT_EQ(back.repetition_penalty, 1.1f);
  EXPECT_FLOAT_EQ(back.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(back.frequency_penalty, -0.5f);
  ASSERT_EQ(back.logit_bias.size(), 1u);
  EXPECT_EQ(back.logit_bias[0].first, 7);
  EXPECT_EQ(back.seed, std::optional<uint64_t>(1234));
  EXPECT_EQ(back.max_tokens, 99);
  EXPECT_EQ(back.min_tokens, 2);
  EXPECT_EQ(back.stop_token_ids, (std::vector<int32_t>{5, 6}));
  EXPECT_TRUE(back.ignore_eos);
  EXPECT_EQ(back.logprobs, std::optional<int32_t>(3));
}

TEST(WireConvertTest, UnsetFieldsTakeTheEngineDefaults) {
  const engine::SamplingParams s = FromProto(v1::WorkerSamplingParams());
  EXPECT_EQ(s.n, 1);
  EXPECT_FLOAT_EQ(s.top_p, 1.0f);
  EXPECT_FLOAT_EQ(s.repetition_penalty, 1.0f);
  EXPECT_EQ(s.max_tokens, 16);
  EXPECT_FALSE(s.seed.has_value());
  EXPECT_FALSE(s.logprobs.has_value());
}

TEST(WireConvertTest, OutputsCarryTokensLogprobsAndErrors) {
  engine::RequestOutput o;
  o.request_id = "r";
  o.index = 1;
  o.new_token_ids = {10, 11};
  o.logprobs = {{10, -0.5f, {{10, -0.5f}, {12, -1.5f}}}, {11, -0.25f, {}}};
  o.finished = true;
  o.finish_reason = engine::FinishReason::kError;
  o.status = absl::UnavailableError("prefill worker down");
  o.num_prompt_tokens = 7;
  const v1::WorkerGenerateResponse r = ToProto(o);
  EXPECT_EQ(r.request_id(), "r");
  EXPECT_EQ(r.index(), 1);
  ASSERT_EQ(r.token_ids_size(), 2);
  ASSERT_EQ(r.logprobs_size(), 2);
  EXPECT_FLOAT_EQ(r.logprobs(0).logprob(), -0.5f);
  ASSERT_EQ(r.logprobs(0).top_size(), 2);
  EXPECT_EQ(r.logprobs(0).top(1).token(), 12);
  EXPECT_EQ(r.finish_reason(), v1::WORKER_FINISH_ERROR);
  EXPECT_EQ(r.error(), "prefill worker down");
  EXPECT_EQ(r.error_code(), static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_EQ(r.num_prompt_tokens(), 7);
  for (engine::FinishReason f :
       {engine::FinishReason::kNone, engine::FinishReason::kStop, engine::FinishReason::kStopString,
        engine::FinishReason::kLength, engine::FinishReason::kAborted, engine::FinishReason::kError,
        engine::FinishReason::kPrefillHandoff}) {
    EXPECT_EQ(FromProto(ToProto(f)), f);
  }
}

TEST(WireConvertTest, KvEventsKeepHashesAndTokens) {
  kvcache::KvEvent e;
  e.type = kvcache::KvEventType::kBlockStored;
  e.block_hashes = {111, 222};
  e.parent_hash = 99;
  e.has_parent = true;
  e.token_ids = {1, 2, 3, 4};
  e.block_size = 2;
  const v1::KvCacheEvent p = ToProto(e);
  EXPECT_EQ(p.type(), v1::KvCacheEvent::STORED);
  ASSERT_EQ(p.block_hashes_size(), 2);
  EXPECT_EQ(p.block_hashes(1), 222u);
  EXPECT_EQ(p.parent_hash(), 99u);
  EXPECT_TRUE(p.has_parent());
  EXPECT_EQ(p.token_ids_size(), 4);
  const kvcache::KvEvent back = FromProto(p);
  EXPECT_EQ(back.type, kvcache::KvEventType::kBlockStored);
  EXPECT_EQ(back.block_hashes, e.block_hashes);
  EXPECT_EQ(back.parent_hash, 99u);
  EXPECT_TRUE(back.has_parent);
  EXPECT_EQ(back.token_ids, e.token_ids);
  EXPECT_EQ(back.block_size, 2);
  e.type = kvcache::KvEventType::kAllCleared;
  EXPECT_EQ(ToProto(e).type(), v1::KvCacheEvent::ALL_CLEARED);
  EXPECT_EQ(FromProto(ToProto(e)).type, kvcache::KvEventType::kAllCleared);
  e.type = kvcache::KvEventType::kBlockRemoved;
  EXPECT_EQ(FromProto(ToProto(e)).type, kvcache::KvEventType::kBlockRemoved);
}

TEST(WireConvertTest, LayoutCheckNamesEveryDifference) {
  v1::KvLayout a;
  a.set_model("llama");
  a.set_dtype("float32");
  a.set_num_layers(2);
  a.set_num_kv_heads(2);
  a.set_head_dim(16);
  a.set_block_size(16);
  a.set_layout_version(kKvLayoutVersion);
  a.set_bytes_per_block(4096);
  EXPECT_TRUE(CheckLayoutCompatible(a, a, "peer").ok());
  v1::KvLayout b = a;
  b.set_block_size(8);
  b.set_bytes_per_block(2048);
  b.set_model("qwen");
  const absl::Status s = CheckLayoutCompatible(a, b, "10.0.0.2:9000");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  const std::string m(s.message());
  EXPECT_NE(m.find("10.0.0.2:9000"), std::string::npos) << m;
  EXPECT_NE(m.find("model llama here, qwen there"), std::string::npos) << m;
  EXPECT_NE(m.find("block_size 16 here, 8 there"), std::string::npos) << m;
  EXPECT_NE(m.find("bytes_per_block 4096 here, 2048 there"), std::string::npos) << m;
  EXPECT_EQ(m.find("head_dim"), std::string::npos) << m;

  // Whole workers: the layout, then the transport; tensor-parallel rank heads may differ.
  v1::WorkerInfo mine, theirs;
  *mine.mutable_layout() = a;
  mine.set_transport("ucx");
  theirs = mine;
  theirs.mutable_layout()->add_ranks()->add_kv_heads(0);
  theirs.mutable_layout()->add_ranks()->add_kv_heads(1);
  EXPECT_TRUE(CheckPeerCompatible(mine, theirs, "peer").ok());
  theirs.set_transport("nccl");
  const absl::Status t = CheckPeerCompatible(mine, theirs, "decode-1");
  EXPECT_EQ(t.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(t.message(), "worker decode-1 uses KV transport nccl, this worker ucx");
  *theirs.mutable_layout() = b;
  EXPECT_NE(CheckPeerCompatible(mine, theirs, "decode-1").message().find("model llama here"), std::string::npos);
  // The heads each rank holds, for planning writes: one rank of every head without tensor parallelism.
  const transfer::KvRankHeads one = KvRankHeadsOf(a);
  EXPECT_EQ(one.heads, (std::vector<std::vector<int>>{{0, 1}}));
  EXPECT_EQ(one.head_bytes, 4096u / 4);
  EXPECT_EQ(KvRankHeadsOf(mine.layout()).heads.size(), 1u);
  v1::KvLayout tp = a;
  tp.add_ranks()->add_kv_heads(1);
  tp.add_ranks()->add_kv_heads(0);
  EXPECT_EQ(KvRankHeadsOf(tp).heads, (std::vector<std::vector<int>>{{1}, {0}}));
}

// What a prefill worker checks of a RemotePrefill request (the fuzz target fuzz_worker_messages runs
// the same checks on arbitrary messages): a valid one passes; each bad field is named.
TEST(WireConvertTest, RemotePrefillRequestIsCheckedAgainstThePools) {
  const transfer::KvRankHeads local{{{0, 1, 2}}, 2048};
  v1::RemotePrefillRequest r;
  for (int t = 0; t < 20; ++t) r.add_prompt_token_ids(t + 1);
  r.add_dst_block_ids(5);
  r.add_dst_block_ids(9);
  v1::WorkerInfo* dest = r.mutable_destination();
  dest->set_num_kv_blocks(10);
  for (int l = 0; l < 2 * 2; ++l) dest->add_layer_regions("region");  // 2 layers x 2 ranks
  const transfer::KvRankHeads tp2{{{0, 1}, {2}}, 2048};
  EXPECT_TRUE(CheckRemotePrefillRequest(16, 2, local, r, tp2).ok());

  const auto message = [&](const v1::RemotePrefillRequest& req, const transfer::KvRankHeads& heads) {
    return std::string(CheckRemotePrefillRequest(16, 2, local, req, heads).message());
  };
  v1::RemotePrefillRequest bad = r;
  bad.add_dst_block_ids(1);
  EXPECT_EQ(message(bad, tp2), "dst_block_ids: expected 2 blocks for a 20-token prompt, found 3");
  bad = r;
  bad.set_dst_block_ids(1, 10);
  EXPECT_EQ(message(bad, tp2), "dst_block_ids: block 10 outside the decode pool of 10 blocks");
  bad = r;
  bad.set_num_cached_tokens(21);
  EXPECT_EQ(message(bad, tp2), "num_cached_tokens: expected 0..20, found 21");
  EXPECT_EQ(message(r, {{{0, 1, 2}}, 2048}), "destination: expected 2 layer regions (1 ranks x 2 layers), found 4");
  EXPECT_EQ(message(r, {{{0, 1}, {1}}, 2048}), "KV hand-off: no destination rank holds KV head 2");
}

}  // namespace
}  // namespace tandem::wire
