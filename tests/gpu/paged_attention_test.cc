// kernels::PagedAttention (FlashInfer decode and sm90 prefill) against the CPU backend's fp32
// PagedAttention on the same bf16 values upconverted: random q (inside fused qkv rows) and random
// pools with scattered block tables; outputs poisoned (NaN) before every run.
//
// Tolerance (bf16 output): for every (token, head) vector of head_dim values,
// ||got - ref||_2 <= 1.5e-2 * ||ref||_2 + 1e-3, and over the whole output ||got - ref|| / ||ref||
// <= 1e-2. The kernels round the output to bf16 (<= 2^-9 relative per element) and the sm90 kernel
// also rounds the softmax weights to bf16 before P @ V (~2^-9 relative per term, averaging out);
// together ~2e-3 relative, while a wrong block, head, position or mask moves a vector by O(1).
#include "attention/paged_attention.cuh"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "tandem/backend/backend.h"
#include "tandem/backend/batch.h"
#include "tandem/backend/cpu_backend.h"
#include "tandem/backend/kv_pool.h"

namespace tandem {
namespace {

using kernels::AttentionGeometry;
using kernels::AttentionKernel;
using kernels::PagedAttention;
using testing::DeviceBuffer;

constexpr int kMaxTokens = 1024;
constexpr int kMaxSeqs = 64;

struct SeqSpec {
  int cached;      // tokens already in the cache before this step
  int new_tokens;  // query rows this step (their K/V are in the cache too)
};

// One step: the sequences, their block tables and the CSR that PagedAttention::Plan takes.
struct Step {
  std::vector<SeqSpec> seqs;
  std::vector<std::vector<int32_t>> tables;
  std::vector<int32_t> qo_indptr, kv_indptr, kv_indices, last_page_len;
  int num_tokens = 0;
};

int CeilDiv(int a, int b) { return (a + b - 1) / b; }

int BlocksNeeded(const std::vector<SeqSpec>& seqs, int block_size) {
  int n = 0;
  for (const SeqSpec& s : seqs) n += CeilDiv(s.cached + s.new_tokens, block_size);
  return n;
}

// Hands each sequence distinct blocks, drawn from a random permutation of [0, num_blocks).
Step MakeStep(const std::vector<SeqSpec>& seqs, int block_size, int num_blocks, std::mt19937& rng) {
  Step step;
  step.seqs = seqs;
  std::vector<int32_t> ids(static_cast<size_t>(num_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  size_t next = 0;
  step.qo_indptr.push_back(0);
  step.kv_indptr.push_back(0);
  for (const SeqSpec& s : seqs) {
    const int kv_len = s.cached + s.new_tokens;
    const int blocks = CeilDiv(kv_len, block_size);
    std::vector<int32_t> table(ids.begin() + static_cast<int64_t>(next),
                               ids.begin() + static_cast<int64_t>(next) + blocks);
    next += static_cast<size_t>(blocks);
    step.kv_indices.insert(step.kv_indices.end(), table.begin(), table.end());
    step.tables.push_back(std::move(table));
    step.qo_indptr.push_back(step.qo_indptr.back() + s.new_tokens);
    step.kv_indptr.push_back(step.kv_indptr.back() + blocks);
    step.last_page_len.push_back(kv_len - (blocks - 1) * block_size);
  }
  step.num_tokens = step.qo_indptr.back();
  return step;
}

std::vector<__nv_bfloat16> RandomBf16(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<__nv_bfloat16> out(n);
  for (auto& v : out) v = __float2bfloat16(dist(rng));
  return out;
}

std::vector<float> ToFloat(const std::vector<__nv_bfloat16>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = __bfloat162float(v[i]);
  return out;
}

// Pools of every layer and the query rows, on the host (bf16) and on the device, plus the CPU
// backend's KvPool holding the same values in fp32.
class Problem {
 public:
  Problem(const AttentionGeometry& g, int num_layers, int num_blocks, int max_tokens, uint32_t seed)
      : g_(g), num_layers_(num_layers), num_blocks_(num_blocks), rng_(seed) {
    ld_q_ = (g.num_qo_heads + 2 * g.num_kv_heads) * g.head_dim;  // q sits in a fused qkv row
    pool_elems_ = size_t{2} * num_blocks * g.num_kv_heads * g.block_size * g.head_dim;
    q_ = RandomBf16(static_cast<size_t>(max_tokens) * ld_q_, rng_);
    for (int l = 0; l < num_layers; ++l) pools_.push_back(RandomBf16(pool_elems_, rng_));
  }

  // Uploads and builds the reference cache; false (with a gtest failure) on error.
  void Setup() {
    auto backend_or = backend::CreateCpuBackend({});
    ASSERT_TRUE(backend_or.ok()) << backend_or.status();
    backend_ = std::move(*backend_or);
    backend::KvCacheSpec spec{.num_layers = num_layers_,
                              .num_kv_heads = g_.num_kv_heads,
                              .head_dim = g_.head_dim,
                              .block_size = g_.block_size,
                              .num_blocks = num_blocks_};
    auto cache_or = backend::KvPool::Create(*backend_, spec);
    ASSERT_TRUE(cache_or.ok()) << cache_or.status();
    cache_ = std::move(*cache_or);
    for (int l = 0; l < num_layers_; ++l) {
      const std::vector<float> f =
          ToFloat(pools_[static_cast<size_t>(l)]);  // same [blocks, 2, H, B, D] layout
      std::copy(f.begin(), f.end(), cache_->LayerBase(l));
      d_pools_.push_back(std::make_unique<DeviceBuffer>(pool_elems_ * 2));
      ASSERT_TRUE(d_pools_.back()->ok());
      TANDEM_CUDA_ASSERT(cudaMemcpy(d_pools_.back()->as<void>(), pools_[static_cast<size_t>(l)].data(),
                                    pool_elems_ * 2, cudaMemcpyHostToDevice));
    }
    d_q_ = std::make_unique<DeviceBuffer>(q_.size() * 2);
    ASSERT_TRUE(d_q_->ok());
    TANDEM_CUDA_ASSERT(cudaMemcpy(d_q_->as<void>(), q_.data(), q_.size() * 2, cudaMemcpyHostToDevice));
  }

  // The CPU backend's attention of `step` on `layer`: [num_tokens, num_qo_heads * head_dim].
  std::vector<float> Reference(const Step& step, int layer) const {
    std::vector<backend::SequenceStep> steps;
    for (size_t s = 0; s < step.seqs.size(); ++s) {
      backend::SequenceStep ss;
      ss.token_ids.assign(static_cast<size_t>(step.seqs[s].new_tokens), 0);
      ss.start_position = step.seqs[s].cached;
      ss.block_table = step.tables[s];
      steps.push_back(std::move(ss));
    }
    auto plan_or =
        backend::PlanBatch(steps, g_.block_size, num_blocks_, /*vocab_size=*/1, /*max_positions=*/0);
    EXPECT_TRUE(plan_or.ok()) << plan_or.status();
    if (!plan_or.ok()) return {};
    const backend::BatchPlan& plan = *plan_or;
    backend::BatchView view{.num_tokens = plan.num_tokens,
                            .num_seqs = plan.num_seqs,
                            .block_size = plan.block_size,
                            .max_blocks_per_seq = plan.max_blocks_per_seq,
                            .max_context_len = plan.max_context_len,
                            .num_logits = plan.num_logits(),
                            .token_ids = plan.token_ids.data(),
                            .positions = plan.positions.data(),
                            .token_seq = plan.token_seq.data(),
                            .slot_mapping = plan.slot_mapping.data(),
                            .block_tables = plan.block_tables.data(),
                            .context_lens = plan.context_lens.data(),
                            .logits_token_index = plan.logits_token_index.data()};
    const std::vector<float> qf = ToFloat(
        std::vector<__nv_bfloat16>(q_.begin(), q_.begin() + static_cast<int64_t>(plan.num_tokens) * ld_q_));
    std::vector<float> out(static_cast<size_t>(plan.num_tokens) * g_.num_qo_heads * g_.head_dim);
    backend_->PagedAttention(qf.data(), ld_q_, view, *cache_, layer, g_.num_qo_heads, SmScale(), out.data());
    return out;
  }

  float SmScale() const { return 1.f / std::sqrt(static_cast<float>(g_.head_dim)); }
  const __nv_bfloat16* q() const { return d_q_->as<__nv_bfloat16>(); }
  const __nv_bfloat16* pool(int layer) const {
    return d_pools_[static_cast<size_t>(layer)]->as<__nv_bfloat16>();
  }
  int ld_q() const { return ld_q_; }
  int num_blocks() const { return num_blocks_; }
  std::mt19937& rng() { return rng_; }

 private:
  AttentionGeometry g_;
  int num_layers_, num_blocks_;
  std::mt19937 rng_;
  int ld_q_ = 0;
  size_t pool_elems_ = 0;
  std::vector<__nv_bfloat16> q_;
  std::vector<std::vector<__nv_bfloat16>> pools_;
  std::unique_ptr<backend::Backend> backend_;
  std::unique_ptr<backend::KvPool> cache_;
  std::vector<std::unique_ptr<DeviceBuffer>> d_pools_;
  std::unique_ptr<DeviceBuffer> d_q_;
};

// Compares a device bf16 output [tokens, heads * head_dim] with the reference, within the tolerance
// stated at the top, per (token, head) vector and over the whole output.
::testing::AssertionResult MatchesReference(const __nv_bfloat16* d_out, const std::vector<float>& want,
                                            const AttentionGeometry& geometry, const std::string& label) {
  const size_t head_dim = static_cast<size_t>(geometry.head_dim);
  const size_t heads = static_cast<size_t>(geometry.num_qo_heads);
  std::vector<__nv_bfloat16> got(want.size());
  const cudaError_t e = cudaMemcpy(got.data(), d_out, got.size() * 2, cudaMemcpyDeviceToHost);
  if (e != cudaSuccess)
    return ::testing::AssertionFailure() << label << ": cudaMemcpy: " << cudaGetErrorString(e);
  double err2_total = 0, ref2_total = 0, worst_rel = 0;
  size_t bad = 0, first_bad = 0;
  for (size_t v = 0; v < want.size() / head_dim; ++v) {
    double err2 = 0, ref2 = 0;
    for (size_t i = v * head_dim; i < (v + 1) * head_dim; ++i) {
      const float g = __bfloat162float(got[i]);
      if (std::isnan(g)) {
        return ::testing::AssertionFailure() << label << ": token " << v / heads << " head " << v % heads
                                             << " element " << i % head_dim << " not written (NaN)";
      }
      err2 += (double{g} - want[i]) * (double{g} - want[i]);
      ref2 += double{want[i]} * want[i];
    }
    err2_total += err2;
    ref2_total += ref2;
    worst_rel = std::max(worst_rel, std::sqrt(err2 / std::max(ref2, 1e-30)));
    if (std::sqrt(err2) > 1.5e-2 * std::sqrt(ref2) + 1e-3) {
      if (bad++ == 0) first_bad = v;
    }
  }
  const double rel_l2 = std::sqrt(err2_total / std::max(ref2_total, 1e-30));
  if (bad > 0 || rel_l2 > 1e-2) {
    ::testing::AssertionResult r = ::testing::AssertionFailure();
    r << label << ": " << bad << " of " << want.size() / head_dim
      << " (token, head) vectors outside tolerance, worst relative error " << worst_rel
      << ", whole-output relative L2 " << rel_l2;
    if (bad > 0) {
      const size_t i = first_bad * head_dim;
      r << "; first: token " << first_bad / heads << " head " << first_bad % heads << ", element 0 got "
        << __bfloat162float(got[i]) << " want " << want[i];
    }
    return r;
  }
  return ::testing::AssertionSuccess();
}

struct GeometryParam {
  AttentionGeometry g;
};

std::string GeometryName(const ::testing::TestParamInfo<GeometryParam>& info) {
  const AttentionGeometry& g = info.param.g;
  std::ostringstream os;
  os << "q" << g.num_qo_heads << "_kv" << g.num_kv_heads << "_d" << g.head_dim << "_b" << g.block_size;
  return os.str();
}

class PagedAttentionGpuTest : public ::testing::TestWithParam<GeometryParam> {
 protected:
  // Plans and runs `seqs` on `layers` pools with one plan, checking each layer against the reference.
  // Decode steps run tandem's kernel, or FlashInfer's with expect_kernel kDecode.
  void CheckStep(const std::vector<SeqSpec>& seqs, int num_layers, AttentionKernel expect_kernel) {
    TANDEM_REQUIRE_GPU();
    const AttentionGeometry g = GetParam().g;
    const int num_blocks = BlocksNeeded(seqs, g.block_size) + 7;  // spare blocks hold noise, never read
    Problem problem(g, num_layers, num_blocks, kMaxTokens, 1234u + static_cast<uint32_t>(seqs.size()));
    ASSERT_NO_FATAL_FAILURE(problem.Setup());
    const Step step = MakeStep(seqs, g.block_size, num_blocks, problem.rng());

    std::unique_ptr<PagedAttention> attn;
    ASSERT_EQ(PagedAttention::Create(g, kMaxTokens, kMaxSeqs, num_blocks, &attn), "");
    attn->set_flashinfer_decode(expect_kernel == AttentionKernel::kDecode);
    cudaStream_t stream = nullptr;
    TANDEM_CUDA_ASSERT(cudaStreamCreate(&stream));
    ASSERT_EQ(
        attn->Plan(step.qo_indptr.data(), step.kv_indptr.data(), step.kv_indices.data(),
                   step.last_page_len.data(), static_cast<int>(seqs.size()), /*for_graph=*/false, stream),
        "");
    EXPECT_EQ(attn->planned_kernel(), expect_kernel) << kernels::AttentionKernelName(attn->planned_kernel());
    EXPECT_EQ(attn->planned_num_tokens(), step.num_tokens);

    const size_t out_elems = static_cast<size_t>(step.num_tokens) * g.num_qo_heads * g.head_dim;
    for (int layer = 0; layer < num_layers; ++layer) {
      DeviceBuffer out(out_elems * 2);
      ASSERT_TRUE(out.ok());
      TANDEM_CUDA_ASSERT(cudaMemsetAsync(out.as<void>(), 0xFF, out_elems * 2, stream));  // poison: NaN
      ASSERT_EQ(attn->Run(problem.q(), problem.ld_q(), problem.pool(layer), out.as<__nv_bfloat16>(),
                          problem.SmScale(), stream),
                "");
      TANDEM_CUDA_ASSERT(cudaStreamSynchronize(stream));
      EXPECT_TRUE(MatchesReference(out.as<__nv_bfloat16>(), problem.Reference(step, layer), g,
                                   "layer " + std::to_string(layer)));
    }
    TANDEM_CUDA_ASSERT(cudaStreamDestroy(stream));
  }

  // A decode step through both decode kernels.
  void CheckDecode(const std::vector<SeqSpec>& seqs, int num_layers) {
    for (const AttentionKernel kernel : {AttentionKernel::kDecodeMma, AttentionKernel::kDecode}) {
      SCOPED_TRACE(kernels::AttentionKernelName(kernel));
      CheckStep(seqs, num_layers, kernel);
    }
  }
};

TEST_P(PagedAttentionGpuTest, DecodeBatch) { CheckDecode({{0, 1}, {16, 1}, {96, 1}, {4098, 1}, {31, 1}}, 1); }

TEST_P(PagedAttentionGpuTest, DecodeOneLongSequence) {
  // Split over many CTAs (tandem's kernel: one wave of them), ending mid-tile and mid-block.
  CheckDecode({{9000, 1}}, 1);
}

TEST_P(PagedAttentionGpuTest, DecodeLargeBatch) {
  // Enough sequences that the decode planner may stop splitting the KV (batch * kv heads >= grid).
  std::mt19937 rng(99);
  std::uniform_int_distribution<int> len(0, 700);
  std::vector<SeqSpec> seqs;
  for (int i = 0; i < kMaxSeqs; ++i) seqs.push_back({len(rng), 1});
  CheckDecode(seqs, 1);
}

TEST_P(PagedAttentionGpuTest, PrefillChunkOnCachedTokens) {
  CheckStep({{80, 17}}, 1, AttentionKernel::kPrefillSm90);
}

TEST_P(PagedAttentionGpuTest, PrefillFromZero) { CheckStep({{0, 97}}, 1, AttentionKernel::kPrefillSm90); }

TEST_P(PagedAttentionGpuTest, PrefillAndDecodeMixed) {
  // Several query tiles (300 rows), a chunk on a cache that ends mid-block, decode rows (short and
  // long contexts) and a one-token prompt, in one step.
  CheckStep({{0, 97}, {80, 17}, {32, 1}, {20, 300}, {4098, 1}, {0, 1}}, 1, AttentionKernel::kPrefillSm90);
}

TEST_P(PagedAttentionGpuTest, OnePlanTwoLayers) {
  CheckStep({{0, 97}, {80, 17}, {4098, 1}}, 2, AttentionKernel::kPrefillSm90);
  CheckDecode({{0, 1}, {16, 1}, {96, 1}, {4098, 1}}, 2);
}

// A for_graph decode plan: capture Run once, then replay after re-planning the same number of
// sequences with other context lengths and other block tables; both decode kernels.
TEST_P(PagedAttentionGpuTest, DecodeCapturedInCudaGraphAndReplayedAfterReplan) {
  TANDEM_REQUIRE_GPU();
  const auto check = [&](bool flashinfer) {
    const AttentionGeometry g = GetParam().g;
    const std::vector<SeqSpec> first = {{0, 1}, {16, 1}, {96, 1}, {4098, 1}};
    const std::vector<SeqSpec> second = {{4000, 1}, {1, 1}, {299, 1}, {15, 1}};
    const int num_blocks = std::max(BlocksNeeded(first, g.block_size), BlocksNeeded(second, g.block_size)) + 7;
    Problem problem(g, 1, num_blocks, kMaxTokens, 4321u);
    ASSERT_NO_FATAL_FAILURE(problem.Setup());
    const Step step1 = MakeStep(first, g.block_size, num_blocks, problem.rng());
    const Step step2 = MakeStep(second, g.block_size, num_blocks, problem.rng());
    const int n = static_cast<int>(first.size());
    const size_t out_elems = static_cast<size_t>(n) * g.num_qo_heads * g.head_dim;

    std::unique_ptr<PagedAttention> attn;
    ASSERT_EQ(PagedAttention::Create(g, kMaxTokens, kMaxSeqs, num_blocks, &attn), "");
    attn->set_flashinfer_decode(flashinfer);
    cudaStream_t stream = nullptr;
    TANDEM_CUDA_ASSERT(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    DeviceBuffer out(out_elems * 2);
    ASSERT_TRUE(out.ok());

    ASSERT_EQ(attn->Plan(step1.qo_indptr.data(), step1.kv_indptr.data(), step1.kv_indices.data(),
                         step1.last_page_len.data(), n, /*for_graph=*/true, stream),
              "");
    ASSERT_EQ(attn->planned_kernel(), flashinfer ? AttentionKernel::kDecode : AttentionKernel::kDecodeMma);
    TANDEM_CUDA_ASSERT(cudaStreamSynchronize(stream));

    cudaGraph_t graph = nullptr;
    TANDEM_CUDA_ASSERT(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    const std::string run_err = attn->Run(problem.q(), problem.ld_q(), problem.pool(0), out.as<__nv_bfloat16>(),
                                          problem.SmScale(), stream);
    TANDEM_CUDA_ASSERT(cudaStreamEndCapture(stream, &graph));
    ASSERT_EQ(run_err, "");
    cudaGraphExec_t exec = nullptr;
    TANDEM_CUDA_ASSERT(cudaGraphInstantiate(&exec, graph, 0));

    TANDEM_CUDA_ASSERT(cudaMemsetAsync(out.as<void>(), 0xFF, out_elems * 2, stream));
    TANDEM_CUDA_ASSERT(cudaGraphLaunch(exec, stream));
    TANDEM_CUDA_ASSERT(cudaStreamSynchronize(stream));
    EXPECT_TRUE(MatchesReference(out.as<__nv_bfloat16>(), problem.Reference(step1, 0), g, "first plan"));

    ASSERT_EQ(attn->Plan(step2.qo_indptr.data(), step2.kv_indptr.data(), step2.kv_indices.data(),
                         step2.last_page_len.data(), n, /*for_graph=*/true, stream),
              "");
    TANDEM_CUDA_ASSERT(cudaMemsetAsync(out.as<void>(), 0xFF, out_elems * 2, stream));
    TANDEM_CUDA_ASSERT(cudaGraphLaunch(exec, stream));
    TANDEM_CUDA_ASSERT(cudaStreamSynchronize(stream));
    EXPECT_TRUE(
        MatchesReference(out.as<__nv_bfloat16>(), problem.Reference(step2, 0), g, "replayed after re-plan"));

    TANDEM_CUDA_ASSERT(cudaGraphExecDestroy(exec));
    TANDEM_CUDA_ASSERT(cudaGraphDestroy(graph));
    TANDEM_CUDA_ASSERT(cudaStreamDestroy(stream));
  };
  for (const bool flashinfer : {false, true}) {
    SCOPED_TRACE(flashinfer ? "FlashInfer" : "tandem");
    check(flashinfer);
  }
}

INSTANTIATE_TEST_SUITE_P(Geometries, PagedAttentionGpuTest,
                         ::testing::Values(GeometryParam{{8, 8, 128, 16}},   // GQA 1
                                           GeometryParam{{4, 2, 64, 16}},    // GQA 2
                                           GeometryParam{{9, 3, 64, 16}},    // GQA 3: SmolLM2-135M
                                           GeometryParam{{32, 8, 128, 16}},  // GQA 4: Llama-3-8B
                                           GeometryParam{{16, 2, 128, 16}},  // GQA 8
                                           GeometryParam{{9, 3, 64, 1}},     // block size 1
                                           GeometryParam{{32, 8, 128, 1}}),
                         GeometryName);

// Geometry checks happen before any device call, so these run without a GPU too.
TEST(PagedAttentionCreateTest, RejectsUnsupportedGeometry) {
  std::unique_ptr<PagedAttention> attn;
  EXPECT_NE(PagedAttention::Create({10, 2, 128, 16}, 64, 4, 64, &attn).find("group size"), std::string::npos);
  EXPECT_NE(PagedAttention::Create({8, 3, 128, 16}, 64, 4, 64, &attn).find("multiple"), std::string::npos);
  EXPECT_NE(PagedAttention::Create({8, 8, 96, 16}, 64, 4, 64, &attn).find("head_dim 96"), std::string::npos);
  EXPECT_NE(PagedAttention::Create({8, 8, 128, 0}, 64, 4, 64, &attn).find("block_size"), std::string::npos);
  EXPECT_NE(PagedAttention::Create({8, 8, 128, 16}, 1 << 20, 4, 64, &attn).find("exceeds 4096"),
            std::string::npos);
  EXPECT_EQ(attn, nullptr);
}

TEST(PagedAttentionPlanTest, RejectsBadSteps) {
  TANDEM_REQUIRE_GPU();
  std::unique_ptr<PagedAttention> attn;
  ASSERT_EQ(PagedAttention::Create({8, 2, 128, 16}, 64, 4, 64, &attn), "");
  DeviceBuffer buf(1 << 20);
  const auto* q = buf.as<__nv_bfloat16>();
  EXPECT_NE(attn->Run(q, 8 * 128, q, buf.as<__nv_bfloat16>(), 1.f, nullptr).find("no successful Plan"),
            std::string::npos);

  const int32_t qo[] = {0, 1, 3}, kv[] = {0, 1, 3}, idx[] = {5, 6, 7}, last_ok[] = {4, 16},
                last_zero[] = {4, 0};
  EXPECT_NE(attn->Plan(qo, kv, idx, last_zero, 2, false, nullptr).find("kv_last_page_len"),
            std::string::npos);
  EXPECT_NE(attn->Plan(qo, kv, idx, last_ok, 5, false, nullptr).find("num_seqs"), std::string::npos);
  EXPECT_NE(attn->Plan(qo, kv, idx, last_ok, 2, /*for_graph=*/true, nullptr).find("for_graph"),
            std::string::npos);
  const int32_t qo_long[] = {0, 1, 40};  // 39 rows on a 16-token sequence
  const int32_t last_short[] = {4, 16 - 15};
  EXPECT_NE(attn->Plan(qo_long, kv, idx, last_short, 2, false, nullptr).find("qo_len <= kv_len"),
            std::string::npos);
  ASSERT_EQ(attn->Plan(qo, kv, idx, last_ok, 2, false, nullptr), "");
  EXPECT_EQ(attn->planned_kernel(), AttentionKernel::kPrefillSm90);
  EXPECT_NE(attn->Run(q, 8 * 128 + 4, q, buf.as<__nv_bfloat16>(), 1.f, nullptr).find("ld_q"),
            std::string::npos);
  TANDEM_CUDA_ASSERT(cudaDeviceSynchronize());
}

}  // namespace
}  // namespace tandem
