// Beast/Asio HTTP/1.1 server. One Session per connection, all of its handlers on one strand:
//   read request → route → (generation) Prepare + Start → events posted from the generator's
//   thread onto the strand → SSE chunks or one JSON body → next request (keep-alive).
// While a request generates, the socket is read: a reset means the client went away, and the request
// is cancelled down to the engine (which frees its KV blocks); bytes are pipelined requests, answered
// in order after this one (HTTP/1.1 pipelining); end of stream may be a half-close, whose client still
// gets its response (see OnPeerEof). Bad framing is answered 400 (505 for a version), then closed.
// Over 600 lines because a Session is one state machine (read, route, stream, pipelined requests,
// disconnects, limits) on one strand; the framing checks are their own unit (http_framing.h).
#include "tandem/frontend/http_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "tandem/core/logging.h"
#include "http_framing.h"
#include "tandem/frontend/openai_response.h"

namespace tandem::frontend {
namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = boost::asio::ip::tcp;

constexpr auto kWriteTimeout = std::chrono::seconds(60);
// A connection that ends after a response drains what the client still sends for this long.
constexpr auto kLingerTimeout = std::chrono::seconds(2);
// A connection refused for the connection limit drains its request for this long: its descriptor
// is wanted back soon.
constexpr auto kRefusedLingerTimeout = std::chrono::milliseconds(500);
// Connections being refused (503) beyond the limit; more are closed without an answer.
constexpr int64_t kMaxRefusing = 64;
// Accept errors (out of descriptors or memory) retry after 10 ms, doubling up to 1 s.
constexpr auto kMinAcceptBackoff = std::chrono::milliseconds(10);
constexpr auto kMaxAcceptBackoff = std::chrono::milliseconds(1000);
// Bytes of pipelined requests read while a response is produced; more wait in the kernel.
constexpr size_t kMaxPipelinedBytes = 64 * 1024;

// Asio opens sockets without SOCK_CLOEXEC; a process this one starts must not inherit the listener
// (it would keep the port) or connections. (The supervisor also closes all but 0-2 in its children.)
void SetCloseOnExec(int fd) { fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC); }

class Session : public std::enable_shared_from_this<Session> {
 public:
  // `refuse_limit` > 0: the server is at its connection limit; this one is answered 503 and closed.
  Session(tcp::socket socket, OpenAiService* service, const HttpServerOptions& options,
          std::atomic<int64_t>* connections, std::atomic<int64_t>* exchanges, int64_t refuse_limit)
      : stream_(std::move(socket)),
        service_(service),
        options_(options),
        connections_(connections),
        exchanges_(exchanges),
        refuse_limit_(refuse_limit) {
    connections_->fetch_add(1);
    service_->metrics().AddOpenConnections(1);
  }
  ~Session() {
    SetBusy(false);
    if (active_) service_->Cancel(*prepared_);
    service_->metrics().AddOpenConnections(-1);
    connections_->fetch_sub(1);
  }

  void Run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (self->refuse_limit_ == 0) return self->DoRead();
      self->keep_alive_ = false;
      self->linger_ = kRefusedLingerTimeout;
      self->WriteReply("", ErrorReply(TooManyConnections(self->refuse_limit_)));
    });
  }

 private:
  // Counts this connection's current exchange (request read, response not yet written in full) in
  // the server's exchanges_in_progress().
  void SetBusy(bool busy) {
    if (busy == busy_) return;
    busy_ = busy;
    exchanges_->fetch_add(busy ? 1 : -1);
  }

  struct Outgoing {
    std::string data;
    bool last = false;  // streaming: the terminating zero-length chunk follows `data`
  };

  void DoRead() {
    stream_.expires_after(std::chrono::seconds(options_.idle_timeout_s));
    ReadRequest();
  }

  // RFC 9112 §2.2: empty lines before a request line are ignored (clients may send a CRLF after a
  // POST body); the parser would reject them, so they are dropped here, reading more if that was all.
  void ReadRequest() {
    buffer_.consume(LeadingEmptyLineBytes(
        std::string_view(static_cast<const char*>(buffer_.data().data()), buffer_.size())));
    if (buffer_.size() == 0) {
      // After an end of stream nothing more comes (and Asio would wait for a readiness event that
      // was already delivered): the connection is done.
      if (peer_eof_) return Close();
      return stream_.async_read_some(buffer_.prepare(4096),
                                     [self = shared_from_this()](beast::error_code ec, size_t n) {
                                       self->buffer_.commit(n);
                                       if (ec) return self->Close();  // end of stream, timeout, reset
                                       self->ReadRequest();
                                     });
    }
    // A request buffered before the client's end of stream is parsed from the buffer; if it is
    // incomplete, the read for the rest fails at once.
    if (peer_eof_) stream_.expires_after(std::chrono::milliseconds(1));
    parser_.emplace();
    LimitRequestParser(*parser_, options_.max_request_bytes);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  // Clients such as curl send `Expect: 100-continue` before a large body and wait for the go-ahead.
  void OnHeader(beast::error_code ec) {
    if (ec) return OnRead(ec);
    const auto expect = parser_->get().find(http::field::expect);
    if (expect != parser_->get().end() && beast::iequals(expect->value(), "100-continue")) {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      return net::async_write(stream_, net::buffer(kContinue),
                              [self = shared_from_this()](beast::error_code wec, size_t) {
                                if (wec) return self->Close();
                                self->ReadBody();
                              });
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      keep_alive_ = false;
      version_ = parser_->get().version();
      return WriteReply("", ErrorReply(PayloadTooLarge(options_.max_request_bytes)));
    }
    if (ec == http::error::header_limit) {
      keep_alive_ = false;
      return WriteReply("", ErrorReply(InvalidRequest("Request headers are too large.")));
    }
    if (ec) {
      // Bad framing gets a 400 (a well-formed request line of another HTTP version 505) and the
      // connection ends (its remaining bytes can't be trusted); end of stream, timeouts and resets
      // just close.
      std::optional<ApiError> error = FramingError(ec);
      if (!error) return Close();
      if (ec == http::error::bad_version) {
        const std::string_view buffered(static_cast<const char*>(buffer_.data().data()), buffer_.size());
        if (std::optional<unsigned> version = RequestLineVersion(buffered)) error = HttpVersionNotSupported(*version);
      }
      keep_alive_ = false;
      version_ = 11;
      return WriteReply("", ErrorReply(*error));
    }
    http::request<http::string_body> req = parser_->release();
    version_ = req.version();
    keep_alive_ = req.keep_alive() && !service_->draining();
    SetBusy(true);
    // Nothing a client sends may end the process: an exception from routing (a bug) is a 500 on
    // this connection, which is then closed.
    const std::string method(req.method_string());
    try {
      Route(std::move(req));
    } catch (const std::exception& e) {
      TLOG_ERROR("http: {} {}: internal error: {}", method, endpoint_, e.what());
      keep_alive_ = false;
      if (active_ || writing_) {  // a response had begun: it can't become a 500
        if (active_) service_->Cancel(*prepared_);
        active_ = false;
        return Close();
      }
      WriteReply(endpoint_, ErrorReply(ApiError{500, "internal error", "server_error", "", "internal_error"}));
    }
  }

  static HttpReply ErrorReply(const ApiError& error) {
    return HttpReply{error.http_status, "application/json", error.Body(), "", error.retry_after_s};
  }

  void Route(http::request<http::string_body> req) {
    const std::string target = RequestPath(std::string_view(req.target().data(), req.target().size()));
    endpoint_ = target;
    const http::verb method = req.method();
    const bool is_get = method == http::verb::get;
    const bool is_post = method == http::verb::post;
    auto wrong_method = [&] {
      return ErrorReply(MethodNotAllowed(std::string(req.method_string()), target));
    };

    if (target == "/health") return WriteReply(target, is_get ? service_->Health() : wrong_method());
    if (target == "/live") return WriteReply(target, is_get ? service_->Live() : wrong_method());
    if (target == "/metrics") return WriteReply(target, is_get ? service_->MetricsText() : wrong_method());

    const bool known = target == "/v1/chat/completions" || target == "/v1/completions" ||
                       target == "/v1/models" || target.rfind("/v1/models/", 0) == 0 ||
                       target == "/tokenize" || target == "/detokenize";
    if (!known) return WriteReply("unknown", ErrorReply(NotFoundRoute(target)));
    const auto auth = req.find(http::field::authorization);
    const std::string_view authorization =
        auth == req.end() ? std::string_view() : std::string_view(auth->value().data(), auth->value().size());
    if (!service_->Authorized(authorization)) return WriteReply(target, ErrorReply(Unauthorized()));
    if (target == "/v1/models") return WriteReply(target, is_get ? service_->Models() : wrong_method());
    if (target.rfind("/v1/models/", 0) == 0) {
      if (!is_get) return WriteReply("/v1/models", wrong_method());
      return WriteReply("/v1/models", ModelReply(target.substr(std::string("/v1/models/").size())));
    }
    if (!is_post) return WriteReply(target, wrong_method());
    if (target == "/tokenize") return WriteReply(target, service_->Tokenize(req.body()));
    if (target == "/detokenize") return WriteReply(target, service_->Detokenize(req.body()));
    StartGeneration(target == "/v1/chat/completions" ? ApiKind::kChat : ApiKind::kCompletion, req.body(),
                    service_->KeyOf(authorization));
  }

  HttpReply ModelReply(const std::string& id) {
    for (const ModelCard& card : service_->generator().ListModels()) {
      if (card.id != id) continue;
      nlohmann::json body = {{"id", card.id},
                             {"object", "model"},
                             {"created", card.created},
                             {"owned_by", card.owned_by},
                             {"max_model_len", card.max_model_len}};
      return HttpReply{200, "application/json", DumpJson(body)};
    }
    return ErrorReply(ModelNotFound(id));
  }

  void StartGeneration(ApiKind kind, const std::string& body, std::string api_key) {
    auto prepared = service_->Prepare(kind, body);
    if (auto* error = std::get_if<ApiError>(&prepared)) return WriteReply(endpoint_, ErrorReply(*error));
    prepared_ = std::get<PreparedRequest>(std::move(prepared));
    prepared_->api_key = std::move(api_key);
    builder_ = std::make_unique<ResponseBuilder>(*prepared_);
    const uint64_t generation = ++generation_;
    std::weak_ptr<Session> weak = weak_from_this();
    auto executor = stream_.get_executor();
    SubEventSink sink = [weak, executor, generation](size_t sub, GenerateEvent event) {
      auto self = weak.lock();
      if (!self) return;
      net::post(executor, [self, generation, sub, event = std::move(event)]() mutable {
        self->OnGenerateEvent(generation, sub, std::move(event));
      });
    };
    active_ = true;
    if (auto error = service_->Start(*prepared_, std::move(sink))) {
      active_ = false;
      ++generation_;  // drop events of sub-requests that were started and cancelled
      return WriteReply(endpoint_, ErrorReply(*error));
    }
    started_s_ = NowSeconds();
    Tick();
    streaming_ = prepared_->request.stream;
    stream_.expires_never();
    if (streaming_) {
      std::string head = absl::StrCat(
          "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
          "Transfer-Encoding: chunked\r\nConnection: ",
          keep_alive_ ? "keep-alive" : "close", "\r\n\r\n");
      Enqueue(Outgoing{std::move(head), false}, /*raw=*/true);
      if (std::string begin = builder_->StreamBegin(); !begin.empty())
        Enqueue(Outgoing{std::move(begin), false});
    }
    Watch();
  }

  // While a request generates, the socket is read: to notice a client that goes away, and to buffer
  // pipelined requests (answered in order once this response is written). Up to kMaxPipelinedBytes
  // are buffered; beyond that the rest waits in the kernel.
  void Watch() {
    if (watching_ || closed_ || peer_eof_ || buffer_.size() >= kMaxPipelinedBytes) return;
    watching_ = true;
    stream_.socket().async_read_some(
        buffer_.prepare(4096),
        [self = shared_from_this()](beast::error_code ec, size_t n) { self->OnWatch(ec, n); });
  }

  void OnWatch(beast::error_code ec, size_t n) {
    watching_ = false;
    if (n > 0) buffer_.commit(n);
    if (read_after_watch_) {  // the exchange ended while this read was pending (FinishExchange)
      read_after_watch_ = false;
      if (closed_) return;
      return DoRead();
    }
    if (!ec) return Watch();
    if (ec == net::error::operation_aborted) return;
    if (ec == net::error::eof) return OnPeerEof();
    ClientGone(ec.message());
  }

  // End of stream while a response is produced: the client either half-closed (it sent all it will
  // and still reads) or closed altogether. The two look the same until the server sends: a closed
  // client's kernel answers data with a reset. A stream sends tokens anyway; a non-streaming HTTP/1.1
  // response sends an interim `100 Continue` (which HTTP/1.1 clients must accept and skip). Then
  // Tick watches for the reset. HTTP/1.0 has no interim responses, so there EOF cancels.
  void OnPeerEof() {
    peer_eof_ = true;
    if (!active_) return;  // the response is being written; the next read sees the end and closes
    if (!streaming_) {
      if (version_ < 11) return ClientGone("end of stream");
      static constexpr std::string_view kProbe = "HTTP/1.1 100 Continue\r\n\r\n";
      beast::error_code ec;
      const size_t sent = stream_.socket().write_some(net::buffer(kProbe.data(), kProbe.size()), ec);
      if (ec || sent != kProbe.size()) return ClientGone(ec ? ec.message() : "short write");
    }
    Tick();  // sooner, now that the peer is probed
  }

  // While a generation runs, this timer holds the session (the generator holds it only weakly, and
  // the watch read stops after an EOF or kMaxPipelinedBytes), and after an EOF checks every 100 ms
  // whether the client's end is gone (the connection was reset).
  void Tick() {
    const uint64_t id = ++tick_id_;
    tick_.expires_after(peer_eof_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(1000));
    tick_.async_wait([self = shared_from_this(), id](beast::error_code) { self->OnTick(id); });
  }

  void OnTick(uint64_t id) {
    if (id != tick_id_ || !active_ || closed_) return;  // superseded, or the exchange is over
    if (peer_eof_ && ConnectionReset()) return ClientGone("connection reset after end of stream");
    Tick();
  }

  void StopTick() {
    ++tick_id_;
    tick_.cancel();
  }

  bool ConnectionReset() {
    tcp_info info{};
    socklen_t len = sizeof(info);
    if (getsockopt(stream_.socket().native_handle(), IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return true;
    return info.tcpi_state == TCP_CLOSE;
  }

  // The client went away while its request generated: cancel it down to the engine.
  void ClientGone(const std::string& why) {
    if (active_) {
      TLOG_INFO("request {}: client disconnected ({}), cancelling", prepared_->id, why);
      service_->Cancel(*prepared_);
      active_ = false;
      service_->metrics().CountRequest(endpoint_, 499);
    }
    StopTick();
    Close();
  }

  void OnGenerateEvent(uint64_t generation, size_t sub, GenerateEvent event) {
    if (generation != generation_ || !active_ || closed_) return;
    std::string frames = builder_->OnEvent(sub, event);
    if (builder_->failed() && !streaming_) {
      // Cancel the other sub-requests; their events are dropped by the generation check.
      service_->Cancel(*prepared_);
    }
    if (streaming_) {
      const bool done = builder_->done();
      if (!frames.empty() || done) Enqueue(Outgoing{std::move(frames), done});
      if (done) {
        if (builder_->failed()) service_->Cancel(*prepared_);
        EndGeneration(builder_->failed() ? builder_->error().http_status : 200);
      }
      return;
    }
    if (builder_->done()) {
      HttpReply reply = builder_->FinalReply();
      // Time from submission to the last event: what the generator took, for measuring the frontend's share.
      reply.server_timing = absl::StrFormat("engine;dur=%.3f", (NowSeconds() - started_s_) * 1e3);
      EndGeneration(reply.status);
      WriteReply("", std::move(reply));
    }
  }

  void EndGeneration(int status) {
    active_ = false;
    StopTick();
    ++generation_;
    service_->metrics().CountRequest(endpoint_, status);
    prepared_->in_flight.reset();
  }

  // Streaming output: chunk-framed (unless raw) and coalesced while a write is in flight.
  void Enqueue(Outgoing out, bool raw = false) {
    if (!raw && !out.data.empty())
      out.data = absl::StrCat(absl::StrFormat("%x\r\n", out.data.size()), out.data, "\r\n");
    if (out.last) out.data += "0\r\n\r\n";
    pending_.push_back(std::move(out));
    if (!writing_) WriteNext();
  }

  void WriteNext() {
    if (pending_.empty() || closed_) return;
    writing_ = true;
    bool last = false;
    in_flight_.clear();
    for (Outgoing& o : pending_) {
      in_flight_ += o.data;
      last |= o.last;
    }
    pending_.clear();
    stream_.expires_after(kWriteTimeout);
    net::async_write(stream_, net::buffer(in_flight_),
                     [self = shared_from_this(), last](beast::error_code ec, size_t) {
                       self->writing_ = false;
                       self->stream_.expires_never();
                       if (ec) return self->ClientGone(ec.message());
                       if (last) return self->FinishExchange();
                       self->WriteNext();
                     });
  }

  void WriteReply(const std::string& endpoint, HttpReply reply) {
    if (!endpoint.empty()) service_->metrics().CountRequest(endpoint, reply.status);
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(reply.status),
                                                                   version_);
    res->set(http::field::server, "tandem");
    res->set(http::field::content_type, reply.content_type);
    if (!reply.server_timing.empty()) res->set("Server-Timing", reply.server_timing);
    if (reply.retry_after_s > 0) res->set(http::field::retry_after, std::to_string(reply.retry_after_s));
    res->keep_alive(keep_alive_);
    res->body() = std::move(reply.body);
    res->prepare_payload();
    stream_.expires_after(kWriteTimeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      self->FinishExchange();
    });
  }

  // The response is written: read the next request, or close.
  void FinishExchange() {
    builder_.reset();
    prepared_.reset();
    streaming_ = false;
    SetBusy(false);
    if (service_->draining()) keep_alive_ = false;  // the client's next request goes to another replica
    if (!keep_alive_) return Linger();
    if (watching_) {
      read_after_watch_ = true;
      stream_.socket().cancel();
      return;
    }
    DoRead();
  }

  // Ends a connection after its last response: stop sending, then read and drop whatever the client
  // still sends until it closes too (or kLingerTimeout passes). Closing with unread bytes would make
  // the kernel reset the connection, which can destroy the response before the client reads it.
  void Linger() {
    if (closed_) return;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    stream_.expires_after(linger_);
    Drain();
  }

  void Drain() {
    stream_.async_read_some(net::buffer(drain_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      self->Drain();
    });
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    SetBusy(false);
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  beast::tcp_stream stream_;
  OpenAiService* service_;
  const HttpServerOptions& options_;
  std::atomic<int64_t>* connections_;  // the server's count of open sessions
  std::atomic<int64_t>* exchanges_;    // the server's count of exchanges in progress
  bool busy_ = false;                  // this session's exchange is counted in exchanges_
  const int64_t refuse_limit_;
  std::chrono::steady_clock::duration linger_ = kLingerTimeout;
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  std::string endpoint_;

  std::optional<PreparedRequest> prepared_;
  std::unique_ptr<ResponseBuilder> builder_;
  uint64_t generation_ = 0;  // events of an older generation are dropped
  double started_s_ = 0;     // when the generation was submitted
  bool active_ = false;      // a generation is running
  bool streaming_ = false;
  bool watching_ = false;
  bool read_after_watch_ = false;
  bool peer_eof_ = false;  // the client sent end of stream (half-closed, or closed)
  net::steady_timer tick_{stream_.get_executor()};
  uint64_t tick_id_ = 0;  // only the latest Tick's wait acts
  bool writing_ = false;
  bool closed_ = false;
  std::deque<Outgoing> pending_;
  std::string in_flight_;
  std::array<char, 4096> drain_;  // Linger's sink
};

}  // namespace

struct HttpServer::Impl {
  Impl(OpenAiService* s, HttpServerOptions o)
      : service(s),
        options(std::move(o)),
        ioc(std::max(1, options.num_threads)),
        acceptor(net::make_strand(ioc)),
        accept_retry(acceptor.get_executor()) {}

  void Accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
      if (ec) return OnAcceptError(ec);
      accept_backoff = std::chrono::milliseconds(0);
      SetCloseOnExec(socket.native_handle());
      const int64_t open = connections.load();
      if (open < max_connections) {
        std::make_shared<Session>(std::move(socket), service, options, &connections, &exchanges, 0)->Run();
      } else if (open < max_connections + kMaxRefusing) {
        std::make_shared<Session>(std::move(socket), service, options, &connections, &exchanges, max_connections)
            ->Run();
      }  // else: closed unanswered as `socket` goes out of scope
      Accept();
    });
  }

  // An accept that fails for lack of descriptors (or memory) leaves the connection pending, so
  // accepting again at once fails again: a loop at full CPU that logged millions of lines. Back off
  // (doubling from kMinAcceptBackoff to kMaxAcceptBackoff) and log once per 10 s.
  void OnAcceptError(const beast::error_code& ec) {
    accept_backoff = std::clamp(accept_backoff * 2, std::chrono::milliseconds(kMinAcceptBackoff),
                                std::chrono::milliseconds(kMaxAcceptBackoff));
    int64_t held_back = 0;
    if (accept_log.Allow(&held_back)) {
      TLOG_WARN("http: accept failed: {} ({} connections open; retrying in {} ms; {} such failures not logged)",
                ec.message(), connections.load(), accept_backoff.count(), held_back);
    }
    accept_retry.expires_after(accept_backoff);
    accept_retry.async_wait([this](beast::error_code wec) {
      if (wec || !acceptor.is_open()) return;
      Accept();
    });
  }

  // An I/O thread. A handler that throws (a bug) loses its connection, never the process: the
  // exception is logged and the thread goes back to serving.
  void Run() {
    while (true) {
      try {
        ioc.run();
        return;
      } catch (const std::exception& e) {
        TLOG_ERROR("http: a connection handler threw, its connection is dropped: {}", e.what());
      } catch (...) {
        TLOG_ERROR("http: a connection handler threw a non-standard exception, its connection is dropped");
      }
    }
  }

  OpenAiService* service;
  const HttpServerOptions options;
  net::io_context ioc;
  tcp::acceptor acceptor;
  net::steady_timer accept_retry;  // on the acceptor's strand
  std::chrono::milliseconds accept_backoff{0};
  LogLimiter accept_log{std::chrono::seconds(10)};
  std::atomic<int64_t> connections{0};
  std::atomic<int64_t> exchanges{0};  // Session::SetBusy
  int64_t max_connections = 0;  // options.max_connections, lowered to fit the descriptor limit
  std::vector<std::thread> threads;
  int port = 0;
  bool stopped = false;
};

HttpServer::HttpServer(OpenAiService* service, HttpServerOptions options)
    : impl_(std::make_unique<Impl>(service, std::move(options))) {}

HttpServer::~HttpServer() { Stop(); }

absl::Status HttpServer::Start() {
  beast::error_code ec;
  const auto address = net::ip::make_address(impl_->options.host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("frontend.http.host: expected an IP address, found '", impl_->options.host, "'"));
  }
  const tcp::endpoint endpoint(address, static_cast<uint16_t>(impl_->options.port));
  tcp::acceptor& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) SetCloseOnExec(acceptor.native_handle());
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("http: cannot listen on ", impl_->options.host, ":",
                                               impl_->options.port, ": ", ec.message()));
  }
  impl_->port = acceptor.local_endpoint().port();
  impl_->max_connections = impl_->options.max_connections;
  if (rlimit limit{}; getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    const int64_t descriptors = static_cast<int64_t>(limit.rlim_cur);
    const int64_t fits = descriptors - std::min<int64_t>(256, descriptors / 4);
    if (fits < impl_->max_connections) {
      impl_->max_connections = std::max<int64_t>(1, fits);
      TLOG_WARN("http: at most {} connections, below frontend.max_connections {}: the descriptor limit is {} "
                "(ulimit -n) and some are kept for workers and files",
                impl_->max_connections, impl_->options.max_connections, descriptors);
    }
  }
  impl_->Accept();
  for (int i = 0; i < std::max(1, impl_->options.num_threads); ++i) {
    impl_->threads.emplace_back([this] { impl_->Run(); });
  }
  TLOG_INFO("http: listening on {}:{} ({} I/O threads)", impl_->options.host, impl_->port,
            impl_->threads.size());
  return absl::OkStatus();
}

int HttpServer::port() const { return impl_->port; }

int64_t HttpServer::exchanges_in_progress() const { return impl_->exchanges.load(); }

void HttpServer::Stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  net::post(impl_->acceptor.get_executor(), [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
    impl_->accept_retry.cancel();
  });
  impl_->ioc.stop();
  for (std::thread& t : impl_->threads) t.join();
  impl_->threads.clear();
}

}  // namespace tandem::frontend
