// grpc_push_bench: one worker's Push of a large update to the server over the deployed gRPC
// transport (comm/grpc_client.h -> comm/grpc_server.h) against raw TCP measured in the same
// run, over loopback, with the worker in a process of its own as in a deployment.
//
//   grpc_push_bench [--reps=5] [--max_mb=1024]
//
// This process runs the server and starts the worker process: this program again, with
// --worker, which takes commands on its stdin and answers on its stdout. For each payload size
// (64 MiB, then --max_mb MiB; only --max_mb when it is below 64), best of --reps, the two
// alternating (so load from elsewhere on a shared machine falls on both):
//   raw TCP   the worker process send()s the bytes in large calls over a plain TCP connection
//             (made once, as gRPC's channel is); this process recv()s them into a buffer of
//             the same size;
//   gRPC push the worker process's GrpcWorkerClient::Push of an UpdateMsg whose payload is one
//             "identity/1" tensor of that many bytes of float32, until the server's
//             GrpcServerTransport::ReceiveUpdate here takes the update off its queue (so it
//             includes the worker's serialization of the envelope, the ~1 MiB chunk stream
//             with the tensor's bytes sent from where they lie, the server's size checks and
//             parse of the envelope; the tensor's bytes are then in the server's memory, in
//             gRPC's receive buffers, as raw TCP's are in its buffer);
//   + decode  the same push, until the Coordinator's next step, DecodePayload, has also copied
//             the tensor into a float vector (one the run reuses, as raw TCP's buffer is). Raw
//             TCP has no such step: this row is what a round costs, not a transport's speed.
// Both are timed here, from the command to the worker until the last byte is here, so both
// include the same wake-up of the worker. The program prints bytes/s of each, the ratio to raw
// TCP (of the bests; and, as a second view of the same reps, the median of the ratios of each
// back-to-back pair), and a checksum of the bytes received against the bytes the worker sent.
// The target (gRPC push >= 0.9 x raw TCP, on the ratio of the bests) is printed as PASS/FAIL
// but never fails the run, since it is a measurement on a shared, noisy machine. Exit status 1
// when any transfer fails or any received bytes differ from the sent ones, 2 on bad flags.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/bench_util.h"
#include "comm/grpc_client.h"
#include "comm/grpc_server.h"
#include "compression/payload_codec.h"
#include "compression/compressor.h"
#include "core/memory.h"
#include "fedtrain/v1/messages.pb.h"
#include "grpc/grpc.h"

namespace fedtrain {
namespace {

using bench::Clock;
using bench::Seconds;
using bench::Verdict;

constexpr double kTargetRatio = 0.9;
constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kSendCall = 64 * kMiB;  // bytes per send()/recv() call on the raw socket
constexpr char kToken[] = "grpc-push-bench-token";
constexpr uint64_t kClientId = 7;

struct Options {
  int reps = 5;  // as the header and the README say
  size_t max_mb = 1024;
};

bool ParseFlags(int argc, char** argv, Options* opt) {
  for (int i = 1; i < argc; ++i) {
    std::string arg, value;
    bench::SplitFlag(argc, argv, &i, &arg, &value);
    unsigned long long v = 0;
    if (!bench::PositiveInt("grpc_push_bench", arg, value, &v)) return false;
    if (arg == "--reps") {
      opt->reps = static_cast<int>(std::min<unsigned long long>(v, 1000000));
    } else if (arg == "--max_mb") {
      if (v > 1900) {  // protobuf messages stop at 2 GiB
        std::fprintf(stderr, "grpc_push_bench: --max_mb must be at most 1900, got %llu\n", v);
        return false;
      }
      opt->max_mb = static_cast<size_t>(v);
    } else {
      std::fprintf(stderr, "grpc_push_bench: unknown flag '%s' (known: --reps --max_mb)\n",
                   arg.c_str());
      return false;
    }
  }
  return true;
}

// FNV-1a over 64-bit words (and the tail bytes): order-sensitive, cheap next to the transfer.
uint64_t Checksum(const char* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, sizeof w);
    h = (h ^ w) * 0x100000001b3ull;
  }
  for (; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * 0x100000001b3ull;
  return h ^ n;
}

// Deterministic float32 values in [-1, 1) (splitmix64 finaliser of the index).
std::vector<float> MakeFloats(size_t count) {
  std::vector<float> v(count);
  for (size_t j = 0; j < count; ++j) {
    uint64_t z = j + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    v[j] = static_cast<float>(static_cast<double>(z >> 40) / (1ull << 23) - 1.0);
  }
  return v;
}

// A listening TCP socket on 127.0.0.1 and its port, or -1 after a message.
int Listen(int* port) {
  const int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (lfd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(lfd, 1) != 0 ||
      ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::fprintf(stderr, "grpc_push_bench: loopback listener: %s\n", std::strerror(errno));
    ::close(lfd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return lfd;
}

// The worker process: this program with --worker, driven over two pipes.
class WorkerProcess {
 public:
  ~WorkerProcess() { Stop(); }

  bool Start(const std::string& server) {
    int cmd[2], ans[2];
    if (::pipe(cmd) != 0 || ::pipe(ans) != 0) {
      std::fprintf(stderr, "grpc_push_bench: pipes to the worker process: %s\n",
                   std::strerror(errno));
      return false;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, cmd[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, ans[1], STDOUT_FILENO);
    for (int fd : {cmd[0], cmd[1], ans[0], ans[1]}) posix_spawn_file_actions_addclose(&fa, fd);
    std::string flag = "--server=" + server;
    char worker_flag[] = "--worker";
    char self[] = "/proc/self/exe";
    char* argv[] = {self, worker_flag, flag.data(), nullptr};
    const int rc = ::posix_spawn(&pid_, self, &fa, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(cmd[0]);
    ::close(ans[1]);
    to_ = ::fdopen(cmd[1], "w");
    from_ = ::fdopen(ans[0], "r");
    if (rc != 0) {
      std::fprintf(stderr, "grpc_push_bench: cannot start the worker process: %s\n",
                   std::strerror(rc));
      pid_ = -1;
      return false;
    }
    return to_ != nullptr && from_ != nullptr;
  }

  // Sends one command line (flushed at once: the timing starts before it).
  bool Send(const std::string& line) {
    if (std::fputs((line + "\n").c_str(), to_) >= 0 && std::fflush(to_) == 0) return true;
    std::fprintf(stderr, "grpc_push_bench: cannot send '%s' to the worker process: %s\n",
                 line.c_str(), std::strerror(errno));
    return false;
  }

  // The answer to the last command: its text after "ok" (empty when none), or false after a
  // message with the worker's error.
  bool Answer(const std::string& what, std::string* rest = nullptr) {
    char buf[1024];
    if (std::fgets(buf, sizeof buf, from_) == nullptr) {
      std::fprintf(stderr, "grpc_push_bench: the worker process ended during %s\n",
                   what.c_str());
      return false;
    }
    std::string line(buf);
    while (!line.empty() && line.back() == '\n') line.pop_back();
    if (line.rfind("ok", 0) != 0) {
      std::fprintf(stderr, "grpc_push_bench: worker process, %s: %s\n", what.c_str(),
                   line.c_str());
      return false;
    }
    if (rest != nullptr) *rest = line.size() > 3 ? line.substr(3) : "";
    return true;
  }

  // Closes its stdin (it leaves the server and exits) and waits for it.
  void Stop() {
    if (to_ != nullptr) std::fclose(to_);
    if (from_ != nullptr) std::fclose(from_);
    to_ = from_ = nullptr;
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  std::FILE* to_ = nullptr;
  std::FILE* from_ = nullptr;
};

// The raw TCP connection from the worker process, made once and kept for the run as gRPC's
// channel is (so neither pays a connection's setup or its slow start in the timing), or -1.
int ConnectRaw(WorkerProcess* worker) {
  int port = 0;
  const int lfd = Listen(&port);
  if (lfd < 0) return -1;
  int fd = -1;
  if (worker->Send("connect " + std::to_string(port))) fd = ::accept(lfd, nullptr, nullptr);
  ::close(lfd);
  if (!worker->Answer("raw TCP connect")) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  if (fd < 0) std::fprintf(stderr, "grpc_push_bench: accept: %s\n", std::strerror(errno));
  return fd;
}

// One raw TCP transfer of `n` bytes from the worker process over `fd` into `dst`, timed from
// the command until the last byte is here. Negative on error.
double RawTcpOnce(WorkerProcess* worker, int fd, char* dst, size_t n) {
  const auto t0 = Clock::now();
  if (!worker->Send("tcp")) return -1;
  size_t got = 0;
  bool recv_ok = true;
  while (recv_ok && got < n) {
    const ssize_t k = ::recv(fd, dst + got, std::min(kSendCall, n - got), 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) recv_ok = false;
    else got += static_cast<size_t>(k);
  }
  const double t = Seconds(t0, Clock::now());
  const bool sent = worker->Answer("raw TCP send");
  if (!recv_ok || !sent) {
    std::fprintf(stderr, "grpc_push_bench: raw TCP transfer failed after %zu of %zu bytes\n",
                 got, n);
    return -1;
  }
  return t;
}

struct Row {
  size_t bytes = 0;
  double t_tcp = 0, t_grpc = 0, t_decoded = 0;
  // gRPC push / raw TCP of each rep's pair (measured back to back): their median is less
  // sensitive than the ratio of the bests to one rep that load from elsewhere slowed.
  std::vector<double> pair_ratios;
  uint64_t sent_sum = 0, tcp_sum = 0, grpc_sum = 0;
  long faults = 0;  // fewest page faults during one gRPC push
  bool ok = true;
};

// Page faults of this process so far (minor and major): a push that faults pages in is paying
// the kernel to zero memory, not moving bytes.
long Faults() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt + u.ru_majflt;
}

// Best of `reps` transfers of `bytes` each way, raw TCP and gRPC alternating (so that load
// from elsewhere on a shared machine falls on both alike); every received payload is checked.
bool MeasureSize(const Options& opt, GrpcServerTransport* server, WorkerProcess* worker,
                 int raw_fd, size_t bytes, Row* row) {
  row->bytes = bytes;
  // The worker builds the update (identity codec: the float32 bytes as they are) before the
  // timing, and says the checksum of what it will send.
  std::string sum_hex;
  if (!worker->Send("prepare " + std::to_string(bytes)) ||
      !worker->Answer("prepare " + std::to_string(bytes), &sum_hex))
    return false;
  row->sent_sum = std::strtoull(sum_hex.c_str(), nullptr, 16);
  std::unique_ptr<char[]> dst(new char[bytes]);
  std::memset(dst.get(), 0, bytes);  // fault the pages in before timing

  const IdentityCompressor codec(bytes / sizeof(float));
  Payload floats;
  floats.parts.assign(1, std::vector<float>(bytes / sizeof(float), 0.0f));  // faulted in
  row->t_tcp = row->t_grpc = row->t_decoded = std::numeric_limits<double>::infinity();
  row->faults = std::numeric_limits<long>::max();
  for (int r = 0; r < opt.reps; ++r) {
    // Raw TCP.
    const double t_tcp = RawTcpOnce(worker, raw_fd, dst.get(), bytes);
    if (t_tcp < 0) return false;
    row->t_tcp = std::min(row->t_tcp, t_tcp);
    const uint64_t tcp_sum = Checksum(dst.get(), bytes);
    if (r == 0 || tcp_sum != row->sent_sum) row->tcp_sum = tcp_sum;

    // gRPC: from the command until the server's transport hands the update over.
    const long faults0 = Faults();
    const auto t0 = Clock::now();
    if (!worker->Send("push")) return false;
    absl::StatusOr<ReceivedUpdate> got = server->ReceiveUpdate(absl::Now() + absl::Seconds(60));
    const auto t1 = Clock::now();
    if (!got.ok()) {
      std::fprintf(stderr, "grpc_push_bench: receive of %zu bytes failed: %s\n", bytes,
                   got.status().ToString().c_str());
      return false;
    }
    // What the Coordinator does next: decode the tensor into floats (a buffer reused across
    // reps, as raw TCP's is) from where the transport left its bytes.
    const absl::Status decoded =
        DecodePayload(got->msg.up(), got->part_data, codec, 1, bytes / sizeof(float), &floats);
    const auto t2 = Clock::now();
    row->faults = std::min(row->faults, Faults() - faults0);
    if (!worker->Answer("push of " + std::to_string(bytes) + " bytes")) return false;
    if (!decoded.ok()) {
      std::fprintf(stderr, "grpc_push_bench: decode of %zu bytes failed: %s\n", bytes,
                   decoded.ToString().c_str());
      return false;
    }
    row->t_grpc = std::min(row->t_grpc, Seconds(t0, t1));
    row->pair_ratios.push_back(t_tcp / Seconds(t0, t1));
    row->t_decoded = std::min(row->t_decoded, Seconds(t0, t2));
    // Check what arrived, then drop it before the next rep.
    const uint64_t sum =
        Checksum(reinterpret_cast<const char*>(floats.parts[0].data()), bytes);
    if (r == 0 || sum != row->sent_sum) row->grpc_sum = sum;
    if (got->msg.client_id() != kClientId) row->ok = false;
  }
  if (row->tcp_sum != row->sent_sum || row->grpc_sum != row->sent_sum) row->ok = false;
  return true;
}

int Run(const Options& opt) {
  std::vector<size_t> sizes_mb;
  if (opt.max_mb < 64) {
    sizes_mb.push_back(opt.max_mb);
  } else {
    sizes_mb.push_back(64);
    if (opt.max_mb > 64) sizes_mb.push_back(opt.max_mb);
  }

  GrpcServerOptions so;
  so.listen = "127.0.0.1:0";
  so.token = kToken;
  so.expected_workers = 1;
  so.max_update_bytes = uint64_t{opt.max_mb} * kMiB + kMiB;  // the tensor plus its envelope
  absl::StatusOr<std::unique_ptr<GrpcServerTransport>> server =
      GrpcServerTransport::Start(std::move(so));
  if (!server.ok()) {
    std::fprintf(stderr, "grpc_push_bench: server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  // A worker process that dies makes its pipe's writes fail (reported), not kill this one.
  std::signal(SIGPIPE, SIG_IGN);
  WorkerProcess worker;
  if (!worker.Start((*server)->address())) {
    (*server)->Shutdown(absl::Now() + absl::Seconds(1));
    return 1;
  }
  const absl::Status joined = (*server)->WaitForWorkers(absl::Now() + absl::Seconds(30));
  if (!joined.ok()) {
    std::fprintf(stderr, "grpc_push_bench: the worker process did not join: %s\n",
                 joined.ToString().c_str());
    worker.Stop();
    (*server)->Shutdown(absl::Now() + absl::Seconds(1));
    return 1;
  }
  const int raw_fd = ConnectRaw(&worker);
  if (raw_fd < 0) {
    worker.Stop();
    (*server)->Shutdown(absl::Now() + absl::Seconds(1));
    return 1;
  }

  std::printf("# grpc_push_bench: one Push of an UpdateMsg (identity float32) from a worker "
              "process over loopback gRPC (%zu KiB chunks) vs raw TCP (%zu MiB send() calls), "
              "best of %d\n",
              kGrpcChunkBytes >> 10, kSendCall / kMiB, opt.reps);
  std::printf("# %-10s %-9s %10s %10s %10s %18s %6s\n", "payload", "what", "time(ms)", "GB/s",
              "x raw TCP", "checksum", "ok");
  std::fflush(stdout);
  bool failed = false, all_pass = true;
  double worst_ratio = std::numeric_limits<double>::infinity();
  for (size_t mb : sizes_mb) {
    Row row;
    if (!MeasureSize(opt, server->get(), &worker, raw_fd, mb * kMiB, &row)) {
      failed = true;
      break;
    }
    const double bw_tcp = static_cast<double>(row.bytes) / row.t_tcp;
    const double bw_grpc = static_cast<double>(row.bytes) / row.t_grpc;
    const double ratio = bw_grpc / bw_tcp;
    const bool pass = ratio >= kTargetRatio;
    all_pass = all_pass && pass;
    worst_ratio = std::min(worst_ratio, ratio);
    const std::string label = std::to_string(mb) + " MiB";
    std::printf("  %-10s %-9s %10s %10s %10s %18.16llx %6s\n", label.c_str(), "sent", "-", "-",
                "-", static_cast<unsigned long long>(row.sent_sum), "-");
    std::printf("  %-10s %-9s %10.2f %10.3f %10.3f %18.16llx %6s\n", label.c_str(), "raw TCP",
                row.t_tcp * 1e3, bw_tcp / 1e9, 1.0,
                static_cast<unsigned long long>(row.tcp_sum),
                row.tcp_sum == row.sent_sum ? "yes" : "NO");
    std::printf("  %-10s %-9s %10.2f %10.3f %10.3f %18.16llx %6s\n", label.c_str(), "gRPC push",
                row.t_grpc * 1e3, bw_grpc / 1e9, ratio,
                static_cast<unsigned long long>(row.grpc_sum), row.ok ? "yes" : "NO");
    const double bw_decoded = static_cast<double>(row.bytes) / row.t_decoded;
    std::printf("  %-10s %-9s %10.2f %10.3f %10.3f %18s %6s\n", label.c_str(), "+ decode",
                row.t_decoded * 1e3, bw_decoded / 1e9, bw_decoded / bw_tcp, "-", "-");
    std::vector<double> pairs = row.pair_ratios;
    std::sort(pairs.begin(), pairs.end());
    const size_t k = pairs.size();
    const double pair_median = k % 2 ? pairs[k / 2] : 0.5 * (pairs[k / 2 - 1] + pairs[k / 2]);
    std::printf("# %s: median over the %zu reps of gRPC push / raw TCP measured back to back: "
                "%.3f\n", label.c_str(), k, pair_median);
    std::printf("# %s: fewest page faults in one gRPC push: %ld (%.1f MiB of 4 KiB pages)\n",
                label.c_str(), row.faults, static_cast<double>(row.faults) * 4096 / kMiB);
    std::printf("# target %s push >= %.2f x raw TCP: %s (%.3f)\n", label.c_str(), kTargetRatio,
                Verdict(pass), ratio);
    std::fflush(stdout);
    if (!row.ok) failed = true;
  }
  if (!failed)
    std::printf("# target all pushes >= %.2f x raw TCP: %s (worst %.3f)\n", kTargetRatio,
                Verdict(all_pass), worst_ratio);
  std::printf("# results: %s\n",
              failed ? "WRONG (a transfer failed or received bytes differ from the sent ones)"
                     : "OK, every received payload equals the sent bytes");
  std::fflush(stdout);
  ::close(raw_fd);
  worker.Stop();
  (*server)->Shutdown(absl::Now() + absl::Seconds(2));
  return failed ? 1 : 0;
}

// --worker: joins the server at --server=ADDR, then runs the commands on stdin, answering each
// on stdout with "ok [detail]" or "error <why>":
//   prepare BYTES  builds the update to send (BYTES of float32); answers its checksum in hex
//   connect PORT   connects to 127.0.0.1:PORT, the raw TCP connection for the run
//   tcp            sends the update's bytes over that connection
//   push           GrpcWorkerClient::Push of the update
// It leaves the server and exits at the end of stdin.
int RunWorker(const std::string& server) {
  GrpcWorkerOptions wo;
  wo.server = server;
  wo.token = kToken;
  wo.name = "grpc_push_bench";
  absl::StatusOr<std::unique_ptr<GrpcWorkerClient>> client =
      GrpcWorkerClient::Join(wo, absl::Now() + absl::Seconds(20));
  if (!client.ok()) {
    std::fprintf(stderr, "grpc_push_bench --worker: join: %s\n",
                 client.status().ToString().c_str());
    return 1;
  }
  v1::UpdateMsg update;
  int raw_fd = -1;
  char line[256];
  while (std::fgets(line, sizeof line, stdin) != nullptr) {
    std::string answer = "ok";
    unsigned long long v = 0;
    if (std::sscanf(line, "prepare %llu", &v) == 1) {
      update.Clear();
      update.set_round(1);
      update.set_client_id(kClientId);
      update.set_num_samples(100);
      update.set_local_steps(1);
      v1::Tensor* t = update.mutable_up()->add_parts();
      t->set_codec("identity/1");
      t->set_dim(v / sizeof(float));
      const std::vector<float> values = MakeFloats(v / sizeof(float));
      t->set_data(reinterpret_cast<const char*>(values.data()), v);
      char hex[32];
      std::snprintf(hex, sizeof hex, " %016llx",
                    static_cast<unsigned long long>(Checksum(t->data().data(), v)));
      answer += hex;
    } else if (std::sscanf(line, "connect %llu", &v) == 1 && raw_fd < 0) {
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(v));
      raw_fd = ::socket(AF_INET, SOCK_STREAM, 0);
      if (raw_fd < 0 ||
          ::connect(raw_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        answer = std::string("error raw TCP connect: ") + std::strerror(errno);
        if (raw_fd >= 0) ::close(raw_fd);
        raw_fd = -1;
      }
    } else if (std::strcmp(line, "tcp\n") == 0 && raw_fd >= 0 && update.up().parts_size() == 1) {
      const std::string& data = update.up().parts(0).data();
      size_t off = 0;
      while (off < data.size()) {
        const ssize_t k = ::send(raw_fd, data.data() + off,
                                 std::min(kSendCall, data.size() - off), MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
          answer = std::string("error raw TCP send: ") + std::strerror(errno);
          break;
        }
        off += static_cast<size_t>(k);
      }
    } else if (std::strcmp(line, "push\n") == 0) {
      const absl::Status s = (*client)->Push(update);
      if (!s.ok()) answer = "error " + s.ToString();
    } else {
      answer = std::string("error unknown command: ") + line;
    }
    std::printf("%s\n", answer.c_str());
    std::fflush(stdout);
  }
  (void)(*client)->Leave("bench over");
  return 0;
}

}  // namespace
}  // namespace fedtrain

int main(int argc, char** argv) {
  fedtrain::KeepLargeAllocations();  // as `fedtrain server` / `worker` do (core/memory.h)
  grpc_init();  // keeps gRPC's global shutdown (and its 10 s stall) out of the run
  int rc = 2;
  if (argc == 3 && std::strcmp(argv[1], "--worker") == 0 &&
      std::strncmp(argv[2], "--server=", 9) == 0) {
    rc = fedtrain::RunWorker(argv[2] + 9);
  } else {
    fedtrain::Options opt;
    if (fedtrain::ParseFlags(argc, argv, &opt)) rc = fedtrain::Run(opt);
  }
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(rc);
}
