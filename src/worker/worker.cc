#include "tandem/worker/worker.h"

#ifdef TANDEM_HAS_CUDA
#include <cuda_runtime.h>
#endif

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "layerwise_sender.h"
#include "transport_kv_memory.h"
#include "tandem/backend/kv_cache.h"
#include "tandem/cluster/cluster_token.h"
#include "tandem/cluster/worker_client.h"
#include "tandem/core/logging.h"
#include "tandem/core/status.h"
#include "tandem/engine/backend_model_executor.h"
#include "tandem/engine/engine_factory.h"
#include "tandem/kvcache/block_hash.h"
#include "tandem/transfer/block_runs.h"
#include "tandem/transfer/kv_transport.h"
#include "tandem/v1/worker.grpc.pb.h"
#include "tandem/worker/proto_convert.h"

namespace tandem::worker {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(20);
constexpr int kTransferTimeoutMs = 60000;
constexpr auto kNotificationTimeout = std::chrono::seconds(30);

// Where the KV transport listens: transfer_host, else the gRPC listen host.
std::string TransferHost(const WorkerOptions& options) {
  if (!options.transfer_host.empty()) return options.transfer_host;
  return options.listen.substr(0, options.listen.rfind(':'));
}

std::string NewInstanceId() {
  std::random_device rd;
  const uint64_t r = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return absl::StrFormat("%d-%016x", getpid(), r);
}

// The gRPC health service's names (grpc.health.v1): readiness ("" and the worker service's name)
// turns NOT_SERVING when the worker drains; liveness stays SERVING until the process exits, so a
// liveness probe never kills a worker that is finishing its requests.
constexpr const char* kReadinessServices[] = {"", "tandem.v1.Worker"};
constexpr const char* kLivenessService = "liveness";

std::string NotificationFor(const std::string& request_id) { return absl::StrCat("kv-done:", request_id); }

// The KV layout's dtype name, as peers compare it.
const char* KvDTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "float32";
    case DType::kBF16:
      return "bfloat16";
    case DType::kF16:
      return "float16";
    case DType::kI32:
    case DType::kI64:
    case DType::kU8:
    case DType::kF8E4M3:
      break;
  }
  return "unsupported";
}

}  // namespace

class Worker::Impl final : public v1::Worker::Service {
 public:
  Impl(WorkerOptions options, std::shared_ptr<transfer::KvTransport> transport,
       std::unique_ptr<engine::Engine> engine, backend::KvCache* kv, std::string model_name)
      : options_(std::move(options)),
        kv_(kv),
        kv_device_(engine->executor().kv_device()),
        executor_(&engine->executor()),
        model_name_(std::move(model_name)),
        salt_(kvcache::HashSalt(model_name_)),
        loop_(std::make_unique<engine::EngineLoop>(std::move(engine))),
        transport_(std::move(transport)) {}

  ~Impl() override { Shutdown(); }

  absl::Status Start() {
    const backend::KvCacheSpec& spec = kv_->spec();
    if (transport_ == nullptr) {
      TANDEM_ASSIGN_OR_RETURN(transport_, transfer::CreateTransport(options_.transfer, TransferHost(options_)));
    }
    TANDEM_ASSIGN_OR_RETURN(std::string transport_address, transport_->LocalAddress());
    info_.set_role(cluster::WorkerRoleName(options_.role));
    info_.set_instance_id(NewInstanceId());
    v1::KvLayout* layout = info_.mutable_layout();
    layout->set_model(options_.model_name.empty() ? model_name_ : options_.model_name);
    layout->set_dtype(KvDTypeName(spec.dtype));
    layout->set_num_layers(spec.num_layers);
    // Tensor parallelism: every rank's pool, and the model heads each holds.
    const int tp = executor_->tensor_parallel_size();
    if (tp > 1 && std::string_view(transport_->name()) == "nccl") {
      return absl::UnimplementedError(absl::StrCat("worker: the nccl KV transport binds one GPU; a tensor_parallel ",
                                                   tp, " worker hands KV off over ucx"));
    }
    int model_kv_heads = spec.num_kv_heads;
    if (tp > 1) {
      model_kv_heads = 0;
      for (int r = 0; r < tp; ++r) {
        v1::RankKvHeads* rank = layout->add_ranks();
        for (int h : executor_->rank_kv_heads(r)) {
          rank->add_kv_heads(h);
          model_kv_heads = std::max(model_kv_heads, h + 1);
        }
      }
    }
    backend::KvCacheSpec model_spec = spec;  // a block of every head of the model
    model_spec.num_kv_heads = model_kv_heads;
    layout->set_num_kv_heads(model_kv_heads);
    layout->set_head_dim(spec.head_dim);
    layout->set_block_size(spec.block_size);
    layout->set_layout_version(kKvLayoutVersion);
    layout->set_bytes_per_block(model_spec.BytesPerBlock());
    info_.set_num_kv_blocks(executor_->num_kv_blocks());  // the fewest of any rank
    info_.set_transport(transport_->name());
    info_.set_transport_address(transport_address);
    my_heads_ = KvRankHeadsOf(info_.layout());
    for (int r = 0; r < tp; ++r) {
      backend::KvCache* pool = tp > 1 ? executor_->rank_kv_pool(r) : kv_;
      if (pool == nullptr ||
          (tp > 1 && pool->spec().num_kv_heads != static_cast<int>(my_heads_.heads[static_cast<size_t>(r)].size()))) {
        return absl::InternalError(absl::StrCat("worker: tensor-parallel rank ", r,
                                                "'s KV pool is missing or does not hold the heads its layout lists"));
      }
      for (int layer = 0; layer < spec.num_layers; ++layer) {
        transfer::MemoryRegion region{pool->LayerData(layer), pool->spec().BytesPerLayer(), pool->memory_kind(),
                                      tp > 1 ? executor_->rank_kv_device(r) : kv_device_};
        TANDEM_ASSIGN_OR_RETURN(transfer::RegionId id, transport_->RegisterMemory(region));
        layer_regions_.push_back(id);
        TANDEM_ASSIGN_OR_RETURN(std::string descriptor, transport_->ExportRegion(id));
        info_.add_layer_regions(descriptor);
      }
    }
    // Layer-wise streaming needs the per-layer callback of one runner: tensor_parallel 1 senders (to
    // decode workers of any width).
    if (options_.layerwise && options_.role != WorkerRole::kDecode && tp == 1) {
      sender_ = std::make_unique<LayerwiseKvSender>(transport_.get(), layer_regions_, my_heads_, spec.block_size);
      TANDEM_RETURN_IF_ERROR(executor_->SetLayerDoneCallback(
          [sender = sender_.get()](const engine::StepPlan& plan, int32_t layer) {
            sender->OnLayerDone(plan, layer);
          }));
    }
    loop_->Start();
    progress_thread_ = std::thread([this] { ProgressLoop(); });

    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    // No SO_REUSEPORT (gRPC's default): a second process on this port must fail to bind, not
    // silently take half of this worker's connections.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.AddListeningPort(options_.listen, grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port_ == 0) {
      Shutdown();
      return absl::UnavailableError(absl::StrCat("worker: cannot listen on ", options_.listen));
    }
    if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService(); health != nullptr) {
      for (const char* name : kReadinessServices) health->SetServingStatus(name, true);
      health->SetServingStatus(kLivenessService, true);
    }
    const std::string host = options_.listen.substr(0, options_.listen.rfind(':'));
    address_ = absl::StrCat(host == "0.0.0.0" || host == "[::]" ? "127.0.0.1" : host, ":", port_);
    TLOG_INFO("worker {} ({}) listening on {}: {} layers x {} KV blocks of {} tokens, transport {}",
              cluster::WorkerRoleName(options_.role), info_.instance_id(), address_, spec.num_layers, spec.num_blocks,
              spec.block_size, transport_->name());
    return absl::OkStatus();
  }

  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(shutdown_mu_);
      if (shut_down_) return;
      shut_down_ = true;
    }
    const auto start = Clock::now();
    auto ms = [&] { return std::chrono::duration<double, std::milli>(Clock::now() - start).count(); };
    stopping_ = true;
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    const double server_ms = ms();
    JoinHandOffs(/*all=*/true);
    progress_stop_ = true;
    if (progress_thread_.joinable()) progress_thread_.join();
    loop_->Stop();
    const double loop_ms = ms();
    if (transport_ != nullptr) {
      for (transfer::RegionId id : layer_regions_) (void)transport_->DeregisterMemory(id);
    }
    transport_.reset();
    TLOG_INFO("worker {} stopped: server {:.0f} ms, engine {:.0f} ms, transport {:.0f} ms",
              info_.instance_id(), server_ms, loop_ms - server_ms, ms() - loop_ms);
    {
      std::lock_guard<std::mutex> lock(shutdown_mu_);
      done_ = true;
    }
    shutdown_cv_.notify_all();
  }

  void BeginDrain() {
    if (draining_.exchange(true)) return;
    if (server_ != nullptr) {
      if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService(); health != nullptr) {
        for (const char* name : kReadinessServices) health->SetServingStatus(name, false);
      }
    }
    TLOG_INFO("worker {}: draining: new calls are refused, {} in flight", info_.instance_id(), calls_in_flight_.load());
  }

  int64_t calls_in_flight() const { return calls_in_flight_.load(); }

  void Wait() {
    std::unique_lock<std::mutex> lock(shutdown_mu_);
    shutdown_cv_.wait(lock, [&] { return done_; });
  }

  const std::string& address() const { return address_; }
  int port() const { return port_; }
  const v1::WorkerInfo& info() const { return info_; }
  engine::SchedulerStats engine_stats() const { return loop_->metrics(); }
  WorkerStats stats() const {
    std::lock_guard<std::mutex> lock(stats_mu_);
    return stats_;
  }

  // ---- gRPC service ----

  // Every RPC first: the caller presents the cluster token (cluster_token.h), compared in constant
  // time; without one configured, everyone is let in.
  grpc::Status Authenticate(const grpc::ServerContext* context) const {
    if (options_.cluster_token.empty()) return grpc::Status::OK;
    const auto& metadata = context->client_metadata();
    const auto it = metadata.find(cluster::kClusterTokenHeader);
    const std::string_view presented = it == metadata.end() ? std::string_view()
                                                            : std::string_view(it->second.data(), it->second.size());
    if (cluster::ClusterTokenMatches(options_.cluster_token, presented)) return grpc::Status::OK;
    TLOG_WARN("worker: refused a call from {}: {} cluster token", context->peer(),
              it == metadata.end() ? "no" : "a wrong");
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        absl::StrCat("expected the deployment's cluster token in metadata ", cluster::kClusterTokenHeader,
                                     ", found ", it == metadata.end() ? "none" : "a different one"));
  }

  grpc::Status GetInfo(grpc::ServerContext* context, const v1::WorkerInfoRequest*, v1::WorkerInfo* info) override {
    if (grpc::Status s = Authenticate(context); !s.ok()) return s;
    *info = info_;
    return grpc::Status::OK;
  }

  grpc::Status Generate(grpc::ServerContext* context, const v1::WorkerGenerateRequest* request,
                        grpc::ServerWriter<v1::WorkerGenerateResponse>* writer) override {
    if (grpc::Status s = Authenticate(context); !s.ok()) return s;
    if (stopping_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "worker is shutting down");
    const CallCount counted(this);
    if (draining_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, cluster::kWorkerDrainingMessage);
    if (request->prompt_token_ids().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "prompt_token_ids: expected at least one token, found none");
    }
    engine::EngineRequest er;
    er.request_id =
        request->request_id().empty() ? absl::StrCat("w-", next_request_++) : request->request_id();
    er.prompt_token_ids.assign(request->prompt_token_ids().begin(), request->prompt_token_ids().end());
    er.params = FromProto(request->sampling());
    er.priority = request->priority();
    absl::StatusOr<std::string> prefill_worker = ChoosePrefillWorker(*request, er.prompt_token_ids);
    if (!prefill_worker.ok()) return cluster::ToGrpc(prefill_worker.status());
    const bool remote = !prefill_worker->empty();
    const std::string id = er.request_id;
    if (remote) {
      er.kv_role = engine::KvRole::kRemotePrefill;
      auto state = std::make_shared<RemoteState>();
      state->prefill_worker = *prefill_worker;
      state->sampling = request->sampling();
      std::lock_guard<std::mutex> lock(remote_mu_);
      if (!remote_.emplace(id, state).second) {
        return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                            absl::StrCat("request ", id, " is already live"));
      }
    }
    auto queue = std::make_shared<engine::OutputStream>();
    if (absl::Status s =
            loop_->Submit(std::move(er), [queue](engine::RequestOutput o) { queue->Push(std::move(o)); });
        !s.ok()) {
      EraseRemote(id);
      return cluster::ToGrpc(s);
    }
    {
      std::lock_guard<std::mutex> lock(stats_mu_);
      ++(remote ? stats_.remote_prefills : stats_.local_prefills);
    }
    bool cancelled = false;
    bool done = false;
    while (!done) {
      std::optional<engine::RequestOutput> o = queue->NextFor(kPollInterval);
      if (!o.has_value()) {
        if (!cancelled && (context->IsCancelled() || stopping_)) {
          cancelled = true;
          CancelRequest(id);
        }
        continue;
      }
      done = o->request_finished;
      if (cancelled) continue;
      v1::WorkerGenerateResponse response = ToProto(*o);
      response.set_remote_prefill(remote);
      if (!writer->Write(response)) {
        cancelled = true;
        CancelRequest(id);
      }
    }
    EraseRemote(id);
    if (cancelled) {
      return stopping_ ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "worker is shutting down")
                       : grpc::Status(grpc::StatusCode::CANCELLED, "client cancelled");
    }
    return grpc::Status::OK;
  }

  grpc::Status RemotePrefill(grpc::ServerContext* context, const v1::RemotePrefillRequest* request,
                             v1::RemotePrefillResponse* response) override {
    if (grpc::Status s = Authenticate(context); !s.ok()) return s;
    const CallCount counted(this);
    if (draining_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, cluster::kWorkerDrainingMessage);
    {
      std::lock_guard<std::mutex> lock(stats_mu_);
      ++stats_.prefill_queue_length;
    }
    const absl::Status s = ServeRemotePrefill(context, *request, *response);
    {
      std::lock_guard<std::mutex> lock(stats_mu_);
      --stats_.prefill_queue_length;
      ++(s.ok() ? stats_.remote_prefills_served : stats_.remote_prefills_failed);
      if (s.ok()) stats_.kv_transfer_seconds.Observe(response->transfer_seconds());
    }
    if (!s.ok())
      TLOG_WARN("remote prefill of request {} failed: {}", request->request_id(), std::string(s.message()));
    return cluster::ToGrpc(s);
  }

  grpc::Status StreamLoad(grpc::ServerContext* context, const v1::LoadRequest* request,
                          grpc::ServerWriter<v1::LoadReport>* writer) override {
    if (grpc::Status s = Authenticate(context); !s.ok()) return s;
    auto subscriber = std::make_shared<Subscriber>();
    {
      // A subscriber first learns what is cached now (ALL_CLEARED, then every held block as STORED),
      // so a frontend that connects late or restarts routes prefix hits at once. Events published
      // meanwhile may repeat part of it; applying them twice changes nothing.
      std::lock_guard<std::mutex> cached_lock(cached_mu_);
      std::lock_guard<std::mutex> lock(subscribers_mu_);
      v1::KvCacheEvent& cleared = subscriber->events.emplace_back();
      cleared.set_type(v1::KvCacheEvent::ALL_CLEARED);
      if (!cached_.empty()) {
        v1::KvCacheEvent& stored = subscriber->events.emplace_back();
        stored.set_type(v1::KvCacheEvent::STORED);
        stored.set_block_size(kv_->spec().block_size);
        stored.mutable_block_hashes()->Add(cached_.begin(), cached_.end());
      }
      subscribers_.push_back(subscriber);
    }
    const auto interval =
        std::chrono::milliseconds(request->interval_ms() > 0 ? request->interval_ms() : 100);
    auto next = Clock::now();
    while (!context->IsCancelled() && !stopping_) {
      v1::LoadReport report;
      report.set_instance_id(info_.instance_id());
      report.set_role(info_.role());
      const engine::SchedulerStats m = loop_->metrics();
      report.set_num_running(m.num_running);
      report.set_num_waiting(m.num_waiting);
      report.set_num_waiting_for_remote_kv(m.num_waiting_for_remote_kv);
      report.set_num_pending_transfer(m.num_pending_transfer);
      report.set_kv_blocks_used(m.kv_blocks_used);
      report.set_kv_blocks_total(m.kv_blocks_total);
      report.set_draining(draining_);
      {
        std::lock_guard<std::mutex> lock(subscriber->mu);
        for (v1::KvCacheEvent& e : subscriber->events) *report.add_events() = std::move(e);
        subscriber->events.clear();
      }
      AddStatsToReport(stats(), &report);
      if (!writer->Write(report)) break;
      next += interval;
      while (Clock::now() < next && !context->IsCancelled() && !stopping_) {
        std::this_thread::sleep_for(std::min<Clock::duration>(kPollInterval, next - Clock::now()));
      }
    }
    std::lock_guard<std::mutex> lock(subscribers_mu_);
    subscribers_.remove(subscriber);
    return grpc::Status::OK;
  }

 private:
  // Counts a Generate or RemotePrefill call as in flight for its lifetime. Counted before the
  // draining check, so a drain that sees zero calls after setting draining_ has seen every call
  // that will ever run.
  class CallCount {
   public:
    explicit CallCount(Impl* impl) : impl_(impl) { impl_->calls_in_flight_.fetch_add(1); }
    ~CallCount() { impl_->calls_in_flight_.fetch_sub(1); }
    CallCount(const CallCount&) = delete;
    CallCount& operator=(const CallCount&) = delete;

   private:
    Impl* impl_;
  };

  // Decode side: a request whose prompt a prefill worker computes.
  struct RemoteState {
    std::string prefill_worker;
    v1::WorkerSamplingParams sampling;
    bool in_flight = false;  // the RemotePrefill call is out: blocks may still be written
    bool cancelled = false;
  };
  struct PrefillPeer {
    std::shared_ptr<cluster::WorkerClient> client;
  };
  // Prefill side: a decode worker's KV pool imported into our transport.
  struct ImportedPool {
    transfer::PeerId peer = 0;
    std::vector<transfer::RemoteRegionId> layers;
    uint64_t last_used = 0;  // pool_clock_ at its latest use
  };
  // Decode pools kept imported at once; past it the least recently used one is dropped (decode
  // instances that restarted or left would otherwise keep their endpoints here forever).
  static constexpr size_t kMaxImportedPools = 64;
  struct Subscriber {
    std::mutex mu;
    std::vector<v1::KvCacheEvent> events;
  };
  struct HandOffThread {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;
  };

  // "" for a local prefill, else the prefill worker's address.
  absl::StatusOr<std::string> ChoosePrefillWorker(const v1::WorkerGenerateRequest& request,
                                                  const std::vector<int32_t>& prompt) {
    bool remote = false;
    const bool explicit_remote = request.prefill_mode() == v1::PREFILL_MODE_REMOTE;
    switch (request.prefill_mode()) {
      case v1::PREFILL_MODE_LOCAL:
        return std::string();
      case v1::PREFILL_MODE_REMOTE:
        remote = true;
        break;
      case v1::PREFILL_MODE_DEFAULT:
        if (options_.role != WorkerRole::kDecode) return std::string();
        switch (options_.disaggregation.mode) {
          case DisaggregationMode::kOff:
            return std::string();
          case DisaggregationMode::kAlways:
            remote = true;
            break;
          case DisaggregationMode::kConditional:
            remote = UncachedTokens(prompt) > options_.disaggregation.max_local_prefill_tokens;
            break;
        }
        break;
      case v1::PrefillMode_INT_MIN_SENTINEL_DO_NOT_USE_:
      case v1::PrefillMode_INT_MAX_SENTINEL_DO_NOT_USE_:
        break;
    }
    if (!remote) return std::string();
    // A remote prefill hands back one sequence; n > 1 is prefilled here, once, and forked here
    // (sharing the prompt's blocks), as an aggregated worker does.
    if (request.sampling().n() > 1) {
      if (explicit_remote) {
        return absl::InvalidArgumentError(absl::StrCat(
            "prefill_mode REMOTE takes n = 1, found n = ", request.sampling().n(),
            "; prefill a request with n > 1 locally (PREFILL_MODE_LOCAL)"));
      }
      return std::string();
    }
    if (!request.prefill_worker().empty()) return request.prefill_worker();
    if (options_.prefill_workers.empty()) {
      if (explicit_remote) {
        return absl::FailedPreconditionError(
            "prefill_mode REMOTE: the request names no prefill_worker and this worker has none configured");
      }
      return std::string();  // nowhere to send it: prefill here
    }
    const size_t i = next_prefill_.fetch_add(1) % options_.prefill_workers.size();
    return options_.prefill_workers[i];
  }

  // Prompt tokens not covered by this worker's prefix cache (as last reported by its KV events).
  int64_t UncachedTokens(const std::vector<int32_t>& prompt) {
    const int32_t bs = kv_->spec().block_size;
    const std::vector<kvcache::BlockHash> hashes = kvcache::HashFullBlocks(prompt, bs, salt_);
    std::lock_guard<std::mutex> lock(cached_mu_);
    int64_t hit = 0;
    for (kvcache::BlockHash h : hashes) {
      if (!cached_.contains(h)) break;
      ++hit;
    }
    return static_cast<int64_t>(prompt.size()) - hit * bs;
  }

  void EraseRemote(const std::string& id) {
    std::lock_guard<std::mutex> lock(remote_mu_);
    remote_.erase(id);
  }

  // Client gone or shutdown: abort now, unless a prefill worker may still be writing into the
  // request's blocks; then the hand-off aborts it once the call returns.
  void CancelRequest(const std::string& id) {
    {
      std::lock_guard<std::mutex> lock(remote_mu_);
      auto it = remote_.find(id);
      if (it != remote_.end()) {
        it->second->cancelled = true;
        if (it->second->in_flight) return;
      }
    }
    loop_->Abort(id);
  }

  // Transport progress, remote-KV allocations and KV events, until Shutdown.
  void ProgressLoop() {
    auto next_events = Clock::now();
    while (!progress_stop_) {
      std::vector<std::string> notes = transport_->TakeNotifications();
      if (!notes.empty()) {
        {
          std::lock_guard<std::mutex> lock(notes_mu_);
          for (std::string& n : notes) {
            if (!n.empty()) notes_.insert(std::move(n));
          }
        }
        notes_cv_.notify_all();
      }
      for (engine::RemoteKvRequest& r : loop_->TakeRemoteKvRequests()) StartHandOff(std::move(r));
      if (Clock::now() >= next_events) {
        PublishKvEvents();
        JoinHandOffs(/*all=*/false);
        CheckExecutor();
        next_events = Clock::now() + kPollInterval;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  // A broken executor (a tensor-parallel rank failed) fails every step from then on: stop, as a
  // shutdown signal would (the drain refuses new calls), so that the supervisor restarts the worker.
  void CheckExecutor() {
    if (!fatal_.ok()) return;
    absl::Status broken = executor_->broken();
    if (broken.ok()) return;
    {
      std::lock_guard<std::mutex> lock(fatal_mu_);
      fatal_ = broken;
    }
    TLOG_ERROR("worker {}: {}; stopping so that it restarts", info_.instance_id(), std::string(broken.message()));
    BeginDrain();
    kill(getpid(), SIGTERM);  // to the process: tandem worker's main thread waits for it
  }

 public:
  absl::Status fatal() const {
    std::lock_guard<std::mutex> lock(fatal_mu_);
    return fatal_;
  }

 private:
  void PublishKvEvents() {
    std::vector<kvcache::KvEvent> events = loop_->TakeKvEvents();
    if (events.empty()) return;
    {
      std::lock_guard<std::mutex> lock(cached_mu_);
      for (const kvcache::KvEvent& e : events) {
        switch (e.type) {
          case kvcache::KvEventType::kBlockStored:
            cached_.insert(e.block_hashes.begin(), e.block_hashes.end());
            break;
          case kvcache::KvEventType::kBlockRemoved:
            for (kvcache::BlockHash h : e.block_hashes) cached_.erase(h);
            break;
          case kvcache::KvEventType::kAllCleared:
            cached_.clear();
            break;
        }
      }
    }
    std::lock_guard<std::mutex> lock(subscribers_mu_);
    for (const std::shared_ptr<Subscriber>& s : subscribers_) {
      std::lock_guard<std::mutex> sl(s->mu);
      for (const kvcache::KvEvent& e : events) s->events.push_back(ToProto(e));
    }
  }

  void StartHandOff(engine::RemoteKvRequest request) {
    auto finished = std::make_shared<std::atomic<bool>>(false);
    std::thread t([this, request = std::move(request), finished] {
      HandOff(request);
      *finished = true;
    });
    std::lock_guard<std::mutex> lock(handoffs_mu_);
    handoffs_.push_back(HandOffThread{std::move(t), finished});
  }

  void JoinHandOffs(bool all) {
    std::list<HandOffThread> done;
    {
      std::lock_guard<std::mutex> lock(handoffs_mu_);
      for (auto it = handoffs_.begin(); it != handoffs_.end();) {
        if (all || *it->finished) {
          done.push_back(std::move(*it));
          it = handoffs_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (HandOffThread& h : done) h.thread.join();
  }

  // Decode side, on its own thread: fill the request's blocks through a prefill worker.
  void HandOff(const engine::RemoteKvRequest& request) {
    std::shared_ptr<RemoteState> state;
    {
      std::lock_guard<std::mutex> lock(remote_mu_);
      auto it = remote_.find(request.request_id);
      if (it == remote_.end() || it->second->cancelled) return;  // already aborted
      state = it->second;
      state->in_flight = true;
    }
    const auto start = Clock::now();
    absl::StatusOr<v1::RemotePrefillResponse> first = RunRemotePrefill(request, *state);
    bool cancelled = false;
    {
      std::lock_guard<std::mutex> lock(remote_mu_);
      state->in_flight = false;
      cancelled = state->cancelled;
    }
    if (cancelled) {
      loop_->Abort(request.request_id);
      return;
    }
    if (!first.ok()) {
      {
        std::lock_guard<std::mutex> lock(stats_mu_);
        ++stats_.remote_prefill_failures;
      }
      TLOG_WARN("request {}: remote prefill failed: {}", request.request_id,
                std::string(first.status().message()));
      loop_->CompleteRemotePrefill(request.request_id, 0, first.status());
      return;
    }
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    {
      std::lock_guard<std::mutex> lock(stats_mu_);
      stats_.kv_blocks_received += first->num_blocks_written();
      stats_.kv_bytes_received += first->bytes_written();
      stats_.remote_prefill_seconds.Observe(ms / 1000.0);
    }
    TLOG_DEBUG("request {}: remote prefill of {} tokens done in {:.1f} ms", request.request_id,
               request.prompt_token_ids.size(), ms);
    (void)ms;
    std::optional<engine::SampleResult> first_logprobs;
    if (first->has_first_logprobs()) first_logprobs = FromProto(first->first_logprobs(), first->first_token());
    loop_->CompleteRemotePrefill(request.request_id, first->first_token(), absl::OkStatus(), first_logprobs);
  }

  absl::StatusOr<v1::RemotePrefillResponse> RunRemotePrefill(const engine::RemoteKvRequest& request,
                                                             const RemoteState& state) {
    TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<cluster::WorkerClient> client,
                            PrefillClient(state.prefill_worker));
    v1::RemotePrefillRequest call;
    call.set_request_id(request.request_id);
    for (int32_t t : request.prompt_token_ids) call.add_prompt_token_ids(t);
    call.set_num_cached_tokens(request.num_cached_tokens);
    for (kvcache::BlockId b : request.block_ids) call.add_dst_block_ids(static_cast<int32_t>(b));
    *call.mutable_sampling() = state.sampling;
    *call.mutable_destination() = info_;
    const std::string note = NotificationFor(request.request_id);
    absl::StatusOr<v1::RemotePrefillResponse> response =
        client->RemotePrefill(call, std::chrono::milliseconds(options_.remote_prefill_timeout_ms));
    if (!response.ok()) {
      DropPrefillClient(state.prefill_worker);
      TakeNotification(note, std::chrono::milliseconds(0));
      return response.status();
    }
    // The reply follows the writes' completion on the prefill side; the notification, delivered
    // after the data, confirms it here.
    if (!TakeNotification(note, kNotificationTimeout)) {
      return absl::DeadlineExceededError(
          absl::StrCat("prefill worker ", state.prefill_worker,
                       " reported the KV written but no completion notice arrived"));
    }
    return *std::move(response);
  }

  bool TakeNotification(const std::string& note, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(notes_mu_);
    if (!notes_cv_.wait_for(lock, timeout, [&] { return notes_.contains(note) || progress_stop_; }))
      return false;
    return notes_.erase(note) > 0;
  }

  // A client for the prefill worker at `address`, after checking its KV layout (once per address).
  absl::StatusOr<std::shared_ptr<cluster::WorkerClient>> PrefillClient(const std::string& address) {
    {
      std::lock_guard<std::mutex> lock(prefill_mu_);
      auto it = prefill_peers_.find(address);
      if (it != prefill_peers_.end()) return it->second.client;
    }
    auto client = std::make_shared<cluster::WorkerClient>(address, options_.cluster_token);
    absl::StatusOr<v1::WorkerInfo> info = client->GetInfo(std::chrono::seconds(5));
    if (!info.ok()) {
      return absl::Status(info.status().code(), absl::StrCat("prefill worker ", address,
                                                             " unreachable: ", info.status().message()));
    }
    const v1::WorkerInfo& theirs = *info;
    if (theirs.role() == "decode") {
      return absl::FailedPreconditionError(
          absl::StrCat("worker ", address, " has role decode; remote prefill needs role prefill or both"));
    }
    TANDEM_RETURN_IF_ERROR(CheckPeerCompatible(info_, theirs, address));
    std::lock_guard<std::mutex> lock(prefill_mu_);
    prefill_peers_[address] = PrefillPeer{client};
    return client;
  }

  void DropPrefillClient(const std::string& address) {
    std::lock_guard<std::mutex> lock(prefill_mu_);
    prefill_peers_.erase(address);
  }

  // Prefill side: the decode worker's pool, imported once per decode instance.
  absl::StatusOr<ImportedPool> ImportPool(const v1::WorkerInfo& dest) {
    std::lock_guard<std::mutex> lock(pools_mu_);
    auto it = pools_.find(dest.instance_id());
    if (it != pools_.end()) {
      it->second.last_used = ++pool_clock_;
      return it->second;
    }
    if (pools_.size() >= kMaxImportedPools) {
      auto oldest = std::min_element(pools_.begin(), pools_.end(), [](const auto& a, const auto& b) {
        return a.second.last_used < b.second.last_used;
      });
      TLOG_INFO("worker {}: dropping the least recently used KV pool import (decode worker {})",
                info_.instance_id(), oldest->first);
      (void)transport_->Disconnect(oldest->second.peer);
      pools_.erase(oldest);
    }
    ImportedPool pool;
    pool.last_used = ++pool_clock_;
    TANDEM_ASSIGN_OR_RETURN(pool.peer, transport_->Connect(dest.transport_address()));
    for (const std::string& descriptor : dest.layer_regions()) {
      absl::StatusOr<transfer::RemoteRegionId> region = transport_->ImportRegion(pool.peer, descriptor);
      if (!region.ok()) {
        (void)transport_->Disconnect(pool.peer);
        return Annotate(region.status(),
                        absl::StrCat("importing the KV pool of decode worker ", dest.instance_id()));
      }
      pool.layers.push_back(*region);
    }
    pools_.emplace(dest.instance_id(), pool);
    return pool;
  }

  // Drops an imported pool after a failed transfer: closing the endpoint cancels writes still in
  // flight, a dead decode instance's endpoint and keys are freed, and a live one's next request
  // reconnects on a fresh endpoint. Other requests' transfers on the old endpoint fail with it (they
  // share its fate on a broken endpoint; on a slow one they are collateral: pools are not
  // reference-counted yet).
  void ForgetPool(const std::string& instance_id, const ImportedPool& pool) {
    {
      std::lock_guard<std::mutex> lock(pools_mu_);
      auto it = pools_.find(instance_id);
      if (it == pools_.end() || it->second.peer != pool.peer) return;  // already replaced
      pools_.erase(it);
    }
    (void)transport_->Disconnect(pool.peer);
    TLOG_INFO("worker {}: dropped the KV pool of decode worker {} after a failed transfer", info_.instance_id(),
              instance_id);
  }

  absl::Status ServeRemotePrefill(grpc::ServerContext* context, const v1::RemotePrefillRequest& request,
                                  v1::RemotePrefillResponse& response) {
    if (stopping_) return absl::UnavailableError("prefill worker is shutting down");
    if (options_.role == WorkerRole::kDecode) {
      return absl::FailedPreconditionError(
          "this worker has role decode; RemotePrefill needs role prefill or both");
    }
    const v1::WorkerInfo& dest = request.destination();
    TANDEM_RETURN_IF_ERROR(CheckPeerCompatible(info_, dest, dest.instance_id()));
    const backend::KvCacheSpec& spec = kv_->spec();
    const int64_t n = request.prompt_token_ids_size();
    const int64_t num_blocks = (n + spec.block_size - 1) / spec.block_size;
    if (n == 0 || request.dst_block_ids_size() != num_blocks) {
      return absl::InvalidArgumentError(absl::StrCat("dst_block_ids: expected ", num_blocks, " blocks for a ",
                                                     n, "-token prompt, found ",
                                                     request.dst_block_ids_size()));
    }
    for (int32_t b : request.dst_block_ids()) {
      if (b < 0 || b >= dest.num_kv_blocks()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "dst_block_ids: block ", b, " outside the decode pool of ", dest.num_kv_blocks(), " blocks"));
      }
    }
    if (request.num_cached_tokens() < 0 || request.num_cached_tokens() > n) {
      return absl::InvalidArgumentError(
          absl::StrCat("num_cached_tokens: expected 0..", n, ", found ", request.num_cached_tokens()));
    }
    const transfer::KvRankHeads dest_heads = KvRankHeadsOf(dest.layout());
    const int64_t dest_regions = int64_t{spec.num_layers} * static_cast<int64_t>(dest_heads.heads.size());
    if (dest.layer_regions_size() != dest_regions) {
      return absl::InvalidArgumentError(absl::StrCat("destination: expected ", dest_regions, " layer regions (",
                                                     dest_heads.heads.size(), " ranks x ", spec.num_layers,
                                                     " layers), found ", dest.layer_regions_size()));
    }
    // Pools of different tensor-parallel widths: checked now, before any work (a layout this worker's
    // ranks cannot fill is refused), and written head slab by head slab.
    TANDEM_RETURN_IF_ERROR(transfer::CheckHandOff(my_heads_, dest_heads));
    TANDEM_ASSIGN_OR_RETURN(ImportedPool pool, ImportPool(dest));

    engine::EngineRequest er;
    er.request_id = request.request_id();
    er.prompt_token_ids.assign(request.prompt_token_ids().begin(), request.prompt_token_ids().end());
    er.params = FromProto(request.sampling());
    er.params.n = 1;
    er.kv_role = engine::KvRole::kPrefillOnly;
    if (sender_ != nullptr) {
      TANDEM_RETURN_IF_ERROR(sender_->Start(request.request_id(), Destination(pool, dest_heads, request)));
    }
    auto queue = std::make_shared<engine::OutputStream>();
    if (absl::Status s =
            loop_->Submit(std::move(er), [queue](engine::RequestOutput o) { queue->Push(std::move(o)); });
        !s.ok()) {
      if (sender_ != nullptr) (void)sender_->Finish(request.request_id(), kTransferTimeoutMs);
      return s;
    }
    std::vector<int32_t> tokens;
    std::vector<engine::SampleResult> logprobs;
    engine::RequestOutput last;
    bool cancelled = false;
    for (bool done = false; !done;) {
      if (!cancelled && (context->IsCancelled() || stopping_)) {
        cancelled = true;
        loop_->Abort(request.request_id());
      }
      std::optional<engine::RequestOutput> o = queue->NextFor(kPollInterval);
      if (!o.has_value()) continue;
      tokens.insert(tokens.end(), o->new_token_ids.begin(), o->new_token_ids.end());
      logprobs.insert(logprobs.end(), o->logprobs.begin(), o->logprobs.end());
      done = o->request_finished;
      if (done) last = std::move(*o);
    }
    // Layer-wise: the writes posted while the prompt ran; wait for them before the blocks are freed.
    const auto start = Clock::now();
    LayerwiseKvSender::Result streamed;
    if (sender_ != nullptr) streamed = sender_->Finish(request.request_id(), kTransferTimeoutMs);
    // A failed or timed-out write may still be in flight: closing the endpoint cancels it before the
    // source blocks are released (and before it could land in blocks the decode worker reuses).
    if (!streamed.status.ok()) ForgetPool(dest.instance_id(), pool);
    const bool pinned = last.finish_reason == engine::FinishReason::kPrefillHandoff;
    cancelled = cancelled || context->IsCancelled() || stopping_;  // no new transfers once stopping
    if (cancelled || last.finish_reason != engine::FinishReason::kPrefillHandoff || tokens.empty()) {
      if (pinned) loop_->ReleaseTransfer(request.request_id());
      if (stopping_) return absl::UnavailableError("prefill worker is shutting down");
      if (cancelled) return absl::CancelledError("the decode worker cancelled the remote prefill");
      if (!last.status.ok()) return last.status;
      return absl::InternalError(absl::StrCat(
          "prefill ended with ", engine::FinishReasonName(last.finish_reason), " instead of a KV hand-off"));
    }
    // Streamed in full, or a failed stream, or send everything now (layer-wise off, or it fell back).
    const absl::Status written = streamed.complete || !streamed.status.ok()
                                     ? streamed.status
                                     : WriteBlocks(pool, dest_heads, last.kv_blocks, request);
    if (!written.ok()) ForgetPool(dest.instance_id(), pool);  // as above, before the release
    loop_->ReleaseTransfer(request.request_id());
    if (!written.ok()) return written;
    const int64_t first = request.num_cached_tokens() / spec.block_size;
    const int64_t sent = static_cast<int64_t>(last.kv_blocks.size()) - first;
    const uint64_t bytes = static_cast<uint64_t>(sent) * info_.layout().bytes_per_block() * spec.num_layers;
    {
      std::lock_guard<std::mutex> lock(stats_mu_);
      stats_.kv_blocks_sent += sent;
      stats_.kv_bytes_sent += bytes;
      if (sender_ != nullptr) ++(streamed.complete ? stats_.kv_streamed_prefills : stats_.kv_stream_fallbacks);
    }
    response.set_first_token(tokens.front());
    if (!logprobs.empty()) *response.mutable_first_logprobs() = ToProto(logprobs.front());
    response.set_num_blocks_written(static_cast<int32_t>(sent));
    response.set_bytes_written(bytes);
    response.set_num_cached_tokens(last.num_cached_tokens);
    // The transfer's span: from its first write posted (layer-wise: while the prompt still ran) to the
    // last one landed, so bytes / span is the bandwidth achieved. The part after the prefill, which is
    // what adds to TTFT, is logged below.
    const auto now = Clock::now();
    const bool overlapped = streamed.complete && streamed.first_post != Clock::time_point{};
    response.set_transfer_seconds(
        std::chrono::duration<double>(now - (overlapped ? streamed.first_post : start)).count());
    [[maybe_unused]] const double tail_ms = std::chrono::duration<double, std::milli>(now - start).count();
    TLOG_DEBUG("request {}: KV of {} blocks x {} layers complete {:.1f} ms after the prefill ({})",
               request.request_id(), sent, spec.num_layers, tail_ms,
               streamed.complete ? "layerwise" : "after_prefill");
    return absl::OkStatus();
  }

  KvDestination Destination(const ImportedPool& pool, const transfer::KvRankHeads& heads,
                            const v1::RemotePrefillRequest& request) const {
    KvDestination d;
    d.peer = pool.peer;
    d.layers = pool.layers;
    d.heads = heads;
    d.dst_blocks.assign(request.dst_block_ids().begin(), request.dst_block_ids().end());
    d.num_tokens = request.prompt_token_ids_size();
    d.first_block = request.num_cached_tokens() / kv_->spec().block_size;
    d.notification = NotificationFor(request.request_id());
    return d;
  }

  // Writes blocks [num_cached / block_size, end) of every layer into the decode worker's pool, one
  // transfer per layer (coalesced runs), the completion notice riding on the last; waits for all.
  absl::Status WriteBlocks(const ImportedPool& pool, const transfer::KvRankHeads& dest_heads,
                           const std::vector<kvcache::BlockId>& src_blocks, const v1::RemotePrefillRequest& request) {
    const backend::KvCacheSpec& spec = kv_->spec();
    if (static_cast<int64_t>(src_blocks.size()) != request.dst_block_ids_size()) {
      return absl::InternalError(absl::StrCat("prefill produced ", src_blocks.size(),
                                              " blocks, the decode worker gave ",
                                              request.dst_block_ids_size()));
    }
    const size_t first = static_cast<size_t>(request.num_cached_tokens() / spec.block_size);
    std::vector<int64_t> src(src_blocks.begin() + static_cast<std::ptrdiff_t>(first), src_blocks.end());
    std::vector<int64_t> dst(request.dst_block_ids().begin() + static_cast<int>(first),
                             request.dst_block_ids().end());
    TANDEM_ASSIGN_OR_RETURN(std::vector<transfer::BlockRun> runs, transfer::CoalesceBlockRuns(src, dst));
    std::vector<transfer::TransferId> posted;
    absl::Status status;
    const size_t layers = static_cast<size_t>(spec.num_layers);
    for (int layer = 0; layer < spec.num_layers; ++layer) {
      // Each side's region of this layer in every rank (rank-major lists).
      const size_t l = static_cast<size_t>(layer);
      std::vector<transfer::RegionId> local;
      for (size_t r = 0; r < my_heads_.heads.size(); ++r) local.push_back(layer_regions_[r * layers + l]);
      std::vector<transfer::RemoteRegionId> remote;
      for (size_t r = 0; r < dest_heads.heads.size(); ++r) remote.push_back(pool.layers[r * layers + l]);
      absl::StatusOr<std::vector<transfer::WriteOp>> ops = transfer::HeadWrites(runs, my_heads_, local, dest_heads, remote);
      if (!ops.ok()) {  // checked before the prefill; the writes already posted are waited for below
        status = ops.status();
        break;
      }
      std::string note = layer + 1 == spec.num_layers ? NotificationFor(request.request_id()) : std::string();
      absl::StatusOr<transfer::TransferId> t = transport_->PostWrite(pool.peer, *ops, std::move(note));
      if (!t.ok()) {
        status =
            Annotate(t.status(), absl::StrCat("writing layer ", layer, " of request ", request.request_id()));
        break;
      }
      posted.push_back(*t);
    }
    for (transfer::TransferId t : posted) {
      const absl::Status s = transfer::WaitForTransfer(*transport_, t, kTransferTimeoutMs);
      if (!s.ok() && status.ok())
        status = Annotate(s, absl::StrCat("KV transfer of request ", request.request_id()));
      transport_->Release(t);
    }
    return status;
  }

  const WorkerOptions options_;
  backend::KvCache* const kv_;             // owned by the engine
  const int kv_device_;                    // CUDA ordinal of the pools, -1 for host memory
  engine::ModelExecutor* const executor_;  // owned by the engine
  const std::string model_name_;
  const uint64_t salt_;
  std::unique_ptr<engine::EngineLoop> loop_;
  // Reset in Shutdown, after its regions are deregistered; KV pools in its memory
  // (transport_kv_memory.h) keep it alive until the engine, and so the pools, are gone.
  std::shared_ptr<transfer::KvTransport> transport_;
  std::unique_ptr<LayerwiseKvSender> sender_;         // transfer.layerwise on a prefill-capable worker
  std::vector<transfer::RegionId> layer_regions_;  // rank-major: [rank * num_layers + layer]
  transfer::KvRankHeads my_heads_;                 // the heads each of this worker's ranks holds
  mutable std::mutex fatal_mu_;
  absl::Status fatal_;  // why the worker stopped itself (CheckExecutor)
  v1::WorkerInfo info_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string address_;

  std::atomic<bool> stopping_{false};
  std::atomic<bool> draining_{false};          // BeginDrain: new calls are refused
  std::atomic<int64_t> calls_in_flight_{0};    // Generate and RemotePrefill calls (CallCount)
  std::atomic<bool> progress_stop_{false};
  std::thread progress_thread_;
  std::atomic<uint64_t> next_request_{1};
  std::atomic<uint64_t> next_prefill_{0};

  std::mutex remote_mu_;
  std::map<std::string, std::shared_ptr<RemoteState>> remote_;
  std::mutex prefill_mu_;
  std::map<std::string, PrefillPeer> prefill_peers_;
  std::mutex pools_mu_;
  std::map<std::string, ImportedPool> pools_;
  uint64_t pool_clock_ = 0;  // under pools_mu_
  std::mutex notes_mu_;
  std::condition_variable notes_cv_;
  std::set<std::string> notes_;
  std::mutex cached_mu_;
  absl::flat_hash_set<kvcache::BlockHash> cached_;
  std::mutex subscribers_mu_;
  std::list<std::shared_ptr<Subscriber>> subscribers_;
  std::mutex handoffs_mu_;
  std::list<HandOffThread> handoffs_;
  mutable std::mutex stats_mu_;
  WorkerStats stats_;

  std::mutex shutdown_mu_;
  std::condition_variable shutdown_cv_;
  bool shut_down_ = false;
  bool done_ = false;
};

absl::StatusOr<std::unique_ptr<Worker>> Worker::Create(std::unique_ptr<engine::Engine> engine,
                                                       WorkerOptions options) {
  const int tp = engine->executor().tensor_parallel_size();
  // A tensor-parallel worker's ranks each have a pool; rank 0's gives the geometry (block size, blocks).
  backend::KvCache* kv = tp > 1 ? engine->executor().rank_kv_pool(0) : engine->executor().kv_pool();
  if (kv == nullptr) {
    return absl::InvalidArgumentError(
        "worker: expected an engine whose executor exposes its KV pools (the CPU or CUDA model executor), found "
        "one without");
  }
  std::string model_name = engine->executor().model_name();
  std::shared_ptr<transfer::KvTransport> transport = std::move(options.transport);
  options.transport = nullptr;
  auto impl = std::make_unique<Impl>(std::move(options), std::move(transport), std::move(engine), kv,
                                     std::move(model_name));
  TANDEM_RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<Worker>(new Worker(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<Worker>> Worker::CreateFromDeployment(const DeploymentConfig& config,
                                                                     WorkerOptions options) {
  const PoolSection* pool = &config.pools.both;
  switch (options.role) {
    case WorkerRole::kPrefill:
      pool = &config.pools.prefill;
      break;
    case WorkerRole::kDecode:
      pool = &config.pools.decode;
      break;
    case WorkerRole::kBoth:
      pool = &config.pools.both;
      break;
  }
  options.transfer = config.transfer.backend;
  options.layerwise = config.transfer.layerwise;
  options.disaggregation = config.disaggregation;
  options.remote_prefill_timeout_ms =
      static_cast<int64_t>(config.disaggregation.remote_prefill_timeout_s * 1000.0);
  switch (config.backend) {
    case BackendKind::kCpu:
      break;
    case BackendKind::kCuda:
      // The worker's GPU is current before the transport exists: nccl binds to the current device,
      // and the engine's runner lives there too.
      if (options.device < 0) options.device = pool->devices.empty() ? 0 : pool->devices.front();
#ifdef TANDEM_HAS_CUDA
      if (const cudaError_t err = cudaSetDevice(options.device); err != cudaSuccess) {
        return absl::FailedPreconditionError(absl::StrCat("worker: cudaSetDevice(", options.device,
                                                          "): ", cudaGetErrorString(err)));
      }
#endif
      break;
  }
  // The transport first: on the CPU backend the KV pools live in its memory where it has its own
  // (ucx: shared memory, so a prefill worker on this host writes them without TCP).
  if (options.transport == nullptr) {
    TANDEM_ASSIGN_OR_RETURN(options.transport, transfer::CreateTransport(options.transfer, TransferHost(options)));
  }
  backend::KvPoolAllocator kv_allocator;
  switch (config.backend) {
    case BackendKind::kCpu:
      kv_allocator = TransportKvAllocator(options.transport);
      break;
    case BackendKind::kCuda:
      break;  // device memory from the backend; the transport registers it
  }
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<engine::Engine> engine,
                          engine::CreateEngineFromDeployment(config, *pool, kv_allocator, options.device));
  return Create(std::move(engine), std::move(options));
}

Worker::Worker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Worker::~Worker() { Shutdown(); }
std::string Worker::address() const { return impl_->address(); }
int Worker::port() const { return impl_->port(); }
const v1::WorkerInfo& Worker::info() const { return impl_->info(); }
WorkerStats Worker::stats() const { return impl_->stats(); }
engine::SchedulerStats Worker::engine_stats() const { return impl_->engine_stats(); }
void Worker::Shutdown() { impl_->Shutdown(); }
void Worker::BeginDrain() { impl_->BeginDrain(); }
int64_t Worker::calls_in_flight() const { return impl_->calls_in_flight(); }
void Worker::Wait() { impl_->Wait(); }
absl::Status Worker::fatal() const { return impl_->fatal(); }

}  // namespace tandem::worker
