#include "worker_service.h"

#include <chrono>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tandem/cluster/cluster_token.h"
#include "tandem/cluster/worker_client.h"
#include "tandem/core/logging.h"
#include "tandem/wire/convert.h"

namespace tandem::worker {
namespace {

// How often a Generate call looks for its client's cancellation between engine outputs (gRPC's
// synchronous API tells of it only when asked).
constexpr auto kCancelCheck = std::chrono::milliseconds(20);

// Counts a Generate or RemotePrefill call as in flight for its lifetime. Counted before the
// draining check, so a drain that sees zero calls after setting draining has seen every call that
// will ever run.
class CallCount {
 public:
  explicit CallCount(std::atomic<int64_t>& count) : count_(count) { count_.fetch_add(1); }
  ~CallCount() { count_.fetch_sub(1); }
  CallCount(const CallCount&) = delete;
  CallCount& operator=(const CallCount&) = delete;

 private:
  std::atomic<int64_t>& count_;
};

}  // namespace

grpc::Status WorkerService::Authenticate(const grpc::ServerContext* context) const {
  const std::string& token = parts_.options.cluster_token;
  if (token.empty()) return grpc::Status::OK;
  const auto& metadata = context->client_metadata();
  const auto it = metadata.find(cluster::kClusterTokenHeader);
  const std::string_view presented =
      it == metadata.end() ? std::string_view() : std::string_view(it->second.data(), it->second.size());
  if (cluster::ClusterTokenMatches(token, presented)) return grpc::Status::OK;
  TLOG_WARN("worker: refused a call from {}: {} cluster token", context->peer(),
            it == metadata.end() ? "no" : "a wrong");
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      absl::StrCat("expected the deployment's cluster token in metadata ", cluster::kClusterTokenHeader,
                                   ", found ", it == metadata.end() ? "none" : "a different one"));
}

grpc::Status WorkerService::GetInfo(grpc::ServerContext* context, const v1::WorkerInfoRequest*,
                                    v1::WorkerInfo* info) {
  if (grpc::Status s = Authenticate(context); !s.ok()) return s;
  *info = parts_.info;
  return grpc::Status::OK;
}

grpc::Status WorkerService::Generate(grpc::ServerContext* context, const v1::WorkerGenerateRequest* request,
                                     grpc::ServerWriter<v1::WorkerGenerateResponse>* writer) {
  if (grpc::Status s = Authenticate(context); !s.ok()) return s;
  if (parts_.stopping) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "worker is shutting down");
  const CallCount counted(parts_.calls_in_flight);
  if (parts_.draining) return grpc::Status(grpc::StatusCode::UNAVAILABLE, cluster::kWorkerDrainingMessage);
  if (request->prompt_token_ids().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "prompt_token_ids: expected at least one token, found none");
  }
  engine::EngineRequest er;
  er.request_id = request->request_id().empty() ? absl::StrCat("w-", next_request_++) : request->request_id();
  er.prompt_token_ids.assign(request->prompt_token_ids().begin(), request->prompt_token_ids().end());
  er.params = wire::FromProto(request->sampling());
  er.priority = request->priority();
  absl::StatusOr<std::string> prefill_worker = parts_.remote_prefiller.Choose(
      *request, [&] { return parts_.load_stream.UncachedTokens(er.prompt_token_ids); });
  if (!prefill_worker.ok()) return cluster::ToGrpc(prefill_worker.status());
  const bool remote = !prefill_worker->empty();
  const std::string id = er.request_id;
  if (remote) {
    er.kv_role = engine::KvRole::kRemotePrefill;
    if (absl::Status s = parts_.remote_prefiller.Add(id, *prefill_worker, request->sampling()); !s.ok()) {
      return cluster::ToGrpc(s);
    }
  }
  auto outputs = std::make_shared<engine::OutputStream>();
  if (absl::Status s =
          parts_.loop.Submit(std::move(er), [outputs](engine::RequestOutput o) { outputs->Push(std::move(o)); });
      !s.ok()) {
    parts_.remote_prefiller.Erase(id);
    return cluster::ToGrpc(s);
  }
  parts_.counters.Update([&](wire::WorkerCounters& c) { ++(remote ? c.remote_prefills : c.local_prefills); });
  bool cancelled = false;
  for (bool done = false; !done;) {
    std::optional<engine::RequestOutput> o = outputs->NextFor(kCancelCheck);
    if (!o.has_value()) {
      if (!cancelled && (context->IsCancelled() || parts_.stopping)) {
        cancelled = true;
        Cancel(id);
      }
      continue;
    }
    done = o->request_finished;
    if (cancelled) continue;
    v1::WorkerGenerateResponse response = wire::ToProto(*o);
    response.set_remote_prefill(remote);
    if (!writer->Write(response)) {
      cancelled = true;
      Cancel(id);
    }
  }
  parts_.remote_prefiller.Erase(id);
  if (cancelled) {
    return parts_.stopping ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "worker is shutting down")
                           : grpc::Status(grpc::StatusCode::CANCELLED, "client cancelled");
  }
  return grpc::Status::OK;
}

void WorkerService::Cancel(const std::string& request_id) {
  if (parts_.remote_prefiller.Cancel(request_id)) parts_.loop.Abort(request_id);
}

grpc::Status WorkerService::RemotePrefill(grpc::ServerContext* context, const v1::RemotePrefillRequest* request,
                                          v1::RemotePrefillResponse* response) {
  if (grpc::Status s = Authenticate(context); !s.ok()) return s;
  const CallCount counted(parts_.calls_in_flight);
  if (parts_.draining) return grpc::Status(grpc::StatusCode::UNAVAILABLE, cluster::kWorkerDrainingMessage);
  parts_.counters.Update([](wire::WorkerCounters& c) { ++c.prefill_queue_length; });
  const absl::Status s = parts_.prefill_server.Serve(context, *request, *response);
  parts_.counters.Update([&](wire::WorkerCounters& c) {
    --c.prefill_queue_length;
    ++(s.ok() ? c.remote_prefills_served : c.remote_prefills_failed);
    if (s.ok()) c.kv_transfer_seconds.Observe(response->transfer_seconds());
  });
  if (!s.ok()) TLOG_WARN("remote prefill of request {} failed: {}", request->request_id(), std::string(s.message()));
  return cluster::ToGrpc(s);
}

wire::WorkerReport WorkerService::Report() const {
  wire::WorkerReport report;
  report.instance_id = parts_.info.instance_id();
  report.role = parts_.info.role();
  const engine::SchedulerStats m = parts_.loop.metrics();
  report.load = wire::WorkerLoad{.num_running = m.num_running,
                                 .num_waiting = m.num_waiting,
                                 .num_waiting_for_remote_kv = m.num_waiting_for_remote_kv,
                                 .num_pending_transfer = m.num_pending_transfer,
                                 .kv_blocks_used = m.kv_blocks_used,
                                 .kv_blocks_total = m.kv_blocks_total,
                                 .draining = parts_.draining.load()};
  report.counters = parts_.counters.Snapshot();
  return report;
}

grpc::Status WorkerService::StreamLoad(grpc::ServerContext* context, const v1::LoadRequest* request,
                                       grpc::ServerWriter<v1::LoadReport>* writer) {
  if (grpc::Status s = Authenticate(context); !s.ok()) return s;
  const auto interval = std::chrono::milliseconds(request->interval_ms() > 0 ? request->interval_ms() : 100);
  parts_.load_stream.Serve(context, interval, [this] { return Report(); }, writer);
  return grpc::Status::OK;
}

}  // namespace tandem::worker
