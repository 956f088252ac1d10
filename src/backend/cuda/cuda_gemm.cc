#include "tandem/backend/cuda_gemm.h"

#include "absl/strings/str_cat.h"
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
  return absl::InternalError(absl::StrCat("cuBLASLt: ", what, ": ", StatusName(s), " (", static_cast<int>(s), ")"));
}

}  // namespace

#define TANDEM_LT_CHECK(expr) TANDEM_RETURN_IF_ERROR(LtStatus((expr), #expr))

absl::StatusOr<std::unique_ptr<CublasLtGemm>> CublasLtGemm::Create(size_t workspace_bytes) {
  std::unique_ptr<CublasLtGemm> gemm(new CublasLtGemm());
  TANDEM_LT_CHECK(cublasLtCreate(&gemm->handle_));
  TANDEM_ASSIGN_OR_RETURN(gemm->workspace_, DeviceMemory::Allocate(workspace_bytes));
  return gemm;
}

CublasLtGemm::~CublasLtGemm() {
  for (auto& [key, plan] : plans_) {
    cublasLtMatrixLayoutDestroy(plan.a);
    cublasLtMatrixLayoutDestroy(plan.b);
    cublasLtMatrixLayoutDestroy(plan.c);
    cublasLtMatmulDescDestroy(plan.desc);
  }
  if (handle_ != nullptr) cublasLtDestroy(handle_);
}

absl::StatusOr<const CublasLtGemm::Plan*> CublasLtGemm::GetPlan(int m, int n, int k, bool out_fp32) {
  const auto key = std::make_tuple(m, n, k, out_fp32);
  auto it = plans_.find(key);
  if (it != plans_.end()) return &it->second;
  // Column-major view: C^T [n, m] = op(A) [n, k] * B [k, m] with A = W stored [k, n] (ld k), transposed,
  // and B = x stored [k, m] (ld k); C = out stored [n, m] (ld n), i.e. row-major [m, n].
  Plan plan;
  TANDEM_LT_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  TANDEM_LT_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a)));
  TANDEM_LT_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof(trans_b)));
  TANDEM_LT_CHECK(cublasLtMatrixLayoutCreate(&plan.a, CUDA_R_16BF, k, n, k));
  TANDEM_LT_CHECK(cublasLtMatrixLayoutCreate(&plan.b, CUDA_R_16BF, k, m, k));
  TANDEM_LT_CHECK(cublasLtMatrixLayoutCreate(&plan.c, out_fp32 ? CUDA_R_32F : CUDA_R_16BF, n, m, n));
  cublasLtMatmulPreference_t pref = nullptr;
  TANDEM_LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const size_t ws = workspace_->size();
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t hs =
      cublasLtMatmulAlgoGetHeuristic(handle_, plan.desc, plan.a, plan.b, plan.c, plan.c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (hs != CUBLAS_STATUS_SUCCESS || found == 0) {
    cublasLtMatrixLayoutDestroy(plan.a);
    cublasLtMatrixLayoutDestroy(plan.b);
    cublasLtMatrixLayoutDestroy(plan.c);
    cublasLtMatmulDescDestroy(plan.desc);
    return absl::InternalError(absl::StrCat("cuBLASLt: no algorithm for bf16 GEMM m=", m, " n=", n, " k=", k,
                                            out_fp32 ? " (fp32 out)" : " (bf16 out)", ": ", StatusName(hs)));
  }
  plan.algo = result.algo;
  auto [pos, inserted] = plans_.emplace(key, plan);
  return &pos->second;
}

absl::Status CublasLtGemm::Matmul(const __nv_bfloat16* x, const __nv_bfloat16* w, void* out, bool out_fp32, int m,
                                  int n, int k, cudaStream_t stream) {
  if (m == 0) return absl::OkStatus();
  TANDEM_ASSIGN_OR_RETURN(const Plan* plan, GetPlan(m, n, k, out_fp32));
  const Plan& p = *plan;
  const float alpha = 1.0f, beta = 0.0f;
  TANDEM_LT_CHECK(cublasLtMatmul(handle_, p.desc, &alpha, w, p.a, x, p.b, &beta, out, p.c, out, p.c, &p.algo,
                                 workspace_->data(), workspace_->size(), stream));
  return absl::OkStatus();
}

}  // namespace tandem::backend::cuda
