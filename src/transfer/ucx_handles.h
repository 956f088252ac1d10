// RAII owners of the raw UCP handles the ucx transport uses, and UCX's error texts. Each owner frees
// one handle; the order between them (requests, then endpoints, then the rkeys unpacked on them,
// then memory handles, then the worker, then the context) is kept by who owns whom and by member
// declaration order in UcxTransport::State and its Peer, where the comments say why.
#pragma once

#include <ucp/api/ucp.h>

#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tandem::transfer {

inline absl::Status UcsError(ucs_status_t status, const char* what) {
  return absl::InternalError(absl::StrCat("ucx ", what, ": ", ucs_status_string(status)));
}

// A UCP context (ucp_init). Cleaned up after everything made from it: workers and memory handles.
class UcpContext {
 public:
  UcpContext() = default;
  ~UcpContext() {
    if (context_ != nullptr) ucp_cleanup(context_);
  }
  UcpContext(const UcpContext&) = delete;
  UcpContext& operator=(const UcpContext&) = delete;
  ucs_status_t Init(const ucp_params_t& params, const ucp_config_t* config) {
    return ucp_init(&params, config, &context_);
  }
  ucp_context_h get() const { return context_; }

 private:
  ucp_context_h context_ = nullptr;
};

// A UCP worker. Destroyed after its endpoints, the rkeys unpacked on them and its requests.
class UcpWorker {
 public:
  UcpWorker() = default;
  ~UcpWorker() {
    if (worker_ != nullptr) ucp_worker_destroy(worker_);
  }
  UcpWorker(const UcpWorker&) = delete;
  UcpWorker& operator=(const UcpWorker&) = delete;
  ucs_status_t Create(ucp_context_h context, const ucp_worker_params_t& params) {
    return ucp_worker_create(context, &params, &worker_);
  }
  ucp_worker_h get() const { return worker_; }

 private:
  ucp_worker_h worker_ = nullptr;
};

// Memory mapped (registered, or allocated with UCP_MEM_MAP_ALLOCATE) in a context; unmapped on
// destruction. The context must outlive it.
class UcpMemory {
 public:
  UcpMemory() = default;
  ~UcpMemory() {
    if (memh_ != nullptr) ucp_mem_unmap(context_, memh_);
  }
  UcpMemory(UcpMemory&& o) noexcept : context_(o.context_), memh_(std::exchange(o.memh_, nullptr)) {}
  UcpMemory& operator=(UcpMemory&&) = delete;
  UcpMemory(const UcpMemory&) = delete;
  // Maps into an empty owner.
  ucs_status_t Map(ucp_context_h context, const ucp_mem_map_params_t& params) {
    ucp_mem_h memh = nullptr;
    const ucs_status_t s = ucp_mem_map(context, &params, &memh);
    if (s == UCS_OK) {
      context_ = context;
      memh_ = memh;
    }
    return s;
  }
  ucp_mem_h get() const { return memh_; }

 private:
  ucp_context_h context_ = nullptr;
  ucp_mem_h memh_ = nullptr;
};

// A peer's remote key, unpacked on an endpoint. UCX wants it destroyed once no operation uses it;
// the owner of the endpoint destroys it right after closing the endpoint (see UcxTransport's Peer).
class UcpRkey {
 public:
  UcpRkey() = default;
  ~UcpRkey() {
    if (rkey_ != nullptr) ucp_rkey_destroy(rkey_);
  }
  UcpRkey(UcpRkey&& o) noexcept : rkey_(std::exchange(o.rkey_, nullptr)) {}
  UcpRkey& operator=(UcpRkey&&) = delete;
  UcpRkey(const UcpRkey&) = delete;
  // Unpacks into an empty owner.
  ucs_status_t Unpack(ucp_ep_h ep, const void* packed) {
    ucp_rkey_h rkey = nullptr;
    const ucs_status_t s = ucp_ep_rkey_unpack(ep, packed, &rkey);
    if (s == UCS_OK) rkey_ = rkey;
    return s;
  }
  ucp_rkey_h get() const { return rkey_; }

 private:
  ucp_rkey_h rkey_ = nullptr;
};

// A request of an operation in flight (a *_nbx call's result that is neither NULL, "done at once",
// nor an error pointer), or empty. Freeing one still in flight lets UCX release it on completion;
// the memory it reads must stay registered until then, so whoever needs the data to have moved
// waits for Check() != UCS_INPROGRESS first.
class UcpRequest {
 public:
  UcpRequest() = default;
  explicit UcpRequest(void* request) : request_(request) {}
  ~UcpRequest() { Free(); }
  UcpRequest(UcpRequest&& o) noexcept : request_(std::exchange(o.request_, nullptr)) {}
  UcpRequest& operator=(UcpRequest&&) = delete;
  UcpRequest(const UcpRequest&) = delete;
  bool empty() const { return request_ == nullptr; }
  // UCS_INPROGRESS, UCS_OK or the failure; only on a non-empty request.
  ucs_status_t Check() const { return ucp_request_check_status(request_); }
  void Free() {
    if (request_ != nullptr) ucp_request_free(request_);
    request_ = nullptr;
  }

 private:
  void* request_ = nullptr;
};

// An endpoint to a peer. Close() (or destruction) closes it at once, cancelling what is
// outstanding on it, and progresses its worker until the close completes; the worker must outlive
// it. UCX documents the forced close for endpoints with peer error handling; same-host endpoints
// (without it) are closed the same way: a flushing close would wait for a peer that may be dead
// or, in one process, not progressing (UCX 1.13 completes the forced close for them; every
// transport test exercises it).
class UcpEndpoint {
 public:
  UcpEndpoint() = default;
  ~UcpEndpoint() { Close(); }
  UcpEndpoint(const UcpEndpoint&) = delete;
  UcpEndpoint& operator=(const UcpEndpoint&) = delete;
  // Creates into an empty owner.
  ucs_status_t Create(ucp_worker_h worker, const ucp_ep_params_t& params) {
    ucp_ep_h ep = nullptr;
    const ucs_status_t s = ucp_ep_create(worker, &params, &ep);
    if (s == UCS_OK) {
      worker_ = worker;
      ep_ = ep;
    }
    return s;
  }
  void Close() {
    if (ep_ == nullptr) return;
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    param.flags = UCP_EP_CLOSE_FLAG_FORCE;
    ucs_status_ptr_t request = ucp_ep_close_nbx(ep_, &param);
    ep_ = nullptr;
    if (request != nullptr && !UCS_PTR_IS_ERR(request)) {
      while (ucp_request_check_status(request) == UCS_INPROGRESS) ucp_worker_progress(worker_);
      ucp_request_free(request);
    }
  }
  ucp_ep_h get() const { return ep_; }

 private:
  ucp_worker_h worker_ = nullptr;
  ucp_ep_h ep_ = nullptr;
};

// Buffers UCX hands out for the caller to copy and release: the configuration, a packed rkey and
// the worker's address.
struct UcpConfigRelease {
  void operator()(ucp_config_t* config) const { ucp_config_release(config); }
};
using UcpConfig = std::unique_ptr<ucp_config_t, UcpConfigRelease>;

struct UcpRkeyBufferRelease {
  void operator()(void* buffer) const { ucp_rkey_buffer_release(buffer); }
};
using UcpRkeyBuffer = std::unique_ptr<void, UcpRkeyBufferRelease>;

struct UcpAddressRelease {
  ucp_worker_h worker = nullptr;
  void operator()(ucp_address_t* address) const { ucp_worker_release_address(worker, address); }
};
using UcpAddress = std::unique_ptr<ucp_address_t, UcpAddressRelease>;

}  // namespace tandem::transfer
