// A small command-line flag parser for the `tandem` subcommands: `--name value`, `--name=value`,
// boolean `--name`, repeated flags (`--set a=1 --set b=2`) and positional arguments.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tandem::cli {

struct FlagSpec {
  std::string name;      // without the leading dashes
  std::string help;
  bool takes_value = true;
  bool repeated = false;
  std::string short_name;  // e.g. "c" for -c; may be empty
};

class Flags {
 public:
  // Parses args (without the program and subcommand names). Unknown flags are errors.
  static absl::StatusOr<Flags> Parse(const std::vector<std::string>& args, const std::vector<FlagSpec>& specs);

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  const std::vector<std::string>& All(const std::string& name) const;
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t fallback) const;
  absl::StatusOr<double> GetDouble(const std::string& name, double fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

// "Usage: tandem NAME ARGS\n\nSUMMARY\n\nFlags:\n  --flag  help" for `--help`.
std::string FormatHelp(const std::string& usage, const std::string& summary, const std::vector<FlagSpec>& specs);

// True when args contain -h or --help.
bool WantsHelp(const std::vector<std::string>& args);

}  // namespace tandem::cli
