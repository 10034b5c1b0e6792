// grpc_push_bench: one worker Push of a large update over the deployed gRPC transport
// (comm/grpc_client.h -> comm/grpc_server.h) against raw TCP measured in the same run, both
// over loopback in this one process.
//
//   grpc_push_bench [--reps=3] [--max_mb=1024]
//
// For each payload size (64 MiB, then --max_mb MiB; only --max_mb when it is below 64), best
// of --reps, the two alternating (so load from elsewhere on a shared machine falls on both):
//   raw TCP  a plain socket pair over 127.0.0.1: one thread send()s the bytes in large calls,
//            the other recv()s them into a buffer of the same size;
//   gRPC     GrpcWorkerClient::Push of an UpdateMsg whose payload is one "identity/1" tensor
//            of that many bytes of float32, timed from the call until the update is taken off
//            the server's queue by GrpcServerTransport::ReceiveUpdate (so it includes the
//            client's serialization of the envelope, the ~1 MiB chunk stream with the tensor's
//            bytes sent from where they lie, the server's size checks and parse of the
//            envelope; the tensor's bytes are then in the server's memory, in gRPC's receive
//            buffers, as raw TCP's are in its buffer);
//   + decode the same push, until the Coordinator's next step, DecodePayload, has also copied
//            the tensor into a float vector (one the run reuses, as raw TCP's buffer is). Raw
//            TCP has no such step: this row is what a round costs, not a transport's speed.
// and prints bytes/s of each, the ratio to raw TCP (of the bests; and, as a second view of
// the same reps, the median of the ratios of each back-to-back pair), and a checksum of the
// bytes received against the bytes sent. The target (gRPC push >= 0.9 x raw TCP, on the ratio
// of the bests) is printed as PASS/FAIL but
// never fails the run, since it is a measurement on a shared, noisy machine. Exit status 1
// when any transfer fails or any received bytes differ from the sent ones, 2 on bad flags.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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
#include "comm/payload_wire.h"
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

struct Options {
  int reps = 3;
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

// A connected TCP pair over 127.0.0.1, or false after a message.
bool TcpPair(int* writer, int* reader) {
  const int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (lfd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  bool ok = ::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
            ::listen(lfd, 1) == 0 &&
            ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  int cfd = -1, afd = -1;
  if (ok) {
    cfd = ::socket(AF_INET, SOCK_STREAM, 0);
    ok = cfd >= 0 && ::connect(cfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  if (ok) {
    afd = ::accept(lfd, nullptr, nullptr);
    ok = afd >= 0;
  }
  if (!ok) {
    std::fprintf(stderr, "grpc_push_bench: loopback socket pair: %s\n", std::strerror(errno));
    if (cfd >= 0) ::close(cfd);
    if (afd >= 0) ::close(afd);
  }
  ::close(lfd);
  *writer = cfd;
  *reader = afd;
  return ok;
}

// One transfer of `n` bytes from `src` into `dst` over a fresh loopback TCP pair; the time
// covers the transfer only (not the connection setup). Negative on error.
double RawTcpOnce(const char* src, char* dst, size_t n) {
  int wfd = -1, rfd = -1;
  if (!TcpPair(&wfd, &rfd)) return -1;
  bool send_ok = true;
  const auto t0 = Clock::now();
  std::thread writer([&] {
    size_t off = 0;
    while (off < n) {
      const ssize_t k = ::send(wfd, src + off, std::min(kSendCall, n - off), MSG_NOSIGNAL);
      if (k < 0) {
        if (errno == EINTR) continue;
        send_ok = false;
        break;
      }
      off += static_cast<size_t>(k);
    }
    ::shutdown(wfd, SHUT_WR);
  });
  size_t got = 0;
  bool recv_ok = true;
  while (got < n) {
    const ssize_t k = ::recv(rfd, dst + got, std::min(kSendCall, n - got), 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      recv_ok = false;
      break;
    }
    got += static_cast<size_t>(k);
  }
  const double t = Seconds(t0, Clock::now());
  writer.join();
  ::close(wfd);
  ::close(rfd);
  if (!send_ok || !recv_ok) {
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
bool MeasureSize(const Options& opt, GrpcServerTransport* server, GrpcWorkerClient* client,
                 size_t bytes, Row* row) {
  row->bytes = bytes;
  // The update as a worker builds it (identity codec: the float32 bytes as they are).
  v1::UpdateMsg update;
  update.set_round(1);
  update.set_client_id(7);
  update.set_num_samples(100);
  update.set_local_steps(1);
  v1::Tensor* t = update.mutable_up()->add_parts();
  t->set_codec("identity/1");
  t->set_dim(bytes / sizeof(float));
  {
    const std::vector<float> values = MakeFloats(bytes / sizeof(float));
    t->set_data(reinterpret_cast<const char*>(values.data()), bytes);
  }
  const char* src = t->data().data();
  row->sent_sum = Checksum(src, bytes);
  std::unique_ptr<char[]> dst(new char[bytes]);
  std::memset(dst.get(), 0, bytes);  // fault the pages in before timing

  const IdentityCompressor codec(bytes / sizeof(float));
  Payload floats;
  floats.parts.assign(1, std::vector<float>(bytes / sizeof(float), 0.0f));  // faulted in
  row->t_tcp = row->t_grpc = row->t_decoded = std::numeric_limits<double>::infinity();
  row->faults = std::numeric_limits<long>::max();
  for (int r = 0; r < opt.reps; ++r) {
    // Raw TCP.
    const double t_tcp = RawTcpOnce(src, dst.get(), bytes);
    if (t_tcp < 0) return false;
    row->t_tcp = std::min(row->t_tcp, t_tcp);
    const uint64_t tcp_sum = Checksum(dst.get(), bytes);
    if (r == 0 || tcp_sum != row->sent_sum) row->tcp_sum = tcp_sum;

    // gRPC: from the call until the server's transport hands the update over.
    const long faults0 = Faults();
    const auto t0 = Clock::now();
    const absl::Status s = client->Push(update);
    if (!s.ok()) {
      std::fprintf(stderr, "grpc_push_bench: push of %zu bytes failed: %s\n", bytes,
                   s.ToString().c_str());
      return false;
    }
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
    if (!decoded.ok()) {
      std::fprintf(stderr, "grpc_push_bench: decode of %zu bytes failed: %s\n", bytes,
                   decoded.ToString().c_str());
      return false;
    }
    row->t_grpc = std::min(row->t_grpc, Seconds(t0, t1));
    row->pair_ratios.push_back(t_tcp / Seconds(t0, t1));
    row->t_decoded = std::min(row->t_decoded, Seconds(t0, t2));
    // Check what arrived, then drop it before the next rep.
    const char* out = reinterpret_cast<const char*>(floats.parts[0].data());
    const uint64_t sum = Checksum(out, bytes);
    const bool shape_ok = got->msg.client_id() == update.client_id() &&
                          std::memcmp(out, src, bytes) == 0;
    if (r == 0 || sum != row->sent_sum) row->grpc_sum = sum;
    if (!shape_ok) row->ok = false;
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
  so.token = "grpc-push-bench-token";
  so.expected_workers = 1;
  so.max_update_bytes = uint64_t{opt.max_mb} * kMiB + kMiB;  // the tensor plus its envelope
  absl::StatusOr<std::unique_ptr<GrpcServerTransport>> server =
      GrpcServerTransport::Start(std::move(so));
  if (!server.ok()) {
    std::fprintf(stderr, "grpc_push_bench: server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  GrpcWorkerOptions wo;
  wo.server = (*server)->address();
  wo.token = "grpc-push-bench-token";
  wo.name = "grpc_push_bench";
  absl::StatusOr<std::unique_ptr<GrpcWorkerClient>> client =
      GrpcWorkerClient::Join(wo, absl::Now() + absl::Seconds(10));
  if (!client.ok()) {
    std::fprintf(stderr, "grpc_push_bench: join: %s\n", client.status().ToString().c_str());
    (*server)->Shutdown(absl::Now() + absl::Seconds(1));
    return 1;
  }
  const absl::Status joined = (*server)->WaitForWorkers(absl::Now() + absl::Seconds(10));
  if (!joined.ok()) {
    std::fprintf(stderr, "grpc_push_bench: %s\n", joined.ToString().c_str());
    (*server)->Shutdown(absl::Now() + absl::Seconds(1));
    return 1;
  }

  std::printf("# grpc_push_bench: one Push of an UpdateMsg (identity float32) over loopback "
              "gRPC (%zu KiB chunks) vs raw TCP (%zu MiB send() calls), best of %d\n",
              kGrpcChunkBytes >> 10, kSendCall / kMiB, opt.reps);
  std::printf("# %-10s %-9s %10s %10s %10s %18s %6s\n", "payload", "what", "time(ms)", "GB/s",
              "x raw TCP", "checksum", "ok");
  std::fflush(stdout);
  bool failed = false, all_pass = true;
  double worst_ratio = std::numeric_limits<double>::infinity();
  for (size_t mb : sizes_mb) {
    Row row;
    if (!MeasureSize(opt, server->get(), client->get(), mb * kMiB, &row)) {
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
  client->reset();
  (*server)->Shutdown(absl::Now() + absl::Seconds(2));
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace fedtrain

int main(int argc, char** argv) {
  fedtrain::KeepLargeAllocations();  // as `fedtrain server` / `worker` do (core/memory.h)
  grpc_init();  // keeps gRPC's global shutdown (and its 10 s stall) out of the run
  fedtrain::Options opt;
  if (!fedtrain::ParseFlags(argc, argv, &opt)) return 2;
  const int rc = fedtrain::Run(opt);
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(rc);
}
