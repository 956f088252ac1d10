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
#include <mutex>
#include <random>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "layerwise_sender.h"
#include "load_stream.h"
#include "prefill_server.h"
#include "remote_prefiller.h"
#include "tandem/backend/kv_pool.h"
#include "tandem/cluster/worker_client.h"
#include "tandem/core/logging.h"
#include "tandem/core/status.h"
#include "tandem/engine/engine_factory.h"
#include "tandem/kvcache/block_hash.h"
#include "tandem/transfer/kv_transport.h"
#include "tandem/wire/convert.h"
#include "transport_kv_memory.h"
#include "worker_counters.h"
#include "worker_service.h"

namespace tandem::worker {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kEventsInterval = std::chrono::milliseconds(20);

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

// The worker's lifecycle: builds its description (KV layout, registered pool regions), its parts
// (load stream, decode side, prefill side, gRPC service) and the progress thread, and stops them in
// order. The parts each do one job (their headers say which).
class Worker::Impl {
 public:
  Impl(WorkerOptions options, std::shared_ptr<transfer::KvTransport> transport,
       std::unique_ptr<engine::Engine> engine, backend::KvPool* kv, std::string model_name)
      : options_(std::move(options)),
        kv_(kv),
        kv_device_(engine->executor().kv_device()),
        executor_(&engine->executor()),
        model_name_(std::move(model_name)),
        loop_(std::make_unique<engine::EngineLoop>(std::move(engine))),
        transport_(std::move(transport)) {}

  ~Impl() { Shutdown(); }

  absl::Status Start() {
    const backend::KvCacheSpec& spec = kv_->spec();
    if (transport_ == nullptr) {
      TANDEM_ASSIGN_OR_RETURN(transport_, transfer::CreateTransport(options_.transfer, TransferHost(options_)));
    }
    TANDEM_RETURN_IF_ERROR(Describe());
    LocalKvRegions local{.spec = spec, .layers = {}, .heads = wire::KvRankHeadsOf(info_.layout())};
    TANDEM_RETURN_IF_ERROR(RegisterPools(local));
    // Layer-wise streaming needs the per-layer callback of one runner: tensor_parallel 1 senders (to
    // decode workers of any width).
    if (options_.layerwise && options_.role != WorkerRole::kDecode && executor_->tensor_parallel_size() == 1) {
      sender_ = std::make_unique<LayerwiseKvSender>(transport_.get(), local.layers, local.heads, spec.block_size);
      TANDEM_RETURN_IF_ERROR(executor_->SetLayerDoneCallback(
          [sender = sender_.get()](const engine::StepPlan& plan, int32_t layer) { sender->OnLayerDone(plan, layer); },
          [sender = sender_.get()](const engine::StepPlan& plan) { return sender->Wants(plan); }));
    }
    load_stream_ = std::make_unique<LoadStream>(spec.block_size, kvcache::HashSalt(model_name_));
    remote_prefiller_ = std::make_unique<RemotePrefiller>(options_, info_, *loop_, counters_);
    prefill_server_ = std::make_unique<PrefillServer>(options_, info_, std::move(local), *transport_, *loop_,
                                                      sender_.get(), counters_, stopping_);
    service_ = std::make_unique<WorkerService>(WorkerParts{.options = options_,
                                                           .info = info_,
                                                           .loop = *loop_,
                                                           .remote_prefiller = *remote_prefiller_,
                                                           .prefill_server = *prefill_server_,
                                                           .load_stream = *load_stream_,
                                                           .counters = counters_,
                                                           .stopping = stopping_,
                                                           .draining = draining_,
                                                           .calls_in_flight = calls_in_flight_});
    loop_->Start();
    progress_thread_ = std::thread([this] { ProgressLoop(); });

    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    // No SO_REUSEPORT (gRPC's default): a second process on this port must fail to bind, not
    // silently take half of this worker's connections.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    // Clients ping every cluster::kWorkerKeepAliveMs to notice a cut network (worker_client.h): accept
    // that, with or without calls, never answering it with GOAWAY ("too many pings").
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, cluster::kWorkerKeepAliveMs / 2);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    builder.AddListeningPort(options_.listen, grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
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
    if (load_stream_ != nullptr) load_stream_->Stop();
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    const double server_ms = ms();
    if (remote_prefiller_ != nullptr) remote_prefiller_->Stop();
    {
      std::lock_guard<std::mutex> lock(progress_mu_);
      progress_stop_ = true;
    }
    progress_cv_.notify_all();
    if (progress_thread_.joinable()) progress_thread_.join();
    loop_->Stop();
    const double loop_ms = ms();
    if (transport_ != nullptr) {
      for (transfer::RegionId id : layer_regions_) (void)transport_->DeregisterMemory(id);
    }
    prefill_server_.reset();  // its imported pools disconnect from the transport
    transport_.reset();
    TLOG_INFO("worker {} stopped: server {:.0f} ms, engine {:.0f} ms, transport {:.0f} ms", info_.instance_id(),
              server_ms, loop_ms - server_ms, ms() - loop_ms);
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
  wire::WorkerCounters stats() const { return counters_.Snapshot(); }
  absl::Status fatal() const {
    std::lock_guard<std::mutex> lock(fatal_mu_);
    return fatal_;
  }

 private:
  // info_: role, instance, transport, and the KV layout peers check (every rank's heads at
  // tensor_parallel > 1).
  absl::Status Describe() {
    const backend::KvCacheSpec& spec = kv_->spec();
    TANDEM_ASSIGN_OR_RETURN(std::string transport_address, transport_->LocalAddress());
    info_.set_role(cluster::WorkerRoleName(options_.role));
    info_.set_instance_id(NewInstanceId());
    v1::KvLayout* layout = info_.mutable_layout();
    layout->set_model(options_.model_name.empty() ? model_name_ : options_.model_name);
    layout->set_dtype(KvDTypeName(spec.dtype));
    layout->set_num_layers(spec.num_layers);
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
    layout->set_layout_version(wire::kKvLayoutVersion);
    layout->set_bytes_per_block(model_spec.BytesPerBlock());
    info_.set_num_kv_blocks(executor_->num_kv_blocks());  // the fewest of any rank
    info_.set_transport(transport_->name());
    info_.set_transport_address(transport_address);
    return absl::OkStatus();
  }

  // Registers every rank's pool with the transport, one region per layer, and lists their
  // descriptors in info_ (rank-major, as `local.layers`).
  absl::Status RegisterPools(LocalKvRegions& local) {
    const int tp = executor_->tensor_parallel_size();
    for (int r = 0; r < tp; ++r) {
      backend::KvPool* pool = tp > 1 ? executor_->rank_kv_pool(r) : kv_;
      if (pool == nullptr ||
          (tp > 1 && pool->spec().num_kv_heads != static_cast<int>(local.heads.heads[static_cast<size_t>(r)].size()))) {
        return absl::InternalError(absl::StrCat("worker: tensor-parallel rank ", r,
                                                "'s KV pool is missing or does not hold the heads its layout lists"));
      }
      for (int layer = 0; layer < local.spec.num_layers; ++layer) {
        transfer::MemoryRegion region{pool->LayerData(layer), pool->spec().BytesPerLayer(), pool->memory_kind(),
                                      tp > 1 ? executor_->rank_kv_device(r) : kv_device_};
        TANDEM_ASSIGN_OR_RETURN(transfer::RegionId id, transport_->RegisterMemory(region));
        layer_regions_.push_back(id);
        TANDEM_ASSIGN_OR_RETURN(std::string descriptor, transport_->ExportRegion(id));
        info_.add_layer_regions(descriptor);
      }
    }
    local.layers = layer_regions_;
    return absl::OkStatus();
  }

  // Until Shutdown: drives the transport (its notifications wake the decode side's waits), starts
  // the remote prefills the engine allocated blocks for, and every 20 ms publishes the engine's KV
  // events and checks the executor. The transport needs driving (UCX progresses when polled), so
  // this wakes every 200 us.
  void ProgressLoop() {
    auto next_events = Clock::now();
    std::unique_lock<std::mutex> lock(progress_mu_);
    while (!progress_stop_) {
      lock.unlock();
      remote_prefiller_->OnNotifications(transport_->TakeNotifications());
      for (engine::RemoteKvRequest& r : loop_->TakeRemoteKvRequests()) remote_prefiller_->Run(std::move(r));
      if (Clock::now() >= next_events) {
        load_stream_->Publish(loop_->TakeKvEvents());
        CheckExecutor();
        next_events = Clock::now() + kEventsInterval;
      }
      lock.lock();
      progress_cv_.wait_for(lock, std::chrono::microseconds(200), [&] { return progress_stop_; });
    }
  }

  // A broken executor (a tensor-parallel rank failed) fails every step from then on: stop, as a
  // shutdown signal would (the drain refuses new calls), so that the supervisor restarts the worker.
  void CheckExecutor() {
    {
      std::lock_guard<std::mutex> lock(fatal_mu_);
      if (!fatal_.ok()) return;
    }
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

  const WorkerOptions options_;
  backend::KvPool* const kv_;             // owned by the engine
  const int kv_device_;                    // CUDA ordinal of the pools, -1 for host memory
  engine::ModelExecutor* const executor_;  // owned by the engine
  const std::string model_name_;
  std::unique_ptr<engine::EngineLoop> loop_;
  // Reset in Shutdown, after its regions are deregistered; KV pools in its memory
  // (transport_kv_memory.h) keep it alive until the engine, and so the pools, are gone.
  std::shared_ptr<transfer::KvTransport> transport_;
  std::vector<transfer::RegionId> layer_regions_;  // rank-major: [rank * num_layers + layer]
  v1::WorkerInfo info_;
  SharedCounters counters_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> draining_{false};        // BeginDrain: new calls are refused
  std::atomic<int64_t> calls_in_flight_{0};  // Generate and RemotePrefill calls

  std::unique_ptr<LayerwiseKvSender> sender_;  // transfer.layerwise on a prefill-capable worker
  std::unique_ptr<LoadStream> load_stream_;
  std::unique_ptr<RemotePrefiller> remote_prefiller_;
  std::unique_ptr<PrefillServer> prefill_server_;
  std::unique_ptr<WorkerService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string address_;

  mutable std::mutex fatal_mu_;
  absl::Status fatal_;  // why the worker stopped itself (CheckExecutor)
  std::mutex progress_mu_;
  std::condition_variable progress_cv_;
  bool progress_stop_ = false;
  std::thread progress_thread_;
  std::mutex shutdown_mu_;
  std::condition_variable shutdown_cv_;
  bool shut_down_ = false;
  bool done_ = false;
};

absl::StatusOr<std::unique_ptr<Worker>> Worker::Create(std::unique_ptr<engine::Engine> engine,
                                                       WorkerOptions options) {
  const int tp = engine->executor().tensor_parallel_size();
  // A tensor-parallel worker's ranks each have a pool; rank 0's gives the geometry (block size, blocks).
  backend::KvPool* kv = tp > 1 ? engine->executor().rank_kv_pool(0) : engine->executor().kv_pool();
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
wire::WorkerCounters Worker::stats() const { return impl_->stats(); }
engine::SchedulerStats Worker::engine_stats() const { return impl_->engine_stats(); }
void Worker::Shutdown() { impl_->Shutdown(); }
void Worker::BeginDrain() { impl_->BeginDrain(); }
int64_t Worker::calls_in_flight() const { return impl_->calls_in_flight(); }
void Worker::Wait() { impl_->Wait(); }
absl::Status Worker::fatal() const { return impl_->fatal(); }

}  // namespace tandem::worker
