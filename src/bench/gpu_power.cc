#include "tandem/bench/gpu_power.h"

#include <dlfcn.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tandem::bench {
namespace {

// The few NVML entry points used, with their C signatures (nvml.h); NVML_SUCCESS is 0.
using NvmlDevice = void*;
using NvmlReturn = int;
struct Nvml {
  void* lib = nullptr;
  NvmlReturn (*init)() = nullptr;
  NvmlReturn (*shutdown)() = nullptr;
  const char* (*error_string)(NvmlReturn) = nullptr;
  NvmlReturn (*device_count)(unsigned*) = nullptr;
  NvmlReturn (*handle_by_index)(unsigned, NvmlDevice*) = nullptr;
  NvmlReturn (*power_usage)(NvmlDevice, unsigned*) = nullptr;             // milliwatts
  NvmlReturn (*total_energy)(NvmlDevice, unsigned long long*) = nullptr;  // millijoules

  ~Nvml() {
    if (shutdown != nullptr) shutdown();
    if (lib != nullptr) dlclose(lib);
  }
  std::string Error(NvmlReturn r) const {
    return error_string != nullptr ? error_string(r) : absl::StrCat("code ", r);
  }
};

template <typename Fn>
bool Load(void* lib, const char* name, Fn* fn) {
  *fn = reinterpret_cast<Fn>(dlsym(lib, name));
  return *fn != nullptr;
}

}  // namespace

struct GpuPowerSampler::Impl {
  std::unique_ptr<Nvml> nvml;
  std::vector<int> indices;
  std::vector<NvmlDevice> devices;
  std::vector<unsigned long long> energy_start;  // mJ; per device, when the counter works
  std::vector<bool> has_counter;
  std::vector<GpuEnergy> result;
  std::vector<double> last_w;
  std::chrono::milliseconds interval{100};
  std::chrono::steady_clock::time_point last_t;
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;

  void Sample() {
    const auto now = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(now - last_t).count();
    last_t = now;
    for (size_t i = 0; i < devices.size(); ++i) {
      unsigned mw = 0;
      if (nvml->power_usage(devices[i], &mw) != 0) continue;
      const double w = mw / 1000.0;
      GpuEnergy& g = result[i];
      if (g.samples > 0)
        g.energy_j += 0.5 * (w + last_w[i]) * dt;  // integrated; replaced by the counter if any
      g.mean_power_w += w;
      g.max_power_w = std::max(g.max_power_w, w);
      ++g.samples;
      last_w[i] = w;
    }
  }
};

GpuPowerSampler::GpuPowerSampler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GpuPowerSampler::~GpuPowerSampler() {
  if (impl_ && impl_->thread.joinable()) Stop();
}

absl::StatusOr<std::unique_ptr<GpuPowerSampler>> GpuPowerSampler::Start(const std::string& gpus,
                                                                        std::chrono::milliseconds interval) {
  auto nvml = std::make_unique<Nvml>();
  nvml->lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (nvml->lib == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--gpu-power: cannot load NVML (libnvidia-ml.so.1, part of the NVIDIA driver): ", dlerror(),
        "; run on a machine with an NVIDIA GPU and driver, or leave --gpu-power out"));
  }
  if (!Load(nvml->lib, "nvmlInit_v2", &nvml->init) ||
      !Load(nvml->lib, "nvmlErrorString", &nvml->error_string) ||
      !Load(nvml->lib, "nvmlDeviceGetCount_v2", &nvml->device_count) ||
      !Load(nvml->lib, "nvmlDeviceGetHandleByIndex_v2", &nvml->handle_by_index) ||
      !Load(nvml->lib, "nvmlDeviceGetPowerUsage", &nvml->power_usage)) {
    return absl::FailedPreconditionError(
        "--gpu-power: libnvidia-ml.so.1 lacks nvmlInit_v2 or the power calls (driver too old?)");
  }
  Load(nvml->lib, "nvmlDeviceGetTotalEnergyConsumption", &nvml->total_energy);  // optional
  if (NvmlReturn r = nvml->init(); r != 0) {
    return absl::FailedPreconditionError(absl::StrCat("--gpu-power: nvmlInit failed: ", nvml->Error(r)));
  }
  Load(nvml->lib, "nvmlShutdown", &nvml->shutdown);
  unsigned count = 0;
  if (NvmlReturn r = nvml->device_count(&count); r != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("--gpu-power: nvmlDeviceGetCount failed: ", nvml->Error(r)));
  }
  auto impl = std::make_unique<Impl>();
  if (gpus == "all") {
    for (unsigned i = 0; i < count; ++i) impl->indices.push_back(static_cast<int>(i));
  } else {
    for (absl::string_view s : absl::StrSplit(gpus, ',', absl::SkipWhitespace())) {
      int i = 0;
      if (!absl::SimpleAtoi(s, &i) || i < 0 || static_cast<unsigned>(i) >= count) {
        return absl::InvalidArgumentError(absl::StrCat("--gpu-power: expected 'all' or GPU indices below ",
                                                       count, " (this machine's GPUs), found '", s, "'"));
      }
      impl->indices.push_back(i);
    }
  }
  if (impl->indices.empty()) return absl::InvalidArgumentError("--gpu-power: no GPU to sample");
  for (int i : impl->indices) {
    NvmlDevice d = nullptr;
    if (NvmlReturn r = nvml->handle_by_index(static_cast<unsigned>(i), &d); r != 0) {
      return absl::FailedPreconditionError(absl::StrCat("--gpu-power: GPU ", i, ": ", nvml->Error(r)));
    }
    unsigned mw = 0;
    if (NvmlReturn r = nvml->power_usage(d, &mw); r != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("--gpu-power: GPU ", i, " reports no power: ", nvml->Error(r)));
    }
    unsigned long long mj = 0;
    const bool counter = nvml->total_energy != nullptr && nvml->total_energy(d, &mj) == 0;
    impl->devices.push_back(d);
    impl->energy_start.push_back(mj);
    impl->has_counter.push_back(counter);
    GpuEnergy g;
    g.index = i;
    impl->result.push_back(g);
  }
  impl->last_w.assign(impl->devices.size(), 0);
  impl->nvml = std::move(nvml);
  impl->interval = interval;
  impl->last_t = std::chrono::steady_clock::now();
  impl->Sample();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] {
    std::unique_lock<std::mutex> lock(raw->mu);
    while (!raw->cv.wait_for(lock, raw->interval, [raw] { return raw->stop; })) raw->Sample();
  });
  return std::unique_ptr<GpuPowerSampler>(new GpuPowerSampler(std::move(impl)));
}

std::vector<GpuEnergy> GpuPowerSampler::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->Sample();
  for (size_t i = 0; i < impl_->devices.size(); ++i) {
    GpuEnergy& g = impl_->result[i];
    if (g.samples > 0) g.mean_power_w /= static_cast<double>(g.samples);
    unsigned long long mj = 0;
    if (impl_->has_counter[i] && impl_->nvml->total_energy(impl_->devices[i], &mj) == 0) {
      g.energy_j = static_cast<double>(mj - impl_->energy_start[i]) / 1000.0;
      g.from_counter = true;
    }
  }
  return impl_->result;
}

nlohmann::ordered_json EnergyJson(const std::vector<GpuEnergy>& gpus, int64_t output_tokens,
                                  double duration_s) {
  nlohmann::ordered_json j;
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  double energy = 0, power = 0;
  for (const GpuEnergy& g : gpus) {
    energy += g.energy_j;
    power += g.mean_power_w;
    list.push_back({{"index", g.index},
                    {"energy_j", g.energy_j},
                    {"mean_power_w", g.mean_power_w},
                    {"max_power_w", g.max_power_w},
                    {"samples", g.samples},
                    {"from_energy_counter", g.from_counter}});
  }
  j["gpus"] = list;
  j["energy_j"] = energy;
  j["mean_power_w"] = duration_s > 0 ? energy / duration_s : power;
  j["joules_per_output_token"] = output_tokens > 0 ? energy / static_cast<double>(output_tokens) : 0.0;
  // (tokens/s) / W = tokens / J.
  j["output_tokens_per_s_per_watt"] = energy > 0 ? static_cast<double>(output_tokens) / energy : 0.0;
  return j;
}

}  // namespace tandem::bench
