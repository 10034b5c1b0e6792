// delay_proxy: a TCP proxy that delays every byte by a fixed time, for tests that need
// latency between "hosts" (docs/maintainers.md §9: these kernels have no `tc netem`).
//
//   delay_proxy --listen HOST:PORT --to HOST:PORT --delay-ms D [--port-file F]
//
// Each accepted connection gets its own connection to --to. Per direction, a reader thread
// stamps every chunk it reads with (read time + D) and queues it; a writer thread writes the
// chunks in order, each no earlier than its stamp. So the delay is added once per direction
// (a round trip through the proxy costs 2*D), bytes are never reordered or dropped, and
// a throughput-bound stream is not slowed beyond D. A FIN is forwarded as a FIN, after the
// data before it and with the same delay (half-close works); a reset or a failed write on
// either side tears down both sockets of that connection. Connections are independent: gRPC
// may open several.
//
// With port 0 in --listen the kernel picks a free port. Once listening, the proxy writes the
// port number to --port-file (atomically: a temporary file renamed into place, so a reader
// polling for it never sees a partial line) and prints "listening on HOST:PORT" as the first
// line on stdout. One line per closed connection (bytes each way) goes to stderr.
//
// Exit status: 2 for bad flags (with a message and the usage on stderr), 1 when the listen
// socket cannot be set up; otherwise it runs until killed (SIGTERM/SIGINT: default action).
//
// Threading: four threads per connection (two readers, two writers); the main thread
// accepts and joins finished connections. Plain POSIX sockets and std::thread only.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kChunkBytes = 64 * 1024;
// A direction whose writer falls behind stops reading at this many queued bytes, so a slow
// receiver slows the sender (as TCP would) instead of growing the proxy's memory.
constexpr size_t kMaxQueuedBytes = 16 * 1024 * 1024;
constexpr int kConnectTimeoutMs = 10000;
constexpr long kMaxDelayMs = 600000;

constexpr char kUsage[] =
    "usage: delay_proxy --listen HOST:PORT --to HOST:PORT --delay-ms D [--port-file F]\n"
    "  --listen HOST:PORT  address to accept connections on (port 0: a free port)\n"
    "  --to HOST:PORT      address every accepted connection is forwarded to\n"
    "  --delay-ms D        each chunk is written on the other side no earlier than D ms\n"
    "                      after it was read (0..600000)\n"
    "  --port-file F       write the listening port to F once listening\n"
    "Prints \"listening on HOST:PORT\" as the first line on stdout.\n";

[[noreturn]] void UsageError(const std::string& what) {
  std::fprintf(stderr, "delay_proxy: %s\n%s", what.c_str(), kUsage);
  std::exit(2);
}

struct HostPort {
  std::string host;
  std::string port;
};

// "HOST:PORT" or "[V6ADDR]:PORT"; PORT is a decimal 0..65535.
bool ParseHostPort(const std::string& s, HostPort* out) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) return false;
  std::string host = s.substr(0, colon);
  std::string port = s.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return false;  // an IPv6 address needs brackets
  }
  if (host.empty() || port.size() > 5) return false;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
  }
  if (std::atol(port.c_str()) > 65535) return false;
  out->host = host;
  out->port = port;
  return true;
}

struct Flags {
  HostPort listen;
  HostPort to;
  long delay_ms = -1;
  std::string port_file;
};

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  bool have_listen = false, have_to = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    std::string name = arg, value;
    size_t eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (arg.rfind("--", 0) == 0) {
      if (i + 1 >= argc) UsageError(arg + " needs a value");
      value = argv[++i];
    } else {
      UsageError("unexpected argument '" + arg + "'");
    }
    if (name == "--listen") {
      if (!ParseHostPort(value, &f.listen)) UsageError("--listen: bad HOST:PORT '" + value + "'");
      have_listen = true;
    } else if (name == "--to") {
      if (!ParseHostPort(value, &f.to)) UsageError("--to: bad HOST:PORT '" + value + "'");
      if (f.to.port == "0" || std::atol(f.to.port.c_str()) == 0)
        UsageError("--to: port 0 is not a destination");
      have_to = true;
    } else if (name == "--delay-ms") {
      char* end = nullptr;
      errno = 0;
      long d = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || errno != 0 || d < 0 || d > kMaxDelayMs)
        UsageError("--delay-ms: expected an integer 0.." + std::to_string(kMaxDelayMs) +
                   ", got '" + value + "'");
      f.delay_ms = d;
    } else if (name == "--port-file") {
      if (value.empty()) UsageError("--port-file: empty path");
      f.port_file = value;
    } else {
      UsageError("unknown flag '" + name + "'");
    }
  }
  if (!have_listen) UsageError("--listen is required");
  if (!have_to) UsageError("--to is required");
  if (f.delay_ms < 0) UsageError("--delay-ms is required");
  return f;
}

// Resolves host:port (numeric or a name) for a stream socket; the first result wins.
bool Resolve(const HostPort& hp, bool passive, sockaddr_storage* addr, socklen_t* len,
             std::string* err) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(hp.host.c_str(), hp.port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    *err = "cannot resolve " + hp.host + ":" + hp.port + ": " + gai_strerror(rc);
    return false;
  }
  std::memcpy(addr, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return true;
}

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Connects to `addr` with a timeout; returns the connected (blocking) socket or -1.
int ConnectWithTimeout(const sockaddr_storage& addr, socklen_t len, std::string* err) {
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *err = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int rc = connect(fd, reinterpret_cast<const sockaddr*>(&addr), len);
  if (rc != 0 && errno != EINPROGRESS) {
    *err = std::string("connect: ") + std::strerror(errno);
    close(fd);
    return -1;
  }
  if (rc != 0) {
    pollfd p{fd, POLLOUT, 0};
    int n;
    do {
      n = poll(&p, 1, kConnectTimeoutMs);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
      *err = n == 0 ? "connect: timed out" : std::string("poll: ") + std::strerror(errno);
      close(fd);
      return -1;
    }
    int so_error = 0;
    socklen_t so_len = sizeof(so_error);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &so_len);
    if (so_error != 0) {
      *err = std::string("connect: ") + std::strerror(so_error);
      close(fd);
      return -1;
    }
  }
  int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  SetNoDelay(fd);
  return fd;
}

// One direction of a proxied connection: bytes read from `src` are written to `dst`.
// Thread-safe: the reader thread pushes, the writer thread pops.
class Pipe {
 public:
  enum class Kind { kData, kFin, kAbort };
  struct Chunk {
    Kind kind;
    Clock::time_point due;
    std::string data;
  };

  // Called by the reader; blocks while the queue is full. False once the writer has quit.
  bool Push(Chunk c) {
    std::unique_lock<std::mutex> lock(mu_);
    space_.wait(lock, [&] { return quit_ || queued_bytes_ < kMaxQueuedBytes; });
    if (quit_) return false;
    queued_bytes_ += c.data.size();
    queue_.push_back(std::move(c));
    ready_.notify_one();
    return true;
  }

  // Called by the writer: the oldest chunk, waiting for one to arrive.
  Chunk Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    ready_.wait(lock, [&] { return !queue_.empty(); });
    Chunk c = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= c.data.size();
    space_.notify_one();
    return c;
  }

  // The writer is gone: a reader blocked on a full queue stops.
  void Quit() {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
    space_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable ready_, space_;
  std::deque<Chunk> queue_;
  size_t queued_bytes_ = 0;
  bool quit_ = false;
};

// A client connection and its upstream connection. Owns both sockets; the destructor joins
// the four threads and closes them.
class Connection {
 public:
  Connection(int id, int client_fd, int upstream_fd, std::chrono::milliseconds delay)
      : id_(id), client_fd_(client_fd), upstream_fd_(upstream_fd), delay_(delay) {
    threads_.emplace_back([this] { Read(client_fd_, &up_, &bytes_up_); });
    threads_.emplace_back([this] { Write(&up_, upstream_fd_); });
    threads_.emplace_back([this] { Read(upstream_fd_, &down_, &bytes_down_); });
    threads_.emplace_back([this] { Write(&down_, client_fd_); });
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  ~Connection() {
    Abort();  // no-op after a normal close; unblocks everything otherwise
    for (std::thread& t : threads_) t.join();
    close(client_fd_);
    close(upstream_fd_);
    std::fprintf(stderr, "delay_proxy: connection %d closed: %llu bytes up, %llu bytes down\n",
                 id_, static_cast<unsigned long long>(bytes_up_.load()),
                 static_cast<unsigned long long>(bytes_down_.load()));
  }

  bool finished() const { return finished_threads_.load() == 4; }

 private:
  void Read(int src, Pipe* pipe, std::atomic<uint64_t>* counter) {
    for (;;) {
      std::string buf(kChunkBytes, '\0');
      ssize_t n = recv(src, &buf[0], buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      Clock::time_point due = Clock::now() + delay_;
      if (n > 0) {
        buf.resize(static_cast<size_t>(n));
        *counter += static_cast<uint64_t>(n);
        if (!pipe->Push({Pipe::Kind::kData, due, std::move(buf)})) break;
        continue;
      }
      // n == 0: an orderly FIN (or our own shutdown() after an abort); n < 0: a reset.
      pipe->Push({n == 0 ? Pipe::Kind::kFin : Pipe::Kind::kAbort, due, {}});
      break;
    }
    ++finished_threads_;
  }

  void Write(Pipe* pipe, int dst) {
    for (;;) {
      Pipe::Chunk c = pipe->Pop();
      std::this_thread::sleep_until(c.due);
      if (c.kind == Pipe::Kind::kFin) {
        shutdown(dst, SHUT_WR);
        break;
      }
      if (c.kind == Pipe::Kind::kAbort || !SendAll(dst, c.data)) {
        Abort();
        break;
      }
    }
    pipe->Quit();
    ++finished_threads_;
  }

  static bool SendAll(int fd, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // Tears both sockets down: blocked reads return 0, writes fail, both peers see the close.
  void Abort() {
    shutdown(client_fd_, SHUT_RDWR);
    shutdown(upstream_fd_, SHUT_RDWR);
  }

  const int id_;
  const int client_fd_, upstream_fd_;
  const std::chrono::milliseconds delay_;
  Pipe up_, down_;  // client -> upstream, upstream -> client
  std::atomic<uint64_t> bytes_up_{0}, bytes_down_{0};
  std::atomic<int> finished_threads_{0};
  std::vector<std::thread> threads_;  // last member: started after everything above exists
};

void WritePortFile(const std::string& path, int port) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr || std::fprintf(f, "%d\n", port) < 0 || std::fclose(f) != 0 ||
      std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::fprintf(stderr, "delay_proxy: cannot write --port-file %s: %s\n", path.c_str(),
                 std::strerror(errno));
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags = ParseFlags(argc, argv);
  signal(SIGPIPE, SIG_IGN);

  std::string err;
  sockaddr_storage listen_addr{}, to_addr{};
  socklen_t listen_len = 0, to_len = 0;
  if (!Resolve(flags.listen, /*passive=*/true, &listen_addr, &listen_len, &err) ||
      !Resolve(flags.to, /*passive=*/false, &to_addr, &to_len, &err)) {
    std::fprintf(stderr, "delay_proxy: %s\n", err.c_str());
    return 1;
  }

  int lfd = socket(listen_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      bind(lfd, reinterpret_cast<sockaddr*>(&listen_addr), listen_len) != 0 ||
      listen(lfd, 128) != 0) {
    std::fprintf(stderr, "delay_proxy: cannot listen on %s:%s: %s\n", flags.listen.host.c_str(),
                 flags.listen.port.c_str(), std::strerror(errno));
    return 1;
  }
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof(bound);
  getsockname(lfd, reinterpret_cast<sockaddr*>(&bound), &bound_len);
  int port = ntohs(bound.ss_family == AF_INET6
                       ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                       : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  if (!flags.port_file.empty()) WritePortFile(flags.port_file, port);
  bool v6 = flags.listen.host.find(':') != std::string::npos;
  std::printf("listening on %s%s%s:%d\n", v6 ? "[" : "", flags.listen.host.c_str(),
              v6 ? "]" : "", port);
  std::fflush(stdout);

  const std::chrono::milliseconds delay(flags.delay_ms);
  std::list<std::unique_ptr<Connection>> connections;
  int next_id = 0;
  for (;;) {
    // Wake up now and then to join finished connections even when no one connects.
    pollfd p{lfd, POLLIN, 0};
    int n = poll(&p, 1, 500);
    for (auto it = connections.begin(); it != connections.end();) {
      it = (*it)->finished() ? connections.erase(it) : std::next(it);
    }
    if (n <= 0) continue;
    int cfd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (cfd < 0) {
      if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN)
        std::fprintf(stderr, "delay_proxy: accept: %s\n", std::strerror(errno));
      if (errno == EMFILE || errno == ENFILE) poll(nullptr, 0, 100);  // let some close
      continue;
    }
    SetNoDelay(cfd);
    int ufd = ConnectWithTimeout(to_addr, to_len, &err);
    if (ufd < 0) {
      std::fprintf(stderr, "delay_proxy: %s:%s: %s; closing the client connection\n",
                   flags.to.host.c_str(), flags.to.port.c_str(), err.c_str());
      close(cfd);
      continue;
    }
    connections.push_back(std::make_unique<Connection>(next_id++, cfd, ufd, delay));
  }
}
