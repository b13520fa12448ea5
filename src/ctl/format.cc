#include "ctl/format.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace mm {

std::string FormatBytes(int64_t bytes) {
  if (bytes < 1024 && bytes > -1024) return std::to_string(bytes) + " B";
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  while (std::fabs(v) >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  const double a = std::fabs(v);
  const int decimals = a < 9.995 ? 2 : (a < 99.95 ? 1 : 0);
  return FormatFixed(v, decimals) + " " + kUnits[unit];
}

std::string FormatUptime(double seconds) {
  if (!(seconds > 0)) seconds = 0;
  const auto s = static_cast<int64_t>(seconds);
  char buf[48];
  if (s < 60) {
    std::snprintf(buf, sizeof(buf), "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%lldd%02lldh", static_cast<long long>(s / 86400),
                  static_cast<long long>(s % 86400 / 3600));
  }
  return buf;
}

std::string FormatFixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  return buf;
}

std::string FormatMs(std::optional<double> seconds) {
  if (!seconds) return "-";
  const double ms = *seconds * 1000;
  const double a = std::fabs(ms);
  if (a >= 100) return FormatFixed(ms, 0);
  if (a >= 10) return FormatFixed(ms, 1);
  if (a >= 1) return FormatFixed(ms, 2);
  return FormatFixed(ms, 3);
}

std::string FormatShortest(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, r.ptr);
}

}  // namespace mm
