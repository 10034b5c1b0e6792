#include "cli/worker_cmd.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>
#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "aggregators/registry.h"
#include "cli/plugins.h"
#include "client/file_client_state_store.h"
#include "comm/grpc_client.h"
#include "comm/grpc_server.h"  // ReadPemFile
#include "core/thread_pool.h"
#include "grpc/grpc.h"
#include "sim/simulate.h"

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
  --help               this help
)";

namespace {

int Fail(const std::string& msg) {
  std::fprintf(stderr, "fedtrain worker: %s\n", msg.c_str());
  return 1;
}

int Usage(const std::string& msg) {
  std::fprintf(stderr, "fedtrain: %s\n\n%s", msg.c_str(), kWorkerHelp);
  return 2;
}

std::string DefaultName() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat(host, ":", getpid());
}

// <state-dir>/SLOT: "slot num_slots" of the worker whose client states the folder holds.
absl::StatusOr<std::pair<int64_t, int64_t>> ReadSlotFile(const std::string& dir) {
  std::ifstream in(dir + "/SLOT");
  if (!in) return std::make_pair(int64_t{-1}, int64_t{0});
  int64_t slot = -1, n = 0;
  if (!(in >> slot >> n) || slot < 0 || n < 1 || slot >= n)
    return absl::DataLossError(absl::StrCat(dir, "/SLOT is damaged"));
  return std::make_pair(slot, n);
}

absl::Status WriteSlotFile(const std::string& dir, uint32_t slot, uint32_t n) {
  const std::string tmp = dir + "/SLOT.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << slot << " " << n << "\n";
    out.close();
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), (dir + "/SLOT").c_str()) != 0)
    return absl::InternalError(absl::StrCat("cannot write ", dir, "/SLOT"));
  return absl::OkStatus();
}

// Joins (or rejoins) until `deadline`: a slot still held by our previous, dying connection
// (ALREADY_EXISTS) is retried with backoff, like an unreachable server.
absl::StatusOr<std::unique_ptr<GrpcWorkerClient>> JoinWithBackoff(const GrpcWorkerOptions& o,
                                                                  absl::Time deadline,
                                                                  const std::atomic<bool>& stop) {
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    absl::StatusOr<std::unique_ptr<GrpcWorkerClient>> c = GrpcWorkerClient::Join(o, deadline);
    if (c.ok() || c.status().code() != absl::StatusCode::kAlreadyExists ||
        absl::Now() + backoff >= deadline || stop)
      return c;
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

}  // namespace

int WorkerCommand(const std::vector<std::string>& args) {
  GrpcWorkerOptions o;
  if (const char* env = std::getenv("FEDTRAIN_TOKEN")) o.token = env;
  if (const char* env = std::getenv("FEDTRAIN_SERVER")) o.server = env;
  int threads = 1;
  int64_t connect_timeout_s = 60, reconnect_timeout_s = 300, slot = -1;
  std::string tls_ca, tls_cert, tls_key, state_dir;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string v;
    auto value = [&]() {
      if (i + 1 >= args.size()) return false;
      v = args[++i];
      return true;
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kWorkerHelp, stdout);
      return 0;
    } else if (a == "--server") {
      if (!value()) return Usage("--server needs HOST:PORT");
      o.server = v;
    } else if (a == "--token") {
      if (!value()) return Usage("--token needs a value");
      o.token = v;
    } else if (a == "--threads") {
      if (!value() || !absl::SimpleAtoi(v, &threads) || threads < 1)
        return Usage("--threads needs a positive number");
    } else if (a == "--name") {
      if (!value()) return Usage("--name needs a value");
      o.name = v;
    } else if (a == "--slot") {
      if (!value() || !absl::SimpleAtoi(v, &slot) || slot < 0)
        return Usage("--slot needs a number >= 0");
    } else if (a == "--state-dir") {
      if (!value() || v.empty()) return Usage("--state-dir needs a folder");
      state_dir = v;
    } else if (a == "--connect-timeout") {
      if (!value() || !absl::SimpleAtoi(v, &connect_timeout_s) || connect_timeout_s < 1)
        return Usage("--connect-timeout needs a positive number of seconds");
    } else if (a == "--reconnect-timeout") {
      if (!value() || !absl::SimpleAtoi(v, &reconnect_timeout_s) || reconnect_timeout_s < 0)
        return Usage("--reconnect-timeout needs a number of seconds >= 0");
    } else if (a == "--tls-ca") {
      if (!value() || v.empty()) return Usage("--tls-ca needs a PEM CA certificate file");
      tls_ca = v;
    } else if (a == "--tls-cert") {
      if (!value() || v.empty()) return Usage("--tls-cert needs a PEM certificate file");
      tls_cert = v;
    } else if (a == "--tls-key") {
      if (!value() || v.empty()) return Usage("--tls-key needs a PEM private key file");
      tls_key = v;
    } else if (a == "--tls-server-name") {
      if (!value() || v.empty()) return Usage("--tls-server-name needs a name");
      o.tls_server_name = v;
    } else {
      return Usage(absl::StrCat("unknown option '", a, "'"));
    }
  }
  if (o.server.empty()) return Usage("worker needs --server HOST:PORT (or FEDTRAIN_SERVER)");
  if (o.token.empty()) return Usage("worker needs --token T (or FEDTRAIN_TOKEN)");
  if (!tls_cert.empty() && tls_key.empty()) return Usage("--tls-cert needs --tls-key FILE");
  if (!tls_key.empty() && tls_cert.empty()) return Usage("--tls-key needs --tls-cert FILE");
  if (tls_ca.empty() && !tls_cert.empty())
    return Usage("--tls-cert (mutual TLS) needs --tls-ca FILE");
  if (tls_ca.empty() && !o.tls_server_name.empty())
    return Usage("--tls-server-name needs --tls-ca FILE");
  if (o.name.empty()) o.name = DefaultName();
  for (auto [option, path, pem] : {std::make_tuple("--tls-ca", &tls_ca, &o.tls_ca_pem),
                                   std::make_tuple("--tls-cert", &tls_cert, &o.tls_cert_pem),
                                   std::make_tuple("--tls-key", &tls_key, &o.tls_key_pem)}) {
    if (path->empty()) continue;
    absl::StatusOr<std::string> text = ReadPemFile(option, *path);
    if (!text.ok()) return Fail(std::string(text.status().message()));
    *pem = *std::move(text);
  }
  if (!state_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(state_dir, ec);
    if (ec) return Fail(absl::StrCat("--state-dir ", state_dir, ": ", ec.message()));
    absl::StatusOr<std::pair<int64_t, int64_t>> recorded = ReadSlotFile(state_dir);
    if (!recorded.ok()) return Fail(std::string(recorded.status().message()));
    if (recorded->first >= 0 && slot >= 0 && recorded->first != slot)
      return Fail(absl::StrCat("--slot ", slot, " but --state-dir ", state_dir,
                               " holds the client states of slot ", recorded->first));
    if (slot < 0) slot = recorded->first;
  }
  o.slot = slot;

  // SIGTERM / SIGINT: leave the run and exit 0. Blocked here, before any thread starts, and
  // taken by one thread with sigwait.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  grpc_init();  // docs/maintainers.md §9: avoids the shutdown stall together with _Exit in main
  std::atomic<bool> stop{false};
  absl::StatusOr<std::unique_ptr<GrpcWorkerClient>> joined =
      JoinWithBackoff(o, absl::Now() + absl::Seconds(connect_timeout_s), stop);
  if (!joined.ok()) {
    if (joined.status().code() == absl::StatusCode::kUnauthenticated)
      return Fail(absl::StrCat("the server refused the token (UNAUTHENTICATED): ",
                               joined.status().message()));
    return Fail(std::string(joined.status().message()));
  }
  absl::Mutex client_mu;
  std::shared_ptr<GrpcWorkerClient> client = std::move(joined).value();
  auto current = [&]() {
    absl::MutexLock lock(&client_mu);
    return client;
  };
  const v1::ExperimentConfig cfg = client->joined().config();
  // A resumed server may change threads, output and checkpoint settings, nothing else.
  const std::string cfg_fingerprint = ConfigFingerprint(cfg);
  o.slot = client->joined().slot();
  std::fprintf(stderr, "fedtrain worker: joined %s as worker %llu in slot %u of %u\n",
               o.server.c_str(), static_cast<unsigned long long>(client->joined().worker_id()),
               client->joined().slot(), client->joined().num_slots());

  auto setup_failed = [&](const std::string& msg) {
    (void)current()->Leave(msg);
    return Fail(msg);
  };
  if (!state_dir.empty())
    if (absl::Status s = WriteSlotFile(state_dir, client->joined().slot(),
                                       client->joined().num_slots());
        !s.ok())
      return setup_failed(std::string(s.message()));
  AlgorithmRegistry registry;
  RegisterBuiltinAlgorithms(&registry);
  for (const std::string& plugin : cfg.plugins())
    if (absl::Status st = LoadPlugin(plugin, &registry); !st.ok())
      return setup_failed(std::string(st.message()));
  // Without --state-dir, a "file" state store keeps this worker's clients in a private scratch
  // folder, removed at exit.
  std::string scratch;
  v1::ExperimentConfig local_cfg = cfg;
  if (state_dir.empty() && cfg.federation().state_store() == "file") {
    std::string tmpl = (std::filesystem::temp_directory_path() / "fedtrain-worker-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) return setup_failed("cannot create a state folder");
    scratch = tmpl;
    local_cfg.mutable_federation()->set_state_dir(scratch);
  }
  auto cleanup = [&]() {
    std::error_code ec;
    if (!scratch.empty()) std::filesystem::remove_all(scratch, ec);
  };
  std::thread signals([&]() {
    int sig = 0;
    if (sigwait(&sigs, &sig) != 0) return;
    stop = true;
    std::fprintf(stderr, "fedtrain worker: signal %d: leaving the run\n", sig);
    (void)current()->Leave(absl::StrCat("signal ", sig));
    cleanup();
    std::fflush(stderr);
    std::_Exit(0);  // client states are saved atomically (client/file_client_state_store.h)
  });
  signals.detach();

  auto run = [&]() -> absl::Status {
    absl::StatusOr<ExperimentData> data = LoadExperimentData(local_cfg);
    if (!data.ok()) return data.status();
    absl::StatusOr<std::unique_ptr<Trainer>> model = MakeConfigModel(local_cfg, *data);
    if (!model.ok()) return model.status();
    std::unique_ptr<ClientStateStore> store;
    if (!state_dir.empty()) {
      absl::StatusOr<const AlgorithmFactory*> factory = registry.Find(cfg.algorithm().name());
      if (!factory.ok()) return factory.status();
      FileStateStoreOptions so;
      so.dir = state_dir;
      so.dim = (*model)->dim();
      so.algorithm = (*factory)->name();
      so.state_version = (*factory)->state_version();
      so.sync = true;  // a saved state survives a crash of the host too
      absl::StatusOr<std::unique_ptr<FileClientStateStore>> fs = FileClientStateStore::Open(so);
      if (!fs.ok())
        return absl::Status(fs.status().code(), absl::StrCat("--state-dir: ", fs.status().message()));
      store = std::move(fs).value();
    } else {
      absl::StatusOr<std::unique_ptr<ClientStateStore>> made =
          MakeClientStateStore(local_cfg, (*model)->dim(), registry);
      if (!made.ok()) return made.status();
      store = std::move(made).value();
    }
    absl::StatusOr<std::unique_ptr<WorkerFactory>> factory =
        WorkerFactory::Create(local_cfg, registry, *data, **model, store.get());
    if (!factory.ok()) return factory.status();
    // The server says with each task which of the client's updates it accepted; the Worker
    // keeps the matching state version (client/worker.h).
    (*factory)->SetVersionedState(true);
    std::vector<std::unique_ptr<Worker>> workers;
    for (int t = 0; t < threads; ++t) workers.push_back((*factory)->NewWorker());

    absl::Notification done;
    std::thread heart([&]() {
      while (true) {
        std::shared_ptr<GrpcWorkerClient> c = current();
        const absl::Duration beat =
            absl::Milliseconds(std::max<uint32_t>(100, c->joined().heartbeat_interval_ms()));
        if (done.WaitForNotificationWithTimeout(beat)) return;
        (void)c->Heartbeat();
      }
    });
    std::atomic<int> push_errors{0};
    absl::Status st;
    {
      ThreadPool pool(threads);
      while (true) {
        st = current()->ReceiveTasks([&](v1::TaskMsg task) {
          auto t = std::make_shared<v1::TaskMsg>(std::move(task));
          pool.Schedule([&, t](int tid) {
            const v1::UpdateMsg reply = ReplyOrError(*t, workers[tid]->Handle(*t));
            if (absl::Status s = current()->Push(reply); !s.ok()) {
              ++push_errors;
              std::fprintf(stderr, "fedtrain worker: %s\n", std::string(s.message()).c_str());
            }
          });
        });
        if (st.ok() || stop || st.code() == absl::StatusCode::kDataLoss) break;
        // The server went away (restart, network): rejoin the same slot.
        std::fprintf(stderr, "fedtrain worker: lost the server (%s); rejoining slot %lld for up "
                     "to %lld s\n", std::string(st.message()).c_str(),
                     static_cast<long long>(o.slot), static_cast<long long>(reconnect_timeout_s));
        absl::StatusOr<std::unique_ptr<GrpcWorkerClient>> again =
            JoinWithBackoff(o, absl::Now() + absl::Seconds(reconnect_timeout_s), stop);
        if (!again.ok()) {
          st = absl::UnavailableError(absl::StrCat("could not rejoin the server within ",
                                                   reconnect_timeout_s, " s: ",
                                                   again.status().message()));
          break;
        }
        if (ConfigFingerprint((*again)->joined().config()) != cfg_fingerprint) {
          st = absl::FailedPreconditionError(
              "the server now runs another experiment config; this worker's data and client "
              "states belong to the old one");
          std::shared_ptr<GrpcWorkerClient> other = std::move(again).value();
          (void)other->Leave(std::string(st.message()));
          break;
        }
        {
          absl::MutexLock lock(&client_mu);
          client = std::move(again).value();
        }
        std::fprintf(stderr, "fedtrain worker: rejoined as worker %llu in slot %u\n",
                     static_cast<unsigned long long>(current()->joined().worker_id()),
                     current()->joined().slot());
      }
    }  // the pool drains here
    done.Notify();
    heart.join();
    if (push_errors > 0)
      std::fprintf(stderr, "fedtrain worker: %d updates were not delivered\n", push_errors.load());
    return st;
  };
  absl::Status st = run();
  cleanup();
  if (!st.ok()) return setup_failed(std::string(st.message()));
  (void)current()->Leave("run over");
  std::fprintf(stderr, "fedtrain worker: the run is over\n");
  return 0;
}

}  // namespace fedtrain
