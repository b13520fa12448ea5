// Numbers as the ctl shows them to people: byte sizes, durations, rates and
// milliseconds, each short enough for a table cell.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace mm {

// "0 B", "512 B", "1.5 KiB", "12.0 MiB", "3.25 GiB" (three significant digits
// from KiB up).
std::string FormatBytes(int64_t bytes);

// An uptime: "45s", "12m05s", "3h07m", "2d04h".
std::string FormatUptime(double seconds);

// `value` with `decimals` digits after the point ("12.3").
std::string FormatFixed(double value, int decimals);

// Milliseconds with three significant digits ("0.412", "12.3", "1234"); "-"
// for nullopt. `seconds` is in seconds.
std::string FormatMs(std::optional<double> seconds);

// The shortest text that reads back as `value` ("0.1", "3", "1e+30"); "NaN",
// "Infinity", "-Infinity" for those.
std::string FormatShortest(double value);

}  // namespace mm
