#include "cli/worker_cmd.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cli/flags.h"
#include "client/remote_worker.h"
#include "core/log.h"
#include "core/signal_watcher.h"
#include "grpc/grpc.h"
#include "proto/config_io.h"
#include "runtime/experiment.h"
#include "runtime/worker_setup.h"

namespace fedtrain {

const char kWorkerHelp[] = R"(usage: fedtrain worker --server HOST:PORT --token T [options]

Joins a `fedtrain server`, receives the experiment config, loads the data set and builds
the model locally (data paths and plug-ins must exist on this host), trains the clients the
server routes to it, and exits 0 when the server ends the run. A refused token exits 1.
When the server goes away (restart, network) the worker rejoins its slot with backoff for up
to --reconnect-timeout seconds; SIGTERM or SIGINT makes it leave the run and exit 0.

options:
  --server HOST:PORT   the server's address (or the environment variable FEDTRAIN_SERVER)
  --token T            the run's token (or the environment variable FEDTRAIN_TOKEN)
  --threads N          tasks trained in parallel (default 1; results do not depend on it)
  --name NAME          shown in the server's logs (default: host name and pid)
  --slot K             take worker slot K (0..N-1; clients i with i mod N == K); default: the
                       slot recorded in --state-dir, else any free one
  --state-dir DIR      keep the clients' states (control variates, error feedback) in DIR,
                       fsync()ed, so a restarted worker continues where it stopped (pass the
                       same DIR and slot); without it states live in memory
  --connect-timeout S  give up when the server cannot be reached for S seconds (default 60)
  --reconnect-timeout S  after losing the server, keep trying to rejoin for S seconds
                       (default 300)
  --tls-ca FILE        connect over TLS, verifying the server against this PEM CA certificate
  --tls-cert FILE      PEM client certificate, for servers that require one (mutual TLS);
                       needs --tls-key and --tls-ca
  --tls-key FILE       the PEM private key of --tls-cert
  --tls-server-name N  the name the server's certificate must hold (default: HOST of --server)
  --attack FIELD=VALUE  Byzantine mode, for robustness experiments on a real cluster
                       (repeatable): behave as a faulty worker for the clients it serves
                       that are in attack.clients, e.g. --attack name=alie
                       --attack clients=0,1,2 (fields as in the config's attack section;
                       attack.at is "worker"). Omniscient attacks recompute the honest
                       clients' updates of the round on this worker.
  --help               this help
)";

namespace {

std::string DefaultName() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat(host, ":", getpid());
}

}  // namespace

int WorkerCommand(const std::vector<std::string>& args) {
  RemoteWorkerOptions o;
  GrpcWorkerOptions& g = o.grpc;
  if (const char* env = std::getenv("FEDTRAIN_TOKEN")) g.token = env;
  if (const char* env = std::getenv("FEDTRAIN_SERVER")) g.server = env;
  int64_t connect_timeout_s = 60, reconnect_timeout_s = 300;
  std::string tls_ca, tls_cert, tls_key;
  std::vector<std::string> attack;
  Flags flags(kWorkerHelp);
  flags.String("--server", &g.server, "--server needs HOST:PORT")
      .String("--token", &g.token, "--token needs a value")
      .Int("--threads", &o.threads, 1, "--threads needs a positive number")
      .String("--name", &g.name, "--name needs a value")
      .Int("--slot", &g.slot, 0, "--slot needs a number >= 0")
      .String("--state-dir", &o.state_dir, "--state-dir needs a folder", /*non_empty=*/true)
      .Int("--connect-timeout", &connect_timeout_s, 1,
           "--connect-timeout needs a positive number of seconds")
      .Int("--reconnect-timeout", &reconnect_timeout_s, 0,
           "--reconnect-timeout needs a number of seconds >= 0")
      .String("--tls-ca", &tls_ca, "--tls-ca needs a PEM CA certificate file", true)
      .String("--tls-cert", &tls_cert, "--tls-cert needs a PEM certificate file", true)
      .String("--tls-key", &tls_key, "--tls-key needs a PEM private key file", true)
      .String("--tls-server-name", &g.tls_server_name, "--tls-server-name needs a name", true)
      .Append("--attack", &attack, "--attack needs FIELD=VALUE");
  if (int rc = flags.Parse(args); rc >= 0) return rc;
  if (g.server.empty()) return flags.Usage("worker needs --server HOST:PORT (or FEDTRAIN_SERVER)");
  if (g.token.empty()) return flags.Usage("worker needs --token T (or FEDTRAIN_TOKEN)");
  if (!tls_cert.empty() && tls_key.empty()) return flags.Usage("--tls-cert needs --tls-key FILE");
  if (!tls_key.empty() && tls_cert.empty()) return flags.Usage("--tls-key needs --tls-cert FILE");
  if (tls_ca.empty() && !tls_cert.empty())
    return flags.Usage("--tls-cert (mutual TLS) needs --tls-ca FILE");
  if (tls_ca.empty() && !g.tls_server_name.empty())
    return flags.Usage("--tls-server-name needs --tls-ca FILE");
  if (g.name.empty()) g.name = DefaultName();
  if (absl::Status s = ReadPemFiles({{"--tls-ca", &tls_ca, &g.tls_ca_pem},
                                     {"--tls-cert", &tls_cert, &g.tls_cert_pem},
                                     {"--tls-key", &tls_key, &g.tls_key_pem}});
      !s.ok())
    return Fail("worker", std::string(s.message()));
  o.connect_timeout = absl::Seconds(connect_timeout_s);
  o.reconnect_timeout = absl::Seconds(reconnect_timeout_s);

  // The assignments' syntax and field names are checked now, before joining; their values
  // against the run's config once the server sent it.
  for (const std::string& kv : attack) {
    v1::ExperimentConfig probe;
    if (absl::Status s = ApplyOverride(absl::StrCat("attack.", kv), &probe); !s.ok())
      return flags.Usage(absl::StrCat("--attack ", kv, ": ", s.message()));
  }
  WorkerSetupOptions setup;
  setup.attack = attack;
  setup.threads = o.threads;
  setup.state_dir = o.state_dir;
  RemoteWorker worker(
      o, [&](const v1::ExperimentConfig& cfg) { return SetUpRemoteWorkers(cfg, setup); },
      &ConfigFingerprint);
  absl::Status st;
  {
    // SIGTERM / SIGINT: leave the run and exit 0. The watcher blocks them before any other
    // thread starts (gRPC's included) and takes them on a thread of its own.
    SignalWatcher signals({SIGTERM, SIGINT}, [&](int sig) {
      FT_LOG(kInfo, "fedtrain worker: signal ", sig, ": leaving the run");
      worker.Stop(absl::StrCat("signal ", sig));
    });
    grpc_init();  // docs/maintainers.md §9: avoids the shutdown stall together with _Exit in main
    st = worker.Run();
  }
  if (!st.ok()) return Fail("worker", std::string(st.message()));
  FT_LOG(kInfo, "fedtrain worker: the run is over");
  return 0;
}

}  // namespace fedtrain
