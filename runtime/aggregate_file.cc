#include "runtime/aggregate_file.h"

#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"
#include "runtime/npy.h"

namespace fedtrain {

absl::StatusOr<std::string> AggregateNpyFile(const AggregateFileOptions& o,
                                             const ReducerRegistry& reducers) {
  FT_ASSIGN_OR_RETURN(std::unique_ptr<Reducer> rule, reducers.Make(o.reducer));
  FT_ASSIGN_OR_RETURN(NpyMatrix m, ReadNpyMatrix(o.in));
  std::vector<ConstVec> in;
  for (size_t i = 0; i < m.rows; ++i) in.emplace_back(m.data.data() + i * m.cols, m.cols);
  const std::vector<double> w(m.rows, 1.0 / static_cast<double>(m.rows));
  std::vector<float> out(m.cols);
  ReduceDiagnostics diag;
  ReduceContext ctx;
  ctx.round = o.round;
  ctx.diagnostics = &diag;
  const auto t0 = std::chrono::steady_clock::now();
  FT_RETURN_IF_ERROR(rule->Reduce(in, w, absl::MakeSpan(out), ctx));
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  FT_RETURN_IF_ERROR(WriteNpyVector(o.out, out));
  return absl::StrFormat(
      "{\"rule\":\"%s\",\"f\":%d,\"p\":%d,\"n\":%d,\"input_dtype\":\"%s\",\"input_lossless\":%s,"
      "\"discarded\":%d,\"wall_s\":%.6f,\"diagnostics\":%s}",
      rule->name(), o.reducer.f(), m.rows, m.cols, m.dtype, m.lossless ? "true" : "false",
      diag.discarded, wall, diag.detail.empty() ? "{}" : diag.detail);
}

}  // namespace fedtrain
