// `ctl top`: the live per-model view, from the console's overview document
// polled every interval; rates and latency quantiles over each interval.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "ctl/commands.h"
#include "ctl/format.h"
#include "ctl/overview.h"
#include "ctl/terminal.h"
#include "ctl/top_view.h"

namespace mm {

namespace {

constexpr char kOverviewPath[] = "/console/api/overview";
constexpr size_t kDefaultColumns = 80;

StatusOr<Overview> Fetch(HttpClient& client) {
  MM_ASSIGN_OR_RETURN(HttpResponse r, client.GetChecked(kOverviewPath));
  return ParseOverview(r.body);
}

size_t ScreenColumns() {
  const size_t columns = GetTerminalSize(STDOUT_FILENO).columns;
  return columns > 0 ? columns : kDefaultColumns;
}

}  // namespace

Status RunTop(const HttpClientOptions& options, const TopArgs& args) {
  using Clock = std::chrono::steady_clock;
  const auto interval =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(args.interval_s));
  HttpClientOptions client_options = options;
  client_options.cancel = &g_stop_requested;  // set only while the live screen is up
  MM_ASSIGN_OR_RETURN(std::unique_ptr<HttpClient> client, HttpClient::Create(client_options));
  MM_ASSIGN_OR_RETURN(Overview previous, Fetch(*client));

  if (args.once) {
    std::this_thread::sleep_for(interval);
    MM_ASSIGN_OR_RETURN(Overview current, Fetch(*client));
    const auto rows = ComputeTopRows(&previous, current, args.interval_s);
    const size_t width = IsTerminal(STDOUT_FILENO) ? ScreenColumns() : 0;
    std::fputs(RenderTopFrame(current, rows, width, "").c_str(), stdout);
    return OkStatus();
  }

  LiveScreen screen;
  std::vector<TopRow> rows = ComputeTopRows(nullptr, previous, args.interval_s);
  std::string trouble;  // the last refresh's failure, shown until one succeeds
  const std::string every = "every " + FormatShortest(args.interval_s) + " s";
  auto draw = [&] {
    const std::string footer = trouble.empty() ? "q: quit   refreshing " + every
                                               : "error: " + trouble + " (retrying " + every + ")";
    screen.Draw(RenderTopFrame(previous, rows, ScreenColumns(), footer));
  };
  draw();
  auto next = Clock::now() + interval;
  for (;;) {
    const LiveScreen::Event event = screen.Wait(next);
    if (event == LiveScreen::Event::kQuit) break;
    if (event == LiveScreen::Event::kResize) {
      draw();
      continue;
    }
    next += interval;
    if (next < Clock::now()) next = Clock::now() + interval;  // a slow refresh: no burst
    auto current = Fetch(*client);
    if (g_stop_requested) break;
    if (current.ok()) {
      rows = ComputeTopRows(&previous, *current, args.interval_s);
      previous = std::move(*current);
      trouble.clear();
    } else {
      trouble = current.status().message();
    }
    draw();
  }
  screen.Restore();
  return OkStatus();
}

}  // namespace mm
