#include "runtime/federation.h"

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/file_client_state_store.h"
#include "compression/error_feedback.h"
#include "core/clock.h"
#include "core/rng.h"
#include "core/status_macros.h"
#include "server/checkpoint.h"
#include "server/server_loop.h"
#include "aggregators/tracker_server.h"
#include "runtime/privacy_setup.h"
#include "runtime/uplink_setup.h"

namespace fedtrain {

absl::StatusOr<RunResult> RunFederation(const v1::ExperimentConfig& cfg,
                                        const AlgorithmRegistry& registry,
                                        const ExperimentData& data, MetricsSink* sink,
                                        const std::function<void(const RoundSummary&)>& on_round,
                                        const Trainer* model, const TransportFactory& transport_factory,
                                        const ServerRunOptions& server_opts) {
  if (!transport_factory) return absl::InvalidArgumentError("RunFederation needs a transport");
  if (data.num_clients() != static_cast<uint64_t>(cfg.federation().num_clients()))
    return absl::InvalidArgumentError(absl::StrCat(
        "partition has ", data.num_clients(), " clients; federation.num_clients is ",
        cfg.federation().num_clients()));
  std::unique_ptr<Trainer> proto_trainer;
  if (model != nullptr) {
    proto_trainer = model->Clone();
  } else {
    FT_ASSIGN_OR_RETURN(proto_trainer, MakeConfigModel(cfg, data));
  }

  FT_ASSIGN_OR_RETURN(const AlgorithmFactory* factory, registry.Find(cfg.algorithm().name()));
  FT_ASSIGN_OR_RETURN(std::unique_ptr<ServerAlgorithm> server, factory->MakeServer(cfg.algorithm()));
  FT_ASSIGN_OR_RETURN(std::unique_ptr<UplinkCodec> uplink,
                      MakeUplinkCodec(cfg, proto_trainer->dim()));
  FT_RETURN_IF_ERROR(CheckPrivacyFitsAlgorithm(cfg, server->num_up_parts()));
  FT_ASSIGN_OR_RETURN(const std::optional<PrivacyPlan> privacy,
                      MakePrivacyPlan(cfg, proto_trainer->dim()));
  server = WithFeedbackTracker(std::move(server), uplink->options().feedback,
                               static_cast<uint64_t>(cfg.federation().num_clients()));

  std::vector<float> x0(proto_trainer->dim());
  RngStream init_rng = RngStream::For(cfg.seed(), 0, 0, Purpose::kModelInit);
  proto_trainer->InitParams(init_rng, absl::MakeSpan(x0));

  const auto& l = cfg.local();
  FT_ASSIGN_OR_RETURN(std::unique_ptr<ClientStateStore> store,
                      MakeClientStateStore(cfg, proto_trainer->dim(), registry));
  const int threads = static_cast<int>(cfg.threads());
  ThreadPool pool(threads);
  const TransportContext ctx{cfg, registry, data, *proto_trainer, &pool, store.get()};
  FT_ASSIGN_OR_RETURN(std::shared_ptr<ServerTransport> hub,
                      transport_factory(ctx));

  std::unique_ptr<Trainer> eval_trainer = proto_trainer->Clone();
  Evaluator evaluator = [&](ConstVec w) {
    return eval_trainer->Evaluate(w, DataView::All(data.test));
  };
  CoordinatorOptions copts;
  copts.num_clients = cfg.federation().num_clients();
  copts.clients_per_round = cfg.federation().clients_per_round();
  copts.rounds = cfg.rounds();
  copts.seed = cfg.seed();
  copts.sampling_seed = cfg.sampling_seed();
  copts.lr = l.lr();
  copts.lr_decay = l.lr_decay();
  copts.eval_every = cfg.eval_every();
  copts.round_timeout = absl::Seconds(cfg.federation().round_timeout_s());
  copts.over_selection = cfg.federation().over_selection();
  copts.min_updates = cfg.federation().min_updates();
  copts.require_all = cfg.federation().require_all();
  copts.max_rejected_rounds = cfg.federation().max_rejected_rounds();
  copts.track_accepted = server_opts.track_accepted;
  copts.client_samples = ClientSamplesOf(data);
  copts.reducer_diagnostics = cfg.algorithm().reducer().name() != "mean";
  copts.attack = AttackFromConfig(cfg);
  if (privacy) {
    copts.privacy = privacy->accountant;
    copts.privacy_budget = privacy->budget_epsilon;
    if (privacy->mechanism == "gaussian" && cfg.privacy().placement() == "central")
      copts.central_noise_sigma = privacy->sigma;
  }
  ServerLoopOptions lo;
  lo.coordinator = copts;
  lo.checkpoint_path = server_opts.checkpoint_path;
  lo.checkpoint_every = cfg.checkpoint().every();
  lo.identity = CheckpointIdentity{cfg.algorithm().name(), ConfigFingerprint(cfg)};
  lo.resume = server_opts.resume;
  lo.interrupt = server_opts.interrupt;
  RealClock clock;
  ServerLoopParts parts;
  parts.algorithm = server.get();
  parts.transport = hub.get();
  parts.uplink = uplink.get();
  parts.evaluator = evaluator;
  parts.sink = sink;
  parts.clock = &clock;
  parts.pool = &pool;
  absl::StatusOr<ServerLoopResult> looped = RunServerLoop(lo, parts, x0, on_round);
  if (absl::IsCancelled(looped.status()) && !lo.checkpoint_path.empty()) {
    // Interrupted: the checkpoint holds the server's state only. When clients' states exist
    // in this process alone, a resume from it could not repeat the run: remove it.
    const auto* memory = dynamic_cast<const MemoryClientStateStore*>(store.get());
    const auto* file = dynamic_cast<const FileClientStateStore*>(store.get());
    const bool client_state = (memory != nullptr && memory->size() > 0) ||
                              (file != nullptr && file->stats().bytes_written > 0);
    if (client_state) {
      std::error_code ec;
      std::filesystem::remove(lo.checkpoint_path, ec);
      return absl::CancelledError(absl::StrCat(
          looped.status().message(), "; but the clients' own states (control variates, error "
          "feedback, ...) lived in this process only, so the checkpoint was removed: this run "
          "cannot be resumed"));
    }
  }
  FT_ASSIGN_OR_RETURN(ServerLoopResult loop, std::move(looped));
  RunResult result;
  result.model = std::move(loop.model);
  result.final_test = loop.final_test;
  result.rounds = loop.rounds;
  result.wall_s = loop.wall_s;
  result.cum_bytes_up = loop.cum_bytes_up;
  result.cum_bytes_down = loop.cum_bytes_down;
  result.stop_reason = loop.stop_reason;
  result.privacy = loop.privacy;
  if (privacy) {
    result.privacy_guarantee = privacy->guarantee;
    if (privacy->mechanism == "rqm") result.privacy_range_extension = privacy->rqm.delta;
    if (privacy->mechanism == "gaussian") result.privacy_noise_multiplier = privacy->noise_multiplier;
  }
  if (const auto* file = dynamic_cast<const FileClientStateStore*>(store.get())) {
    result.state_bytes_read = file->stats().bytes_read;
    result.state_bytes_written = file->stats().bytes_written;
  }
  result.layout = proto_trainer->layout();
  result.model_description = proto_trainer->description();
  return result;
}

}  // namespace fedtrain
