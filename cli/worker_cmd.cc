#include "cli/worker_cmd.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <thread>
#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "aggregators/registry.h"
#include "cli/plugins.h"
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

options:
  --server HOST:PORT   the server's address (required)
  --token T            the run's token (or the environment variable FEDTRAIN_TOKEN)
  --threads N          tasks trained in parallel (default 1; results do not depend on it)
  --name NAME          shown in the server's logs (default: host name and pid)
  --connect-timeout S  give up when the server cannot be reached for S seconds (default 60)
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

}  // namespace

int WorkerCommand(const std::vector<std::string>& args) {
  GrpcWorkerOptions o;
  if (const char* env = std::getenv("FEDTRAIN_TOKEN")) o.token = env;
  int threads = 1;
  int64_t connect_timeout_s = 60;
  std::string tls_ca, tls_cert, tls_key;
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
    } else if (a == "--connect-timeout") {
      if (!value() || !absl::SimpleAtoi(v, &connect_timeout_s) || connect_timeout_s < 1)
        return Usage("--connect-timeout needs a positive number of seconds");
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
  if (o.server.empty()) return Usage("worker needs --server HOST:PORT");
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

  grpc_init();  // TOOLCHAIN.md: avoids the shutdown stall together with _Exit in main
  absl::StatusOr<std::unique_ptr<GrpcWorkerClient>> joined =
      GrpcWorkerClient::Join(o, absl::Now() + absl::Seconds(connect_timeout_s));
  if (!joined.ok()) {
    if (joined.status().code() == absl::StatusCode::kUnauthenticated)
      return Fail(absl::StrCat("the server refused the token (UNAUTHENTICATED): ",
                               joined.status().message()));
    return Fail(std::string(joined.status().message()));
  }
  GrpcWorkerClient& client = **joined;
  v1::ExperimentConfig cfg = client.joined().config();
  std::fprintf(stderr, "fedtrain worker: joined %s as worker %llu\n", o.server.c_str(),
               static_cast<unsigned long long>(client.joined().worker_id()));

  auto setup_failed = [&](const std::string& msg) {
    (void)client.Leave(msg);
    return Fail(msg);
  };
  AlgorithmRegistry registry;
  RegisterBuiltinAlgorithms(&registry);
  for (const std::string& plugin : cfg.plugins())
    if (absl::Status st = LoadPlugin(plugin, &registry); !st.ok())
      return setup_failed(std::string(st.message()));
  // A "file" state store keeps this worker's clients in a private scratch folder.
  std::string scratch;
  if (cfg.federation().state_store() == "file") {
    std::string tmpl = (std::filesystem::temp_directory_path() / "fedtrain-worker-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) return setup_failed("cannot create a state folder");
    scratch = tmpl;
    cfg.mutable_federation()->set_state_dir(scratch);
  }
  auto run = [&]() -> absl::Status {
    absl::StatusOr<ExperimentData> data = LoadExperimentData(cfg);
    if (!data.ok()) return data.status();
    absl::StatusOr<std::unique_ptr<Trainer>> model = MakeConfigModel(cfg, *data);
    if (!model.ok()) return model.status();
    absl::StatusOr<std::unique_ptr<ClientStateStore>> store =
        MakeClientStateStore(cfg, (*model)->dim(), registry);
    if (!store.ok()) return store.status();
    absl::StatusOr<std::unique_ptr<WorkerFactory>> factory =
        WorkerFactory::Create(cfg, registry, *data, **model, store->get());
    if (!factory.ok()) return factory.status();
    std::vector<std::unique_ptr<Worker>> workers;
    for (int t = 0; t < threads; ++t) workers.push_back((*factory)->NewWorker());

    absl::Notification stop;
    const absl::Duration beat =
        absl::Milliseconds(std::max<uint32_t>(100, client.joined().heartbeat_interval_ms()));
    std::thread heart([&]() {
      while (!stop.WaitForNotificationWithTimeout(beat)) {
        absl::StatusOr<bool> over = client.Heartbeat();
        if (over.ok() && *over) return;
      }
    });
    std::atomic<int> push_errors{0};
    absl::Status st;
    {
      ThreadPool pool(threads);
      st = client.ReceiveTasks([&](v1::TaskMsg task) {
        auto t = std::make_shared<v1::TaskMsg>(std::move(task));
        pool.Schedule([&, t](int tid) {
          absl::StatusOr<v1::UpdateMsg> r = workers[tid]->Handle(*t);
          v1::UpdateMsg reply;
          if (r.ok()) {
            reply = std::move(r).value();
          } else {
            reply.set_round(t->round());
            reply.set_client_id(t->client_id());
            reply.set_error(r.status().ToString());
          }
          if (absl::Status s = client.Push(reply); !s.ok()) {
            ++push_errors;
            std::fprintf(stderr, "fedtrain worker: %s\n", std::string(s.message()).c_str());
          }
        });
      });
    }  // the pool drains here
    stop.Notify();
    heart.join();
    if (push_errors > 0)
      std::fprintf(stderr, "fedtrain worker: %d updates were not delivered\n", push_errors.load());
    return st;
  };
  absl::Status st = run();
  std::error_code ec;
  if (!scratch.empty()) std::filesystem::remove_all(scratch, ec);
  if (!st.ok()) return setup_failed(std::string(st.message()));
  (void)client.Leave("run over");
  std::fprintf(stderr, "fedtrain worker: the run is over\n");
  return 0;
}

}  // namespace fedtrain
