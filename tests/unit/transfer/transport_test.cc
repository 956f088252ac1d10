// KvTransport backends: bytes land where the block runs say, notifications arrive after the data,
// bad requests move nothing, and a dead peer fails transfers instead of hanging.
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tandem/transfer/block_runs.h"
#include "tandem/transfer/fault_transport.h"
#include "tandem/transfer/kv_transport.h"
#include "tandem/transfer/local_transport.h"
#include "tandem/transfer/ucx_transport.h"

namespace tandem::transfer {
namespace {

using ::testing::ElementsAre;

// An error test checks what the caller is told, not only that something failed.
void ExpectError(const absl::Status& status, absl::StatusCode code, const std::string& message) {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_EQ(status.message(), message);
}

TEST(BlockRunsTest, CoalescesConsecutivePairs) {
  auto runs = CoalesceBlockRuns({3, 4, 5, 9, 10, 2}, {7, 8, 9, 1, 2, 3});
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 3u);
  EXPECT_EQ((*runs)[0].src_block, 3);
  EXPECT_EQ((*runs)[0].dst_block, 7);
  EXPECT_EQ((*runs)[0].count, 3);
  EXPECT_EQ((*runs)[1].count, 2);
  EXPECT_EQ((*runs)[2].src_block, 2);
  EXPECT_EQ((*runs)[2].count, 1);
  const auto ops = LayerWrites(*runs, 11, 22, 64);
  ASSERT_EQ(ops.size(), 3u);
  EXPECT_EQ(ops[0].local_offset, 3u * 64);
  EXPECT_EQ(ops[0].remote_offset, 7u * 64);
  EXPECT_EQ(ops[0].bytes, 3u * 64);
}

TEST(BlockRunsTest, RejectsMismatchedLists) {
  ExpectError(CoalesceBlockRuns({1, 2}, {1}).status(), absl::StatusCode::kInvalidArgument,
              "block lists differ in length: 2 source vs 1 destination blocks");
  ExpectError(CoalesceBlockRuns({3, -1}, {1, 2}).status(), absl::StatusCode::kInvalidArgument,
              "negative block id at index 1: -1 -> 2");
  auto empty = CoalesceBlockRuns({}, {});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

std::unique_ptr<KvTransport> Make(const std::string& kind) {
  if (kind == "local") return std::make_unique<LocalTransport>();
  auto ucx = UcxTransport::Create();
  EXPECT_TRUE(ucx.ok()) << ucx.status();
  return ucx.ok() ? std::move(*ucx) : nullptr;
}

class TransportTest : public ::testing::TestWithParam<std::string> {};

// Moves scattered blocks of one "layer" from a source pool into different ids of a destination pool.
TEST_P(TransportTest, WritesBlockRunsAndNotifiesAfterData) {
  auto src_t = Make(GetParam());
  auto dst_t = Make(GetParam());
  ASSERT_TRUE(src_t && dst_t);
  constexpr std::size_t kBlockBytes = 4096, kBlocks = 32;
  std::vector<uint8_t> src(kBlockBytes * kBlocks), dst(kBlockBytes * kBlocks, 0xEE);
  std::iota(src.begin(), src.end(), 0);
  for (std::size_t i = 0; i < src.size(); i += 7) src[i] = static_cast<uint8_t>(i * 31);

  auto src_region = src_t->RegisterMemory({src.data(), src.size(), backend::MemoryKind::kHost, -1});
  auto dst_region = dst_t->RegisterMemory({dst.data(), dst.size(), backend::MemoryKind::kHost, -1});
  ASSERT_TRUE(src_region.ok() && dst_region.ok());
  auto address = dst_t->LocalAddress();
  ASSERT_TRUE(address.ok());
  auto peer = src_t->Connect(*address);
  ASSERT_TRUE(peer.ok()) << peer.status();
  auto descriptor = dst_t->ExportRegion(*dst_region);
  ASSERT_TRUE(descriptor.ok());
  auto remote = src_t->ImportRegion(*peer, *descriptor);
  ASSERT_TRUE(remote.ok()) << remote.status();

  const std::vector<int64_t> src_ids = {0, 1, 2, 5, 31, 30};
  const std::vector<int64_t> dst_ids = {10, 11, 12, 3, 0, 1};
  auto runs = CoalesceBlockRuns(src_ids, dst_ids);
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ(runs->size(), 4u);
  const auto ops = LayerWrites(*runs, *src_region, *remote, kBlockBytes);
  auto transfer = src_t->PostWrite(*peer, ops, "req-42 layer 0 done");
  ASSERT_TRUE(transfer.ok()) << transfer.status();
  // Both sides must make progress (UCX may emulate RMA with messages the target handles); in a
  // deployment each worker's step loop does this.
  std::vector<std::string> notes;
  bool done = false;
  for (int i = 0; i < 2000000 && (!done || notes.empty()); ++i) {
    if (!done) {
      auto state = src_t->Poll(*transfer);
      ASSERT_TRUE(state.ok()) << state.status();
      done = *state == TransferState::kDone;
    }
    for (auto& n : dst_t->TakeNotifications()) notes.push_back(n);
  }
  ASSERT_TRUE(done);
  src_t->Release(*transfer);
  EXPECT_THAT(notes, ElementsAre("req-42 layer 0 done"));
  for (std::size_t i = 0; i < src_ids.size(); ++i) {
    EXPECT_EQ(0, std::memcmp(dst.data() + dst_ids[i] * kBlockBytes, src.data() + src_ids[i] * kBlockBytes, kBlockBytes))
        << "block " << src_ids[i] << " -> " << dst_ids[i];
  }
  // Untouched blocks keep their bytes.
  EXPECT_EQ(dst[2 * kBlockBytes], 0xEE);
  EXPECT_EQ(dst[20 * kBlockBytes + 5], 0xEE);
}

TEST_P(TransportTest, OutOfRangeWriteMovesNothing) {
  auto src_t = Make(GetParam());
  auto dst_t = Make(GetParam());
  ASSERT_TRUE(src_t && dst_t);
  std::vector<uint8_t> src(1024, 1), dst(512, 0);
  auto src_region = src_t->RegisterMemory({src.data(), src.size(), backend::MemoryKind::kHost, -1});
  auto dst_region = dst_t->RegisterMemory({dst.data(), dst.size(), backend::MemoryKind::kHost, -1});
  ASSERT_TRUE(src_region.ok() && dst_region.ok());
  auto peer = src_t->Connect(*dst_t->LocalAddress());
  ASSERT_TRUE(peer.ok());
  auto remote = src_t->ImportRegion(*peer, *dst_t->ExportRegion(*dst_region));
  ASSERT_TRUE(remote.ok());
  const WriteOp ok_op{*src_region, 0, *remote, 0, 256};
  const WriteOp bad_op{*src_region, 0, *remote, 256, 512};  // 256 + 512 > 512
  const WriteOp ops[] = {ok_op, bad_op};
  auto transfer = src_t->PostWrite(*peer, ops, "");
  ExpectError(transfer.status(), absl::StatusCode::kOutOfRange,
              "write of 512 bytes at local offset 0 / remote offset 256 exceeds the region");
  EXPECT_EQ(dst[0], 0) << "a rejected write list must move no bytes";
  ExpectError(src_t->PostWrite(*peer, {}, std::string(KvTransport::kMaxNotificationBytes + 1, 'x')).status(),
              absl::StatusCode::kInvalidArgument, "notification of 4097 bytes exceeds 4096");
  ExpectError(src_t->RegisterMemory({nullptr, 10, backend::MemoryKind::kHost, -1}).status(),
              absl::StatusCode::kInvalidArgument, "RegisterMemory: expected a non-null base and a non-zero size");
  ExpectError(src_t->ImportRegion(*peer, "garbage").status(), absl::StatusCode::kInvalidArgument,
              GetParam() == "local" ? "local transport: malformed region descriptor"
                                    : "ucx ImportRegion: descriptor too short");
}

INSTANTIATE_TEST_SUITE_P(Backends, TransportTest, ::testing::Values("local", "ucx"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

// Two processes: the child owns the destination pool and checks the bytes after the notification.
TEST(UcxTransportTest, CrossProcessWrite) {
  int to_parent[2], to_child[2];
  ASSERT_EQ(pipe(to_parent), 0);
  ASSERT_EQ(pipe(to_child), 0);
  constexpr std::size_t kBytes = 1 << 20;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto t = UcxTransport::Create();
    if (!t.ok()) _exit(10);
    std::vector<uint8_t> dst(kBytes, 0);
    auto region = (*t)->RegisterMemory({dst.data(), dst.size(), backend::MemoryKind::kHost, -1});
    if (!region.ok()) _exit(11);
    const std::string address = *(*t)->LocalAddress();
    const std::string descriptor = *(*t)->ExportRegion(*region);
    for (const std::string* s : {&address, &descriptor}) {
      const uint32_t n = s->size();
      if (write(to_parent[1], &n, 4) != 4 || write(to_parent[1], s->data(), n) != static_cast<ssize_t>(n)) _exit(12);
    }
    std::vector<std::string> notes;
    for (int i = 0; i < 20000000 && notes.empty(); ++i) notes = (*t)->TakeNotifications();
    if (notes.size() != 1 || notes[0] != "done") _exit(13);
    for (std::size_t i = 0; i < kBytes; ++i) {
      if (dst[i] != static_cast<uint8_t>(i * 13 + 1)) _exit(14);
    }
    char ack = 'k';
    if (read(to_child[0], &ack, 1) != 1) _exit(15);  // keep the endpoint alive until the parent is done
    _exit(0);
  }
  auto read_string = [&](std::string* out) {
    uint32_t n = 0;
    ASSERT_EQ(read(to_parent[0], &n, 4), 4);
    out->resize(n);
    std::size_t got = 0;
    while (got < n) {
      const ssize_t r = read(to_parent[0], out->data() + got, n - got);
      ASSERT_GT(r, 0);
      got += r;
    }
  };
  std::string address, descriptor;
  read_string(&address);
  read_string(&descriptor);
  auto t = UcxTransport::Create();
  ASSERT_TRUE(t.ok()) << t.status();
  std::vector<uint8_t> src(kBytes);
  for (std::size_t i = 0; i < kBytes; ++i) src[i] = static_cast<uint8_t>(i * 13 + 1);
  auto region = (*t)->RegisterMemory({src.data(), src.size(), backend::MemoryKind::kHost, -1});
  auto peer = (*t)->Connect(address);
  ASSERT_TRUE(region.ok() && peer.ok()) << peer.status();
  auto remote = (*t)->ImportRegion(*peer, descriptor);
  ASSERT_TRUE(remote.ok()) << remote.status();
  const WriteOp op{*region, 0, *remote, 0, kBytes};
  auto transfer = (*t)->PostWrite(*peer, std::span<const WriteOp>(&op, 1), "done");
  ASSERT_TRUE(transfer.ok()) << transfer.status();
  EXPECT_TRUE(WaitForTransfer(**t, *transfer, 20000).ok());
  (*t)->Release(*transfer);
  const char ack = 'k';
  ASSERT_EQ(write(to_child[1], &ack, 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "child exit codes: 13 no notification, 14 wrong bytes";
}

// The tests' fault injection (TANDEM_TEST_TRANSFER_FAULT): writes before the N-th go through and
// land; from it on they fail, stall or are refused, move nothing and send no notification.
TEST(FaultInjectingTransportTest, FaultsWritesFromTheNthOn) {
  EXPECT_FALSE(ParseTransferFault("explode").ok());
  EXPECT_FALSE(ParseTransferFault("fail:0").ok());
  EXPECT_FALSE(ParseTransferFault("stall:x").ok());
  for (const std::string mode : {"fail", "stall", "post"}) {
    SCOPED_TRACE(mode);
    auto spec = ParseTransferFault(mode + ":2");
    ASSERT_TRUE(spec.ok()) << spec.status();
    EXPECT_EQ(spec->from_write, 2);
    FaultInjectingTransport src_t(std::make_unique<LocalTransport>(), *spec);
    LocalTransport dst_t;
    std::vector<uint8_t> src(64, 7), dst(64, 0);
    auto src_region = src_t.RegisterMemory({src.data(), src.size(), backend::MemoryKind::kHost, -1});
    auto dst_region = dst_t.RegisterMemory({dst.data(), dst.size(), backend::MemoryKind::kHost, -1});
    ASSERT_TRUE(src_region.ok() && dst_region.ok());
    auto peer = src_t.Connect(*dst_t.LocalAddress());
    ASSERT_TRUE(peer.ok()) << peer.status();
    auto remote = src_t.ImportRegion(*peer, *dst_t.ExportRegion(*dst_region));
    ASSERT_TRUE(remote.ok()) << remote.status();
    const WriteOp first{*src_region, 0, *remote, 0, 32}, second{*src_region, 32, *remote, 32, 32};
    auto ok = src_t.PostWrite(*peer, {&first, 1}, "first");
    ASSERT_TRUE(ok.ok()) << ok.status();
    ASSERT_TRUE(WaitForTransfer(src_t, *ok, 5000).ok());
    src_t.Release(*ok);
    EXPECT_EQ(dst[0], 7);
    auto faulted = src_t.PostWrite(*peer, {&second, 1}, "second");
    EXPECT_EQ(src_t.faulted(), 1);
    if (mode == "post") {
      EXPECT_EQ(faulted.status().code(), absl::StatusCode::kUnavailable);
    } else {
      ASSERT_TRUE(faulted.ok()) << faulted.status();
      auto state = src_t.Poll(*faulted);
      ASSERT_TRUE(state.ok()) << state.status();
      EXPECT_EQ(*state, mode == "fail" ? TransferState::kFailed : TransferState::kPending);
      const absl::Status waited = WaitForTransfer(src_t, *faulted, 50);
      EXPECT_EQ(waited.code(), mode == "fail" ? absl::StatusCode::kUnavailable : absl::StatusCode::kDeadlineExceeded);
      src_t.Release(*faulted);  // a stalled write is dropped, not waited for
      EXPECT_EQ(src_t.Poll(*faulted).status().code(), absl::StatusCode::kNotFound);
    }
    EXPECT_EQ(dst[32], 0) << "a faulted write moved bytes";
    std::vector<std::string> notes = dst_t.TakeNotifications();
    EXPECT_EQ(notes, std::vector<std::string>{"first"});
  }
}

TEST(TransportFactoryTest, NcclNeedsCuda) {
  auto t = CreateTransport(TransferBackend::kNccl);
#ifdef TANDEM_HAS_NCCL
  // A CUDA build: the transport exists where a GPU does, and says so where none does.
  if (t.ok()) {
    EXPECT_STREQ((*t)->name(), "nccl");
  } else {
    EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition) << t.status();
    EXPECT_NE(t.status().message().find("no CUDA device"), std::string::npos) << t.status();
  }
#else
  ExpectError(t.status(), absl::StatusCode::kUnimplemented,
              "transfer backend nccl: this build has no CUDA (configure with TANDEM_CUDA=ON); use ucx or local");
#endif
  auto local = CreateTransport(TransferBackend::kLocal);
  ASSERT_TRUE(local.ok());
  EXPECT_STREQ((*local)->name(), "local");
}

}  // namespace
}  // namespace tandem::transfer
