// bf16 GEMMs of the forward pass through cuBLASLt: y[M, N] = x[M, K] @ W[N, K]^T (nn.Linear layout),
// fp32 accumulation, bf16 or fp32 output. One handle and one workspace per runner; the algorithm for
// each (M, N, K, output type) is chosen once by cuBLASLt's heuristic and cached, so a step's launches
// do no host work beyond a hash lookup and can be captured in a CUDA graph.
#pragma once

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tandem/backend/cuda_handles.h"

namespace tandem::backend::cuda {

class CublasLtGemm {
 public:
  static absl::StatusOr<std::unique_ptr<CublasLtGemm>> Create(size_t workspace_bytes = size_t{32} << 20);
  ~CublasLtGemm();
  CublasLtGemm(const CublasLtGemm&) = delete;
  CublasLtGemm& operator=(const CublasLtGemm&) = delete;

  // out [m, n] (bf16, or fp32 when out_fp32) = x [m, k] @ w [n, k]^T, rows of stride k and n.
  absl::Status Matmul(const __nv_bfloat16* x, const __nv_bfloat16* w, void* out, bool out_fp32, int m, int n, int k,
                      cudaStream_t stream);

  // Times up to 8 of cuBLASLt's candidate algorithms for this shape on these buffers (only `out` is
  // written) and keeps the fastest for every later Matmul of the shape. The repetitions cycle through
  // `ws` (same-shaped weights, e.g. every layer's), so the weights stream from HBM as in a real step
  // instead of sitting in L2 (an H200's 50 MB L2 holds a whole q/k/v matrix of Llama-3-8B). Not while
  // `stream` is capturing; a shape already tuned is not timed again. At m <= 8 the bf16 GEMV kernel
  // (kernels/gemm/bf16_gemv.cuh) is a candidate too.
  absl::Status Tune(const __nv_bfloat16* x, std::span<const __nv_bfloat16* const> ws, void* out, bool out_fp32,
                    int m, int n, int k, cudaStream_t stream);

  // Batch-invariant mode (engine.batch_invariant): every Matmul of a shape (n, k, output type) runs
  // one cuBLASLt algorithm whatever m, without split-K, checked at the shape's first Matmul to give
  // each row the same bits at m = 1 and 17 as within one GEMM of 128 rows (x = rows of the weights);
  // no GEMV, and Tune does nothing. Set it before the first Matmul.
  void SetBatchInvariant(bool on) { batch_invariant_ = on; }
  bool batch_invariant() const { return batch_invariant_; }

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  CublasLtGemm() = default;
  absl::StatusOr<const Plan*> GetPlan(int m, int n, int k, bool out_fp32);
  // Layouts and descriptor of a shape plus cuBLASLt's first `count` candidates, best first.
  absl::StatusOr<Plan> NewPlan(int m, int n, int k, bool out_fp32, int count,
                               std::vector<cublasLtMatmulHeuristicResult_t>* candidates);
  static void Destroy(Plan& plan);
  // The descriptor and layouts of a shape (no algorithm).
  absl::StatusOr<Plan> Layouts(int m, int n, int k, bool out_fp32);
  // Milliseconds of run(1..reps) on `stream` after an untimed run(0); nullopt when run(0) reports it
  // cannot run the shape. Tune's and InvariantAlgo's timings.
  template <typename Run>
  absl::StatusOr<std::optional<float>> TimeRuns(Run&& run, size_t reps, cudaStream_t stream);
  // The batch-invariant algorithm of a shape (see SetBatchInvariant), checked on `w` [n, k].
  absl::StatusOr<cublasLtMatmulAlgo_t> InvariantAlgo(const __nv_bfloat16* w, bool out_fp32, int n, int k,
                                                     cudaStream_t stream);

  cublasLtHandle_t handle_ = nullptr;
  std::unique_ptr<DeviceMemory> workspace_;
  Event timing_start_, timing_stop_;  // TimeRuns'
  absl::flat_hash_map<std::tuple<int, int, int, bool>, Plan> plans_;
  absl::flat_hash_set<std::tuple<int, int, int, bool>> tuned_;
  // Shapes where Tune found one of tandem's GEMVs faster: true for the tensor-core one.
  absl::flat_hash_map<std::tuple<int, int, int, bool>, bool> gemv_;
  bool batch_invariant_ = false;
  absl::flat_hash_map<std::tuple<int, int, bool>, cublasLtMatmulAlgo_t> invariant_;  // (n, k, fp32 out)
};

}  // namespace tandem::backend::cuda
