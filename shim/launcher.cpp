// unblock: the launcher. Runs a program with libunblock.so preloaded.
//
//   unblock [--workers N] [--stack-size SIZE] [--log LEVEL] [--stats FILE]
//           [--fault SPEC]... [--] PROGRAM [ARGS...]
//   unblock --help | --version
//
// It only prepares the environment and execs the program: LD_PRELOAD gets the
// library in front of what is already there (so unblock's hooks see the calls
// first; a library the user preloads still interposes the rest), options
// become UNBLOCK_* variables, --fault specs are joined into UNBLOCK_FAULTS.
// The library is found next to the launcher (build tree), in ../lib
// (installed), or at $UNBLOCK_LIBRARY.
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "shim/config.h"

#ifndef UNBLOCK_VERSION
#define UNBLOCK_VERSION "unknown"
#endif

namespace {

// The library next to this launcher was built without the fault layer
// (fault/, CMake option UNBLOCK_FAULTS): --fault would be silently ignored.
constexpr bool kFaultsCompiledOut = !UNBLOCK_WITH_FAULTS;

[[noreturn]] void usage_error(const char* what, const char* value) {
  fprintf(stderr, "unblock: %s%s%s\nTry 'unblock --help'.\n", what, value ? ": " : "", value ? value : "");
  exit(2);
}

void help() {
  printf(
      "Usage: unblock [OPTIONS] [--] PROGRAM [ARGS...]\n"
      "Runs PROGRAM with every thread as a fiber and blocking calls on io_uring.\n\n"
      "Options:\n"
      "  --workers N        worker threads (UNBLOCK_WORKERS)\n"
      "  --stack-size SIZE  default thread stack, e.g. 256k, 8M (UNBLOCK_STACK_SIZE)\n"
      "  --log LEVEL        off|error|warn|info|debug (UNBLOCK_LOG)\n"
      "  --stats FILE       write runtime counters at exit; 'stderr' for stderr (UNBLOCK_STATS)\n"
      "  --fault SPEC       inject faults, e.g. 'enable_random name=posix/io/rw/read,probability=0.1'\n"
      "                     (repeatable; UNBLOCK_FAULTS; see docs/FAULTS.md)%s\n"
      "  --help, --version\n\n"
      "Environment (all optional):\n%s",
      kFaultsCompiledOut ? "\n                     not in this build: fault injection is compiled out (UNBLOCK_FAULTS=OFF)" : "",
      unblock::config::describe());
}

std::string library_path(const char* argv0) {
  if (const char* env = getenv("UNBLOCK_LIBRARY")) return env;
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  std::string dir;
  if (n > 0) {
    self[n] = 0;
    dir = self;
  } else {
    dir = argv0;
  }
  dir = dir.substr(0, dir.rfind('/') == std::string::npos ? 0 : dir.rfind('/'));
  for (const char* rel : {"/libunblock.so", "/../lib/libunblock.so"}) {
    std::string p = dir + rel;
    if (access(p.c_str(), R_OK) == 0) {
      char real[PATH_MAX];
      return realpath(p.c_str(), real) ? real : p;
    }
  }
  return "";
}

bool is_level(const char* v) {
  for (const char* l : {"off", "error", "warn", "info", "debug", "0", "1", "2", "3", "4"}) {
    if (!strcmp(v, l)) return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  std::string faults;
  int i = 1;
  for (; i < argc; ++i) {
    const char* a = argv[i];
    auto value = [&](const char* opt) -> const char* {
      if (i + 1 >= argc) usage_error("missing value for", opt);
      return argv[++i];
    };
    if (!strcmp(a, "--")) {
      ++i;
      break;
    }
    if (a[0] != '-') break;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      help();
      return 0;
    }
    if (!strcmp(a, "--version")) {
      printf("unblock %s\n", UNBLOCK_VERSION);
      return 0;
    }
    if (!strcmp(a, "--workers")) {
      const char* v = value(a);
      char* end = nullptr;
      long n = strtol(v, &end, 10);
      if (!*v || *end || n < 1 || n > 1024) usage_error("--workers takes a number from 1 to 1024, not", v);
      setenv("UNBLOCK_WORKERS", v, 1);
    } else if (!strcmp(a, "--stack-size")) {
      const char* v = value(a);
      size_t size = 0;
      if (!unblock::config::parse_size(v, &size) || size < 16 * 1024) {
        usage_error("--stack-size takes a size of at least 16k, such as 256k or 8M, not", v);
      }
      setenv("UNBLOCK_STACK_SIZE", v, 1);
    } else if (!strcmp(a, "--log")) {
      const char* v = value(a);
      if (!is_level(v)) usage_error("--log takes off|error|warn|info|debug, not", v);
      setenv("UNBLOCK_LOG", v, 1);
    } else if (!strcmp(a, "--stats")) {
      setenv("UNBLOCK_STATS", value(a), 1);
    } else if (!strcmp(a, "--fault")) {
      const char* v = value(a);
      if (kFaultsCompiledOut) {
        usage_error("--fault: fault injection is compiled out of this build (-DUNBLOCK_FAULTS=OFF); cannot apply", v);
      }
      if (!*v) usage_error("--fault takes a specification", nullptr);
      if (!faults.empty()) faults += ';';
      faults += v;
    } else {
      usage_error("unknown option", a);
    }
  }
  if (i >= argc) usage_error("no program to run", nullptr);
  std::string lib = library_path(argv[0]);
  if (lib.empty()) {
    fprintf(stderr, "unblock: cannot find libunblock.so next to the launcher or in ../lib; set UNBLOCK_LIBRARY\n");
    return 2;
  }
  if (!faults.empty()) {
    const char* old = getenv("UNBLOCK_FAULTS");
    setenv("UNBLOCK_FAULTS", old && *old ? (std::string(old) + ";" + faults).c_str() : faults.c_str(), 1);
  }
  const char* pre = getenv("LD_PRELOAD");
  std::string value = lib;
  if (pre && *pre) {
    std::string p = pre;
    // Already there (e.g. unblock run under unblock): keep the list as it is.
    value = (" " + p + " ").find(" " + lib + " ") != std::string::npos ? p : lib + " " + p;
  }
  setenv("LD_PRELOAD", value.c_str(), 1);
  execvp(argv[i], argv + i);
  int err = errno;
  fprintf(stderr, "unblock: %s: %s\n", argv[i], strerror(err));
  return err == ENOENT ? 127 : 126;
}
