// PagedAttention: validation, workspaces and the choice of kernel; the FlashInfer templates live in
// decode_hd<D>.cu and prefill_sm90_hd<D>.cu (flashinfer_units.h), so this unit compiles quickly.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "attention/decode_mma.cuh"
#include "attention/flashinfer_units.h"
#include "attention/paged_attention.cuh"
#include "common/cuda_check.cuh"

namespace tandem::kernels {
namespace {

namespace units = attention_units;

constexpr int kMaxBlockSize = 256;
// FlashInfer's DISPATCH_GQA_GROUP_SIZE (utils.cuh): the decode kernel exists for these only.
constexpr int kGroupSizes[] = {1, 2, 3, 4, 6, 8, 16};
// PrefillSM90Plan uses one schedule for all heads past this many query tiles per head.
constexpr int64_t kSm90MaxWorksPerHead = 4096;

size_t AlignUp(size_t n, size_t a) { return (n + a - 1) / a * a; }

std::string Str(int64_t v) { return std::to_string(v); }

// Calls fn(std::integral_constant<int, D>{}) for the head dims the units are built for (decode_hd<D>.cu,
// prefill_sm90_hd<D>.cu); an error for any other.
template <typename F>
std::string DispatchHeadDim(int head_dim, F&& fn) {
  switch (head_dim) {
    case 64:
      return fn(std::integral_constant<int, 64>{});
    case 128:
      return fn(std::integral_constant<int, 128>{});
  }
  return "head_dim " + Str(head_dim) + " is not built (64 and 128 are; add units for more)";
}

struct DeviceFree {
  void operator()(void* p) const { cudaFree(p); }
};
struct PinnedFree {
  void operator()(void* p) const { cudaFreeHost(p); }
};
using DevicePtr = std::unique_ptr<void, DeviceFree>;
using PinnedPtr = std::unique_ptr<void, PinnedFree>;

// Offsets (in int32 elements) of the step arrays inside one device buffer and its pinned mirror:
// [qo_indptr (max_seqs+1) | kv_indptr (max_seqs+1) | kv_last_page_len (max_seqs) | kv_indices
// (max_blocks)], each region starting on 16 bytes. Fixed by the limits, so the device addresses the
// kernels read never change (what CUDA-graph replay needs).
struct StepLayout {
  size_t qo_indptr = 0, kv_indptr = 0, last_page_len = 0, kv_indices = 0, total = 0;
  StepLayout(int max_seqs, int max_blocks) {
    const auto region = [](size_t n) { return AlignUp(n, 4); };
    qo_indptr = 0;
    kv_indptr = qo_indptr + region(static_cast<size_t>(max_seqs) + 1);
    last_page_len = kv_indptr + region(static_cast<size_t>(max_seqs) + 1);
    kv_indices = last_page_len + region(static_cast<size_t>(max_seqs));
    total = kv_indices + region(static_cast<size_t>(max_blocks));
  }
};

}  // namespace

struct PagedAttention::State {
  AttentionGeometry geometry;
  int max_tokens = 0, max_seqs = 0, max_blocks = 0;
  StepLayout layout{1, 1};

  DevicePtr float_ws, int_ws, step_d;
  PinnedPtr int_ws_pinned, step_h;
  size_t float_bytes = 0, int_bytes = 0;
  cudaEvent_t copies_done = nullptr;  // recorded after Plan's copies; Plan waits on it first
  bool copies_pending = false;

  // The current plan.
  AttentionKernel kernel = AttentionKernel::kNone;
  int num_seqs = 0, num_tokens = 0;
  bool prefill_only = false;  // set_prefill_only: decode steps run the prefill kernel too
  bool flashinfer_decode = false;  // set_flashinfer_decode
  int num_sms = 0;
  int decode_splits = 1;  // kDecodeMma's KV splits per sequence
  DevicePtr decode_counters;  // kDecodeMma's split counters [max_seqs * num_kv_heads], zero between runs
  std::vector<int32_t> kv_len;  // [num_seqs], tokens
  std::vector<int64_t> plan_info;

  ~State() {
    if (copies_done != nullptr) {
      cudaEventSynchronize(copies_done);  // the pinned buffers may still be read by a copy
      cudaEventDestroy(copies_done);
    }
  }

  int32_t* StepDevice(size_t offset) const { return static_cast<int32_t*>(step_d.get()) + offset; }
  int32_t* StepHost(size_t offset) const { return static_cast<int32_t*>(step_h.get()) + offset; }

  units::Workspaces Workspaces() const {
    units::Workspaces ws;
    ws.float_ws = float_ws.get();
    ws.float_bytes = float_bytes;
    ws.int_ws = int_ws.get();
    ws.int_ws_pinned = int_ws_pinned.get();
    ws.int_bytes = int_bytes;
    return ws;
  }

  units::StepCsr Csr(const int32_t* qo_indptr_h, const int32_t* kv_indptr_h) const {
    units::StepCsr csr;
    csr.num_seqs = num_seqs;
    csr.num_tokens = num_tokens;
    csr.qo_indptr_h = qo_indptr_h;
    csr.kv_indptr_h = kv_indptr_h;
    csr.kv_len_h = kv_len.data();
    csr.kv_indptr_d = StepDevice(layout.kv_indptr);
    csr.kv_indices_d = StepDevice(layout.kv_indices);
    csr.kv_last_page_len_d = StepDevice(layout.last_page_len);
    return csr;
  }
};

const char* AttentionKernelName(AttentionKernel kernel) {
  switch (kernel) {
    case AttentionKernel::kNone:
      return "none";
    case AttentionKernel::kDecode:
      return "decode";
    case AttentionKernel::kDecodeMma:
      return "decode_mma";
    case AttentionKernel::kPrefillSm90:
      return "prefill_sm90";
  }
  return "?";
}

PagedAttention::PagedAttention(std::unique_ptr<State> state) : state_(std::move(state)) {}
PagedAttention::~PagedAttention() = default;

void PagedAttention::set_prefill_only(bool prefill_only) { state_->prefill_only = prefill_only; }
void PagedAttention::set_flashinfer_decode(bool flashinfer_decode) {
  state_->flashinfer_decode = flashinfer_decode;
}

AttentionKernel PagedAttention::planned_kernel() const { return state_->kernel; }
int PagedAttention::planned_num_seqs() const { return state_->num_seqs; }
int PagedAttention::planned_num_tokens() const { return state_->num_tokens; }
const AttentionGeometry& PagedAttention::geometry() const { return state_->geometry; }
size_t PagedAttention::device_bytes() const {
  return state_->float_bytes + state_->int_bytes + state_->layout.total * sizeof(int32_t) +
         sizeof(int) * static_cast<size_t>(state_->max_seqs) * state_->geometry.num_kv_heads;
}
size_t PagedAttention::pinned_bytes() const {
  return state_->int_bytes + state_->layout.total * sizeof(int32_t);
}

std::string PagedAttention::Create(const AttentionGeometry& g, int max_tokens, int max_seqs, int max_blocks,
                                   std::unique_ptr<PagedAttention>* out) {
  const char* const where = "PagedAttention::Create: ";  // std::string only on errors
  if (out == nullptr) return std::string(where) + "out is null";
  out->reset();
  if (g.num_qo_heads < 1 || g.num_kv_heads < 1 || g.num_qo_heads % g.num_kv_heads != 0) {
    return std::string(where) +
           "expected num_qo_heads a positive multiple of num_kv_heads >= 1, found num_qo_heads=" +
           Str(g.num_qo_heads) + " num_kv_heads=" + Str(g.num_kv_heads);
  }
  const int group = g.num_qo_heads / g.num_kv_heads;
  if (std::find(std::begin(kGroupSizes), std::end(kGroupSizes), group) == std::end(kGroupSizes)) {
    return std::string(where) + "GQA group size num_qo_heads/num_kv_heads=" + Str(group) + " (" +
           Str(g.num_qo_heads) + "/" + Str(g.num_kv_heads) +
           ") is not one FlashInfer's decode kernel is built for (1, 2, 3, 4, 6, 8, 16)";
  }
  if (std::string e = DispatchHeadDim(g.head_dim, [](auto) { return std::string(); }); !e.empty()) {
    return std::string(where) + e;
  }
  if (g.block_size < 1 || g.block_size > kMaxBlockSize) {
    return std::string(where) + "expected block_size in [1, " + Str(kMaxBlockSize) + "], found " +
           Str(g.block_size);
  }
  if (max_tokens < 1 || max_seqs < 1 || max_blocks < 1) {
    return std::string(where) + "expected max_tokens, max_seqs, max_blocks >= 1, found " + Str(max_tokens) +
           ", " + Str(max_seqs) + ", " + Str(max_blocks);
  }
  const int cta_tile_q = units::Sm90CtaTileQ(g.head_dim);
  // Upper bound on the sm90 plan's query tiles per head: sum over sequences of ceil(qo_len / tile).
  const int64_t works_per_head = (int64_t{max_tokens} + cta_tile_q - 1) / cta_tile_q + max_seqs - 1;
  if (works_per_head > kSm90MaxWorksPerHead) {
    return std::string(where) + "max_tokens/" + Str(cta_tile_q) + " + max_seqs - 1 = " + Str(works_per_head) +
           " exceeds " + Str(kSm90MaxWorksPerHead) +
           " (past that FlashInfer's sm90 scheduler uses a kernel variant that is not built)";
  }

  int device = 0, major = 0, minor = 0, num_sm = 0, max_blocks_per_sm = 0;
  std::string err = CudaErrorText(cudaGetDevice(&device), "cudaGetDevice");
  if (err.empty())
    err = CudaErrorText(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device),
                        "cudaDeviceGetAttribute");
  if (err.empty())
    err = CudaErrorText(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device),
                        "cudaDeviceGetAttribute");
  if (err.empty())
    err = CudaErrorText(cudaDeviceGetAttribute(&num_sm, cudaDevAttrMultiProcessorCount, device),
                        "cudaDeviceGetAttribute");
  if (err.empty()) {
    err = CudaErrorText(
        cudaDeviceGetAttribute(&max_blocks_per_sm, cudaDevAttrMaxBlocksPerMultiprocessor, device),
        "cudaDeviceGetAttribute");
  }
  if (!err.empty()) return std::string(where) + err;
  if (major != 9 || minor != 0) {
    return std::string(where) +
           "needs a compute capability 9.0 device (kernels are built for sm_90a), found " + Str(major) + "." +
           Str(minor);
  }

  auto s = std::make_unique<State>();
  s->geometry = g;
  s->max_tokens = max_tokens;
  s->max_seqs = max_seqs;
  s->max_blocks = max_blocks;
  s->layout = StepLayout(max_seqs, max_blocks);
  s->num_sms = num_sm;
  // TANDEM_FLASHINFER_DECODE=1: FlashInfer's decode kernel by default, to compare whole steps.
  const char* flashinfer_decode = std::getenv("TANDEM_FLASHINFER_DECODE");
  s->flashinfer_decode = flashinfer_decode != nullptr && std::strcmp(flashinfer_decode, "1") == 0;

  // Decode (scheduler.cuh DecodePlanImpl): padded_batch_size is the batch size, or with split-KV at
  // most max_grid_size / num_kv_heads, where max_grid_size = occupancy * SMs <= max blocks per SM * SMs.
  const int64_t max_grid = int64_t{max_blocks_per_sm} * num_sm;
  const int64_t padded = std::max<int64_t>(max_seqs, max_grid / g.num_kv_heads);
  // float: tmp_v [heads, padded, head_dim] fp32-sized + tmp_s [heads, padded] fp32, 16-byte aligned.
  const size_t decode_float = AlignUp(static_cast<size_t>(g.num_qo_heads) * padded * g.head_dim * 4, 16) +
                              AlignUp(static_cast<size_t>(g.num_qo_heads) * padded * 4, 16);
  // int: request_indices, kv_tile_indices [padded], o_indptr [padded+1], kv_chunk_size [1],
  // block_valid_mask [padded] bools, each 16-byte aligned.
  const size_t decode_int =
      3 * AlignUp(static_cast<size_t>(padded + 1) * 4, 16) + 16 + AlignUp(static_cast<size_t>(padded), 16);
  // sm90 prefill (PrefillSM90Plan, no CUDA graph): 7 arrays of one int per work item (works =
  // num_qo_heads * tiles per head) + work_indptr [SMs + 1], each 16-byte aligned; no float workspace.
  const int64_t works = works_per_head * g.num_qo_heads;
  const size_t sm90_int =
      7 * AlignUp(static_cast<size_t>(works) * 4, 16) + AlignUp((num_sm + size_t{1}) * 4, 16);
  s->float_bytes = decode_float + 256;
  s->int_bytes = std::max(decode_int, sm90_int) + 256;

  const auto device_alloc = [&](DevicePtr* p, size_t bytes, const char* what) {
    void* raw = nullptr;
    std::string e = CudaErrorText(cudaMalloc(&raw, bytes), what);
    if (e.empty()) {
      p->reset(raw);
      e = CudaErrorText(cudaMemset(raw, 0, bytes), "cudaMemset");
    }
    return e;
  };
  const auto pinned_alloc = [&](PinnedPtr* p, size_t bytes, const char* what) {
    void* raw = nullptr;
    std::string e = CudaErrorText(cudaHostAlloc(&raw, bytes, cudaHostAllocDefault), what);
    if (e.empty()) {
      p->reset(raw);
      std::memset(raw, 0, bytes);
    }
    return e;
  };
  const size_t step_bytes = s->layout.total * sizeof(int32_t);
  err = device_alloc(&s->float_ws, s->float_bytes, "cudaMalloc(float workspace)");
  if (err.empty()) err = device_alloc(&s->int_ws, s->int_bytes, "cudaMalloc(int workspace)");
  if (err.empty()) err = device_alloc(&s->step_d, step_bytes, "cudaMalloc(step arrays)");
  if (err.empty()) {
    err = device_alloc(&s->decode_counters, sizeof(int) * static_cast<size_t>(max_seqs) * g.num_kv_heads,
                       "cudaMalloc(decode split counters)");
  }
  if (err.empty()) err = pinned_alloc(&s->int_ws_pinned, s->int_bytes, "cudaHostAlloc(int workspace)");
  if (err.empty()) err = pinned_alloc(&s->step_h, step_bytes, "cudaHostAlloc(step arrays)");
  if (err.empty()) {
    err = CudaErrorText(cudaEventCreateWithFlags(&s->copies_done, cudaEventDisableTiming), "cudaEventCreate");
  }
  if (!err.empty()) return std::string(where) + err;
  out->reset(new PagedAttention(std::move(s)));
  return "";
}

std::string PagedAttention::Plan(const int32_t* qo_indptr, const int32_t* kv_indptr,
                                 const int32_t* kv_indices, const int32_t* kv_last_page_len, int num_seqs,
                                 bool for_graph, cudaStream_t stream) {
  State& s = *state_;
  s.kernel = AttentionKernel::kNone;  // until this plan succeeds: Run refuses a half-made plan
  const char* const where = "PagedAttention::Plan: ";  // std::string only on errors
  if (qo_indptr == nullptr || kv_indptr == nullptr || kv_indices == nullptr || kv_last_page_len == nullptr) {
    return std::string(where) + "null array";
  }
  if (num_seqs < 1 || num_seqs > s.max_seqs) {
    return std::string(where) + "expected num_seqs in [1, " + Str(s.max_seqs) + "], found " + Str(num_seqs);
  }
  if (qo_indptr[0] != 0 || kv_indptr[0] != 0) {
    return std::string(where) + "expected qo_indptr[0] = kv_indptr[0] = 0, found " + Str(qo_indptr[0]) +
           ", " + Str(kv_indptr[0]);
  }
  const int bs = s.geometry.block_size;
  bool decode = true;
  s.kv_len.resize(static_cast<size_t>(num_seqs));
  for (int i = 0; i < num_seqs; ++i) {
    const int64_t qo_len = int64_t{qo_indptr[i + 1]} - qo_indptr[i];
    const int64_t blocks = int64_t{kv_indptr[i + 1]} - kv_indptr[i];
    // Built only on an error (Plan runs every step).
    const auto seq = [i] { return "sequence " + Str(i) + ": "; };
    if (qo_len < 1) return std::string(where) + seq() + "expected >= 1 query row, found " + Str(qo_len);
    if (qo_indptr[i + 1] > s.max_tokens) {
      return std::string(where) + "qo_indptr[" + Str(i + 1) + "] = " + Str(qo_indptr[i + 1]) +
             " exceeds max_tokens " + Str(s.max_tokens);
    }
    if (blocks < 1) return std::string(where) + seq() + "expected >= 1 block, found " + Str(blocks);
    if (kv_indptr[i + 1] > s.max_blocks) {
      return std::string(where) + "kv_indptr[" + Str(i + 1) + "] = " + Str(kv_indptr[i + 1]) +
             " exceeds max_blocks " + Str(s.max_blocks);
    }
    if (kv_last_page_len[i] < 1 || kv_last_page_len[i] > bs) {
      return std::string(where) + seq() + "expected kv_last_page_len in [1, " + Str(bs) + "], found " +
             Str(kv_last_page_len[i]);
    }
    const int64_t kv_len = (blocks - 1) * bs + kv_last_page_len[i];
    if (kv_len > INT32_MAX)
      return std::string(where) + seq() + "kv_len " + Str(kv_len) + " does not fit int32";
    if (qo_len > kv_len) {
      return std::string(where) + seq() +
             "expected qo_len <= kv_len (new tokens are in the cache), found qo_len " + Str(qo_len) +
             " > kv_len " + Str(kv_len);
    }
    s.kv_len[static_cast<size_t>(i)] = static_cast<int32_t>(kv_len);
    decode = decode && qo_len == 1;
  }
  decode = decode && !s.prefill_only;
  const int num_blocks = kv_indptr[num_seqs];
  for (int j = 0; j < num_blocks; ++j) {
    if (kv_indices[j] < 0)
      return std::string(where) + "kv_indices[" + Str(j) + "] = " + Str(kv_indices[j]) + " is negative";
  }
  if (for_graph && !decode) {
    return std::string(where) + "for_graph needs a decode step (one query row per sequence); this step has " +
           Str(qo_indptr[num_seqs]) + " rows for " + Str(num_seqs) + " sequences";
  }

  // The previous plan's copies read the pinned buffers we are about to overwrite.
  if (s.copies_pending) {
    const std::string e = CudaErrorText(cudaEventSynchronize(s.copies_done), "cudaEventSynchronize");
    if (!e.empty()) return std::string(where) + e;
    s.copies_pending = false;
  }
  const StepLayout& L = s.layout;
  std::memcpy(s.StepHost(L.qo_indptr), qo_indptr, sizeof(int32_t) * (num_seqs + 1));
  std::memcpy(s.StepHost(L.kv_indptr), kv_indptr, sizeof(int32_t) * (num_seqs + 1));
  std::memcpy(s.StepHost(L.last_page_len), kv_last_page_len, sizeof(int32_t) * num_seqs);
  std::memcpy(s.StepHost(L.kv_indices), kv_indices, sizeof(int32_t) * num_blocks);
  // One copy of everything up to the last block id (the small arrays' unused tails ride along).
  std::string err = CudaErrorText(
      cudaMemcpyAsync(s.step_d.get(), s.step_h.get(), sizeof(int32_t) * (L.kv_indices + num_blocks),
                      cudaMemcpyHostToDevice, stream),
      "cudaMemcpyAsync(step arrays)");
  if (!err.empty()) return std::string(where) + err;

  s.num_seqs = num_seqs;
  s.num_tokens = qo_indptr[num_seqs];
  const units::StepCsr csr = s.Csr(qo_indptr, kv_indptr);
  const units::Workspaces ws = s.Workspaces();
  const AttentionGeometry& g = s.geometry;
  const AttentionKernel kernel = !decode                ? AttentionKernel::kPrefillSm90
                                 : s.flashinfer_decode ? AttentionKernel::kDecode
                                                       : AttentionKernel::kDecodeMma;
  switch (kernel) {
    case AttentionKernel::kDecodeMma: {
      // A graph is replayed with other lengths: its split count may depend on num_seqs only.
      int max_tiles = INT32_MAX;
      if (!for_graph) {
        max_tiles = 1;
        for (const int32_t len : s.kv_len) max_tiles = std::max(max_tiles, (len + 63) / 64);
      }
      s.decode_splits = units::DecodeMmaSplits(num_seqs, g.num_kv_heads, s.num_sms, max_tiles);
      while (s.decode_splits > 1 &&
             units::DecodeMmaPartialFloats(num_seqs, s.decode_splits, g.num_qo_heads, g.head_dim) * sizeof(float) >
                 s.float_bytes) {
        --s.decode_splits;  // not reached with the workspace Create sizes; kept as a bound
      }
      break;
    }
    case AttentionKernel::kDecode:
      err = DispatchHeadDim(g.head_dim, [&](auto d) {
        return units::DecodePlan<decltype(d)::value>(ws, csr, g.num_qo_heads, g.num_kv_heads, bs, for_graph,
                                                     stream, &s.plan_info);
      });
      break;
    case AttentionKernel::kPrefillSm90:
      err = DispatchHeadDim(g.head_dim, [&](auto d) {
        return units::PrefillSm90Plan<decltype(d)::value>(ws, csr, g.num_qo_heads, g.num_kv_heads, bs, stream,
                                                          &s.plan_info);
      });
      break;
    case AttentionKernel::kNone:
      err = "no kernel chosen";
      break;
  }
  // Record even after a failed plan: the step-array copy above was issued.
  const std::string rec = CudaErrorText(cudaEventRecord(s.copies_done, stream), "cudaEventRecord");
  s.copies_pending = rec.empty();
  if (!err.empty()) return std::string(where) + err;
  if (!rec.empty()) return std::string(where) + rec;
  s.kernel = kernel;
  return "";
}

std::string PagedAttention::Run(const __nv_bfloat16* q, int ld_q, const __nv_bfloat16* kv, __nv_bfloat16* out,
                                float sm_scale, cudaStream_t stream) {
  const State& s = *state_;
  const AttentionGeometry& g = s.geometry;
  const char* const where = "PagedAttention::Run: ";  // std::string only on errors
  const auto aligned16 = [](const void* p) {
    return p != nullptr && (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
  };
  if (!aligned16(q) || !aligned16(kv) || !aligned16(out)) {
    return std::string(where) + "q, kv and out must be non-null and 16-byte aligned";
  }
  if (ld_q < g.num_qo_heads * g.head_dim || ld_q % 8 != 0) {
    return std::string(where) +
           "expected ld_q >= num_qo_heads*head_dim = " + Str(g.num_qo_heads * g.head_dim) +
           " and a multiple of 8, found " + Str(ld_q);
  }
  units::RunArgs args;
  args.num_qo_heads = g.num_qo_heads;
  args.num_kv_heads = g.num_kv_heads;
  args.block_size = g.block_size;
  args.q = q;
  args.ld_q = ld_q;
  args.kv = kv;
  args.out = out;
  args.sm_scale = sm_scale;
  // Host arrays are not read by Run; only the device copies.
  const units::StepCsr csr = s.Csr(nullptr, nullptr);
  const units::Workspaces ws = s.Workspaces();
  std::string err;
  switch (s.kernel) {
    case AttentionKernel::kNone:
      return std::string(where) + "no successful Plan to run";
    case AttentionKernel::kDecode:
      err = DispatchHeadDim(g.head_dim, [&](auto d) {
        return units::DecodeRun<decltype(d)::value>(ws, s.plan_info, csr, args, stream);
      });
      break;
    case AttentionKernel::kDecodeMma: {
      units::DecodeMmaArgs m;
      m.q = q;
      m.ld_q = ld_q;
      m.kv = kv;
      m.out = out;
      m.kv_indptr = csr.kv_indptr_d;
      m.kv_indices = csr.kv_indices_d;
      m.kv_last_page_len = csr.kv_last_page_len_d;
      m.num_seqs = s.num_seqs;
      m.num_qo_heads = g.num_qo_heads;
      m.num_kv_heads = g.num_kv_heads;
      m.block_size = g.block_size;
      m.num_splits = s.decode_splits;
      m.partial = static_cast<float*>(ws.float_ws);
      m.counters = static_cast<int*>(s.decode_counters.get());
      m.sm_scale = sm_scale;
      err = DispatchHeadDim(g.head_dim, [&](auto d) {
        return CudaErrorText(units::DecodeMma<decltype(d)::value>(m, stream), "DecodeMma");
      });
      break;
    }
    case AttentionKernel::kPrefillSm90:
      err = DispatchHeadDim(g.head_dim, [&](auto d) {
        return units::PrefillSm90Run<decltype(d)::value>(ws, s.plan_info, csr, args, stream);
      });
      break;
  }
  return err.empty() ? "" : std::string(where) + err;
}

}  // namespace tandem::kernels
