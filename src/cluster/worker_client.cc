#include "tandem/cluster/worker_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"

namespace tandem::cluster {

void CallHandle::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  if (context_ != nullptr) context_->TryCancel();
}

bool CallHandle::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

void CallHandle::Attach(grpc::ClientContext* context) {
  std::lock_guard<std::mutex> lock(mu_);
  context_ = context;
  if (cancelled_) context_->TryCancel();
}

void CallHandle::Detach() {
  std::lock_guard<std::mutex> lock(mu_);
  context_ = nullptr;
}

namespace {

// Attaches a context to an optional handle for the scope of one call.
class Attached {
 public:
  Attached(CallHandle* handle, grpc::ClientContext* context, void (CallHandle::*attach)(grpc::ClientContext*),
           void (CallHandle::*detach)())
      : handle_(handle), detach_(detach) {
    if (handle_ != nullptr) (handle_->*attach)(context);
  }
  ~Attached() {
    if (handle_ != nullptr) (handle_->*detach_)();
  }
  Attached(const Attached&) = delete;
  Attached& operator=(const Attached&) = delete;

 private:
  CallHandle* handle_;
  void (CallHandle::*detach_)();
};

}  // namespace

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

namespace {

std::shared_ptr<grpc::Channel> WorkerChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kWorkerKeepAliveMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kWorkerKeepAliveTimeoutMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);  // a quiet stream (a long prefill) keeps pinging
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

WorkerClient::WorkerClient(std::string address, std::string token)
    : address_(std::move(address)), token_(std::move(token)), stub_(v1::Worker::NewStub(WorkerChannel(address_))) {}

void WorkerClient::Prepare(grpc::ClientContext* context) const {
  if (!token_.empty()) context->AddMetadata(kClusterTokenHeader, token_);
}

absl::StatusOr<v1::WorkerInfo> WorkerClient::GetInfo(std::chrono::milliseconds timeout) {
  grpc::ClientContext context;
  Prepare(&context);
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  v1::WorkerInfo info;
  const grpc::Status s = stub_->GetInfo(&context, v1::WorkerInfoRequest(), &info);
  if (!s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        absl::StrCat("worker ", address_, ": GetInfo: ", s.error_message()));
  }
  return info;
}

absl::Status WorkerClient::Generate(const v1::WorkerGenerateRequest& request,
                                    const std::function<void(const v1::WorkerGenerateResponse&)>& on_response,
                                    CallHandle* handle) {
  grpc::ClientContext context;
  Prepare(&context);
  Attached attached(handle, &context, &CallHandle::Attach, &CallHandle::Detach);
  std::unique_ptr<grpc::ClientReader<v1::WorkerGenerateResponse>> reader = stub_->Generate(&context, request);
  v1::WorkerGenerateResponse response;
  while (reader->Read(&response)) on_response(response);
  return FromGrpc(reader->Finish());
}

absl::StatusOr<v1::RemotePrefillResponse> WorkerClient::RemotePrefill(const v1::RemotePrefillRequest& request,
                                                                      std::chrono::milliseconds timeout,
                                                                      CallHandle* handle) {
  grpc::ClientContext context;
  Prepare(&context);
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  Attached attached(handle, &context, &CallHandle::Attach, &CallHandle::Detach);
  v1::RemotePrefillResponse response;
  const grpc::Status s = stub_->RemotePrefill(&context, request, &response);
  if (!s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        absl::StrCat("prefill worker ", address_, ": ", s.error_message()));
  }
  return response;
}

absl::Status WorkerClient::StreamLoad(int interval_ms,
                                      const std::function<bool(const v1::LoadReport&)>& on_report,
                                      CallHandle* handle) {
  grpc::ClientContext context;
  Prepare(&context);
  Attached attached(handle, &context, &CallHandle::Attach, &CallHandle::Detach);
  v1::LoadRequest request;
  request.set_interval_ms(interval_ms);
  std::unique_ptr<grpc::ClientReader<v1::LoadReport>> reader = stub_->StreamLoad(&context, request);
  v1::LoadReport report;
  bool stopped = false;
  while (reader->Read(&report)) {
    if (!on_report(report)) {
      stopped = true;
      context.TryCancel();
      break;
    }
  }
  const grpc::Status s = reader->Finish();
  if (stopped || (handle != nullptr && handle->cancelled())) return absl::OkStatus();
  return FromGrpc(s);
}

}  // namespace tandem::cluster
