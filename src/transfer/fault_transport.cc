#include "tandem/transfer/fault_transport.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tandem/core/logging.h"

namespace tandem::transfer {

namespace {

constexpr const char* kVariable = "TANDEM_TEST_TRANSFER_FAULT";

const char* FaultName(TransferFault fault) {
  switch (fault) {
    case TransferFault::kFail:
      return "fail";
    case TransferFault::kStall:
      return "stall";
    case TransferFault::kPost:
      return "post";
  }
  return "?";
}

}  // namespace

absl::StatusOr<TransferFaultSpec> ParseTransferFault(const std::string& text) {
  TransferFaultSpec spec;
  const size_t colon = text.find(':');
  const std::string mode = text.substr(0, colon);
  if (mode == "fail") {
    spec.fault = TransferFault::kFail;
  } else if (mode == "stall") {
    spec.fault = TransferFault::kStall;
  } else if (mode == "post") {
    spec.fault = TransferFault::kPost;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        kVariable, "='", text, "': expected fail, stall or post, optionally with :N (from the N-th write)"));
  }
  if (colon != std::string::npos &&
      (!absl::SimpleAtoi(text.substr(colon + 1), &spec.from_write) || spec.from_write < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat(kVariable, "='", text, "': expected a write number >= 1 after ':'"));
  }
  return spec;
}

FaultInjectingTransport::FaultInjectingTransport(std::unique_ptr<KvTransport> inner, TransferFaultSpec spec)
    : inner_(std::move(inner)), spec_(spec) {}

absl::StatusOr<TransferId> FaultInjectingTransport::PostWrite(PeerId peer, std::span<const WriteOp> ops,
                                                              std::string notification) {
  if (writes_.fetch_add(1) + 1 < spec_.from_write) return inner_->PostWrite(peer, ops, std::move(notification));
  faulted_.fetch_add(1);
  if (spec_.fault == TransferFault::kPost) {
    return absl::UnavailableError(absl::StrCat(inner_->name(), ": write refused (", kVariable, "=post)"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  const TransferId id = kFaultedBit | next_faulted_++;
  faulted_transfers_.emplace(id, spec_.fault);
  return id;
}

absl::StatusOr<TransferState> FaultInjectingTransport::Poll(TransferId transfer) {
  if ((transfer & kFaultedBit) == 0) return inner_->Poll(transfer);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = faulted_transfers_.find(transfer);
  if (it == faulted_transfers_.end()) {
    return absl::NotFoundError(absl::StrCat("transfer ", transfer, " is not known (released?)"));
  }
  return it->second == TransferFault::kStall ? TransferState::kPending : TransferState::kFailed;
}

void FaultInjectingTransport::Release(TransferId transfer) {
  if ((transfer & kFaultedBit) == 0) {
    inner_->Release(transfer);
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  faulted_transfers_.erase(transfer);  // a stalled one is dropped: nothing was ever sent
}

absl::StatusOr<std::unique_ptr<KvTransport>> MaybeInjectTransferFaults(std::unique_ptr<KvTransport> transport) {
  const char* value = std::getenv(kVariable);
  if (value == nullptr || *value == '\0') return transport;
  absl::StatusOr<TransferFaultSpec> spec = ParseTransferFault(value);
  if (!spec.ok()) return spec.status();
  TLOG_WARN("{}={}: KV writes from the {}-th on will {} (fault injection for tests)", kVariable, value,
            spec->from_write, FaultName(spec->fault));
  return std::unique_ptr<KvTransport>(std::make_unique<FaultInjectingTransport>(std::move(transport), *spec));
}

}  // namespace tandem::transfer
