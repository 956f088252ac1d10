#include "tandem/backend/cuda_gemm.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "gemm/bf16_gemv.cuh"
#include "tandem/core/logging.h"
#include "tandem/core/status.h"

namespace tandem::backend::cuda {
namespace {

// cublasGetStatusName lives in libcublas, which tandem does not otherwise need.
const char* StatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "unknown cublasStatus_t";
}

absl::Status LtStatus(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("cuBLASLt: ", what, ": ", StatusName(s), " (", static_cast<int>(s), ")"));
}

// How much faster than cuBLASLt's best the GEMV must be to replace it (Tune).
constexpr float kGemvMargin = 1.05f;

// One of tandem's GEMVs (kernels/gemm/bf16_gemv.cuh): the tensor-core one or the CUDA-core one.
cudaError_t Gemv(bool tensor_core, const __nv_bfloat16* x, const __nv_bfloat16* w, void* out, bool out_fp32, int m,
                 int n, int k, cudaStream_t stream) {
  return tensor_core ? kernels::Bf16GemvTc(x, w, out, out_fp32, m, n, k, stream)
                     : kernels::Bf16Gemv(x, w, out, out_fp32, m, n, k, stream);
}

}  // namespace

#define TANDEM_LT_CHECK(expr) TANDEM_RETURN_IF_ERROR(LtStatus((expr), #expr))

absl::StatusOr<std::unique_ptr<CublasLtGemm>> CublasLtGemm::Create(size_t workspace_bytes) {
  std::unique_ptr<CublasLtGemm> gemm(new CublasLtGemm());
  TANDEM_LT_CHECK(cublasLtCreate(&gemm->handle_));
  TANDEM_ASSIGN_OR_RETURN(gemm->workspace_, DeviceMemory::Allocate(workspace_bytes));
  TANDEM_RETURN_IF_ERROR(gemm->timing_start_.Create(/*timing=*/true));
  TANDEM_RETURN_IF_ERROR(gemm->timing_stop_.Create(/*timing=*/true));
  return gemm;
}

void CublasLtGemm::Destroy(Plan& plan) {
  cublasLtMatrixLayoutDestroy(plan.a);
  cublasLtMatrixLayoutDestroy(plan.b);
  cublasLtMatrixLayoutDestroy(plan.c);
  cublasLtMatmulDescDestroy(plan.desc);
  plan = Plan{};
}

CublasLtGemm::~CublasLtGemm() {
  for (auto& [key, plan] : plans_) Destroy(plan);
  if (handle_ != nullptr) cublasLtDestroy(handle_);
}

absl::StatusOr<CublasLtGemm::Plan> CublasLtGemm::Layouts(int m, int n, int k, bool out_fp32) {
  // Column-major view: C^T [n, m] = op(A) [n, k] * B [k, m] with A = W stored [k, n] (ld k), transposed,
  // and B = x stored [k, m] (ld k); C = out stored [n, m] (ld n), i.e. row-major [m, n].
  Plan plan;
  absl::Status made = [&]() -> absl::Status {
    TANDEM_LT_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
    TANDEM_LT_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a)));
    TANDEM_LT_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof(trans_b)));
    TANDEM_LT_CHECK(cublasLtMatrixLayoutCreate(&plan.a, CUDA_R_16BF, k, n, k));
    TANDEM_LT_CHECK(cublasLtMatrixLayoutCreate(&plan.b, CUDA_R_16BF, k, m, k));
    TANDEM_LT_CHECK(cublasLtMatrixLayoutCreate(&plan.c, out_fp32 ? CUDA_R_32F : CUDA_R_16BF, n, m, n));
    return absl::OkStatus();
  }();
  if (!made.ok()) {
    Destroy(plan);
    return made;
  }
  return plan;
}

absl::StatusOr<CublasLtGemm::Plan> CublasLtGemm::NewPlan(
    int m, int n, int k, bool out_fp32, int count, std::vector<cublasLtMatmulHeuristicResult_t>* candidates) {
  TANDEM_ASSIGN_OR_RETURN(Plan plan, Layouts(m, n, k, out_fp32));
  absl::Status made = [&]() -> absl::Status {
    cublasLtMatmulPreference_t pref = nullptr;
    TANDEM_LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const size_t ws = workspace_->size();
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
    candidates->assign(static_cast<size_t>(count), cublasLtMatmulHeuristicResult_t{});
    int found = 0;
    const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(handle_, plan.desc, plan.a, plan.b, plan.c,
                                                             plan.c, pref, count, candidates->data(), &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (hs != CUBLAS_STATUS_SUCCESS || found == 0) {
      return absl::InternalError(absl::StrCat("cuBLASLt: no algorithm for bf16 GEMM m=", m, " n=", n,
                                              " k=", k, out_fp32 ? " (fp32 out)" : " (bf16 out)", ": ",
                                              StatusName(hs)));
    }
    candidates->resize(static_cast<size_t>(found));
    plan.algo = candidates->front().algo;
    return absl::OkStatus();
  }();
  if (!made.ok()) {
    Destroy(plan);
    return made;
  }
  return plan;
}

template <typename Run>
absl::StatusOr<std::optional<float>> CublasLtGemm::TimeRuns(Run&& run, size_t reps, cudaStream_t stream) {
  if (!run(size_t{0})) return std::optional<float>();
  cudaEventRecord(timing_start_.get(), stream);
  for (size_t r = 1; r <= reps; ++r) run(r);
  cudaEventRecord(timing_stop_.get(), stream);
  if (const cudaError_t e = cudaEventSynchronize(timing_stop_.get()); e != cudaSuccess) {
    return CudaStatus(e, "cudaEventSynchronize (GEMM timing)", __FILE__, __LINE__);
  }
  float ms = 0;
  cudaEventElapsedTime(&ms, timing_start_.get(), timing_stop_.get());
  return std::optional<float>(ms);
}

absl::StatusOr<cublasLtMatmulAlgo_t> CublasLtGemm::InvariantAlgo(const __nv_bfloat16* w, bool out_fp32, int n,
                                                                 int k, cudaStream_t stream) {
  // cuBLASLt's candidates for a prefill-sized m and for m = 1, those without split-K whose rows come out
  // the same at m = 1 and 17 as inside one GEMM of `rows` rows; of those, the fastest at m = 1 (decode)
  // among the ones within kLargeMargin of the fastest at `large` rows (prefill).
  constexpr int kCandidates = 16, kPart = 17, kReps = 5;
  constexpr float kLargeMargin = 1.15f;
  const int rows = std::min(n, 128);
  const size_t row_bytes = static_cast<size_t>(n) * (out_fp32 ? 4 : 2);
  const int large = static_cast<int>(
      std::clamp<size_t>((size_t{256} << 20) / row_bytes, size_t{1}, static_cast<size_t>(std::min(n, 2048))));
  std::vector<cublasLtMatmulHeuristicResult_t> candidates;
  for (int m : {4096, 1}) {
    std::vector<cublasLtMatmulHeuristicResult_t> found;
    TANDEM_ASSIGN_OR_RETURN(Plan probe, NewPlan(m, n, k, out_fp32, kCandidates, &found));
    Destroy(probe);
    candidates.insert(candidates.end(), found.begin(), found.end());
  }
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<DeviceMemory> out,
                          DeviceMemory::Allocate(row_bytes * static_cast<size_t>(std::max(rows, large))));
  std::vector<uint8_t> whole(row_bytes * rows), part(row_bytes * kPart);
  const float alpha = 1.0f, beta = 0.0f;
  // Whether the algorithm runs the plan's shape with this GEMM's workspace.
  auto supported = [&](const Plan& plan, const cublasLtMatmulAlgo_t& algo) {
    cublasLtMatmulHeuristicResult_t result{};
    return cublasLtMatmulAlgoCheck(handle_, plan.desc, plan.a, plan.b, plan.c, plan.c, &algo, &result) ==
               CUBLAS_STATUS_SUCCESS &&
           result.workspaceSize <= workspace_->size();
  };
  // The plan's m rows of x = w's rows from `first` into `out`; false when cuBLASLt refuses.
  auto matmul = [&](const Plan& plan, const cublasLtMatmulAlgo_t& algo, int first) {
    return cublasLtMatmul(handle_, plan.desc, &alpha, w, plan.a, w + static_cast<int64_t>(first) * k, plan.b,
                          &beta, out->data(), plan.c, out->data(), plan.c, &algo, workspace_->data(),
                          workspace_->size(), stream) == CUBLAS_STATUS_SUCCESS;
  };
  // One run of m rows from `first`, copied to `host`; false when the algorithm cannot run the shape.
  auto run = [&](const cublasLtMatmulAlgo_t& algo, int m, int first,
                 std::vector<uint8_t>* host) -> absl::StatusOr<bool> {
    TANDEM_ASSIGN_OR_RETURN(Plan plan, Layouts(m, n, k, out_fp32));
    const bool ran = supported(plan, algo) && matmul(plan, algo, first);
    Destroy(plan);
    if (!ran) return false;
    TANDEM_CUDA_CHECK(
        cudaMemcpyAsync(host->data(), out->data(), row_bytes * m, cudaMemcpyDeviceToHost, stream));
    TANDEM_CUDA_CHECK(cudaStreamSynchronize(stream));
    return true;
  };
  // Milliseconds of kReps runs of m rows (nullopt: the algorithm cannot run the shape).
  auto time_at = [&](const cublasLtMatmulAlgo_t& algo, int m) -> absl::StatusOr<std::optional<float>> {
    TANDEM_ASSIGN_OR_RETURN(Plan plan, Layouts(m, n, k, out_fp32));
    absl::StatusOr<std::optional<float>> ms =
        TimeRuns([&](size_t r) { return (r > 0 || supported(plan, algo)) && matmul(plan, algo, 0); }, kReps, stream);
    Destroy(plan);
    return ms;
  };
  struct Passed {
    cublasLtMatmulAlgo_t algo;
    float one_ms, large_ms;
  };
  std::vector<Passed> passed;
  for (const cublasLtMatmulHeuristicResult_t& candidate : candidates) {
    int32_t split_k = 1;
    size_t written = 0;
    cublasLtMatmulAlgoConfigGetAttribute(&candidate.algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &split_k,
                                         sizeof(split_k), &written);
    if (split_k > 1) continue;
    TANDEM_ASSIGN_OR_RETURN(bool ran, run(candidate.algo, rows, 0, &whole));
    bool same = ran;
    for (const auto& [m, first] : {std::pair{1, 0}, std::pair{1, rows / 2}, std::pair{1, rows - 1},
                                   std::pair{std::min(kPart, rows - 3), std::min(3, rows - 1)}}) {
      if (!same || m < 1) continue;
      TANDEM_ASSIGN_OR_RETURN(ran, run(candidate.algo, m, first, &part));
      same = ran && std::equal(part.begin(), part.begin() + static_cast<int64_t>(row_bytes) * m,
                               whole.begin() + static_cast<int64_t>(row_bytes) * first);
    }
    if (!same) continue;
    TANDEM_ASSIGN_OR_RETURN(const std::optional<float> one_ms, time_at(candidate.algo, 1));
    TANDEM_ASSIGN_OR_RETURN(const std::optional<float> large_ms, time_at(candidate.algo, large));
    if (one_ms.has_value() && large_ms.has_value()) passed.push_back({candidate.algo, *one_ms, *large_ms});
  }
  if (passed.empty()) {
    return absl::InternalError(
        absl::StrCat("cuBLASLt: none of ", candidates.size(),
                     " candidate algorithms gives rows that do not depend on m for bf16 GEMM n=", n, " k=", k,
                     "; engine.batch_invariant cannot run this model"));
  }
  float best_large = passed.front().large_ms;
  for (const Passed& p : passed) best_large = std::min(best_large, p.large_ms);
  const Passed* chosen = nullptr;
  for (const Passed& p : passed) {
    if (p.large_ms <= best_large * kLargeMargin && (chosen == nullptr || p.one_ms < chosen->one_ms))
      chosen = &p;
  }
  TLOG_INFO(
      "GEMM n={} k={}{}: batch-invariant cuBLASLt algorithm: {} of {} candidates pass; chosen {:.1f} us at "
      "m=1, {:.1f} us at m={} (fastest there {:.1f} us)",
      n, k, out_fp32 ? " (fp32 out)" : "", passed.size(), candidates.size(), chosen->one_ms * 1000 / kReps,
      chosen->large_ms * 1000 / kReps, large, best_large * 1000 / kReps);
  return chosen->algo;
}

absl::StatusOr<const CublasLtGemm::Plan*> CublasLtGemm::GetPlan(int m, int n, int k, bool out_fp32) {
  const auto key = std::make_tuple(m, n, k, out_fp32);
  auto it = plans_.find(key);
  if (it != plans_.end()) return &it->second;
  std::vector<cublasLtMatmulHeuristicResult_t> candidates;
  TANDEM_ASSIGN_OR_RETURN(Plan plan, NewPlan(m, n, k, out_fp32, 1, &candidates));
  return &plans_.emplace(key, plan).first->second;
}

absl::Status CublasLtGemm::Tune(const __nv_bfloat16* x, std::span<const __nv_bfloat16* const> ws, void* out,
                                bool out_fp32, int m, int n, int k, cudaStream_t stream) {
  const auto key = std::make_tuple(m, n, k, out_fp32);
  if (m == 0 || ws.empty() || tuned_.contains(key) || batch_invariant_) return absl::OkStatus();
  std::vector<cublasLtMatmulHeuristicResult_t> candidates;
  TANDEM_ASSIGN_OR_RETURN(Plan plan, NewPlan(m, n, k, out_fp32, 8, &candidates));
  absl::Status timed = absl::OkStatus();
  const size_t reps = std::max<size_t>(ws.size(), 10);  // the weights cycle through `ws`
  float best_ms = 0;
  bool have_best = false;
  const float alpha = 1.0f, beta = 0.0f;
  for (size_t i = 0; timed.ok() && i < candidates.size(); ++i) {
    const cublasLtMatmulAlgo_t* algo = &candidates[i].algo;
    absl::StatusOr<std::optional<float>> ms = TimeRuns(
        [&](size_t r) {
          return cublasLtMatmul(handle_, plan.desc, &alpha, ws[r % ws.size()], plan.a, x, plan.b, &beta, out,
                                plan.c, out, plan.c, algo, workspace_->data(), workspace_->size(),
                                stream) == CUBLAS_STATUS_SUCCESS;
        },
        reps, stream);
    if (!ms.ok()) {
      timed = ms.status();
    } else if (ms->has_value() && (!have_best || **ms < best_ms)) {  // a candidate that cannot run is skipped
      have_best = true;
      best_ms = **ms;
      plan.algo = *algo;
    }
  }
  // At small m tandem's GEMV kernels (kernels/gemm/bf16_gemv.cuh) are timed the same way; the faster
  // runs when it is at least kGemvMargin faster than cuBLASLt: close calls stay with cuBLASLt, so that
  // two processes (an aggregated and a disaggregated worker) rarely choose differently for the same
  // shape by timing noise.
  gemv_.erase(key);
  std::optional<std::pair<float, bool>> best_gemv;  // (ms, tensor-core variant)
  for (const bool tc : {false, true}) {
    if (!timed.ok() || !have_best) break;
    if (!(tc ? kernels::Bf16GemvTcSupported(m, n, k) : kernels::Bf16GemvSupported(m, n, k))) continue;
    cudaError_t launched = cudaSuccess;
    absl::StatusOr<std::optional<float>> gemv_ms = TimeRuns(
        [&](size_t r) {
          if (launched == cudaSuccess) {
            launched = Gemv(tc, x, ws[r % ws.size()], out, out_fp32, m, n, k, stream);
          }
          return launched == cudaSuccess;
        },
        reps, stream);
    if (!gemv_ms.ok()) {
      timed = gemv_ms.status();
    } else if (launched != cudaSuccess) {
      timed = CudaStatus(launched, "bf16 GEMV (GEMM tuning)", __FILE__, __LINE__);
    } else {
      const double us = 1000.0 / static_cast<double>(reps);
      TLOG_INFO("GEMM m={} n={} k={}{}: cuBLASLt {:.1f} us, {} GEMV {:.1f} us per call ({:.2f} TB/s)", m, n, k,
                out_fp32 ? " (fp32 out)" : "", best_ms * us, tc ? "tensor-core" : "CUDA-core", **gemv_ms * us,
                2.0 * n * k / (**gemv_ms * us * 1e-6) / 1e12);
      if (!best_gemv.has_value() || **gemv_ms < best_gemv->first) best_gemv = std::pair{**gemv_ms, tc};
    }
  }
  if (timed.ok() && best_gemv.has_value() && best_gemv->first * kGemvMargin < best_ms) {
    gemv_[key] = best_gemv->second;
  }
  if (!timed.ok()) {
    Destroy(plan);
    return timed;
  }
  if (auto it = plans_.find(key); it != plans_.end()) Destroy(it->second);
  plans_[key] = plan;
  tuned_.insert(key);
  return absl::OkStatus();
}

absl::Status CublasLtGemm::Matmul(const __nv_bfloat16* x, const __nv_bfloat16* w, void* out, bool out_fp32,
                                  int m, int n, int k, cudaStream_t stream) {
  if (m == 0) return absl::OkStatus();
  if (batch_invariant_) {
    const auto key = std::make_tuple(m, n, k, out_fp32);
    auto it = plans_.find(key);
    if (it == plans_.end()) {
      const auto shape = std::make_tuple(n, k, out_fp32);
      auto algo = invariant_.find(shape);
      if (algo == invariant_.end()) {
        TANDEM_ASSIGN_OR_RETURN(const cublasLtMatmulAlgo_t chosen, InvariantAlgo(w, out_fp32, n, k, stream));
        algo = invariant_.emplace(shape, chosen).first;
      }
      TANDEM_ASSIGN_OR_RETURN(Plan plan, Layouts(m, n, k, out_fp32));
      plan.algo = algo->second;
      it = plans_.emplace(key, plan).first;
    }
    const float alpha = 1.0f, beta = 0.0f;
    const Plan& p = it->second;
    TANDEM_LT_CHECK(cublasLtMatmul(handle_, p.desc, &alpha, w, p.a, x, p.b, &beta, out, p.c, out, p.c,
                                   &p.algo, workspace_->data(), workspace_->size(), stream));
    return absl::OkStatus();
  }
  if (auto it = gemv_.find(std::make_tuple(m, n, k, out_fp32)); it != gemv_.end()) {
    const cudaError_t e = Gemv(it->second, x, w, out, out_fp32, m, n, k, stream);
    if (e != cudaSuccess) return CudaStatus(e, "bf16 GEMV", __FILE__, __LINE__);
    return absl::OkStatus();
  }
  TANDEM_ASSIGN_OR_RETURN(const Plan* plan, GetPlan(m, n, k, out_fp32));
  const Plan& p = *plan;
  const float alpha = 1.0f, beta = 0.0f;
  TANDEM_LT_CHECK(cublasLtMatmul(handle_, p.desc, &alpha, w, p.a, x, p.b, &beta, out, p.c, out, p.c, &p.algo,
                                 workspace_->data(), workspace_->size(), stream));
  return absl::OkStatus();
}

}  // namespace tandem::backend::cuda
