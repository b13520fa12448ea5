// The ctl's connection flags (before the command): --url, --api-key,
// --timeout, --cacert, --insecure, and the environment they fall back on:
// MMSERVE_URL (default http://localhost:8000) and MMSERVE_API_KEY. A flag
// given on the command line wins over the environment.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "ctl/http_client.h"

namespace mm {

inline constexpr char kDefaultServerUrl[] = "http://localhost:8000";

struct CtlFlags {
  std::string url;        // empty: MMSERVE_URL, else kDefaultServerUrl
  std::string api_key;    // empty: MMSERVE_API_KEY, else none
  double timeout_s = -1;  // < 0: the command's default
  std::string cacert;
  bool insecure = false;
};

// Declares the flags on `app` (the ctl's top level).
void AddCtlFlags(CLI::App& app, CtlFlags& flags);

// The client options from `flags`, falling back on the environment read by
// `getenv` (std::getenv in the program), and on `default_timeout_s` when
// --timeout was not given.
HttpClientOptions ResolveClientOptions(const CtlFlags& flags,
                                       const std::function<const char*(const char*)>& getenv,
                                       double default_timeout_s);

}  // namespace mm
