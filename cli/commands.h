// The sdrpn subcommands. Each takes the arguments after its name and returns the process exit code
// (0 ok, 1 failed, 2 usage, 130 cancelled).
#pragma once

#include <string>
#include <vector>

#include "core/result.h"

namespace sdrpn::cli {

using Argv = std::vector<std::string>;

struct Command {
    const char* name;
    const char* summary;
    int (*run)(const Argv& args);
};

int runMakeDemoModel(const Argv& args);
int runMakeDemoData(const Argv& args);
int runAsk(const Argv& args);
int runLabel(const Argv& args);
int runMergeStores(const Argv& args);
int runStoreInfo(const Argv& args);
int runRoi(const Argv& args);
int runEval(const Argv& args);
int runTrain(const Argv& args);
int runConvert(const Argv& args);          // cmd_convert.cpp
int runImportLabels(const Argv& args);     // cmd_import_labels.cpp
int runLabels(const Argv& args);           // cmd_import_labels.cpp
int runMergeCheckpoint(const Argv& args);  // cmd_merge_checkpoint.cpp

// Exit codes shared by the commands.
constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitCancelled = 130;

// Installs a SIGINT handler that asks `ctx` to cancel (a second Ctrl-C exits at once).
void cancelOnInterrupt(void* jobContext);

// kExitOk for an ok status; otherwise writes `prefix` (e.g. "\n" to end a progress line) and
// "sdrpn <command>: cancelled" or "sdrpn <command>: <message>" to stderr and returns kExitCancelled or
// kExitFailed.
int exitCodeOf(const std::string& command, const Status& status, const char* prefix = "");

// Writes a piece of streamed answer text to stdout at once.
void printStreamed(const std::string& piece);

// A one-line progress printer for the terminal ("\r[ 42%] message").
void printProgress(double fraction, const std::string& message);

}  // namespace sdrpn::cli
