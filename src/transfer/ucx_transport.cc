// The `ucx` KV transport (ucx_transport.h): one UCP worker with its progress thread, endpoints per
// peer, registered and imported memory, puts and the notification that follows them. Over 600 lines
// because every UCX handle's life (context, worker, listener, endpoints, memory handles, rkeys) is
// tied to the others' and to the progress thread; the RAII owners are in ucx_handles.h, and
// ucx_info.h holds what is independent of a connection.
#include "tandem/transfer/ucx_transport.h"

#include <ucp/api/ucp.h>

#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tandem/core/logging.h"
#include "tandem/core/status.h"
#include "tandem/transfer/ucx_info.h"
#include "ucx_handles.h"
#ifdef TANDEM_HAS_CUDA
#include <cuda_runtime.h>

#include "tandem/backend/cuda_handles.h"
#endif

namespace tandem::transfer {
namespace {

constexpr unsigned kNotifyAmId = 7;

// Which machine and shared-memory domain this process is in: the boot id plus the IPC and mount
// namespaces (POSIX shared memory is reachable only within both). 16 bytes, a prefix of every
// address this transport hands out, so Connect() knows whether the peer can share memory with it.
constexpr size_t kHostIdBytes = 16;

std::string HostId() {
  std::string key;
  std::ifstream boot("/proc/sys/kernel/random/boot_id");
  std::getline(boot, key);
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0) key += host;
  for (const char* ns : {"/proc/self/ns/ipc", "/proc/self/ns/mnt"}) {
    char link[128] = {};
    if (readlink(ns, link, sizeof(link) - 1) > 0) key += link;
  }
  const size_t a = std::hash<std::string>{}(key), b = std::hash<std::string>{}(key + "#");
  std::string out(kHostIdBytes, '\0');
  std::memcpy(out.data(), &a, 8);
  std::memcpy(out.data() + 8, &b, 8);
  return out;
}

// UCX_NET_DEVICES for a transport that listens only where `bind_host` is: the interface(s) carrying
// that address, plus this host's InfiniBand ports (RDMA devices have no IP address to match; leaving
// them out would only push transfers onto TCP). "" when every device is wanted: no host, a wildcard,
// or the operator's own UCX_NET_DEVICES.
absl::StatusOr<std::string> NetDevicesFor(const std::string& bind_host) {
  if (bind_host.empty() || bind_host == "0.0.0.0" || bind_host == "::" || bind_host == "[::]") return "";
  if (const char* env = std::getenv("UCX_NET_DEVICES"); env != nullptr && *env != '\0') return "";
  std::string host = bind_host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* resolved = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &resolved) != 0 || resolved == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("ucx: expected the address of one of this host's interfaces, found '", bind_host, "'"));
  }
  auto same = [](const sockaddr* a, const sockaddr* b) {
    if (a == nullptr || b == nullptr || a->sa_family != b->sa_family) return false;
    if (a->sa_family == AF_INET) {
      return reinterpret_cast<const sockaddr_in*>(a)->sin_addr.s_addr ==
             reinterpret_cast<const sockaddr_in*>(b)->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
      return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr,
                         &reinterpret_cast<const sockaddr_in6*>(b)->sin6_addr, sizeof(in6_addr)) == 0;
    }
    return false;
  };
  std::set<std::string> devices;
  ifaddrs* interfaces = nullptr;
  if (getifaddrs(&interfaces) == 0) {
    for (const ifaddrs* i = interfaces; i != nullptr; i = i->ifa_next) {
      for (const addrinfo* r = resolved; r != nullptr; r = r->ai_next) {
        if (same(i->ifa_addr, r->ai_addr)) devices.insert(i->ifa_name);
      }
    }
    freeifaddrs(interfaces);
  }
  freeaddrinfo(resolved);
  if (devices.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ucx: expected the address of one of this host's interfaces, found '", bind_host,
                     "' (no interface has it)"));
  }
  std::string out;
  for (const std::string& d : devices) absl::StrAppend(&out, out.empty() ? "" : ",", d);
  std::error_code ec;
  for (const auto& dev : std::filesystem::directory_iterator("/sys/class/infiniband", ec)) {
    std::error_code port_ec;
    for (const auto& port : std::filesystem::directory_iterator(dev.path() / "ports", port_ec)) {
      absl::StrAppend(&out, ",", dev.path().filename().string(), ":", port.path().filename().string());
    }
  }
  return out;
}

// A UCX request pointer: nullptr (completed at once), an error pointer, or in flight.
bool RequestFailed(ucs_status_ptr_t request) { return UCS_PTR_IS_ERR(request); }

// Makes a region's CUDA device current on the calling thread while UCX maps it (cuda_copy and
// cuda_ipc register and export the memory in the current context); nothing in builds without CUDA.
#ifdef TANDEM_HAS_CUDA
using DeviceScope = backend::cuda::DeviceGuard;
#else
struct DeviceScope {
  explicit DeviceScope(int /*device*/) {}
};
#endif

// The CUDA device that holds [base, base + bytes), checked against the one the caller named (-1:
// any). The pointer is only asked about, never read: host code never touches device memory.
absl::StatusOr<int> DeviceOf(const MemoryRegion& region) {
#ifdef TANDEM_HAS_CUDA
  cudaPointerAttributes attr{};
  const cudaError_t err = cudaPointerGetAttributes(&attr, region.base);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // not sticky; leave no error behind for the next CUDA call
    return absl::InvalidArgumentError(absl::StrFormat(
        "ucx RegisterMemory: expected device memory at %p, and CUDA cannot tell what it is: %s", region.base,
        cudaGetErrorString(err)));
  }
  switch (attr.type) {
    case cudaMemoryTypeDevice:
      break;
    case cudaMemoryTypeUnregistered:
    case cudaMemoryTypeHost:
    case cudaMemoryTypeManaged:
      return absl::InvalidArgumentError(absl::StrFormat(
          "ucx RegisterMemory: expected device memory (cudaMalloc) at %p, found %s memory", region.base,
          attr.type == cudaMemoryTypeManaged ? "managed"
          : attr.type == cudaMemoryTypeHost  ? "page-locked host"
                                             : "ordinary host"));
  }
  if (region.device >= 0 && region.device != attr.device) {
    return absl::InvalidArgumentError(
        absl::StrFormat("ucx RegisterMemory: the region names CUDA device %d, but %p is on device %d",
                        region.device, region.base, attr.device));
  }
  return attr.device;
#else
  return region.device;  // a UCX with CUDA under a build without it: UCX finds the device itself
#endif
}

// Why device memory cannot be registered: what UCX was found, and what to do about it.
absl::Status NoCudaError() {
  absl::StatusOr<UcxInfo> info = QueryUcx();
  const std::string found = info.ok() ? info->Summary() : absl::StrCat("UCX ", ucp_get_version_string());
  const bool has_module =
      info.ok() && std::find_if(info->modules.begin(), info->modules.end(), [](const std::string& m) {
                     return m.starts_with("libuct_cuda.");
                   }) != info->modules.end();
  return absl::FailedPreconditionError(absl::StrCat(
      "ucx RegisterMemory: device memory needs UCX with its CUDA transports (cuda_copy, cuda_ipc), found ",
      found,
      has_module
          ? ". Its libuct_cuda module is there but gave no CUDA transport: is a GPU visible, and do "
            "libcuda.so.1 and libnvidia-ml.so.1 load?"
          : ". Build with CUDA, which links UCX 1.22 with CUDA from the libucx-cu13 wheel "
            "(scripts/fetch_ucx.sh, cmake/Ucx.cmake), and keep its lib/ucx/ modules beside its libucs"));
}

// Logged once per transport, at the first device registration: which UCX moves device memory.
void ReportDeviceMemory(int device) {
  absl::StatusOr<UcxInfo> info = QueryUcx();
  if (!info.ok()) return;
  TLOG_INFO("ucx: device memory on CUDA device {} moves through {}", device, info->Summary());
  if (!info->HasTransport("cuda_ipc")) {
    TLOG_WARN(
        "ucx: no cuda_ipc transport: writes between device memory of processes on this host are staged "
        "through host memory (cuda_copy)");
  }
}

}  // namespace

// Members are destroyed in the reverse order of their declaration, which is the order UCX needs:
// the transfers' requests are freed first, then every peer's endpoint is closed (and the rkeys
// unpacked on it destroyed), then registered and allocated memory is unmapped, then the worker is
// destroyed and last the context cleaned up. Keep new handles in that order.
struct UcxTransport::State {
  UcpContext context;
  UcpWorker worker;  // every endpoint, rkey and request below belongs to it
  std::string host_id;
  std::string address;  // host_id, then the UCP worker address
  // The context accepts CUDA memory (UCP_ATTR_FIELD_MEMORY_TYPES): UCX has its cuda transports
  // (module loaded, GPU visible). Without it device memory is refused, never mapped as host memory.
  bool cuda_memory = false;
  bool reported_device_memory = false;  // the first device registration logs what UCX moves it with

  std::mutex mu;  // every call holds it (the worker is UCS_THREAD_MODE_SERIALIZED)
  // Before the peers: closing an endpoint progresses the worker, which may still deliver a
  // notification here (OnNotification).
  std::deque<std::string> inbox;

  struct Allocation {
    UcpMemory memh;
    std::size_t bytes = 0;
  };
  struct Region {
    MemoryRegion region;
    UcpMemory own_memh;        // empty for a range of an Allocation, whose handle it borrows
    ucp_mem_h memh = nullptr;  // own_memh's, or the Allocation's
    std::string packed_rkey;
  };
  struct Remote {
    uint64_t base = 0;
    uint64_t bytes = 0;
    UcpRkey rkey;
  };
  struct Peer {
    // Declared before the endpoint, so destroyed after it is closed (see Close).
    std::map<RemoteRegionId, Remote> remotes;
    UcpEndpoint endpoint;
    bool failed = false;
    std::string error;

    // Closes the endpoint first, which cancels the puts still in flight on it, then destroys the
    // rkeys those puts used: UCX wants an rkey destroyed only once no operation uses it, and a peer
    // that may be dead cannot be flushed.
    void Close() {
      endpoint.Close();
      remotes.clear();
    }
  };
  enum class Phase { kPuts, kFlush, kNotify, kDone, kFailed };
  struct Transfer {
    PeerId peer;
    Phase phase = Phase::kPuts;
    std::vector<UcpRequest> requests;  // in-flight puts, then the flush, then the notification
    std::string notification;
    std::string error;
  };

  std::map<uintptr_t, Allocation> allocations;  // by base address
  std::map<RegionId, Region> regions;           // after allocations: a region may borrow one's handle
  std::map<PeerId, Peer> peers;
  std::map<TransferId, Transfer> transfers;
  uint64_t next_id = 1;

  // The allocation holding [base, base + bytes), or nullptr.
  const Allocation* AllocationOf(const void* base, std::size_t bytes) const {
    const uintptr_t b = reinterpret_cast<uintptr_t>(base);
    auto it = allocations.upper_bound(b);
    if (it == allocations.begin()) return nullptr;
    --it;
    return b + bytes <= it->first + it->second.bytes ? &it->second : nullptr;
  }

  void Progress() {
    while (ucp_worker_progress(worker.get()) != 0) {
    }
  }

  // Returns true when every request is complete (freeing them); sets `error` on a failure.
  bool RequestsDone(Transfer& t) {
    bool done = true;
    for (UcpRequest& r : t.requests) {
      if (r.empty()) continue;
      const ucs_status_t s = r.Check();
      if (s == UCS_INPROGRESS) {
        done = false;
        continue;
      }
      if (s != UCS_OK && t.error.empty()) t.error = ucs_status_string(s);
      r.Free();
    }
    if (done) t.requests.clear();
    return done;
  }

  // Advances a transfer through puts → flush → notification.
  void Advance(Transfer& t) {
    Peer& peer = peers[t.peer];
    if (peer.failed && t.phase != Phase::kDone) {
      t.phase = Phase::kFailed;
      if (t.error.empty()) t.error = "peer failed: " + peer.error;
    }
    while (t.phase != Phase::kDone && t.phase != Phase::kFailed) {
      if (!RequestsDone(t)) return;
      if (!t.error.empty()) {
        t.phase = Phase::kFailed;
        return;
      }
      ucp_request_param_t param{};
      switch (t.phase) {
        case Phase::kPuts: {
          ucs_status_ptr_t r = ucp_ep_flush_nbx(peer.endpoint.get(), &param);
          if (RequestFailed(r)) {
            t.error = ucs_status_string(UCS_PTR_STATUS(r));
            t.phase = Phase::kFailed;
            return;
          }
          t.requests.emplace_back(r);
          t.phase = Phase::kFlush;
          break;
        }
        case Phase::kFlush: {
          if (t.notification.empty()) {
            t.phase = Phase::kDone;
            return;
          }
          param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
          param.flags = UCP_AM_SEND_FLAG_EAGER | UCP_AM_SEND_FLAG_REPLY;
          ucs_status_ptr_t r = ucp_am_send_nbx(peer.endpoint.get(), kNotifyAmId, nullptr, 0,
                                               t.notification.data(), t.notification.size(), &param);
          if (RequestFailed(r)) {
            t.error = ucs_status_string(UCS_PTR_STATUS(r));
            t.phase = Phase::kFailed;
            return;
          }
          t.requests.emplace_back(r);
          t.phase = Phase::kNotify;
          break;
        }
        case Phase::kNotify:
          t.phase = Phase::kDone;
          return;
        case Phase::kDone:
        case Phase::kFailed:
          return;
      }
    }
  }
};

namespace {

ucs_status_t OnNotification(void* arg, const void* /*header*/, size_t /*header_length*/, void* data, size_t length,
                            const ucp_am_recv_param_t* param) {
  auto* state = static_cast<UcxTransport::State*>(arg);
  if ((param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0) {
    // Notifications are sent eagerly and are small; a rendezvous one is a protocol violation.
    return UCS_ERR_UNSUPPORTED;
  }
  // Called from inside ucp_worker_progress, with state->mu already held by the caller.
  state->inbox.emplace_back(static_cast<const char*>(data), length);
  return UCS_OK;
}

void OnEndpointError(void* arg, ucp_ep_h /*ep*/, ucs_status_t status) {
  auto* peer = static_cast<UcxTransport::State::Peer*>(arg);
  peer->failed = true;
  peer->error = ucs_status_string(status);
}

}  // namespace

absl::StatusOr<std::unique_ptr<UcxTransport>> UcxTransport::Create(const std::string& bind_host) {
  absl::StatusOr<std::string> net_devices = NetDevicesFor(bind_host);
  if (!net_devices.ok()) return net_devices.status();
  auto state = std::make_unique<State>();
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
  params.features = UCP_FEATURE_RMA | UCP_FEATURE_AM;
  params.mt_workers_shared = 0;
  ucp_config_t* raw_config = nullptr;
  ucs_status_t s = ucp_config_read(nullptr, nullptr, &raw_config);
  if (s != UCS_OK) return UcsError(s, "config_read");
  const UcpConfig config(raw_config);
  if (!net_devices->empty()) {
    s = ucp_config_modify(config.get(), "NET_DEVICES", net_devices->c_str());
    if (s != UCS_OK) return UcsError(s, "config_modify NET_DEVICES");
  }
  // Each KV pool is mapped once for the transport's life, so UCP's registration cache buys nothing;
  // and UCX 1.22 on the H200 machine failed to insert a freshly cudaMalloc'd pool into it ("failed to
  // insert region [0x0..0x0]: Invalid parameter", 8B-shaped model, whose fp32 host staging had just
  // been freed) — mapping without it works. An operator's UCX_RCACHE_ENABLE wins; a UCX without the
  // key keeps its default.
  if (std::getenv("UCX_RCACHE_ENABLE") == nullptr) (void)ucp_config_modify(config.get(), "RCACHE_ENABLE", "n");
  s = state->context.Init(params, config.get());
  if (s != UCS_OK) return UcsError(s, "init");
  ucp_context_attr_t context_attr{};
  context_attr.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES;
  s = ucp_context_query(state->context.get(), &context_attr);
  if (s != UCS_OK) return UcsError(s, "context_query");
  state->cuda_memory = (context_attr.memory_types & UCS_BIT(UCS_MEMORY_TYPE_CUDA)) != 0;

  ucp_worker_params_t worker_params{};
  worker_params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  worker_params.thread_mode = UCS_THREAD_MODE_SERIALIZED;  // every call holds State::mu
  s = state->worker.Create(state->context.get(), worker_params);
  if (s != UCS_OK) return UcsError(s, "worker_create");

  ucp_address_t* raw_address = nullptr;
  size_t address_length = 0;
  s = ucp_worker_get_address(state->worker.get(), &raw_address, &address_length);
  if (s != UCS_OK) return UcsError(s, "worker_get_address");
  const UcpAddress address(raw_address, UcpAddressRelease{state->worker.get()});
  state->host_id = HostId();
  state->address = state->host_id + std::string(reinterpret_cast<const char*>(address.get()), address_length);

  ucp_am_handler_param_t handler{};
  handler.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG;
  handler.id = kNotifyAmId;
  handler.cb = OnNotification;
  handler.arg = state.get();
  s = ucp_worker_set_am_recv_handler(state->worker.get(), &handler);
  if (s != UCS_OK) return UcsError(s, "set_am_recv_handler");
  return std::unique_ptr<UcxTransport>(new UcxTransport(std::move(state)));
}

UcxTransport::UcxTransport(std::unique_ptr<State> state) : state_(std::move(state)) {}
UcxTransport::~UcxTransport() = default;

absl::StatusOr<std::string> UcxTransport::LocalAddress() { return state_->address; }

absl::StatusOr<void*> UcxTransport::AllocateMemory(std::size_t bytes, backend::MemoryKind kind) {
  if (bytes == 0) return absl::InvalidArgumentError("ucx AllocateMemory: expected a non-zero size");
  switch (kind) {
    case backend::MemoryKind::kHost:
      break;
    case backend::MemoryKind::kDevice:
      return absl::UnimplementedError(
          "ucx AllocateMemory: only host memory; register device memory the backend allocated");
  }
  std::lock_guard<std::mutex> lock(state_->mu);
  ucp_mem_map_params_t params{};
  params.field_mask =
      UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_FLAGS | UCP_MEM_MAP_PARAM_FIELD_MEMORY_TYPE;
  params.length = bytes;
  params.flags = UCP_MEM_MAP_ALLOCATE;
  params.memory_type = UCS_MEMORY_TYPE_HOST;
  UcpMemory memh;
  ucs_status_t s = memh.Map(state_->context.get(), params);
  if (s != UCS_OK) return UcsError(s, absl::StrCat("mem_map (allocate ", bytes, " bytes)").c_str());
  ucp_mem_attr_t attr{};
  attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS | UCP_MEM_ATTR_FIELD_LENGTH;
  s = ucp_mem_query(memh.get(), &attr);
  if (s != UCS_OK || attr.address == nullptr || attr.length < bytes) {  // memh unmaps the allocation
    return s != UCS_OK ? UcsError(s, "mem_query") : absl::InternalError("ucx mem_query: allocation too small");
  }
  state_->allocations.emplace(reinterpret_cast<uintptr_t>(attr.address),
                              State::Allocation{std::move(memh), attr.length});
  return attr.address;
}

absl::Status UcxTransport::FreeMemory(void* base) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->allocations.find(reinterpret_cast<uintptr_t>(base));
  if (it == state_->allocations.end()) {
    return absl::NotFoundError("ucx FreeMemory: the address was not returned by AllocateMemory");
  }
  for (const auto& [id, region] : state_->regions) {
    if (region.memh == it->second.memh.get()) {
      return absl::FailedPreconditionError(
          absl::StrCat("ucx FreeMemory: region ", id, " inside the allocation is still registered"));
    }
  }
  state_->allocations.erase(it);  // unmaps it
  return absl::OkStatus();
}

absl::StatusOr<RegionId> UcxTransport::RegisterMemory(const MemoryRegion& region) {
  if (region.base == nullptr || region.bytes == 0) {
    return absl::InvalidArgumentError("RegisterMemory: expected a non-null base and a non-zero size");
  }
  std::lock_guard<std::mutex> lock(state_->mu);
  State::Region entry;
  entry.region = region;
  ucp_mem_map_params_t params{};
  params.field_mask =
      UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_MEMORY_TYPE;
  params.address = region.base;
  params.length = region.bytes;
  switch (region.kind) {
    case backend::MemoryKind::kHost:
      params.memory_type = UCS_MEMORY_TYPE_HOST;
      break;
    case backend::MemoryKind::kDevice:
      // UCX moves device memory with its cuda transports only (cuda_ipc between processes on one
      // host, cuda_copy staging for the others); mapped by a UCX without them, the memory would be
      // taken for host memory and read by the CPU.
      if (!state_->cuda_memory) return NoCudaError();
      params.memory_type = UCS_MEMORY_TYPE_CUDA;
      TANDEM_ASSIGN_OR_RETURN(entry.region.device, DeviceOf(region));
      break;
  }
  std::optional<DeviceScope> device;  // over the mapping and rkey_pack, which exports the memory for cuda_ipc
  if (region.kind == backend::MemoryKind::kDevice) device.emplace(entry.region.device);
  ucs_status_t s = UCS_OK;
  const State::Allocation* allocation =
      region.kind == backend::MemoryKind::kHost ? state_->AllocationOf(region.base, region.bytes) : nullptr;
  if (allocation != nullptr) {
    entry.memh = allocation->memh.get();  // already mapped (and shared); its rkey covers the range
  } else {
    s = entry.own_memh.Map(state_->context.get(), params);
    if (s != UCS_OK)
      return UcsError(s, region.kind == backend::MemoryKind::kDevice ? "mem_map (device memory)" : "mem_map");
    entry.memh = entry.own_memh.get();
  }
  void* raw_rkey = nullptr;
  size_t rkey_size = 0;
  s = ucp_rkey_pack(state_->context.get(), entry.memh, &raw_rkey, &rkey_size);
  if (s != UCS_OK) return UcsError(s, "rkey_pack");  // entry.own_memh unmaps what it mapped
  const UcpRkeyBuffer rkey(raw_rkey);
  entry.packed_rkey.assign(static_cast<const char*>(rkey.get()), rkey_size);
  if (region.kind == backend::MemoryKind::kDevice && !state_->reported_device_memory) {
    state_->reported_device_memory = true;
    ReportDeviceMemory(entry.region.device);
  }
  const RegionId id = state_->next_id++;
  state_->regions.emplace(id, std::move(entry));
  return id;
}

absl::Status UcxTransport::DeregisterMemory(RegionId region) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->regions.find(region);
  if (it == state_->regions.end()) return absl::NotFoundError(absl::StrCat("no registered region ", region));
  state_->regions.erase(it);  // unmaps the memory unless it borrowed an allocation's handle
  return absl::OkStatus();
}

// Descriptor: u64 base address, u64 length, then the packed rkey.
absl::StatusOr<std::string> UcxTransport::ExportRegion(RegionId region) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->regions.find(region);
  if (it == state_->regions.end()) return absl::NotFoundError(absl::StrCat("no registered region ", region));
  const uint64_t base = reinterpret_cast<uintptr_t>(it->second.region.base);
  const uint64_t bytes = it->second.region.bytes;
  std::string out(16, '\0');
  std::memcpy(out.data(), &base, 8);
  std::memcpy(out.data() + 8, &bytes, 8);
  return out + it->second.packed_rkey;
}

absl::StatusOr<PeerId> UcxTransport::Connect(const std::string& peer_address) {
  if (peer_address.size() <= kHostIdBytes) {
    return absl::InvalidArgumentError("ucx Connect: expected a ucx transport address, found too few bytes");
  }
  std::lock_guard<std::mutex> lock(state_->mu);
  const PeerId id = state_->next_id++;
  State::Peer& peer = state_->peers[id];  // std::map: the address stays valid for the error callback
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                      UCP_EP_PARAM_FIELD_ERR_HANDLER;
  params.address = reinterpret_cast<const ucp_address_t*>(peer_address.data() + kHostIdBytes);
  // UCX 1.13's shared-memory transports cannot detect a dead peer, so asking for peer error handling
  // rules them out and puts go over TCP loopback. A peer sharing this host's memory gets an endpoint
  // without it (writes into its segment, ~5x faster); its death then shows on the control plane
  // (the gRPC call fails) and as a transfer timeout. Peers on other hosts keep peer error handling.
  const bool same_host = peer_address.compare(0, kHostIdBytes, state_->host_id) == 0;
  params.err_mode = same_host ? UCP_ERR_HANDLING_MODE_NONE : UCP_ERR_HANDLING_MODE_PEER;
  params.err_handler.cb = OnEndpointError;
  params.err_handler.arg = &peer;
  const ucs_status_t s = peer.endpoint.Create(state_->worker.get(), params);
  if (s != UCS_OK) {
    state_->peers.erase(id);
    return UcsError(s, "ep_create");
  }
  return id;
}

absl::Status UcxTransport::Disconnect(PeerId peer) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->peers.find(peer);
  if (it == state_->peers.end()) return absl::NotFoundError(absl::StrCat("no peer ", peer));
  it->second.Close();  // the endpoint, then the rkeys imported through it
  it->second.failed = true;
  it->second.error = "disconnected";
  return absl::OkStatus();
}

absl::StatusOr<RemoteRegionId> UcxTransport::ImportRegion(PeerId peer, const std::string& descriptor) {
  if (descriptor.size() <= 16) return absl::InvalidArgumentError("ucx ImportRegion: descriptor too short");
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->peers.find(peer);
  if (it == state_->peers.end() || it->second.endpoint.get() == nullptr) {
    return absl::NotFoundError(absl::StrCat("no connected peer ", peer));
  }
  State::Remote remote;
  std::memcpy(&remote.base, descriptor.data(), 8);
  std::memcpy(&remote.bytes, descriptor.data() + 8, 8);
  const ucs_status_t s = remote.rkey.Unpack(it->second.endpoint.get(), descriptor.data() + 16);
  if (s != UCS_OK) return UcsError(s, "ep_rkey_unpack");
  const RemoteRegionId id = state_->next_id++;
  it->second.remotes.emplace(id, std::move(remote));
  return id;
}

absl::StatusOr<TransferId> UcxTransport::PostWrite(PeerId peer, std::span<const WriteOp> ops,
                                                   std::string notification) {
  if (notification.size() > kMaxNotificationBytes) {
    return absl::InvalidArgumentError(absl::StrCat("notification of ", notification.size(), " bytes exceeds ",
                                                   kMaxNotificationBytes));
  }
  std::lock_guard<std::mutex> lock(state_->mu);
  auto peer_it = state_->peers.find(peer);
  if (peer_it == state_->peers.end() || peer_it->second.endpoint.get() == nullptr) {
    return absl::NotFoundError(absl::StrCat("no connected peer ", peer));
  }
  State::Peer& target = peer_it->second;
  if (target.failed) {
    return absl::UnavailableError(absl::StrCat("peer ", peer, " failed: ", target.error));
  }
  // Validate every op before posting anything: a bad list moves no bytes.
  for (const WriteOp& op : ops) {
    auto local = state_->regions.find(op.local_region);
    auto remote = target.remotes.find(op.remote_region);
    if (local == state_->regions.end()) {
      return absl::NotFoundError(absl::StrCat("no registered region ", op.local_region));
    }
    if (remote == target.remotes.end()) {
      return absl::NotFoundError(absl::StrCat("no imported region ", op.remote_region, " for peer ", peer));
    }
    if (op.local_offset + op.bytes > local->second.region.bytes || op.remote_offset + op.bytes > remote->second.bytes) {
      return absl::OutOfRangeError(absl::StrCat("write of ", op.bytes, " bytes at local offset ", op.local_offset,
                                                " / remote offset ", op.remote_offset, " exceeds the region"));
    }
  }
  const TransferId id = state_->next_id++;
  State::Transfer& t = state_->transfers[id];
  t.peer = peer;
  t.notification = std::move(notification);
  for (const WriteOp& op : ops) {
    if (op.bytes == 0) continue;
    const State::Region& local = state_->regions[op.local_region];
    const State::Remote& remote = target.remotes.at(op.remote_region);
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_MEMH;
    param.memh = local.memh;
    ucs_status_ptr_t r = ucp_put_nbx(target.endpoint.get(), static_cast<char*>(local.region.base) + op.local_offset,
                                     op.bytes, remote.base + op.remote_offset, remote.rkey.get(), &param);
    if (RequestFailed(r)) {
      t.error = ucs_status_string(UCS_PTR_STATUS(r));
      break;
    }
    if (r != nullptr) t.requests.emplace_back(r);
  }
  state_->Advance(t);
  return id;
}

absl::StatusOr<TransferState> UcxTransport::Poll(TransferId transfer) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->transfers.find(transfer);
  if (it == state_->transfers.end()) return absl::NotFoundError(absl::StrCat("no transfer ", transfer));
  state_->Progress();
  state_->Advance(it->second);
  switch (it->second.phase) {
    case State::Phase::kDone:
      return TransferState::kDone;
    case State::Phase::kFailed:
      return absl::UnavailableError(absl::StrCat("ucx transfer ", transfer, " failed: ", it->second.error));
    case State::Phase::kPuts:
    case State::Phase::kFlush:
    case State::Phase::kNotify:
      return TransferState::kPending;
  }
  return TransferState::kPending;
}

void UcxTransport::Release(TransferId transfer) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->transfers.find(transfer);
  if (it == state_->transfers.end()) return;
  // A pending transfer still owns requests reading our memory: finish (or fail) it first.
  while (it->second.phase != State::Phase::kDone && it->second.phase != State::Phase::kFailed) {
    state_->Progress();
    state_->Advance(it->second);
  }
  for (const UcpRequest& r : it->second.requests) {
    while (!r.empty() && r.Check() == UCS_INPROGRESS) ucp_worker_progress(state_->worker.get());
  }
  state_->transfers.erase(it);  // frees the requests
}

std::vector<std::string> UcxTransport::TakeNotifications() {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->Progress();
  std::vector<std::string> out(std::make_move_iterator(state_->inbox.begin()),
                               std::make_move_iterator(state_->inbox.end()));
  state_->inbox.clear();
  return out;
}

}  // namespace tandem::transfer
