// Summary statistics of a benchmark's latencies: mean and percentiles with linear interpolation
// between the closest ranks (numpy's default, which vLLM's benchmark and AIPerf also use), so the
// figures compare with theirs on the same samples.
#pragma once

#include <cstdint>
#include <vector>

namespace tandem::bench {

struct Distribution {
  int64_t count = 0;
  double mean = 0;
  double stddev = 0;
  double min = 0;
  double p50 = 0;
  double p90 = 0;
  double p99 = 0;
  double max = 0;
};

// The q-th percentile (0 <= q <= 100) of `sorted` (ascending); 0 when empty.
double Percentile(const std::vector<double>& sorted, double q);

// Every field of Distribution over `samples` (any order); all zero when empty.
Distribution Summarize(std::vector<double> samples);

}  // namespace tandem::bench
