// The `tandem` subcommands. Each takes its arguments (after the subcommand name) and returns the
// process exit code: 0 success, 1 runtime failure, 2 bad usage. Each prints its own --help.
#pragma once

#include <string>
#include <vector>

namespace tandem::cli {

using Args = std::vector<std::string>;

struct Command {
  const char* name;     // "config", "version", ...
  const char* summary;  // one line for `tandem --help`
  int (*run)(const Args& args);
};

int RunVersion(const Args& args);
int RunConfig(const Args& args);
int RunServe(const Args& args);     // cmd_serve.cc, when the frontend module is built
int RunTokenize(const Args& args);  // cmd_tokenize.cc, when the tokenizer module is built
int RunGenerate(const Args& args);  // cmd_generate.cc, when the backend module is built
int RunWorker(const Args& args);    // cmd_worker.cc, when the worker module is built
int RunFrontend(const Args& args);  // cmd_frontend.cc, with the launcher (worker + frontend + router)
int RunQuantize(const Args& args);  // cmd_quantize.cc, when the model module is built
int RunBench(const Args& args);     // cmd_bench.cc, when the bench module is built

// The table `tandem` dispatches on (main.cc).
const std::vector<Command>& AllCommands();

}  // namespace tandem::cli
