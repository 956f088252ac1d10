#include "flags.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tandem::cli {

absl::StatusOr<Flags> Flags::Parse(const std::vector<std::string>& args, const std::vector<FlagSpec>& specs) {
  Flags flags;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() < 2 || arg[0] != '-') {
      flags.positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(arg[1] == '-' ? 2 : 1);
    std::string value;
    bool has_inline = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_inline = true;
    }
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& s : specs) {
      if (s.name == name || (!s.short_name.empty() && s.short_name == name)) spec = &s;
    }
    if (spec == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag ", arg, " (see --help)"));
    if (spec->takes_value && !has_inline) {
      if (i + 1 >= args.size()) return absl::InvalidArgumentError(absl::StrCat("flag --", spec->name, " needs a value"));
      value = args[++i];
    } else if (!spec->takes_value) {
      if (has_inline) return absl::InvalidArgumentError(absl::StrCat("flag --", spec->name, " takes no value"));
      value = "true";
    }
    auto& slot = flags.values_[spec->name];
    if (!slot.empty() && !spec->repeated) {
      return absl::InvalidArgumentError(absl::StrCat("flag --", spec->name, " given more than once"));
    }
    slot.push_back(value);
  }
  return flags;
}

std::string Flags::Get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

const std::vector<std::string>& Flags::All(const std::string& name) const {
  static const std::vector<std::string> kEmpty;
  auto it = values_.find(name);
  return it == values_.end() ? kEmpty : it->second;
}

absl::StatusOr<int64_t> Flags::GetInt(const std::string& name, int64_t fallback) const {
  if (!Has(name)) return fallback;
  int64_t value = 0;
  if (!absl::SimpleAtoi(Get(name), &value)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": expected an integer, found '", Get(name), "'"));
  }
  return value;
}

absl::StatusOr<double> Flags::GetDouble(const std::string& name, double fallback) const {
  if (!Has(name)) return fallback;
  double value = 0;
  if (!absl::SimpleAtod(Get(name), &value)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": expected a number, found '", Get(name), "'"));
  }
  return value;
}

std::string FormatHelp(const std::string& usage, const std::string& summary, const std::vector<FlagSpec>& specs) {
  std::string out = absl::StrCat("Usage: ", usage, "\n\n", summary, "\n");
  if (!specs.empty()) out += "\nFlags:\n";
  for (const FlagSpec& s : specs) {
    std::string left = s.short_name.empty() ? absl::StrCat("--", s.name) : absl::StrCat("-", s.short_name, ", --", s.name);
    if (s.takes_value) left += " VALUE";
    out += absl::StrCat("  ", left, std::string(left.size() < 28 ? 28 - left.size() : 1, ' '), s.help,
                        s.repeated ? " (repeatable)" : "", "\n");
  }
  return out;
}

bool WantsHelp(const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "-h" || a == "--help") return true;
  }
  return false;
}

}  // namespace tandem::cli
