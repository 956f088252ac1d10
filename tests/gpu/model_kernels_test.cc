// tandem's own forward-pass kernels (kernels/elementwise, rope, norm/head_rmsnorm, sampling, attention's
// reference kernel, the decode GEMV) against the CPU backend's ops, the reference, on random inputs with awkward sizes
// (1, 17, 97 and 4099 tokens; head_dim 64 and 128; GQA 1, 4, 8; block size 16 and 1). The CPU runs in
// fp32 on the same bf16 values upcast; outputs are poisoned (NaN) first so an unwritten element fails.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "attention/reference_attention.cuh"
#include "elementwise/elementwise.cuh"
#include "gemm/bf16_gemv.cuh"
#include "gpu_test_util.h"
#include "norm/rmsnorm.cuh"
#include "rope/rope_kv.cuh"
#include "sampling/sample_rows.cuh"
#include "tandem/backend/batch.h"
#include "tandem/backend/cpu_backend.h"
#include "tandem/backend/sequence_runner.h"

namespace tandem {
namespace {

using bf16 = __nv_bfloat16;
using testing::DeviceBuffer;

std::vector<bf16> RandomBf16(size_t n, std::mt19937& rng, float scale = 1.f) {
  std::normal_distribution<float> dist(0.f, scale);
  std::vector<bf16> v(n);
  for (bf16& x : v) x = __float2bfloat16(dist(rng));
  return v;
}
std::vector<float> ToFloat(const std::vector<bf16>& v) {
  std::vector<float> f(v.size());
  for (size_t i = 0; i < v.size(); ++i) f[i] = __bfloat162float(v[i]);
  return f;
}
template <typename T>
void Upload(const DeviceBuffer& d, const std::vector<T>& h) {
  ASSERT_EQ(cudaMemcpy(d.as<void>(), h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
}
template <typename T>
std::vector<T> Download(const DeviceBuffer& d, size_t n) {
  std::vector<T> h(n);
  EXPECT_EQ(cudaMemcpy(h.data(), d.as<void>(), n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return h;
}
void Poison(const DeviceBuffer& d) { ASSERT_EQ(cudaMemset(d.as<void>(), 0xff, d.bytes()), cudaSuccess); }  // bf16 NaN

// Relative L2 error of `got` (bf16) against `want` (fp32), NaN never passes.
double RelError(const std::vector<bf16>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double g = __bfloat162float(got[i]);
    if (std::isnan(g)) return INFINITY;
    diff += (g - want[i]) * (g - want[i]);
    norm += double{want[i]} * want[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-30));
}

std::unique_ptr<backend::Backend> Cpu() { return std::move(backend::CreateCpuBackend({})).value(); }

class TokensTest : public ::testing::TestWithParam<int> {};

TEST_P(TokensTest, GatherSiluMulAndBias) {
  TANDEM_REQUIRE_GPU();
  const int n = GetParam(), dim = 4096 + 8, inter = 1536, vocab = 1000;
  std::mt19937 rng(n);
  auto table = RandomBf16(static_cast<size_t>(vocab) * dim, rng);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int32_t& id : ids) id = static_cast<int32_t>(rng() % vocab);
  DeviceBuffer d_table(table.size() * 2), d_ids(ids.size() * 4), d_out(static_cast<size_t>(n) * dim * 2);
  Upload(d_table, table);
  Upload(d_ids, ids);
  Poison(d_out);
  ASSERT_EQ(kernels::GatherRows(d_table.as<bf16>(), dim, d_ids.as<int32_t>(), n, d_out.as<bf16>(), nullptr), cudaSuccess);
  const auto got = Download<bf16>(d_out, static_cast<size_t>(n) * dim);
  for (int t = 0; t < n; ++t) {  // a copy: exact
    ASSERT_EQ(std::memcmp(&got[static_cast<size_t>(t) * dim], &table[static_cast<size_t>(ids[t]) * dim], dim * 2), 0)
        << "row " << t;
  }

  auto gate_up = RandomBf16(static_cast<size_t>(n) * 2 * inter, rng, 2.f);
  DeviceBuffer d_gu(gate_up.size() * 2), d_act(static_cast<size_t>(n) * inter * 2);
  Upload(d_gu, gate_up);
  Poison(d_act);
  ASSERT_EQ(kernels::SiluMul(d_gu.as<bf16>(), n, inter, d_act.as<bf16>(), nullptr), cudaSuccess);
  auto cpu = Cpu();
  const std::vector<float> gu_f = ToFloat(gate_up);
  std::vector<float> want(static_cast<size_t>(n) * inter);
  cpu->SiluMul(gu_f.data(), n, inter, want.data());
  EXPECT_LE(RelError(Download<bf16>(d_act, want.size()), want), 1e-2);

  // Bias on the first 1000 columns of rows of stride 1536 (the rest untouched).
  const int ld = inter, bdim = 1000;
  auto x = RandomBf16(static_cast<size_t>(n) * ld, rng);
  auto bias = RandomBf16(bdim, rng, 0.1f);
  DeviceBuffer d_x(x.size() * 2), d_bias(bias.size() * 2);
  Upload(d_x, x);
  Upload(d_bias, bias);
  ASSERT_EQ(kernels::AddBias(d_x.as<bf16>(), n, ld, bdim, d_bias.as<bf16>(), nullptr), cudaSuccess);
  std::vector<float> xf = ToFloat(x);
  const std::vector<float> bf = ToFloat(bias);
  cpu->AddBias(xf.data(), n, ld, bdim, bf.data());
  EXPECT_LE(RelError(Download<bf16>(d_x, xf.size()), xf), 4e-3);
}

TEST_P(TokensTest, ArgmaxIsTheLowestIndexOfTheMaximum) {
  TANDEM_REQUIRE_GPU();
  const int rows = GetParam(), cols = 128256;
  std::mt19937 rng(rows);
  std::uniform_real_distribution<float> u(-30.f, 30.f);
  std::vector<float> x(static_cast<size_t>(rows) * cols);
  for (float& v : x) v = u(rng);
  for (int r = 0; r < rows; ++r) {  // a tie at the maximum in every row: the lower index must win
    float* row = &x[static_cast<size_t>(r) * cols];
    const int a = static_cast<int>(rng() % cols), b = static_cast<int>(rng() % cols);
    row[a] = row[b] = 31.f + static_cast<float>(r % 3);
  }
  DeviceBuffer d_x(x.size() * 4), d_out(static_cast<size_t>(rows) * 4);
  DeviceBuffer d_params(static_cast<size_t>(rows) * sizeof(kernels::SampleRowParams));
  Upload(d_x, x);
  Upload(d_params, std::vector<kernels::SampleRowParams>(static_cast<size_t>(rows)));  // the plain argmax
  Poison(d_out);
  ASSERT_EQ(kernels::SampleRows(d_x.as<float>(), rows, cols, d_params.as<kernels::SampleRowParams>(),
                                d_out.as<int32_t>(), nullptr),
            cudaSuccess);
  const auto got = Download<int32_t>(d_out, static_cast<size_t>(rows));
  for (int r = 0; r < rows; ++r) {
    EXPECT_EQ(got[static_cast<size_t>(r)], backend::Argmax(&x[static_cast<size_t>(r) * cols], cols)) << "row " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, TokensTest, ::testing::Values(1, 17, 97, 4099));

// (tokens of the step, head_dim, GQA group, block size)
class AttentionPathTest : public ::testing::TestWithParam<std::tuple<int, int, int, int>> {};

// One step of two sequences: `n` new tokens after 40 cached ones in sequence 0, one decode token in
// sequence 1 (context 23). Head norm, rope + KV write, then attention, each against the CPU's ops.
TEST_P(AttentionPathTest, HeadNormRopeKvWriteAndAttentionMatchTheCpu) {
  TANDEM_REQUIRE_GPU();
  const auto [n0, hd, group, block] = GetParam();
  const int nkv = 2, nq = nkv * group, ld = (nq + 2 * nkv) * hd;
  std::mt19937 rng(n0 * 7 + hd + group * 3 + block);
  // Plan the step on the host as the runner does.
  const int cached0 = 40, ctx1 = 23;
  const int blocks0 = (cached0 + n0 + block - 1) / block, blocks1 = (ctx1 + block - 1) / block;
  std::vector<backend::SequenceStep> steps(2);
  for (int i = 0; i < n0; ++i) steps[0].token_ids.push_back(i % 50);
  steps[0].start_position = cached0;
  for (int b = 0; b < blocks0; ++b) steps[0].block_table.push_back(b);
  steps[1].token_ids = {7};
  steps[1].start_position = ctx1 - 1;
  for (int b = 0; b < blocks1; ++b) steps[1].block_table.push_back(blocks0 + b);
  const int num_blocks = blocks0 + blocks1;
  auto plan = backend::PlanBatch(steps, block, num_blocks, 100, 1 << 20);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const int n = plan->num_tokens;

  // The KV pools: random bf16 history everywhere (positions before this step's), fp32 copy for the CPU.
  const size_t pool_elems = static_cast<size_t>(num_blocks) * 2 * nkv * block * hd;
  auto pool = RandomBf16(pool_elems, rng);
  auto cpu = Cpu();
  backend::KvCacheSpec spec{1, nkv, hd, block, num_blocks};
  auto cache = backend::KvPool::Create(*cpu, spec);
  ASSERT_TRUE(cache.ok());
  const std::vector<float> pool_f = ToFloat(pool);
  std::memcpy((*cache)->LayerBase(0), pool_f.data(), pool_f.size() * 4);

  auto qkv = RandomBf16(static_cast<size_t>(n) * ld, rng, 1.5f);
  auto q_norm = RandomBf16(hd, rng, 0.5f), k_norm = RandomBf16(hd, rng, 0.5f);
  std::vector<float> inv_freq(static_cast<size_t>(hd / 2));
  for (int i = 0; i < hd / 2; ++i) inv_freq[static_cast<size_t>(i)] = std::pow(10000.f, -2.f * i / hd);

  DeviceBuffer d_qkv(qkv.size() * 2), d_qn(hd * 2), d_kn(hd * 2), d_freq(inv_freq.size() * 4), d_pool(pool_elems * 2),
      d_pos(static_cast<size_t>(n) * 4), d_seq(static_cast<size_t>(n) * 4), d_slots(static_cast<size_t>(n) * 8),
      d_tables(plan->block_tables.size() * 4), d_out(static_cast<size_t>(n) * nq * hd * 2);
  Upload(d_qkv, qkv);
  Upload(d_qn, q_norm);
  Upload(d_kn, k_norm);
  Upload(d_freq, inv_freq);
  Upload(d_pool, pool);
  Upload(d_pos, plan->positions);
  Upload(d_seq, plan->token_seq);
  Upload(d_slots, plan->slot_mapping);
  Upload(d_tables, plan->block_tables);
  Poison(d_out);

  // GPU: head norms, then rope + KV write, then attention.
  const float eps = 1e-6f;
  ASSERT_EQ(kernels::HeadRmsNorm(d_qkv.as<bf16>(), n, ld, nq, hd, d_qn.as<bf16>(), eps, nullptr), cudaSuccess);
  ASSERT_EQ(kernels::HeadRmsNorm(d_qkv.as<bf16>() + nq * hd, n, ld, nkv, hd, d_kn.as<bf16>(), eps, nullptr),
            cudaSuccess);
  const kernels::KvPoolLayout layout{nkv, block, hd};
  ASSERT_EQ(kernels::RopeAndWriteKv(d_qkv.as<bf16>(), n, ld, nq, d_pos.as<int32_t>(), d_freq.as<float>(),
                                    d_slots.as<int64_t>(), layout, d_pool.as<bf16>(), nullptr),
            cudaSuccess);
  const kernels::PagedBatchDevice batch{d_pos.as<int32_t>(), d_seq.as<int32_t>(), d_tables.as<int32_t>(),
                                        plan->max_blocks_per_seq};
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  ASSERT_EQ(kernels::ReferencePagedAttention(d_qkv.as<bf16>(), ld, n, nq, batch, layout, d_pool.as<bf16>(), scale,
                                             d_out.as<bf16>(), nullptr),
            cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

  // CPU: the same ops in fp32.
  std::vector<float> x = ToFloat(qkv);
  const std::vector<float> qn = ToFloat(q_norm), kn = ToFloat(k_norm);
  cpu->HeadRmsNorm(x.data(), n, ld, nq, hd, qn.data(), eps);
  cpu->HeadRmsNorm(x.data() + nq * hd, n, ld, nkv, hd, kn.data(), eps);
  std::vector<float> cos_sin(static_cast<size_t>(n) * hd);
  cpu->RotaryTable(plan->positions.data(), n, inv_freq.data(), hd, cos_sin.data());
  cpu->Rotary(x.data(), n, ld, nq, hd, cos_sin.data());
  cpu->Rotary(x.data() + nq * hd, n, ld, nkv, hd, cos_sin.data());
  backend::BatchView view;
  view.num_tokens = n;
  view.num_seqs = plan->num_seqs;
  view.block_size = block;
  view.max_blocks_per_seq = plan->max_blocks_per_seq;
  view.max_context_len = plan->max_context_len;
  view.token_ids = plan->token_ids.data();
  view.positions = plan->positions.data();
  view.token_seq = plan->token_seq.data();
  view.slot_mapping = plan->slot_mapping.data();
  view.block_tables = plan->block_tables.data();
  view.context_lens = plan->context_lens.data();
  cpu->WriteKv(x.data() + nq * hd, x.data() + (nq + nkv) * hd, ld, view, **cache, 0);
  std::vector<float> want(static_cast<size_t>(n) * nq * hd);
  cpu->PagedAttention(x.data(), ld, view, **cache, 0, nq, scale, want.data());

  const auto got_qkv = Download<bf16>(d_qkv, qkv.size());
  EXPECT_LE(RelError(got_qkv, x), 1e-2) << "q/k after head norm and rope";
  std::vector<float> want_pool(pool_elems);
  std::memcpy(want_pool.data(), (*cache)->LayerBase(0), pool_elems * 4);
  EXPECT_LE(RelError(Download<bf16>(d_pool, pool_elems), want_pool), 1e-2) << "KV pool after the write";
  EXPECT_LE(RelError(Download<bf16>(d_out, want.size()), want), 2e-2) << "attention output";
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionPathTest,
                         ::testing::Values(std::make_tuple(1, 64, 1, 16), std::make_tuple(17, 128, 4, 16),
                                           std::make_tuple(97, 64, 8, 1), std::make_tuple(97, 128, 1, 16),
                                           std::make_tuple(4099, 128, 4, 16), std::make_tuple(17, 16, 2, 16)));

// Both decode GEMVs (CUDA-core, m <= 8; tensor-core, m <= 16) against the CPU backend's MatMul on the
// same bf16 values: every m they take, widths that leave a partial block of rows (n % 4, n % 16) and
// depths that leave partial chunks, both output types; a misaligned or unsupported call is refused,
// not run. The tensor-core one gives a row of x the same bits whatever m is.
TEST(Bf16GemvTest, MatchesTheCpuMatMul) {
  TANDEM_REQUIRE_GPU();
  std::mt19937 rng(11);
  auto cpu = Cpu();
  auto gemv = [](bool tc, const DeviceBuffer& x, const DeviceBuffer& w, DeviceBuffer& out, bool fp32, int m, int n,
                 int k) {
    return tc ? kernels::Bf16GemvTc(x.as<bf16>(), w.as<bf16>(), out.as<void>(), fp32, m, n, k, nullptr)
              : kernels::Bf16Gemv(x.as<bf16>(), w.as<bf16>(), out.as<void>(), fp32, m, n, k, nullptr);
  };
  for (const auto& [n, k] : {std::make_pair(5, 8), std::make_pair(4099, 264), std::make_pair(1024, 4096),
                             std::make_pair(96, 14336), std::make_pair(23, 4104)}) {
    const std::vector<bf16> w = RandomBf16(static_cast<size_t>(n) * k, rng, 0.05f);
    const std::vector<float> wf = ToFloat(w);
    DeviceBuffer d_w(w.size() * sizeof(bf16));
    Upload(d_w, w);
    for (const bool tc : {false, true}) {
      std::vector<float> first_row;  // the tensor-core GEMV's fp32 row 0 at m = 1
      for (int m = 1; m <= (tc ? kernels::kBf16GemvTcMaxM : kernels::kBf16GemvMaxM); ++m) {
        SCOPED_TRACE(::testing::Message() << (tc ? "tensor-core" : "CUDA-core") << " m=" << m << " n=" << n
                                          << " k=" << k);
        std::mt19937 x_rng(static_cast<uint32_t>(m * 7919 + k));
        std::vector<bf16> x = RandomBf16(static_cast<size_t>(m) * k, x_rng);
        if (!first_row.empty()) {  // row 0 of x as at m = 1
          std::mt19937 row_rng(static_cast<uint32_t>(7919 + k));
          const std::vector<bf16> row = RandomBf16(static_cast<size_t>(k), row_rng);
          std::copy(row.begin(), row.end(), x.begin());
        }
        std::vector<float> want(static_cast<size_t>(m) * n);
        cpu->MatMul(ToFloat(x).data(), m, backend::Matrix{.data = wf.data(), .rows = n, .cols = k}, want.data());
        DeviceBuffer d_x(x.size() * sizeof(bf16)), d_out(want.size() * sizeof(float));
        Upload(d_x, x);
        Poison(d_out);
        ASSERT_EQ(gemv(tc, d_x, d_w, d_out, false, m, n, k), cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        EXPECT_LE(RelError(Download<bf16>(d_out, want.size()), want), 1e-2) << "bf16 out";
        Poison(d_out);
        ASSERT_EQ(gemv(tc, d_x, d_w, d_out, true, m, n, k), cudaSuccess);
        const std::vector<float> got = Download<float>(d_out, want.size());
        double diff = 0, norm = 0;
        for (size_t i = 0; i < want.size(); ++i) {
          diff += (got[i] - want[i]) * (got[i] - want[i]);
          norm += double{want[i]} * want[i];
        }
        EXPECT_LE(std::sqrt(diff / norm), 1e-5) << "fp32 out (same products, another summation order)";
        if (tc && m == 1) {
          first_row = got;
        } else if (tc) {
          EXPECT_TRUE(std::equal(first_row.begin(), first_row.end(), got.begin())) << "row 0 differs from m = 1";
        }
      }
    }
  }
  DeviceBuffer d(4096);
  for (const bool tc : {false, true}) {
    SCOPED_TRACE(tc ? "tensor-core" : "CUDA-core");
    EXPECT_EQ(tc ? kernels::Bf16GemvTc(d.as<bf16>() + 1, d.as<bf16>(), d.as<void>(), false, 1, 4, 8, nullptr)
                 : kernels::Bf16Gemv(d.as<bf16>() + 1, d.as<bf16>(), d.as<void>(), false, 1, 4, 8, nullptr),
              cudaErrorInvalidValue);  // x not 16-byte aligned
    const int above = (tc ? kernels::kBf16GemvTcMaxM : kernels::kBf16GemvMaxM) + 1;
    EXPECT_EQ(gemv(tc, d, d, d, false, above, 4, 8), cudaErrorInvalidValue);  // m above the maximum
    EXPECT_EQ(gemv(tc, d, d, d, false, 1, 4, 12), cudaErrorInvalidValue);     // k not a multiple of 8
  }
}

}  // namespace
}  // namespace tandem
