// The `nccl` KV transport (nccl_transport.h describes the protocol). Over 600 lines because it is one
// state machine shared by its two halves: the writer's Connect/PostWrite and the receiver's side-channel
// thread (Serve) drive the same per-peer communicators, staging buffers and transfer table under one
// lock; the host-only packing plan is its own unit (pack_plan.h).
#include "tandem/transfer/nccl_transport.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nccl_handles.h"
#include "pack_plan.h"
#include "side_channel.h"
#include "tandem/backend/cuda_handles.h"
#include "tandem/core/status.h"
#include "transfer/copy_runs.cuh"

namespace tandem::transfer {
namespace {

using backend::cuda::DeviceGuard;
using backend::cuda::DeviceMemory;
using backend::cuda::Event;
using backend::cuda::Stream;
using Clock = std::chrono::steady_clock;

enum MessageType : uint32_t {
  kHello = 1,       // writer → receiver: magic, token, bus id, host name
  kHelloReply = 2,  // receiver → writer: u32 ok, reason
  kCommId = 3,      // writer → receiver: the ncclUniqueId of the pair's communicator
  kWrite = 4,       // writer → receiver: transfer id, ops (region, offset, bytes), notification
  kAck = 5,         // receiver → writer: transfer id, u32 ok, reason
};
constexpr uint32_t kMagic = 0x314E4454;  // "TDN1" read little-endian
constexpr int kConnectMs = 2000;         // per candidate host of the side channel

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

struct ParsedAddress {
  uint64_t token = 0;
  uint16_t port = 0;
  std::vector<std::string> hosts;
};

absl::StatusOr<ParsedAddress> ParseAddress(const std::string& address) {
  std::vector<std::string> parts = absl::StrSplit(address, ';');
  ParsedAddress out;
  uint32_t port = 0;
  if (parts.size() != 4 || parts[0] != "nccl1" || !absl::SimpleHexAtoi(parts[1], &out.token) ||
      !absl::SimpleAtoi(parts[2], &port) || port == 0 || port > 65535 || parts[3].empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("nccl Connect: expected an address 'nccl1;<token>;<port>;<hosts>', found '", address, "'"));
  }
  out.port = static_cast<uint16_t>(port);
  out.hosts = absl::StrSplit(parts[3], ',');
  return out;
}

struct RecvOp {
  uint64_t region = 0;
  uint64_t offset = 0;
  uint64_t bytes = 0;
};

// Makes `staging` (the pair's staging buffer for packed transfers, on the current device) at least
// `bytes` long. The old buffer goes only after the work queued on `stream`, which may still use it.
absl::Status ReserveStaging(std::unique_ptr<DeviceMemory>& staging, uint64_t bytes, cudaStream_t stream) {
  if (staging != nullptr && staging->size() >= bytes) return absl::OkStatus();
  if (staging != nullptr) {
    TANDEM_CUDA_CHECK(cudaStreamSynchronize(stream));
    staging.reset();
  }
  TANDEM_ASSIGN_OR_RETURN(staging, DeviceMemory::Allocate(bytes));
  return absl::OkStatus();
}

// Creates `event` and records it on `stream`: the end of one write's groups.
absl::Status RecordEnd(Event& event, cudaStream_t stream) {
  TANDEM_RETURN_IF_ERROR(event.Create());
  return event.Record(stream);
}

// Moves one write on `stream`, the writer (send: gather → ncclSend) and the receiver (ncclRecv →
// scatter) issuing the same groups in the same order so NCCL pairs them. `ptrs[i]`/`bytes[i]`: op
// i's local memory; `plan` (pack_plan.h) says which go direct and which are packed together. Chunks
// run one group after another through the one staging buffer.
absl::Status RunPlan(bool send, const std::vector<char*>& ptrs, const std::vector<uint64_t>& bytes,
                     const PackPlan& plan, std::unique_ptr<DeviceMemory>& staging, ncclComm_t comm,
                     cudaStream_t stream, Clock::time_point deadline) {
  if (plan.largest_chunk > 0) TANDEM_RETURN_IF_ERROR(ReserveStaging(staging, plan.largest_chunk, stream));
  const int peer = send ? 1 : 0;
  const std::size_t groups = std::max<std::size_t>(1, plan.chunks.size());
  for (std::size_t g = 0; g < groups; ++g) {
    std::vector<kernels::CopyRun> runs;
    uint64_t total = 0;
    if (g < plan.chunks.size()) {
      for (std::size_t i : plan.chunks[g]) {
        const uint64_t pool = reinterpret_cast<uintptr_t>(ptrs[i]);
        const uint64_t stage = reinterpret_cast<uintptr_t>(staging->as<char>() + total);
        runs.push_back(send ? kernels::CopyRun{pool, stage, bytes[i]} : kernels::CopyRun{stage, pool, bytes[i]});
        total += bytes[i];
      }
    }
    if (send && !runs.empty()) {  // pack
      TANDEM_CUDA_CHECK(kernels::CopyRuns(runs.data(), static_cast<int>(runs.size()), stream));
    }
    ncclGroupStart();
    if (g == 0) {
      for (std::size_t i : plan.direct) {
        if (send) {
          ncclSend(ptrs[i], bytes[i], ncclUint8, peer, comm, stream);
        } else {
          ncclRecv(ptrs[i], bytes[i], ncclUint8, peer, comm, stream);
        }
      }
    }
    if (total > 0) {
      if (send) {
        ncclSend(staging->data(), total, ncclUint8, peer, comm, stream);
      } else {
        ncclRecv(staging->data(), total, ncclUint8, peer, comm, stream);
      }
    }
    const ncclResult_t r = ncclGroupEnd();
    if (r == ncclInProgress) {
      TANDEM_RETURN_IF_ERROR(WaitComm(comm, deadline, send ? "posting sends" : "posting receives"));
    } else if (r != ncclSuccess) {
      return NcclError(r, send ? "ncclSend group" : "ncclRecv group", comm);
    }
    if (!send && !runs.empty()) {  // unpack
      TANDEM_CUDA_CHECK(kernels::CopyRuns(runs.data(), static_cast<int>(runs.size()), stream));
    }
  }
  return absl::OkStatus();
}

// Connects the pair's p2p channel with a 1-byte warm-up message through the staging buffer, so
// later groups never wait on the peer in host code (NCCL connects p2p lazily, at the first group).
absl::Status ConnectPair(NcclComm& comm, bool send, std::unique_ptr<DeviceMemory>& staging,
                         cudaStream_t stream) {
  TANDEM_RETURN_IF_ERROR(ReserveStaging(staging, 256, stream));
  ncclGroupStart();
  if (send) {
    ncclSend(staging->data(), 1, ncclUint8, 1, comm.get(), stream);
  } else {
    ncclRecv(staging->data(), 1, ncclUint8, 0, comm.get(), stream);
  }
  if (const ncclResult_t g = ncclGroupEnd(); g != ncclSuccess) return NcclError(g, "warm-up message", comm.get());
  TANDEM_CUDA_CHECK(cudaStreamSynchronize(stream));  // the warm-up message arrived
  return absl::OkStatus();
}

}  // namespace

struct NcclTransport::State {
  int device = 0;
  int timeout_ms = 30000;
  uint64_t token = 0;
  std::string bus_id;
  std::string host_name;
  uint16_t port = 0;
  std::vector<std::string> hosts;
  Fd listen_fd;
  Fd wake_read, wake_write;

  // A connection we opened: we write into the peer's memory.
  struct OutPeer {
    Fd fd;
    FrameReader reader;
    uint64_t token = 0;
    // Declared before stream and comm: freed after both.
    std::unique_ptr<DeviceMemory> staging;
    Stream stream;  // declared before comm: the comm is aborted before the stream goes
    NcclComm comm;
    bool failed = false;
    std::string error;
  };
  struct Remote {
    PeerId peer = 0;
    uint64_t region = 0;  // the peer's RegionId
    uint64_t bytes = 0;
  };
  struct Transfer {
    PeerId peer = 0;
    Event event;  // end of the send group
    Clock::time_point deadline;
    bool acked = false;
    bool failed = false;
    std::string error;
  };
  // A connection a writer opened to us: we post the receives.
  struct PendingWrite {
    uint64_t transfer = 0;
    uint64_t pack_below = kPackBelow;
    uint64_t chunk_bytes = kChunkBytes;
    std::vector<RecvOp> ops;
    std::string notification;
  };
  struct PostedRecv {
    uint64_t transfer = 0;
    Event event;
    std::string notification;
  };
  struct InPeer {
    Fd fd;
    FrameReader reader;
    std::unique_ptr<DeviceMemory> staging;  // the same order as OutPeer's, for the same reasons
    Stream stream;
    NcclComm comm;
    bool hello_seen = false;
    bool comm_started = false;
    bool ready = false;  // communicator initialized
    bool failed = false;
    Clock::time_point init_deadline;
    std::deque<PendingWrite> queued;
    std::deque<PostedRecv> posted;
  };

  std::mutex mu;
  std::map<RegionId, MemoryRegion> regions;
  std::map<PeerId, OutPeer> out;
  std::list<InPeer> in;
  std::map<RemoteRegionId, Remote> remotes;
  std::map<TransferId, Transfer> transfers;
  std::vector<std::string> inbox;
  uint64_t next_id = 1;
  std::atomic<bool> stop{false};
  std::thread service;

  ~State() {
    stop = true;
    Wake();
    if (service.joinable()) service.join();
    DeviceGuard guard(device);
    out.clear();  // aborts communicators first, so nothing waits on a stuck kernel
    in.clear();
    transfers.clear();
  }

  void Wake() {
    if (wake_write.valid()) {
      const char c = 1;
      (void)!write(wake_write.get(), &c, 1);
    }
  }

  std::chrono::milliseconds Timeout() const { return std::chrono::milliseconds(timeout_ms); }

  // Fails a writer-side peer: aborts its communicator, closes the side channel (the receiver then
  // aborts its half), fails its transfers. Caller holds mu.
  void FailOut(PeerId id, OutPeer& peer, const std::string& reason) {
    if (!peer.failed) {
      peer.failed = true;
      peer.error = reason;
      DeviceGuard guard(device);
      peer.comm.Abort();
      peer.fd.Reset();
    }
    for (auto& [tid, t] : transfers) {
      if (t.peer == id && !t.failed && !t.acked) {
        t.failed = true;
        t.error = reason;
      }
    }
  }

  // Fails a receiver-side peer: tells the writer why (best effort), aborts, closes. Caller holds mu.
  void FailIn(InPeer& peer, uint64_t transfer, const std::string& reason) {
    if (peer.failed) return;
    if (peer.fd.valid() && transfer != 0) {
      (void)SendFrame(peer.fd.get(), kAck, PayloadWriter().U64(transfer).U32(0).Str(reason).data(), 100);
    }
    peer.failed = true;
    DeviceGuard guard(device);
    peer.comm.Abort();
    peer.fd.Reset();
    peer.queued.clear();
    peer.posted.clear();
  }

  void HandleHello(InPeer& peer, const Frame& frame) {
    PayloadReader r(frame.payload);
    uint32_t magic = 0;
    uint64_t their_token = 0;
    std::string bus, host;
    if (peer.hello_seen || !r.U32(&magic) || magic != kMagic || !r.U64(&their_token) || !r.Str(&bus) ||
        !r.Str(&host)) {
      (void)SendFrame(peer.fd.get(), kHelloReply, PayloadWriter().U32(0).Str("malformed nccl hello").data(), 100);
      FailIn(peer, 0, "malformed hello");
      return;
    }
    std::string refusal;
    if (their_token != token) {
      refusal = "token mismatch: this address belongs to another nccl transport";
    } else if (bus == bus_id && host == host_name) {
      refusal = absl::StrCat("both ends of the nccl connection are on GPU ", bus_id, " of host ", host_name,
                             "; nccl needs one GPU per end (use the local or ucx backend on one GPU)");
    }
    if (!refusal.empty()) {
      (void)SendFrame(peer.fd.get(), kHelloReply, PayloadWriter().U32(0).Str(refusal).data(), 100);
      FailIn(peer, 0, refusal);
      return;
    }
    DeviceGuard guard(device);
    if (absl::Status s = peer.stream.Create(); !s.ok()) {
      (void)SendFrame(peer.fd.get(), kHelloReply, PayloadWriter().U32(0).Str(s.ToString()).data(), 100);
      FailIn(peer, 0, s.ToString());
      return;
    }
    if (!SendFrame(peer.fd.get(), kHelloReply, PayloadWriter().U32(1).Str("").data(), timeout_ms).ok()) {
      FailIn(peer, 0, "writer went away during the hello");
      return;
    }
    peer.hello_seen = true;
    peer.init_deadline = Clock::now() + Timeout();  // the writer's communicator id must follow
  }

  void HandleCommId(InPeer& peer, const Frame& frame) {
    if (!peer.hello_seen || peer.comm_started || frame.payload.size() != sizeof(ncclUniqueId)) {
      FailIn(peer, 0, "unexpected communicator id");
      return;
    }
    ncclUniqueId id;
    std::memcpy(&id, frame.payload.data(), sizeof(id));
    DeviceGuard guard(device);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 1;  // see the header: groups launch inline
    const ncclResult_t r = ncclCommInitRankConfig(peer.comm.out(), 2, id, 1, &config);
    if (r != ncclSuccess && r != ncclInProgress) {
      FailIn(peer, 0, NcclError(r, "ncclCommInitRankConfig").ToString());
      return;
    }
    peer.comm_started = true;
    peer.init_deadline = Clock::now() + Timeout();
  }

  void HandleWrite(InPeer& peer, const Frame& frame) {
    PayloadReader r(frame.payload);
    PendingWrite w;
    uint32_t n = 0;
    if (!peer.comm_started || !r.U64(&w.transfer) || !r.U64(&w.pack_below) || !r.U64(&w.chunk_bytes) ||
        !r.U32(&n) || w.chunk_bytes == 0) {
      FailIn(peer, w.transfer, "malformed write descriptor");
      return;
    }
    w.ops.resize(n);
    for (RecvOp& op : w.ops) {
      if (!r.U64(&op.region) || !r.U64(&op.offset) || !r.U64(&op.bytes)) {
        FailIn(peer, w.transfer, "malformed write descriptor");
        return;
      }
    }
    if (!r.Str(&w.notification) || !r.done()) {
      FailIn(peer, w.transfer, "malformed write descriptor");
      return;
    }
    peer.queued.push_back(std::move(w));
  }

  // Posts the mirror receive group of one write on the peer's stream. Caller holds mu.
  absl::Status PostRecvs(InPeer& peer, PendingWrite& w) {
    for (const RecvOp& op : w.ops) {
      auto it = regions.find(op.region);
      if (it == regions.end()) {
        return absl::NotFoundError(absl::StrCat("write into region ", op.region, ", which is not registered"));
      }
      if (op.offset + op.bytes > it->second.bytes) {
        return absl::OutOfRangeError(absl::StrCat("write of ", op.bytes, " bytes at offset ", op.offset,
                                                  " exceeds region ", op.region, " of ", it->second.bytes, " bytes"));
      }
    }
    DeviceGuard guard(device);
    if (!w.ops.empty()) {
      std::vector<char*> ptrs;
      std::vector<uint64_t> bytes;
      for (const RecvOp& op : w.ops) {
        ptrs.push_back(static_cast<char*>(regions[op.region].base) + op.offset);
        bytes.push_back(op.bytes);
      }
      TANDEM_RETURN_IF_ERROR(RunPlan(/*send=*/false, ptrs, bytes, MakePackPlan(bytes, w.pack_below, w.chunk_bytes),
                                     peer.staging, peer.comm.get(), peer.stream.get(), Clock::now() + Timeout()));
    }
    PostedRecv posted{w.transfer, Event(), std::move(w.notification)};
    TANDEM_RETURN_IF_ERROR(RecordEnd(posted.event, peer.stream.get()));
    peer.posted.push_back(std::move(posted));
    return absl::OkStatus();
  }

  // Advances one receiver-side peer: init, queued writes, finished receives. Returns true while
  // it has work in flight (the service thread then spins instead of sleeping). Caller holds mu.
  bool AdvanceIn(InPeer& peer) {
    if (peer.failed || !peer.hello_seen) return false;
    if (!peer.comm_started) {
      if (Clock::now() > peer.init_deadline) FailIn(peer, 0, "no communicator id from the writer in time");
      return false;
    }
    if (!peer.ready) {
      ncclResult_t state = ncclSuccess;
      const ncclResult_t r = ncclCommGetAsyncError(peer.comm.get(), &state);
      if (r != ncclSuccess || (state != ncclSuccess && state != ncclInProgress)) {
        FailIn(peer, 0, NcclError(r != ncclSuccess ? r : state, "communicator init", peer.comm.get()).ToString());
        return false;
      }
      if (state == ncclInProgress) {
        if (Clock::now() > peer.init_deadline) FailIn(peer, 0, "communicator init timed out");
        return !peer.failed;
      }
      DeviceGuard guard(device);
      if (absl::Status s = ConnectPair(peer.comm, /*send=*/false, peer.staging, peer.stream.get());
          !s.ok()) {
        FailIn(peer, 0, s.ToString());
        return false;
      }
      peer.ready = true;
    }
    while (!peer.queued.empty()) {
      PendingWrite w = std::move(peer.queued.front());
      peer.queued.pop_front();
      if (absl::Status s = PostRecvs(peer, w); !s.ok()) {
        FailIn(peer, w.transfer, s.ToString());
        return false;
      }
    }
    while (!peer.posted.empty() && peer.posted.front().event.Done()) {
      PostedRecv& done = peer.posted.front();
      if (!done.notification.empty()) inbox.push_back(std::move(done.notification));
      const uint64_t transfer = done.transfer;
      peer.posted.pop_front();
      if (!SendFrame(peer.fd.get(), kAck, PayloadWriter().U64(transfer).U32(1).Str("").data(), timeout_ms).ok()) {
        FailIn(peer, 0, "writer went away");
        return false;
      }
    }
    return !peer.posted.empty();
  }

  void HandleAck(PeerId id, OutPeer& peer, const Frame& frame) {
    PayloadReader r(frame.payload);
    uint64_t transfer = 0;
    uint32_t ok = 0;
    std::string reason;
    if (!r.U64(&transfer) || !r.U32(&ok) || !r.Str(&reason)) {
      FailOut(id, peer, "malformed ack from the receiver");
      return;
    }
    auto it = transfers.find(transfer);
    if (ok == 0) {
      // The receiver refused a write: our sends for it can never match, so the pair is done.
      FailOut(id, peer, absl::StrCat("receiver refused transfer ", transfer, ": ", reason));
      return;
    }
    if (it != transfers.end() && it->second.peer == id) it->second.acked = true;
  }

  void Serve();
};

void NcclTransport::State::Serve() {
  cudaSetDevice(device);
  bool busy = false;
  while (!stop) {
    std::vector<pollfd> fds;
    {
      std::lock_guard<std::mutex> lock(mu);
      fds.push_back({wake_read.get(), POLLIN, 0});
      fds.push_back({listen_fd.get(), POLLIN, 0});
      for (InPeer& p : in) {
        if (p.fd.valid()) fds.push_back({p.fd.get(), POLLIN, 0});
      }
      for (auto& [id, p] : out) {
        if (p.fd.valid()) fds.push_back({p.fd.get(), POLLIN, 0});
      }
    }
    if (busy) std::this_thread::yield();  // outside the lock: callers' Poll/PostWrite get their turn
    const int ready = poll(fds.data(), fds.size(), busy ? 0 : 20);
    if (ready > 0 && (fds[0].revents & POLLIN) != 0) {
      char buf[64];
      while (read(wake_read.get(), buf, sizeof(buf)) > 0) {
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    if (stop) break;
    if (ready > 0 && (fds[1].revents & POLLIN) != 0) {
      while (true) {
        absl::StatusOr<std::optional<Fd>> accepted = AcceptTcp(listen_fd.get());
        if (!accepted.ok() || !accepted->has_value()) break;
        InPeer& p = in.emplace_back();
        p.fd = std::move(**accepted);
      }
    }
    busy = ready > 0;  // a message came in: replies and follow-ups are likely
    for (InPeer& p : in) {
      if (!p.failed && p.fd.valid()) {
        const absl::Status s = p.reader.ReadAvailable(p.fd.get());
        for (std::optional<Frame> f = p.reader.Next(); f.has_value() && !p.failed; f = p.reader.Next()) {
          switch (f->type) {
            case kHello:
              HandleHello(p, *f);
              break;
            case kCommId:
              HandleCommId(p, *f);
              break;
            case kWrite:
              HandleWrite(p, *f);
              break;
            default:
              FailIn(p, 0, absl::StrCat("unexpected message type ", f->type, " from a writer"));
              break;
          }
        }
        if (!s.ok() && !p.failed) FailIn(p, 0, s.ToString());  // the writer died or disconnected
      }
      busy = AdvanceIn(p) || busy;
    }
    in.remove_if([](const InPeer& p) { return p.failed; });
    const auto now = Clock::now();
    for (auto& [id, p] : out) {
      if (p.failed) continue;
      const absl::Status s = p.reader.ReadAvailable(p.fd.get());
      for (std::optional<Frame> f = p.reader.Next(); f.has_value() && !p.failed; f = p.reader.Next()) {
        if (f->type == kAck) {
          HandleAck(id, p, *f);
        } else {
          FailOut(id, p, absl::StrCat("unexpected message type ", f->type, " from the receiver"));
        }
      }
      if (!s.ok() && !p.failed) FailOut(id, p, absl::StrCat("receiver lost: ", s.message()));
    }
    for (auto& [tid, t] : transfers) {
      if (t.failed || (t.acked && t.event.Done())) continue;
      auto peer = out.find(t.peer);
      if (peer != out.end() && now > t.deadline) {
        FailOut(t.peer, peer->second,
                absl::StrCat("transfer ", tid, " not acknowledged within ", timeout_ms, " ms; communicator aborted"));
      }
      busy = busy || !t.failed;
    }
  }
}

absl::StatusOr<std::unique_ptr<NcclTransport>> NcclTransport::Create(NcclTransportOptions options) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    return absl::FailedPreconditionError(absl::StrCat("nccl transport: no CUDA device (",
                                                      e != cudaSuccess ? cudaGetErrorString(e) : "0 devices",
                                                      "); use the ucx or local backend"));
  }
  if (options.timeout_ms <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("nccl transport: timeout_ms must be positive, found ",
                                                   options.timeout_ms));
  }
  auto state = std::make_unique<State>();
  state->timeout_ms = options.timeout_ms;
  if (options.device < 0) {
    if (cudaGetDevice(&state->device) != cudaSuccess) state->device = 0;
  } else if (options.device >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("nccl transport: device ", options.device, " requested, this host has ", count));
  } else {
    state->device = options.device;
  }
  char bus[64] = {};
  TANDEM_CUDA_CHECK(cudaDeviceGetPCIBusId(bus, sizeof(bus), state->device));
  state->bus_id = bus;
  state->host_name = HostName();
  state->token = std::random_device()() | (static_cast<uint64_t>(std::random_device()()) << 32);
  {
    absl::StatusOr<Fd> listen = ListenTcp(&state->port);
    if (!listen.ok()) return listen.status();
    state->listen_fd = *std::move(listen);
  }
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("nccl transport: pipe: ", std::strerror(errno)));
  }
  state->wake_read = Fd(pipe_fds[0]);
  state->wake_write = Fd(pipe_fds[1]);
  state->hosts = LocalIpv4Addresses();
  State* raw = state.get();
  state->service = std::thread([raw] { raw->Serve(); });
  return std::unique_ptr<NcclTransport>(new NcclTransport(std::move(state)));
}

NcclTransport::NcclTransport(std::unique_ptr<State> state) : state_(std::move(state)) {}
NcclTransport::~NcclTransport() = default;

absl::StatusOr<std::string> NcclTransport::LocalAddress() {
  return absl::StrCat("nccl1;", absl::Hex(state_->token), ";", state_->port, ";", absl::StrJoin(state_->hosts, ","));
}

absl::StatusOr<RegionId> NcclTransport::RegisterMemory(const MemoryRegion& region) {
  if (region.base == nullptr || region.bytes == 0) {
    return absl::InvalidArgumentError("RegisterMemory: expected a non-null base and a non-zero size");
  }
  switch (region.kind) {
    case backend::MemoryKind::kHost:
      return absl::InvalidArgumentError(
          "nccl transport moves GPU memory only, and this region is host memory; use the ucx or local "
          "backend for host KV pools");
    case backend::MemoryKind::kDevice:
      break;
  }
  cudaPointerAttributes attr{};
  const cudaError_t e = cudaPointerGetAttributes(&attr, region.base);
  if (e != cudaSuccess || attr.type != cudaMemoryTypeDevice) {
    cudaGetLastError();  // clear the sticky-free error of a failed query
    return absl::InvalidArgumentError(absl::StrCat("nccl RegisterMemory: region at ", absl::Hex(reinterpret_cast<uintptr_t>(region.base)),
                                                   " is marked kDevice but is not device memory (",
                                                   e != cudaSuccess ? cudaGetErrorString(e) : "host or managed", ")"));
  }
  if (attr.device != state_->device || (region.device >= 0 && region.device != state_->device)) {
    return absl::InvalidArgumentError(absl::StrCat("nccl RegisterMemory: region lives on GPU ", attr.device,
                                                   ", this transport drives GPU ", state_->device));
  }
  std::lock_guard<std::mutex> lock(state_->mu);
  const RegionId id = state_->next_id++;
  state_->regions[id] = region;
  return id;
}

absl::Status NcclTransport::DeregisterMemory(RegionId region) {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (state_->regions.erase(region) == 0) return absl::NotFoundError(absl::StrCat("no registered region ", region));
  return absl::OkStatus();
}

// Descriptor: "<token>;<region id>;<bytes>" (the receiver posts receives by region id).
absl::StatusOr<std::string> NcclTransport::ExportRegion(RegionId region) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->regions.find(region);
  if (it == state_->regions.end()) return absl::NotFoundError(absl::StrCat("no registered region ", region));
  return absl::StrCat(absl::Hex(state_->token), ";", region, ";", it->second.bytes);
}

absl::StatusOr<PeerId> NcclTransport::Connect(const std::string& peer_address) {
  TANDEM_RETURN_IF_ERROR(ParseAddress(peer_address).status());
  const ParsedAddress address = *ParseAddress(peer_address);
  State& st = *state_;
  std::string tried;
  for (const std::string& host : address.hosts) {
    absl::StatusOr<Fd> fd = ConnectTcp(host, address.port, std::min(kConnectMs, st.timeout_ms));
    if (!fd.ok()) {
      absl::StrAppend(&tried, tried.empty() ? "" : "; ", fd.status().message());
      continue;
    }
    const std::string hello =
        PayloadWriter().U32(kMagic).U64(address.token).Str(st.bus_id).Str(st.host_name).data();
    TANDEM_RETURN_IF_ERROR(SendFrame(fd->get(), kHello, hello, st.timeout_ms));
    absl::StatusOr<Frame> reply = RecvFrame(fd->get(), st.timeout_ms);
    if (!reply.ok()) {
      absl::StrAppend(&tried, tried.empty() ? "" : "; ", host, ": ", reply.status().message());
      continue;
    }
    PayloadReader r(reply->payload);
    uint32_t ok = 0;
    std::string reason;
    if (reply->type != kHelloReply || !r.U32(&ok) || !r.Str(&reason)) {
      return absl::UnavailableError(absl::StrCat("nccl Connect: ", host, ":", address.port, " is not an nccl transport"));
    }
    if (ok == 0) {
      if (reason.rfind("token mismatch", 0) == 0) {  // another transport on that address: try the next host
        absl::StrAppend(&tried, tried.empty() ? "" : "; ", host, ": ", reason);
        continue;
      }
      return absl::FailedPreconditionError(absl::StrCat("nccl Connect refused: ", reason));
    }
    // Accepted: make the pair's communicator (this end is rank 0, the writer).
    ncclUniqueId id;
    if (const ncclResult_t ir = ncclGetUniqueId(&id); ir != ncclSuccess) return NcclError(ir, "ncclGetUniqueId");
    TANDEM_RETURN_IF_ERROR(SendFrame(fd->get(), kCommId,
                                     std::string_view(reinterpret_cast<const char*>(&id), sizeof(id)),
                                     st.timeout_ms));
    State::OutPeer peer;
    peer.fd = *std::move(fd);
    peer.token = address.token;
    {
      DeviceGuard guard(st.device);
      TANDEM_RETURN_IF_ERROR(peer.stream.Create());
      ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
      config.blocking = 1;  // see the header: groups launch inline
      const ncclResult_t init = ncclCommInitRankConfig(peer.comm.out(), 2, id, 0, &config);
      if (init != ncclSuccess && init != ncclInProgress) return NcclError(init, "ncclCommInitRankConfig");
      TANDEM_RETURN_IF_ERROR(WaitComm(peer.comm.get(), Clock::now() + st.Timeout(), "communicator init"));
      TANDEM_RETURN_IF_ERROR(ConnectPair(peer.comm, /*send=*/true, peer.staging, peer.stream.get()));
    }
    std::lock_guard<std::mutex> lock(st.mu);
    const PeerId pid = st.next_id++;
    st.out.emplace(pid, std::move(peer));
    st.Wake();
    return pid;
  }
  return absl::UnavailableError(absl::StrCat("nccl Connect: no side channel answered at port ", address.port, " (",
                                             tried, ")"));
}

absl::Status NcclTransport::Disconnect(PeerId peer) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->out.find(peer);
  if (it == state_->out.end()) return absl::NotFoundError(absl::StrCat("no peer ", peer));
  state_->FailOut(peer, it->second, "disconnected");
  for (auto r = state_->remotes.begin(); r != state_->remotes.end();) {
    r = r->second.peer == peer ? state_->remotes.erase(r) : std::next(r);
  }
  state_->out.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<RemoteRegionId> NcclTransport::ImportRegion(PeerId peer, const std::string& descriptor) {
  std::vector<std::string> parts = absl::StrSplit(descriptor, ';');
  uint64_t token = 0, region = 0, bytes = 0;
  if (parts.size() != 3 || !absl::SimpleHexAtoi(parts[0], &token) || !absl::SimpleAtoi(parts[1], &region) ||
      !absl::SimpleAtoi(parts[2], &bytes)) {
    return absl::InvalidArgumentError("nccl ImportRegion: malformed region descriptor");
  }
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->out.find(peer);
  if (it == state_->out.end()) return absl::NotFoundError(absl::StrCat("no connected peer ", peer));
  if (it->second.token != token) {
    return absl::InvalidArgumentError(
        absl::StrCat("nccl ImportRegion: the descriptor belongs to another transport than peer ", peer));
  }
  const RemoteRegionId id = state_->next_id++;
  state_->remotes[id] = {peer, region, bytes};
  return id;
}

absl::StatusOr<TransferId> NcclTransport::PostWrite(PeerId peer, std::span<const WriteOp> ops,
                                                    std::string notification) {
  if (notification.size() > kMaxNotificationBytes) {
    return absl::InvalidArgumentError(absl::StrCat("notification of ", notification.size(), " bytes exceeds ",
                                                   kMaxNotificationBytes));
  }
  State& st = *state_;
  std::lock_guard<std::mutex> lock(st.mu);
  auto peer_it = st.out.find(peer);
  if (peer_it == st.out.end()) return absl::NotFoundError(absl::StrCat("no connected peer ", peer));
  State::OutPeer& p = peer_it->second;
  if (p.failed) return absl::UnavailableError(absl::StrCat("nccl peer ", peer, " failed: ", p.error));
  // Validate every op before sending anything: a bad list moves no bytes.
  uint32_t count = 0;
  for (const WriteOp& op : ops) {
    auto local = st.regions.find(op.local_region);
    auto remote = st.remotes.find(op.remote_region);
    if (local == st.regions.end()) return absl::NotFoundError(absl::StrCat("no registered region ", op.local_region));
    if (remote == st.remotes.end() || remote->second.peer != peer) {
      return absl::NotFoundError(absl::StrCat("no imported region ", op.remote_region, " for peer ", peer));
    }
    if (op.local_offset + op.bytes > local->second.bytes || op.remote_offset + op.bytes > remote->second.bytes) {
      return absl::OutOfRangeError(absl::StrCat("write of ", op.bytes, " bytes at local offset ", op.local_offset,
                                                " / remote offset ", op.remote_offset, " exceeds the region"));
    }
    if (op.bytes > 0) ++count;
  }
  const TransferId id = st.next_id++;
  PayloadWriter descriptor;
  descriptor.U64(id).U64(kPackBelow).U64(kChunkBytes).U32(count);
  for (const WriteOp& op : ops) {
    if (op.bytes > 0) descriptor.U64(st.remotes[op.remote_region].region).U64(op.remote_offset).U64(op.bytes);
  }
  descriptor.Str(notification);
  if (absl::Status s = SendFrame(p.fd.get(), kWrite, descriptor.data(), st.timeout_ms); !s.ok()) {
    st.FailOut(peer, p, absl::StrCat("side channel: ", s.message()));
    return absl::UnavailableError(absl::StrCat("nccl peer ", peer, " failed: ", p.error));
  }
  DeviceGuard guard(st.device);
  if (count > 0) {
    std::vector<char*> ptrs;
    std::vector<uint64_t> bytes;
    for (const WriteOp& op : ops) {
      if (op.bytes == 0) continue;
      ptrs.push_back(static_cast<char*>(st.regions[op.local_region].base) + op.local_offset);
      bytes.push_back(op.bytes);
    }
    const absl::Status s = RunPlan(/*send=*/true, ptrs, bytes, MakePackPlan(bytes, kPackBelow, kChunkBytes), p.staging,
                                   p.comm.get(), p.stream.get(), Clock::now() + st.Timeout());
    if (!s.ok()) {
      st.FailOut(peer, p, s.ToString());
      return absl::UnavailableError(absl::StrCat("nccl peer ", peer, " failed: ", p.error));
    }
  }
  State::Transfer& t = st.transfers[id];
  t.peer = peer;
  t.deadline = Clock::now() + st.Timeout();
  if (absl::Status s = RecordEnd(t.event, p.stream.get()); !s.ok()) {
    st.FailOut(peer, p, s.ToString());
    return s;
  }
  return id;
}

absl::StatusOr<TransferState> NcclTransport::Poll(TransferId transfer) {
  State& st = *state_;
  std::lock_guard<std::mutex> lock(st.mu);
  auto it = st.transfers.find(transfer);
  if (it == st.transfers.end()) return absl::NotFoundError(absl::StrCat("no transfer ", transfer));
  State::Transfer& t = it->second;
  if (t.failed) return absl::UnavailableError(absl::StrCat("nccl transfer ", transfer, " failed: ", t.error));
  if (t.acked && t.event.Done()) return TransferState::kDone;
  if (Clock::now() > t.deadline) {
    auto peer = st.out.find(t.peer);
    if (peer != st.out.end()) {
      st.FailOut(t.peer, peer->second,
                 absl::StrCat("transfer ", transfer, " not acknowledged within ", st.timeout_ms,
                              " ms; communicator aborted"));
    } else {
      t.failed = true;
      t.error = "peer disconnected";
    }
    return absl::UnavailableError(absl::StrCat("nccl transfer ", transfer, " failed: ", t.error));
  }
  return TransferState::kPending;
}

void NcclTransport::Release(TransferId transfer) {
  // A pending transfer's sends still read our memory: wait for it (Poll enforces the deadline).
  while (true) {
    absl::StatusOr<TransferState> s = Poll(transfer);
    if (!s.ok() || *s != TransferState::kPending) break;
    std::this_thread::yield();
  }
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->transfers.erase(transfer);
}

std::vector<std::string> NcclTransport::TakeNotifications() {
  std::lock_guard<std::mutex> lock(state_->mu);
  std::vector<std::string> out;
  out.swap(state_->inbox);
  return out;
}

}  // namespace tandem::transfer
