#include "client/remote_worker.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "comm/transport.h"
#include "core/log.h"
#include "core/status_macros.h"
#include "core/thread_pool.h"

namespace fedtrain {
namespace {

void Log(const std::string& msg) { FT_LOG(kInfo, "fedtrain worker: ", msg); }

// <state_dir>/SLOT: "slot num_slots" of the worker whose client states the folder holds;
// {-1, 0} when there is none yet.
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

}  // namespace

RemoteWorker::RemoteWorker(RemoteWorkerOptions o, RemoteWorkerSetup setup,
                           ConfigIdentity identity)
    : o_(std::move(o)), setup_(std::move(setup)), identity_(std::move(identity)) {}

RemoteWorker::~RemoteWorker() = default;

std::shared_ptr<GrpcWorkerClient> RemoteWorker::current() const {
  absl::MutexLock lock(&mu_);
  return client_;
}

void RemoteWorker::Stop(const std::string& why) {
  stop_ = true;
  if (std::shared_ptr<GrpcWorkerClient> c = current()) {
    (void)c->Leave(why);
    c->Cancel();  // ends the task stream even when the server does not answer
  }
}

// Joins (or rejoins) until the timeout: a slot still held by our previous, dying connection
// (ALREADY_EXISTS) is retried with backoff, like an unreachable server.
absl::StatusOr<std::unique_ptr<GrpcWorkerClient>> RemoteWorker::JoinWithBackoff(
    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    absl::StatusOr<std::unique_ptr<GrpcWorkerClient>> c =
        GrpcWorkerClient::Join(o_.grpc, deadline, &stop_);
    if (c.ok() || c.status().code() != absl::StatusCode::kAlreadyExists ||
        absl::Now() + backoff >= deadline || stop_)
      return c;
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

absl::Status RemoteWorker::Run() {
  if (!o_.state_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o_.state_dir, ec);
    if (ec) return absl::InvalidArgumentError(absl::StrCat("--state-dir ", o_.state_dir, ": ",
                                                           ec.message()));
    FT_ASSIGN_OR_RETURN(auto recorded, ReadSlotFile(o_.state_dir));
    if (recorded.first >= 0 && o_.grpc.slot >= 0 && recorded.first != o_.grpc.slot)
      return absl::InvalidArgumentError(absl::StrCat(
          "--slot ", o_.grpc.slot, " but --state-dir ", o_.state_dir,
          " holds the client states of slot ", recorded.first));
    if (o_.grpc.slot < 0) o_.grpc.slot = recorded.first;
  }
  Log(absl::StrCat("connecting to ", o_.grpc.server));
  absl::StatusOr<std::unique_ptr<GrpcWorkerClient>> joined = JoinWithBackoff(o_.connect_timeout);
  if (!joined.ok() && stop_) return absl::OkStatus();  // Stop() during the join
  if (!joined.ok()) {
    if (joined.status().code() == absl::StatusCode::kUnauthenticated)
      return absl::UnauthenticatedError(absl::StrCat(
          "the server refused the token (UNAUTHENTICATED): ", joined.status().message()));
    return joined.status();
  }
  {
    absl::MutexLock lock(&mu_);
    client_ = std::move(joined).value();
  }
  std::shared_ptr<GrpcWorkerClient> first = current();
  const v1::JoinReply reply = first->joined();
  o_.grpc.slot = reply.slot();
  Log(absl::StrCat("joined ", o_.grpc.server, " as worker ", reply.worker_id(), " in slot ",
                   reply.slot(), " of ", reply.num_slots()));
  // Leaves the run (with `st`'s message when it is an error) unless Stop() already did.
  auto finish = [&](absl::Status st) {
    if (!stop_) (void)current()->Leave(st.ok() ? "run over" : std::string(st.message()));
    return st;
  };
  if (stop_) return finish(absl::OkStatus());  // Stop() came during the join
  if (!o_.state_dir.empty())
    if (absl::Status s = WriteSlotFile(o_.state_dir, reply.slot(), reply.num_slots()); !s.ok())
      return finish(s);
  absl::StatusOr<RemoteWorkerSet> set = setup_(reply.config());
  if (!set.ok()) return finish(set.status());
  if (set->workers.size() != static_cast<size_t>(o_.threads))
    return finish(absl::InternalError(absl::StrCat("the setup made ", set->workers.size(),
                                                   " Workers for ", o_.threads, " threads")));
  // A resumed server may change threads, output and checkpoint settings, nothing else.
  return finish(RunTasks(*set, identity_(reply.config())));
}

absl::Status RemoteWorker::RunTasks(const RemoteWorkerSet& set, const std::string& identity) {
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
    ThreadPool pool(o_.threads);
    while (true) {
      st = current()->ReceiveTasks([&](v1::TaskMsg task) {
        pool.Schedule([&, t = Task::From(std::move(task))](int tid) {
          const v1::UpdateMsg reply = ReplyOrError(t, set.workers[tid]->Handle(t));
          if (absl::Status s = current()->Push(reply); !s.ok()) {
            ++push_errors;
            Log(std::string(s.message()));
          }
        });
      });
      if (stop_) {
        st = absl::OkStatus();  // Stop(): the stream was cancelled on purpose
        break;
      }
      if (st.ok() || st.code() == absl::StatusCode::kDataLoss) break;
      // The server went away (restart, network): rejoin the same slot.
      Log(absl::StrCat("lost the server (", st.message(), "); rejoining slot ", o_.grpc.slot,
                       " for up to ", absl::ToInt64Seconds(o_.reconnect_timeout), " s"));
      absl::StatusOr<std::unique_ptr<GrpcWorkerClient>> again =
          JoinWithBackoff(o_.reconnect_timeout);
      if (!again.ok() && stop_) {
        st = absl::OkStatus();  // Stop() during the rejoin
        break;
      }
      if (!again.ok()) {
        st = absl::UnavailableError(absl::StrCat("could not rejoin the server within ",
                                                 absl::ToInt64Seconds(o_.reconnect_timeout),
                                                 " s: ", again.status().message()));
        break;
      }
      if (identity_((*again)->joined().config()) != identity) {
        st = absl::FailedPreconditionError(
            "the server now runs another experiment config; this worker's data and client "
            "states belong to the old one");
        std::shared_ptr<GrpcWorkerClient> other = std::move(again).value();
        (void)other->Leave(std::string(st.message()));
        break;
      }
      {
        absl::MutexLock lock(&mu_);
        client_ = std::move(again).value();
      }
      if (stop_) current()->Cancel();  // Stop() came during the rejoin
      Log(absl::StrCat("rejoined as worker ", current()->joined().worker_id(), " in slot ",
                       current()->joined().slot()));
    }
  }  // the pool drains here
  done.Notify();
  heart.join();
  if (push_errors > 0) Log(absl::StrCat(push_errors.load(), " updates were not delivered"));
  return st;
}

}  // namespace fedtrain
