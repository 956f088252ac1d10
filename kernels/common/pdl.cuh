// Programmatic dependent launch (Hopper): a kernel launched with LaunchPdl may start while the kernel
// before it on the stream is still running — its blocks are scheduled, and run their prologue (e.g.
// loads of weights, which no kernel writes), as soon as every block of the previous kernel has called
// PdlTrigger — and must call PdlWait before it reads what the previous kernel wrote or writes anything
// (PdlWait returns once that kernel has completed and its writes are visible). Without a programmatic
// dependency (a plain launch, or a previous kernel that never triggers) both are no-ops, so the
// kernels stay correct launched either way. In a captured CUDA graph the dependency becomes a
// programmatic edge. kernels/gemm/NOTES.md has what it gains.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace tandem::kernels {

__device__ __forceinline__ void PdlWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void PdlTrigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Loads of what the kernel before wrote, after PdlWait. Not __ldg, nor plain loads through
// `const __restrict__` pointers: those become non-coherent loads (SASS LDG.CONSTANT), which ptxas
// treats as reading memory that never changes and moves above griddepcontrol.wait — seen in the
// tensor-core GEMV's SASS on sm_90a, where the loads of x ran before the kernel writing x had finished.
// asm volatile keeps these coherent loads after the (asm volatile) wait.
__device__ __forceinline__ uint4 LoadAfterWait(const void* p) {
  uint4 v;
  asm volatile("ld.global.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}
__device__ __forceinline__ uint32_t LoadAfterWait32(const void* p) {
  uint32_t v;
  asm volatile("ld.global.u32 %0, [%1];" : "=r"(v) : "l"(p));
  return v;
}

// Whether launches allow programmatic dependencies: yes unless TANDEM_PDL=0 (to compare the two in
// one run; read once per process).
inline bool PdlEnabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("TANDEM_PDL");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

// kernel<<<grid, block, smem, stream>>>(args...) with programmatic stream serialization allowed.
template <typename... Params, typename... Args>
cudaError_t LaunchPdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                      Args&&... args) {
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = PdlEnabled() ? 1 : 0;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = attribute;
  config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace tandem::kernels
