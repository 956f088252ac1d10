// The `tandem` binary: dispatches to a subcommand.
#include <cstdio>
#include <string>

#include "commands.h"

namespace tandem::cli {

const std::vector<Command>& AllCommands() {
  static const std::vector<Command> kCommands = {
      {"config", "validate a deployment file and print the resolved deployment", RunConfig},
      {"version", "print the version, git hash and the CUDA/NCCL/UCX versions built with", RunVersion},
#ifdef TANDEM_HAVE_TOKENIZE
      {"tokenize", "print the token ids of a text or chat (or the text of ids) as JSON", RunTokenize},
#endif
#ifdef TANDEM_HAVE_GENERATE
      {"generate", "run a model locally (cpu, or --backend cuda) and print the generated tokens", RunGenerate},
#endif
#ifdef TANDEM_HAVE_QUANTIZE
      {"quantize", "write an NVFP4 checkpoint (Model Optimizer layout) from a Hugging Face model", RunQuantize},
#endif
#ifdef TANDEM_HAVE_WORKER
      {"worker", "run one worker (role prefill, decode or both) of a deployment", RunWorker},
#endif
#ifdef TANDEM_HAVE_SERVE
      {"serve", "serve a deployment: the HTTP and gRPC APIs plus its worker pools (or one in-process engine)",
       RunServe},
#endif
#ifdef TANDEM_HAVE_BENCH
      {"bench", "benchmark an OpenAI-compatible server: latency percentiles, throughput, goodput, energy", RunBench},
#endif
#ifdef TANDEM_HAVE_LAUNCHER
      {"frontend", "serve the HTTP and gRPC APIs for a cluster, routing to the workers in discovery",
       RunFrontend},
#endif
  };
  return kCommands;
}

namespace {

void PrintUsage(std::FILE* out) {
  std::fprintf(out,
               "Usage: tandem COMMAND [ARGS]\n\n"
               "tandem: a disaggregated LLM inference serving engine.\n\nCommands:\n");
  for (const Command& c : AllCommands()) std::fprintf(out, "  %-12s %s\n", c.name, c.summary);
  std::fprintf(out, "\nRun 'tandem COMMAND --help' for a command's flags.\n");
}

}  // namespace
}  // namespace tandem::cli

int main(int argc, char** argv) {
  using namespace tandem::cli;
  if (argc < 2) {
    PrintUsage(stderr);
    return 2;
  }
  const std::string name = argv[1];
  if (name == "-h" || name == "--help" || name == "help") {
    PrintUsage(stdout);
    return 0;
  }
  if (name == "--version") return RunVersion({});
  Args args(argv + 2, argv + argc);
  for (const Command& c : AllCommands()) {
    if (name == c.name) return c.run(args);
  }
  std::fprintf(stderr, "tandem: unknown command '%s'\n\n", name.c_str());
  PrintUsage(stderr);
  return 2;
}
