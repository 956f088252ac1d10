#include "tandem/frontend/grpc_server.h"

#include <deque>
#include <mutex>
#include <optional>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "tandem/core/logging.h"
#include "tandem/v1/api.grpc.pb.h"

namespace tandem::frontend {
namespace {

namespace pb = ::tandem::v1;
using nlohmann::json;

grpc::StatusCode CodeFor(int http_status) {
  switch (http_status) {
    case 400:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case 401:
      return grpc::StatusCode::UNAUTHENTICATED;
    case 404:
      return grpc::StatusCode::NOT_FOUND;
    case 413:
    case 429:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case 499:
      return grpc::StatusCode::CANCELLED;
    case 503:
      return grpc::StatusCode::UNAVAILABLE;
    default:
      return grpc::StatusCode::INTERNAL;
  }
}

grpc::Status ToGrpc(const ApiError& error) { return grpc::Status(CodeFor(error.http_status), error.message); }

pb::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return pb::FINISH_REASON_UNSPECIFIED;
    case FinishReason::kStop:
      return pb::FINISH_REASON_STOP;
    case FinishReason::kLength:
      return pb::FINISH_REASON_LENGTH;
    case FinishReason::kAborted:
    case FinishReason::kError:
      return pb::FINISH_REASON_ABORTED;
  }
  return pb::FINISH_REASON_UNSPECIFIED;
}

// The proto request as the equivalent OpenAI body, so both APIs share one validation.
json ToOpenAiBody(const pb::GenerateRequest& req, ApiKind* kind) {
  json body = {{"model", req.model()}};
  *kind = ApiKind::kCompletion;
  switch (req.input_case()) {
    case pb::GenerateRequest::kPrompt:
      body["prompt"] = req.prompt();
      break;
    case pb::GenerateRequest::kPromptTokenIds:
      body["prompt"] =
          std::vector<int32_t>(req.prompt_token_ids().ids().begin(), req.prompt_token_ids().ids().end());
      break;
    case pb::GenerateRequest::kMessages: {
      *kind = ApiKind::kChat;
      json messages = json::array();
      for (const pb::ChatMessage& m : req.messages().messages()) {
        messages.push_back({{"role", m.role()}, {"content", m.content()}});
      }
      body["messages"] = std::move(messages);
      break;
    }
    case pb::GenerateRequest::INPUT_NOT_SET:
      break;  // the parser reports the missing prompt
  }
  const pb::SamplingParams& s = req.sampling();
  if (s.has_max_tokens()) body["max_tokens"] = s.max_tokens();
  if (s.has_temperature()) body["temperature"] = s.temperature();
  if (s.has_top_p()) body["top_p"] = s.top_p();
  if (s.has_top_k()) body["top_k"] = s.top_k();
  if (s.has_min_p()) body["min_p"] = s.min_p();
  if (s.has_n()) body["n"] = s.n();
  if (s.has_seed()) body["seed"] = s.seed();
  if (s.stop_size() > 0) body["stop"] = std::vector<std::string>(s.stop().begin(), s.stop().end());
  if (s.stop_token_ids_size() > 0) {
    body["stop_token_ids"] = std::vector<int32_t>(s.stop_token_ids().begin(), s.stop_token_ids().end());
  }
  if (s.has_min_tokens()) body["min_tokens"] = s.min_tokens();
  if (s.ignore_eos()) body["ignore_eos"] = true;
  if (s.has_presence_penalty()) body["presence_penalty"] = s.presence_penalty();
  if (s.has_frequency_penalty()) body["frequency_penalty"] = s.frequency_penalty();
  if (s.has_repetition_penalty()) body["repetition_penalty"] = s.repetition_penalty();
  if (s.logit_bias_size() > 0) {
    json bias = json::object();
    for (const auto& [id, b] : s.logit_bias()) bias[std::to_string(id)] = b;
    body["logit_bias"] = std::move(bias);
  }
  if (s.has_logprobs()) {
    if (*kind == ApiKind::kChat) {
      body["logprobs"] = true;
      body["top_logprobs"] = s.logprobs();
    } else {
      body["logprobs"] = s.logprobs();
    }
  }
  if (s.has_skip_special_tokens()) body["skip_special_tokens"] = s.skip_special_tokens();
  return body;
}

void AppendDelta(const ChoiceDelta& delta, pb::Choice* choice) {
  choice->set_index(delta.index);
  choice->mutable_text()->append(delta.text);
  for (int32_t id : delta.token_ids) choice->add_token_ids(id);
  for (const TokenLogprob& lp : delta.logprobs) {
    pb::TokenLogprob* out = choice->add_logprobs();
    out->set_token_id(lp.token_id);
    out->set_token(lp.token);
    out->set_logprob(lp.logprob);
    for (const TopLogprob& t : lp.top) {
      pb::TopLogprob* top = out->add_top_logprobs();
      top->set_token_id(t.token_id);
      top->set_token(t.token);
      top->set_logprob(t.logprob);
    }
  }
  if (delta.finish_reason != FinishReason::kNone) choice->set_finish_reason(ToProto(delta.finish_reason));
}

void SetUsage(const Usage& usage, pb::GenerateResponse* response) {
  response->mutable_usage()->set_prompt_tokens(usage.prompt_tokens);
  response->mutable_usage()->set_completion_tokens(usage.completion_tokens);
  response->mutable_usage()->set_cached_prompt_tokens(usage.cached_prompt_tokens);
}

// Validates and prepares; the error (already a gRPC status) when it can't.
std::variant<PreparedRequest, grpc::Status> PrepareCall(OpenAiService* service,
                                                        grpc::CallbackServerContext* ctx,
                                                        const pb::GenerateRequest& request) {
  const auto& md = ctx->client_metadata();
  auto auth = md.find("authorization");
  const std::string_view header =
      auth == md.end() ? std::string_view() : std::string_view(auth->second.data(), auth->second.size());
  if (!service->Authorized(header)) return ToGrpc(Unauthorized());
  ApiKind kind = ApiKind::kCompletion;
  const json body = ToOpenAiBody(request, &kind);
  auto parsed = ParseOpenAiRequest(kind, body);
  if (auto* error = std::get_if<ApiError>(&parsed)) return ToGrpc(*error);
  auto prepared = service->Prepare(std::get<OpenAiRequest>(std::move(parsed)));
  if (auto* error = std::get_if<ApiError>(&prepared)) return ToGrpc(*error);
  PreparedRequest out = std::get<PreparedRequest>(std::move(prepared));
  out.api_key = service->KeyOf(header);
  if (!request.request_id().empty() && out.subs.size() == 1) {
    out.id = request.request_id();
    out.subs[0].request_id = request.request_id();
  }
  return out;
}

// Server-streaming Generate: one response per generator event. The generator's thread and gRPC's
// reactions meet under `mu`; `reactor` is cleared in OnDone so late events are dropped.
class GenerateReactor final : public grpc::ServerWriteReactor<pb::GenerateResponse> {
 public:
  GenerateReactor(OpenAiService* service, grpc::CallbackServerContext* ctx,
                  const pb::GenerateRequest* request)
      : service_(service), shared_(std::make_shared<Shared>()) {
    shared_->reactor = this;
    auto prepared = PrepareCall(service, ctx, *request);
    if (auto* status = std::get_if<grpc::Status>(&prepared)) {
      service_->metrics().CountRequest("grpc.Generate", 400);
      Finish(*status);
      return;
    }
    prepared_ = std::get<PreparedRequest>(std::move(prepared));
    std::lock_guard<std::recursive_mutex> lock(shared_->mu);
    std::shared_ptr<Shared> shared = shared_;
    auto error = service_->Start(*prepared_, [shared](size_t, GenerateEvent event) {
      std::lock_guard<std::recursive_mutex> inner(shared->mu);
      if (shared->reactor != nullptr) shared->reactor->OnEvent(std::move(event));
    });
    if (error) {
      service_->metrics().CountRequest("grpc.Generate", error->http_status);
      finished_ = true;
      Finish(ToGrpc(*error));
      return;
    }
    active_ = true;
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::recursive_mutex> lock(shared_->mu);
    writing_ = false;
    if (!ok) {
      CancelLocked();
      return;
    }
    queue_.pop_front();
    WriteNextLocked();
  }

  void OnCancel() override {
    std::lock_guard<std::recursive_mutex> lock(shared_->mu);
    CancelLocked();
  }

  void OnDone() override {
    {
      std::lock_guard<std::recursive_mutex> lock(shared_->mu);
      shared_->reactor = nullptr;
      if (active_) service_->Cancel(*prepared_);
    }
    delete this;
  }

 private:
  struct Shared {
    std::recursive_mutex mu;
    GenerateReactor* reactor = nullptr;
  };

  // With shared_->mu held.
  void OnEvent(GenerateEvent event) {
    if (finished_) return;
    if (!event.status.ok()) {
      active_ = false;
      final_status_ = ToGrpc(FromStatus(event.status));
      service_->metrics().CountRequest("grpc.Generate", FromStatus(event.status).http_status);
      final_ = true;
      if (!writing_) FinishLocked();
      return;
    }
    pb::GenerateResponse response;
    response.set_request_id(prepared_->id);
    response.set_model(prepared_->request.model);
    for (const ChoiceDelta& delta : event.choices) AppendDelta(delta, response.add_choices());
    if (event.final) {
      SetUsage(event.usage, &response);
      active_ = false;
      final_ = true;
      service_->metrics().CountRequest("grpc.Generate", 200);
    }
    queue_.push_back(std::move(response));
    if (!writing_) WriteNextLocked();
  }

  void WriteNextLocked() {
    if (finished_) return;
    if (!queue_.empty()) {
      writing_ = true;
      StartWrite(&queue_.front());
      return;
    }
    if (final_) FinishLocked();
  }

  void FinishLocked() {
    if (finished_) return;
    finished_ = true;
    Finish(final_status_);
  }

  void CancelLocked() {
    if (active_) {
      service_->Cancel(*prepared_);
      active_ = false;
    }
    if (!finished_ && !writing_) {
      finished_ = true;
      Finish(grpc::Status::CANCELLED);
    }
  }

  OpenAiService* service_;
  std::shared_ptr<Shared> shared_;
  std::optional<PreparedRequest> prepared_;
  std::deque<pb::GenerateResponse> queue_;  // front is being written
  bool writing_ = false;
  bool active_ = false;  // generating
  bool final_ = false;   // the last event arrived
  bool finished_ = false;
  grpc::Status final_status_ = grpc::Status::OK;
};

// Unary GenerateUnary: accumulates every event into one response.
class GenerateUnaryCall {
 public:
  static grpc::ServerUnaryReactor* Run(OpenAiService* service, grpc::CallbackServerContext* ctx,
                                       const pb::GenerateRequest* request, pb::GenerateResponse* response) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    auto prepared = PrepareCall(service, ctx, *request);
    if (auto* status = std::get_if<grpc::Status>(&prepared)) {
      service->metrics().CountRequest("grpc.GenerateUnary", 400);
      reactor->Finish(*status);
      return reactor;
    }
    auto call = std::make_shared<GenerateUnaryCall>();
    call->prepared = std::get<PreparedRequest>(std::move(prepared));
    call->response = response;
    response->set_request_id(call->prepared.id);
    response->set_model(call->prepared.request.model);
    for (int32_t i = 0; i < call->prepared.request.params.n; ++i) response->add_choices()->set_index(i);
    auto error = service->Start(call->prepared, [call, reactor, service](size_t, GenerateEvent event) {
      if (call->done) return;
      if (!event.status.ok()) {
        call->done = true;
        const ApiError failure = FromStatus(event.status);
        service->metrics().CountRequest("grpc.GenerateUnary", failure.http_status);
        call->prepared.in_flight.reset();
        reactor->Finish(ToGrpc(failure));
        return;
      }
      for (const ChoiceDelta& delta : event.choices) {
        if (delta.index >= 0 && delta.index < call->response->choices_size()) {
          AppendDelta(delta, call->response->mutable_choices(delta.index));
        }
      }
      if (event.final) {
        call->done = true;
        SetUsage(event.usage, call->response);
        service->metrics().CountRequest("grpc.GenerateUnary", 200);
        call->prepared.in_flight.reset();
        reactor->Finish(grpc::Status::OK);
      }
    });
    if (error) {
      call->done = true;
      service->metrics().CountRequest("grpc.GenerateUnary", error->http_status);
      reactor->Finish(ToGrpc(*error));
    }
    return reactor;
  }

  PreparedRequest prepared;
  pb::GenerateResponse* response = nullptr;
  bool done = false;  // events come in order on one generator thread
};

class InferenceService final : public pb::Inference::CallbackService {
 public:
  explicit InferenceService(OpenAiService* service) : service_(service) {}

  grpc::ServerWriteReactor<pb::GenerateResponse>* Generate(grpc::CallbackServerContext* ctx,
                                                           const pb::GenerateRequest* request) override {
    return new GenerateReactor(service_, ctx, request);
  }

  grpc::ServerUnaryReactor* GenerateUnary(grpc::CallbackServerContext* ctx,
                                          const pb::GenerateRequest* request,
                                          pb::GenerateResponse* response) override {
    return GenerateUnaryCall::Run(service_, ctx, request, response);
  }

  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* ctx, const pb::ListModelsRequest*,
                                       pb::ListModelsResponse* response) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const auto& md = ctx->client_metadata();
    auto auth = md.find("authorization");
    const std::string_view header =
        auth == md.end() ? std::string_view() : std::string_view(auth->second.data(), auth->second.size());
    if (!service_->Authorized(header)) {
      reactor->Finish(ToGrpc(Unauthorized()));
      return reactor;
    }
    for (const ModelCard& card : service_->generator().ListModels()) {
      pb::ModelInfo* info = response->add_models();
      info->set_id(card.id);
      info->set_created(card.created);
      info->set_owned_by(card.owned_by);
      info->set_max_model_len(card.max_model_len);
    }
    service_->metrics().CountRequest("grpc.ListModels", 200);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  OpenAiService* service_;
};

}  // namespace

struct GrpcServer::Impl {
  OpenAiService* service;
  GrpcServerOptions options;
  std::unique_ptr<InferenceService> inference;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

GrpcServer::GrpcServer(OpenAiService* service, GrpcServerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->service = service;
  impl_->options = std::move(options);
}

GrpcServer::~GrpcServer() { Stop(); }

absl::Status GrpcServer::Start() {
  grpc::EnableDefaultHealthCheckService(true);
  impl_->inference = std::make_unique<InferenceService>(impl_->service);
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a taken port is an error, never shared
  const std::string address = absl::StrCat(impl_->options.host, ":", impl_->options.port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &impl_->port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(impl_->options.max_request_bytes));
  builder.RegisterService(impl_->inference.get());
  impl_->server = builder.BuildAndStart();
  if (impl_->server == nullptr || impl_->port == 0) {
    return absl::UnavailableError(absl::StrCat("grpc: cannot listen on ", address));
  }
  const bool ready = impl_->service->generator().Health().ready;
  grpc::HealthCheckServiceInterface* health = impl_->server->GetHealthCheckService();
  if (health != nullptr) {
    health->SetServingStatus(ready);
    health->SetServingStatus("tandem.v1.Inference", ready);
  }
  TLOG_INFO("grpc: listening on {}:{}", impl_->options.host, impl_->port);
  return absl::OkStatus();
}

int GrpcServer::port() const { return impl_->port; }

void GrpcServer::BeginDrain() {
  if (impl_->server == nullptr) return;
  if (grpc::HealthCheckServiceInterface* health = impl_->server->GetHealthCheckService(); health != nullptr) {
    health->SetServingStatus(false);
    health->SetServingStatus("tandem.v1.Inference", false);
  }
}

void GrpcServer::Stop() {
  if (impl_->server == nullptr) return;
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  impl_->server->Wait();
  impl_->server.reset();
}

}  // namespace tandem::frontend
