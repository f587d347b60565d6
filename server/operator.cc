#include "server/operator.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <sstream>

namespace warden::server {
namespace json = boost::json;

Result<int64_t> ParseDurationMs(std::string_view text) {
  if (text.empty()) return InvalidArgument("empty duration");
  int64_t n = 0;
  size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    n = n * 10 + (text[i] - '0');
    if (n > 100'000'000) return InvalidArgument("duration too long: " + std::string(text));
  }
  if (i == 0) return InvalidArgument("a duration is a number and a unit (s, m, h, d), such as 15m: " + std::string(text));
  std::string_view unit = text.substr(i);
  int64_t ms = unit.empty() || unit == "s" ? 1000 : unit == "m" ? 60'000 : unit == "h" ? 3'600'000
             : unit == "d"                   ? 86'400'000
                                             : 0;
  if (ms == 0) return InvalidArgument("unknown duration unit \"" + std::string(unit) + "\" (use s, m, h or d)");
  return n * ms;
}

namespace {

double Ratio(int64_t a, int64_t b) { return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b); }

std::string Time(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

json::object StatsJson(const storage::StatsRows& r, int64_t since_ms, int64_t now_ms) {
  json::object s;
  s["window"] = json::object{{"since", Time(since_ms)}, {"until", Time(now_ms)}};

  int64_t p50 = Percentile(r.anonymize_us, 50), p99 = Percentile(r.anonymize_us, 99);
  s["anonymization_latency_us"] = json::object{
      {"calls", r.anonymize_us.size()}, {"p50", p50}, {"p99", p99},
      {"status", p99 > 2'000'000 ? "critical" : p99 > 500'000 ? "warning" : "ok"}};

  int64_t pass = r.canary_inline_pass + r.canary_selftest_pass;
  int64_t fail = r.canary_inline_leak + r.canary_selftest_fail;
  s["canary"] = json::object{{"inline_pass", r.canary_inline_pass},
                             {"inline_leak", r.canary_inline_leak},
                             {"self_test_pass", r.canary_selftest_pass},
                             {"self_test_fail", r.canary_selftest_fail},
                             {"pass_rate", pass + fail == 0 ? json::value(nullptr) : json::value(Ratio(pass, pass + fail))},
                             {"status", r.active_halt ? "halt" : fail > 0 ? "halt (lifted)" : "ok"}};
  s["halt"] = r.active_halt ? json::value(json::object{{"since", Time(r.active_halt->halted_ms)},
                                                       {"source", r.active_halt->source},
                                                       {"reason", r.active_halt->reason}})
                            : json::value(nullptr);

  // Escalation: work handed to the agent (every non-local tool call) against work the
  // local model resolved (local_* tools). Judged only once local delegation is in use.
  int64_t all = r.local_calls + r.escalated_calls;
  s["escalation"] = json::object{
      {"local", r.local_calls},
      {"escalated", r.escalated_calls},
      {"ratio", all == 0 ? json::value(nullptr) : json::value(Ratio(r.escalated_calls, all))},
      {"status", r.local_calls == 0 ? "n/a (no local delegation)" : Ratio(r.escalated_calls, all) > 0.4 ? "review" : "ok"}};

  int64_t near = std::count_if(r.ssh_expiry_ratio.begin(), r.ssh_expiry_ratio.end(), [](double v) { return v >= 0.9; });
  double max_ratio = r.ssh_expiry_ratio.empty() ? 0.0 : r.ssh_expiry_ratio.back();
  s["ssh_sessions"] = json::object{{"calls", r.ssh_expiry_ratio.size()},
                                   {"max_share_of_certificate_lifetime", max_ratio},
                                   {"near_expiry", near},
                                   {"status", near > 0 ? "warning" : "ok"}};

  double rejected = Ratio(r.validation_rejections, r.local_calls);
  s["output_validation"] = json::object{{"rejections", r.validation_rejections},
                                        {"rate", r.local_calls == 0 ? json::value(nullptr) : json::value(rejected)},
                                        {"status", rejected > 0.05 ? "investigate" : "ok"}};

  s["purge"] = json::object{{"runs", r.purge_runs},
                            {"lag_max_ms", r.purge_lag_max_ms},
                            {"lag_last_ms", r.purge_lag_last_ms},
                            {"bodies_held", r.bodies_pending},
                            {"status", r.purge_lag_max_ms > 600'000 ? "critical" : "ok"}};

  json::array tools;
  for (const storage::ToolCount& t : r.tools)
    tools.push_back(json::object{{"tool", t.tool}, {"calls", t.calls}, {"errors", t.errors}});
  s["tools"] = std::move(tools);
  return s;
}

namespace {
std::string Str(const json::value& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return std::string(v.get_string());
  if (v.is_double()) return Fixed(v.get_double(), 4);
  return json::serialize(v);
}
std::string Pct(const json::value& v) { return v.is_null() ? "-" : Fixed(100.0 * v.to_number<double>(), 1) + "%"; }
}  // namespace

std::string StatsText(const json::object& s) {
  std::ostringstream o;
  const auto& w = s.at("window").as_object();
  o << "Warden stats, " << Str(w.at("since")) << " .. " << Str(w.at("until")) << "\n\n";
  const auto& an = s.at("anonymization_latency_us").as_object();
  const auto& ca = s.at("canary").as_object();
  const auto& es = s.at("escalation").as_object();
  const auto& ss = s.at("ssh_sessions").as_object();
  const auto& ov = s.at("output_validation").as_object();
  const auto& pu = s.at("purge").as_object();
  struct Line {
    std::string metric, value, threshold, status;
  };
  std::vector<Line> lines = {
      {"anonymization latency p50 / p99",
       Str(an.at("p50")) + " us / " + Str(an.at("p99")) + " us (" + Str(an.at("calls")) + " calls)",
       "p99 >500 ms warn, >2 s critical", Str(an.at("status"))},
      {"canary pass rate",
       Pct(ca.at("pass_rate")) + " (inline " + Str(ca.at("inline_pass")) + " pass, " + Str(ca.at("inline_leak")) +
           " leak; self-test " + Str(ca.at("self_test_pass")) + " pass, " + Str(ca.at("self_test_fail")) + " fail)",
       "<100% halt", Str(ca.at("status"))},
      {"escalation ratio",
       Pct(es.at("ratio")) + " (" + Str(es.at("escalated")) + " escalated, " + Str(es.at("local")) + " local)",
       ">40% review", Str(es.at("status"))},
      {"ssh sessions near certificate expiry",
       Str(ss.at("near_expiry")) + " of " + Str(ss.at("calls")) + " (longest " +
           Pct(ss.at("max_share_of_certificate_lifetime")) + " of its lifetime)",
       ">90% of lifetime warn", Str(ss.at("status"))},
      {"output-validation rejections", Str(ov.at("rejections")) + " (" + Pct(ov.at("rate")) + ")", ">5% investigate",
       Str(ov.at("status"))},
      {"purge lag max / last",
       Str(pu.at("lag_max_ms")) + " ms / " + Str(pu.at("lag_last_ms")) + " ms (" + Str(pu.at("runs")) + " passes, " +
           Str(pu.at("bodies_held")) + " bodies held)",
       ">10 min critical", Str(pu.at("status"))},
  };
  size_t w1 = 0, w2 = 0, w3 = 0;  // column widths
  for (const Line& l : lines) {
    w1 = std::max(w1, l.metric.size());
    w2 = std::max(w2, l.value.size());
    w3 = std::max(w3, l.threshold.size());
  }
  auto pad = [](const std::string& t, size_t width) { return t + std::string(width > t.size() ? width - t.size() : 0, ' '); };
  for (const Line& l : lines)
    o << pad(l.metric, w1) << "  " << pad(l.value, w2) << "  " << pad(l.threshold, w3) << "  " << l.status << "\n";
  if (!s.at("halt").is_null()) {
    const auto& h = s.at("halt").as_object();
    o << "\nHALTED since " << Str(h.at("since")) << " (" << Str(h.at("source")) << "): " << Str(h.at("reason")) << "\n";
  }
  o << "\ncalls and errors per tool:\n";
  const auto& tools = s.at("tools").as_array();
  if (tools.empty()) o << "  (no calls in this window)\n";
  for (const auto& t : tools)
    o << "  " << pad(Str(t.at("tool")), 14) << " " << Str(t.at("calls")) << " calls, " << Str(t.at("errors"))
      << " errors\n";
  return o.str();
}

std::string StatsPrometheus(const json::object& s) {
  std::ostringstream o;
  auto metric = [&](const char* name, const char* help, const char* type, const std::string& value,
                    const std::string& labels = "") {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n"
      << name << labels << " " << value << "\n";
  };
  auto num = [](const json::value& v) { return v.is_null() ? std::string("NaN") : Str(v); };
  const auto& an = s.at("anonymization_latency_us").as_object();
  o << "# HELP warden_anonymization_latency_seconds Time in the anonymizer per completed call.\n"
       "# TYPE warden_anonymization_latency_seconds summary\n"
    << "warden_anonymization_latency_seconds{quantile=\"0.5\"} " << Fixed(an.at("p50").to_number<double>() / 1e6, 6)
    << "\n"
    << "warden_anonymization_latency_seconds{quantile=\"0.99\"} " << Fixed(an.at("p99").to_number<double>() / 1e6, 6)
    << "\nwarden_anonymization_latency_seconds_count " << Str(an.at("calls")) << "\n";
  const auto& ca = s.at("canary").as_object();
  metric("warden_canary_pass_ratio", "Share of canaries redacted as expected (inline and self-test).", "gauge",
         num(ca.at("pass_rate")));
  metric("warden_halted", "1 while tool calls are halted by a canary failure.", "gauge", s.at("halt").is_null() ? "0" : "1");
  const auto& es = s.at("escalation").as_object();
  metric("warden_escalation_ratio", "Escalated tool calls over all (local_* tools are local).", "gauge",
         num(es.at("ratio")));
  const auto& ss = s.at("ssh_sessions").as_object();
  metric("warden_ssh_certificate_lifetime_used_max_ratio", "Longest ssh_run call as a share of its certificate lifetime.",
         "gauge", Str(ss.at("max_share_of_certificate_lifetime")));
  metric("warden_ssh_sessions_near_expiry", "ssh_run calls that used more than 90% of the certificate lifetime.",
         "gauge", Str(ss.at("near_expiry")));
  metric("warden_output_validation_rejections", "Local-model answers blocked by output validation.", "gauge",
         Str(s.at("output_validation").as_object().at("rejections")));
  const auto& pu = s.at("purge").as_object();
  metric("warden_purge_lag_max_seconds", "How late the purge emptied an output body, worst case.", "gauge",
         Fixed(pu.at("lag_max_ms").to_number<double>() / 1000, 3));
  metric("warden_output_bodies_held", "Sanitized output bodies not yet purged.", "gauge", Str(pu.at("bodies_held")));
  o << "# HELP warden_tool_calls Tool calls in the window.\n# TYPE warden_tool_calls gauge\n";
  for (const auto& t : s.at("tools").as_array())
    o << "warden_tool_calls{tool=\"" << Str(t.at("tool")) << "\"} " << Str(t.at("calls")) << "\n";
  o << "# HELP warden_tool_errors Tool calls that did not complete, in the window.\n# TYPE warden_tool_errors gauge\n";
  for (const auto& t : s.at("tools").as_array())
    o << "warden_tool_errors{tool=\"" << Str(t.at("tool")) << "\"} " << Str(t.at("errors")) << "\n";
  return o.str();
}

json::array AuditJson(const std::vector<storage::CallRow>& rows) {
  json::array a;
  for (const storage::CallRow& r : rows) {
    json::object o{{"call_id", r.call_id},
                   {"session_id", r.session_id},
                   {"started", Time(r.started_ms)},
                   {"tool", r.tool},
                   {"target", r.target},
                   {"status", r.status},
                   {"exit_status", r.exit_status ? json::value(*r.exit_status) : json::value(nullptr)},
                   {"duration_ms", r.duration_ms},
                   {"response_bytes", r.response_bytes},
                   {"canary", r.canary},
                   {"output_kept", r.output_kept},
                   {"error", r.error}};
    std::error_code ec;
    json::value red = json::parse(r.redactions_json, ec);
    o["redactions"] = ec ? json::value(json::object{}) : red;
    json::value details = json::parse(r.details_json, ec);
    o["details"] = ec ? json::value(json::object{}) : details;
    a.push_back(std::move(o));
  }
  return a;
}

std::string AuditTable(const std::vector<storage::CallRow>& rows) {
  std::vector<std::vector<std::string>> cells = {
      {"started", "tool", "target", "status", "exit", "ms", "bytes", "redactions", "call"}};
  for (const storage::CallRow& r : rows) {
    std::error_code ec;
    json::value red = json::parse(r.redactions_json, ec);
    std::string redactions;
    if (!ec && red.is_object())
      for (const auto& kv : red.as_object())
        redactions += (redactions.empty() ? "" : ",") + std::string(kv.key()) + ":" + json::serialize(kv.value());
    std::string target = r.target.size() > 40 ? r.target.substr(0, 37) + "..." : r.target;
    cells.push_back({Time(r.started_ms), r.tool, target, r.status, r.exit_status ? std::to_string(*r.exit_status) : "-",
                     std::to_string(r.duration_ms), std::to_string(r.response_bytes),
                     redactions.empty() ? "-" : redactions, r.call_id});
  }
  std::vector<size_t> w(cells[0].size(), 0);
  for (const auto& row : cells)
    for (size_t i = 0; i < row.size(); ++i) w[i] = std::max(w[i], row[i].size());
  std::ostringstream o;
  for (const auto& row : cells) {
    for (size_t i = 0; i < row.size(); ++i)
      o << row[i] << (i + 1 == row.size() ? "\n" : std::string(w[i] - row[i].size() + 2, ' '));
  }
  if (rows.empty()) o << "(no calls match)\n";
  return o.str();
}

}  // namespace warden::server
