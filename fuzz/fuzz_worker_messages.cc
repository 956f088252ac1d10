// A RemotePrefillRequest as a decode worker sends it (the bytes gRPC hands the prefill worker's
// handler), through everything the prefill side does with it before any KV moves: the sampling
// parameters converted and validated, the peer check, the destination's ranks and heads, the request
// checks, and the write plan of a layer — every planned write must read inside this worker's pool and
// land inside the destination rank's declared pool (a write past it would be a device copy out of
// bounds in the decode process's memory). The first byte picks this worker's tensor-parallel width
// and whether the destination's layout is made to match ours (so the deeper checks run).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "google/protobuf/stubs/logging.h"
#include "tandem/engine/sampling_params.h"
#include "tandem/transfer/block_runs.h"
#include "tandem/v1/worker.pb.h"
#include "tandem/wire/convert.h"

namespace {

using tandem::transfer::KvRankHeads;

constexpr int kVocab = 49152;    // SmolLM2
constexpr int kBlockSize = 16;
constexpr int kNumLayers = 30;
constexpr int kKvHeads = 3;
constexpr int kHeadDim = 64;
constexpr int kLocalBlocks = 4096;

tandem::v1::WorkerInfo Mine(bool tp2) {
  tandem::v1::WorkerInfo info;
  info.set_role("prefill");
  info.set_instance_id("prefill-0");
  info.set_transport("ucx");
  info.set_num_kv_blocks(kLocalBlocks);
  tandem::v1::KvLayout* layout = info.mutable_layout();
  layout->set_model("smollm2");
  layout->set_dtype("bfloat16");
  layout->set_num_layers(kNumLayers);
  layout->set_num_kv_heads(kKvHeads);
  layout->set_head_dim(kHeadDim);
  layout->set_block_size(kBlockSize);
  layout->set_layout_version(1);
  layout->set_bytes_per_block(uint64_t{2} * kKvHeads * kBlockSize * kHeadDim * 2);
  if (tp2) {
    layout->add_ranks()->add_kv_heads(0);
    layout->mutable_ranks(0)->add_kv_heads(1);
    layout->add_ranks()->add_kv_heads(2);
  }
  return info;
}

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

// Protobuf logs every string field that is not UTF-8 (the parse still succeeds): quiet.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  tandem::v1::RemotePrefillRequest request;
  if (!request.ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;
  const bool tp2 = (data[0] & 2) != 0;
  const tandem::v1::WorkerInfo mine = Mine(tp2);
  if ((data[0] & 1) != 0) {  // the destination's layout and transport as ours, its ranks as sent
    tandem::v1::WorkerInfo* dest = request.mutable_destination();
    auto ranks = dest->layout().ranks();
    *dest->mutable_layout() = mine.layout();
    *dest->mutable_layout()->mutable_ranks() = ranks;
    dest->set_transport(mine.transport());
  }
  const tandem::engine::SamplingParams params = tandem::wire::FromProto(request.sampling());
  (void)params.Validate(kVocab);
  const tandem::v1::WorkerInfo& dest = request.destination();
  if (!tandem::wire::CheckPeerCompatible(mine, dest, dest.instance_id()).ok()) return 0;
  const KvRankHeads local = tandem::wire::KvRankHeadsOf(mine.layout());
  const KvRankHeads remote = tandem::wire::KvRankHeadsOf(dest.layout());
  if (!tandem::wire::CheckRemotePrefillRequest(kBlockSize, kNumLayers, local, request, remote).ok()) return 0;

  // The plan of the layer-wise sender: this worker's blocks 0.. (its prompt's) into the destination's.
  const int64_t num_blocks = request.dst_block_ids_size();
  if (num_blocks > kLocalBlocks) return 0;  // the engine would not have allocated them
  std::vector<int64_t> src_blocks, dst_blocks(request.dst_block_ids().begin(), request.dst_block_ids().end());
  for (int64_t b = 0; b < num_blocks; ++b) src_blocks.push_back(b);
  auto runs = tandem::transfer::CoalesceBlockRuns(src_blocks, dst_blocks);
  Check(runs.ok());
  std::vector<tandem::transfer::RegionId> local_regions;
  for (size_t i = 0; i < local.heads.size() * kNumLayers; ++i) local_regions.push_back(1000 + i);
  std::vector<tandem::transfer::RemoteRegionId> remote_regions;
  for (size_t i = 0; i < remote.heads.size() * kNumLayers; ++i) remote_regions.push_back(i);
  for (int layer : {0, kNumLayers - 1}) {
    auto ops = tandem::transfer::LayerWrites(*runs, layer, kNumLayers, local, local_regions, remote, remote_regions);
    Check(ops.ok());  // the checks above passed: planning cannot fail
    for (const tandem::transfer::WriteOp& op : *ops) {
      const size_t r = op.remote_region / kNumLayers, l = op.local_region - 1000;
      Check(op.remote_region % kNumLayers == static_cast<size_t>(layer) && r < remote.heads.size());
      Check(l % kNumLayers == static_cast<size_t>(layer) && l / kNumLayers < local.heads.size());
      const size_t remote_pool = static_cast<size_t>(dest.num_kv_blocks()) * 2 * remote.heads[r].size() *
                                 remote.head_bytes;
      const size_t local_pool = static_cast<size_t>(kLocalBlocks) * 2 * local.heads[l / kNumLayers].size() *
                                local.head_bytes;
      Check(op.bytes > 0 && op.remote_offset + op.bytes <= remote_pool && op.local_offset + op.bytes <= local_pool);
    }
  }
  return 0;
}
