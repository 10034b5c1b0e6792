// The output of `fedtrain ef-validate` (docs/compression.md §4): a run grid's report as a
// fixed-width text table, as CSV and as JSON. See ef_validation.h.
//
// Pure functions of the plan and the report; thread-safe.
#include "sim/ef_validation.h"

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "sim/ef_validation_internal.h"

namespace fedtrain {

using ef_internal::kNaN;
using ef_internal::Num;

namespace {

std::string Sci(double v) {
  if (std::isnan(v)) return "-";
  return absl::StrFormat("%.3g", v);
}

std::string JsonNum(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.17g", v);
}

std::string JsonStr(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out += absl::StrFormat("\\u%04x", static_cast<int>(ch));
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"') out += '"';
    out += ch;
  }
  return out + "\"";
}

std::string CsvNum(double v) { return std::isnan(v) ? "" : absl::StrFormat("%.6g", v); }

std::string RunStatus(const EfRunResult& r) {
  return r.diverged ? absl::StrCat("diverged@", r.diverged_at) : "ok";
}

}  // namespace

std::string FormatEfTable(const EfValidationPlan& plan, const EfValidationReport& report) {
  std::string out;
  for (size_t e = 0; e < plan.experiments.size(); ++e) {
    const EfExperimentPlan& ep = plan.experiments[e];
    absl::StrAppend(&out, "== ", ep.name, ": ", ep.description, "\n");
    const bool star = ep.problem.x_star.size() == ep.problem.dim;
    int gw = 10;  // gamma column: wider when it also shows "(factor x mean)"
    for (const EfRunSpec& s : ep.runs)
      if (s.gamma_factor > 0) gw = 20;
    std::string head = absl::StrFormat("%-26s %-*s", "method", gw, "gamma");
    if (star) absl::StrAppend(&head, absl::StrFormat(" %-11s %-11s", "dist2_tail", "|x_T-x*|"));
    for (int64_t r : ep.report_rounds)
      absl::StrAppend(&head, absl::StrFormat(" %-11s", absl::StrCat("grad2@", r)));
    absl::StrAppend(&head, absl::StrFormat(" %-11s %-8s %s", "grad2_T", "time_s", "status"));
    absl::StrAppend(&out, head, "\n");
    for (const EfRow& row : report.rows) {
      if (row.experiment != e) continue;
      const EfRunSpec& s = ep.runs[row.run];
      const EfRunResult& r = row.result;
      std::string gamma = Sci(s.options.gamma);
      if (s.gamma_factor > 0)
        gamma = absl::StrCat(gamma, " (", Num(s.gamma_factor), "x ", s.step_mean, ")");
      std::string line = absl::StrFormat("%-26s %-*s", s.label, gw, gamma);
      if (star)
        absl::StrAppend(&line, absl::StrFormat(" %-11s %-11s", Sci(r.dist2_tail), Sci(r.final_dist)));
      for (double g : r.grad2) absl::StrAppend(&line, absl::StrFormat(" %-11s", Sci(g)));
      absl::StrAppend(&line, absl::StrFormat(" %-11s %-8.2f %s", Sci(r.final_grad2), r.wall_s,
                                             RunStatus(r)));
      absl::StrAppend(&out, line, "\n");
    }
    absl::StrAppend(&out, "\n");
  }
  absl::StrAppend(&out, absl::StrFormat("%d runs in %.1f s\n", report.rows.size(), report.wall_s));
  return out;
}

std::string EfTableCsv(const EfValidationPlan& plan, const EfValidationReport& report) {
  std::set<int64_t> all_rounds;
  for (const EfExperimentPlan& ep : plan.experiments)
    all_rounds.insert(ep.report_rounds.begin(), ep.report_rounds.end());
  std::string out =
      "experiment,problem,method,label,gamma,gamma_factor,step_mean,eta,rounds,rounds_run,"
      "dist2_tail,final_dist,grad2_final";
  for (int64_t r : all_rounds) absl::StrAppend(&out, ",grad2_r", r);
  absl::StrAppend(&out, ",diverged,compressed_bits,dense_bits,wall_s\n");
  for (const EfRow& row : report.rows) {
    const EfExperimentPlan& ep = plan.experiments[row.experiment];
    const EfRunSpec& s = ep.runs[row.run];
    const EfRunResult& r = row.result;
    absl::StrAppend(&out, CsvField(ep.name), ",", CsvField(ep.problem.name), ",",
                    EfMethodName(s.options.method), ",", CsvField(s.label), ",",
                    absl::StrFormat("%.6g", s.options.gamma), ",", CsvNum(s.gamma_factor > 0 ? s.gamma_factor : kNaN),
                    ",", s.step_mean, ",", CsvNum(s.options.eta), ",", s.options.rounds, ",",
                    r.rounds_run, ",", CsvNum(r.dist2_tail), ",", CsvNum(r.final_dist), ",",
                    CsvNum(r.final_grad2));
    for (int64_t t : all_rounds) {
      double v = kNaN;
      for (size_t k = 0; k < ep.report_rounds.size(); ++k)
        if (ep.report_rounds[k] == t) v = r.grad2[k];
      absl::StrAppend(&out, ",", CsvNum(v));
    }
    absl::StrAppend(&out, ",", r.diverged ? r.diverged_at : -1, ",", r.compressed_bits, ",",
                    r.dense_bits, ",", absl::StrFormat("%.3f", r.wall_s), "\n");
  }
  return out;
}

std::string EfResultsJson(const EfValidationPlan& plan, const EfValidationReport& report) {
  std::string out = absl::StrCat("{\n  \"name\": ", JsonStr(plan.name),
                                 ",\n  \"wall_s\": ", JsonNum(report.wall_s),
                                 ",\n  \"experiments\": [");
  for (size_t e = 0; e < plan.experiments.size(); ++e) {
    const EfExperimentPlan& ep = plan.experiments[e];
    const EfProblem& p = ep.problem;
    absl::StrAppend(&out, e ? "," : "", "\n    {\"name\": ", JsonStr(ep.name),
                    ", \"description\": ", JsonStr(ep.description),
                    ",\n     \"problem\": ", JsonStr(p.name), ", \"num_workers\": ", p.num_workers,
                    ", \"dim\": ", p.dim, ", \"L\": ", JsonNum(p.l), ", \"L_AM\": ",
                    JsonNum(p.l_am()), ", \"L_QM\": ", JsonNum(p.l_qm()), ", \"delta\": ",
                    JsonNum(ep.delta), ", \"gamma_theory_qm\": ", JsonNum(ep.gamma_theory_qm),
                    ", \"gamma_theory_am\": ", JsonNum(ep.gamma_theory_am),
                    ",\n     \"report_rounds\": [", absl::StrJoin(ep.report_rounds, ", "),
                    "],\n     \"runs\": [");
    bool first = true;
    for (const EfRow& row : report.rows) {
      if (row.experiment != e) continue;
      const EfRunSpec& s = ep.runs[row.run];
      const EfRunResult& r = row.result;
      std::vector<std::string> g2;
      for (double v : r.grad2) g2.push_back(JsonNum(v));
      absl::StrAppend(
          &out, first ? "" : ",", "\n       {\"label\": ", JsonStr(s.label),
          ", \"method\": ", JsonStr(EfMethodName(s.options.method)),
          ", \"gamma\": ", JsonNum(s.options.gamma),
          ", \"gamma_factor\": ", s.gamma_factor > 0 ? JsonNum(s.gamma_factor) : "null",
          ", \"step_mean\": ", s.gamma_factor > 0 ? JsonStr(s.step_mean) : "null",
          ", \"eta\": ", JsonNum(s.options.eta), ", \"rounds\": ", s.options.rounds,
          ", \"rounds_run\": ", r.rounds_run, ", \"dist2_tail\": ", JsonNum(r.dist2_tail),
          ", \"final_dist\": ", JsonNum(r.final_dist), ", \"grad2_final\": ",
          JsonNum(r.final_grad2), ", \"grad2\": [", absl::StrJoin(g2, ", "),
          "], \"diverged\": ", r.diverged ? "true" : "false",
          ", \"diverged_at\": ", r.diverged_at, ", \"compressed_bits\": ", r.compressed_bits,
          ", \"dense_bits\": ", r.dense_bits, ", \"wall_s\": ", JsonNum(r.wall_s), "}");
      first = false;
    }
    absl::StrAppend(&out, "]}");
  }
  absl::StrAppend(&out, "\n  ]\n}\n");
  return out;
}

}  // namespace fedtrain
