#include "ctl/ctl_flags.h"

namespace mm {

void AddCtlFlags(CLI::App& app, CtlFlags& flags) {
  app.add_option("--url", flags.url,
                 "The server's HTTP address (default: $MMSERVE_URL, else " +
                     std::string(kDefaultServerUrl) + ")");
  app.add_option("--api-key", flags.api_key,
                 "API key, sent as 'Authorization: Bearer KEY' (default: $MMSERVE_API_KEY, "
                 "which keeps it out of the process list)");
  app.add_option("--timeout", flags.timeout_s,
                 "Seconds one request may take; 0: no limit (default: none for load, unload "
                 "and infer, 30 for the listings, 10 for each poll of top)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--cacert", flags.cacert, "CA certificates (PEM) to verify an https server with")
      ->check(CLI::ExistingFile);
  app.add_flag("--insecure", flags.insecure,
               "Do not verify an https server's certificate (testing only)");
}

HttpClientOptions ResolveClientOptions(const CtlFlags& flags,
                                       const std::function<const char*(const char*)>& getenv,
                                       double default_timeout_s) {
  auto env = [&](const char* name) -> std::string {
    const char* v = getenv(name);
    return v != nullptr ? std::string(v) : std::string();
  };
  HttpClientOptions o;
  o.url = flags.url;
  if (o.url.empty()) o.url = env("MMSERVE_URL");
  if (o.url.empty()) o.url = kDefaultServerUrl;
  o.api_key = flags.api_key;
  if (o.api_key.empty()) o.api_key = env("MMSERVE_API_KEY");
  o.timeout_s = flags.timeout_s >= 0 ? flags.timeout_s : default_timeout_s;
  o.cacert = flags.cacert;
  o.insecure = flags.insecure;
  return o;
}

}  // namespace mm
