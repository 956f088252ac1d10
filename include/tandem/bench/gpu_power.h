// GPU power during a benchmark, from NVML. libnvidia-ml.so.1 is opened at run time (dlopen), so the
// binary neither links NVML nor needs a driver to start; without one, Start says so. A thread
// samples each GPU's power every `interval`; the energy is the difference of NVML's total-energy
// counter (mJ, Volta and newer) when the GPU has one, else the samples integrated (trapezoids).
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem::bench {

struct GpuEnergy {
  int index = 0;
  double energy_j = 0;
  double mean_power_w = 0;
  double max_power_w = 0;
  int64_t samples = 0;
  bool from_counter = false;  // energy from the total-energy counter (else integrated samples)
};

class GpuPowerSampler {
 public:
  // Parses "all" or "0,1,3". An error when NVML cannot be loaded or a GPU index does not exist.
  static absl::StatusOr<std::unique_ptr<GpuPowerSampler>> Start(const std::string& gpus,
                                                                std::chrono::milliseconds interval);
  ~GpuPowerSampler();
  GpuPowerSampler(const GpuPowerSampler&) = delete;
  GpuPowerSampler& operator=(const GpuPowerSampler&) = delete;

  // Stops sampling; the energy of each GPU since Start.
  std::vector<GpuEnergy> Stop();

  struct Impl;

 private:
  explicit GpuPowerSampler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// {"gpus": [...], "energy_j", "mean_power_w", "joules_per_output_token", "output_tokens_per_s_per_watt"}.
nlohmann::ordered_json EnergyJson(const std::vector<GpuEnergy>& gpus, int64_t output_tokens,
                                  double duration_s);

}  // namespace tandem::bench
