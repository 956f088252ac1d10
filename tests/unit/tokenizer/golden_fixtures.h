// Locating the tokenizer goldens (tests/golden/tokenizer/) and the real tokenizers, which the build
// unpacks from tests/golden/tokenizer/fixtures/tokenizers.tar.xz into TANDEM_TOKENIZER_FIXTURES_DIR.
#pragma once

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "support/models.h"
#include "tandem/tokenizer/tokenizer.h"

namespace tandem::tokenizer::testing {

inline std::string SourceDir() { return TANDEM_SOURCE_DIR; }
inline std::string GoldenDir() { return SourceDir() + "/tests/golden/tokenizer"; }
inline std::string FixtureDir(const std::string& name) {
  return std::string(TANDEM_TOKENIZER_FIXTURES_DIR) + "/" + name;
}
inline std::string SmolLm2GgufPath() { return test_support::SmolLM2GgufPath(); }
inline bool FileExists(const std::string& path) { return std::ifstream(path).good(); }

inline nlohmann::ordered_json ReadJson(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::ordered_json::parse(ss.str());
}

// The HF-file tokenizers by golden name; SmolLM2 comes from its GGUF (see gguf tests).
inline absl::StatusOr<std::unique_ptr<Tokenizer>> LoadHfFixture(const std::string& name) {
  return Tokenizer::FromHfDir(FixtureDir(name));
}

}  // namespace tandem::tokenizer::testing
