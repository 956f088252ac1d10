// Tokenizer throughput, single thread: encode a text file whole and line by line, decode it back.
// Compare with the Python `tokenizers` package on the same file: compare_with_hf.py runs both.
//
//   tokenizer_bench --model DIR_OR_GGUF --text FILE [--seconds 2]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "tandem/model/gguf.h"
#include "tandem/tokenizer/tokenizer.h"

namespace {

using tandem::tokenizer::TokenId;
using tandem::tokenizer::Tokenizer;

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& model) {
  if (EndsWith(model, ".gguf")) {
    auto file = tandem::model::GgufFile::Open(model);
    if (!file.ok()) return file.status();
    auto metadata = tandem::model::ReadGgufMetadata(**file);
    if (!metadata.ok()) return metadata.status();
    return Tokenizer::FromGguf(*metadata);
  }
  return Tokenizer::FromHfDir(model);
}

// Runs `fn` repeatedly for at least `seconds` (after one warm-up call); returns seconds per call.
double Time(double seconds, const std::function<void()>& fn) {
  fn();
  int iters = 0;
  auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    fn();
    ++iters;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < seconds);
  return elapsed / iters;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, text_path;
  double seconds = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--model")) model = argv[i + 1];
    else if (!std::strcmp(argv[i], "--text")) text_path = argv[i + 1];
    else if (!std::strcmp(argv[i], "--seconds")) seconds = std::atof(argv[i + 1]);
  }
  if (model.empty() || text_path.empty()) {
    std::fprintf(stderr, "usage: %s --model DIR_OR_GGUF --text FILE [--seconds 2]\n", argv[0]);
    return 2;
  }
  auto load_start = std::chrono::steady_clock::now();
  auto tok = Load(model);
  if (!tok.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(tok.status().message()).c_str());
    return 1;
  }
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  std::ifstream in(text_path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::vector<std::string> lines;
  for (size_t start = 0; start < text.size();) {
    size_t nl = text.find('\n', start);
    size_t end = nl == std::string::npos ? text.size() : nl + 1;
    lines.push_back(text.substr(start, end - start));
    start = end;
  }

  std::vector<TokenId> ids = (*tok)->Encode(text, false).value();
  const double mb = static_cast<double>(text.size()) / 1e6;
  double whole = Time(seconds, [&] { ids = (*tok)->Encode(text, false).value(); });
  size_t line_tokens = 0;
  double per_line = Time(seconds, [&] {
    line_tokens = 0;
    for (const auto& line : lines) line_tokens += (*tok)->Encode(line, false).value().size();
  });
  std::string decoded;
  double decode = Time(seconds, [&] { decoded = (*tok)->Decode(ids, false).value(); });
  std::printf("{\"impl\": \"tandem\", \"bytes\": %zu, \"tokens\": %zu, \"lines\": %zu, \"load_s\": %.3f,"
              " \"encode_whole_mb_s\": %.2f, \"encode_whole_tok_s\": %.0f,"
              " \"encode_lines_mb_s\": %.2f, \"encode_lines_tok_s\": %.0f,"
              " \"decode_mb_s\": %.2f, \"decode_tok_s\": %.0f, \"roundtrip\": %s}\n",
              text.size(), ids.size(), lines.size(), load_s, mb / whole, static_cast<double>(ids.size()) / whole,
              mb / per_line, static_cast<double>(line_tokens) / per_line, mb / decode,
              static_cast<double>(ids.size()) / decode, decoded == text ? "true" : "false");
  return 0;
}
