#include "comm/metrics_http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace fedtrain {

std::string PromText(const std::vector<PromMetric>& metrics) {
  std::string out;
  for (const PromMetric& m : metrics) {
    std::string value;
    if (std::isnan(m.value)) {
      value = "NaN";
    } else if (std::isinf(m.value)) {
      value = m.value > 0 ? "+Inf" : "-Inf";
    } else {
      value = absl::StrCat(m.value);
      // absl::StrCat(double) keeps 6 significant digits: counters need every digit.
      if (m.value == std::floor(m.value) && std::fabs(m.value) < 9.0e15)
        value = absl::StrCat(static_cast<int64_t>(m.value));
    }
    absl::StrAppend(&out, "# HELP ", m.name, " ", m.help, "\n# TYPE ", m.name, " ", m.type, "\n",
                    m.name, " ", value, "\n");
  }
  return out;
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& listen, std::function<std::string()> render) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535)
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-listen: expected HOST:PORT, got '", listen, "'"));
  const std::string host = listen.substr(0, colon);
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), nullptr, &hints, &res);
      rc != 0 || res == nullptr)
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-listen: cannot resolve '", host, "': ", gai_strerror(rc)));
  sockaddr_in addr = *reinterpret_cast<sockaddr_in*>(res->ai_addr);
  freeaddrinfo(res);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno)));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 16) != 0) {
    const std::string why = std::strerror(errno);
    close(fd);
    return absl::UnavailableError(absl::StrCat("--metrics-listen ", listen, ": ", why));
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  char ip[INET_ADDRSTRLEN] = {0};
  inet_ntop(AF_INET, &addr.sin_addr, ip, sizeof(ip));
  std::unique_ptr<MetricsHttpServer> s(
      new MetricsHttpServer(fd, absl::StrCat(ip, ":", ntohs(addr.sin_port)), std::move(render)));
  if (pipe2(s->stop_pipe_, O_CLOEXEC) != 0)
    return absl::UnavailableError(absl::StrCat("pipe: ", std::strerror(errno)));
  s->thread_ = std::thread([p = s.get()] { p->Serve(); });
  return s;
}

MetricsHttpServer::MetricsHttpServer(int fd, std::string address,
                                     std::function<std::string()> render)
    : fd_(fd), address_(std::move(address)), render_(std::move(render)) {}

MetricsHttpServer::~MetricsHttpServer() {
  if (stop_pipe_[1] >= 0) {
    const char b = 0;
    (void)!write(stop_pipe_[1], &b, 1);
  }
  if (thread_.joinable()) thread_.join();
  for (int p : stop_pipe_)
    if (p >= 0) close(p);
  close(fd_);
}

void MetricsHttpServer::Serve() {
  while (true) {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    Answer(conn);
    close(conn);
  }
}

void MetricsHttpServer::Answer(int conn) {
  timeval tv{2, 0};
  setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::string req;
  char buf[1024];
  while (req.find("\r\n\r\n") == std::string::npos && req.find("\n\n") == std::string::npos &&
         req.size() < 8192) {
    const ssize_t n = read(conn, buf, sizeof(buf));
    if (n <= 0) break;
    req.append(buf, static_cast<size_t>(n));
  }
  const std::vector<std::string> first =
      absl::StrSplit(req.substr(0, req.find_first_of("\r\n")), ' ', absl::SkipEmpty());
  std::string status = "404 Not Found", body = "not found: try /metrics\n";
  if (first.size() >= 2 && first[0] != "GET") {
    status = "405 Method Not Allowed";
    body = "only GET\n";
  } else if (first.size() >= 2 && (first[1] == "/metrics" || first[1] == "/")) {
    status = "200 OK";
    body = render_();
  }
  const std::string resp = absl::StrCat(
      "HTTP/1.1 ", status, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n",
      "Content-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
  size_t sent = 0;
  while (sent < resp.size()) {
    const ssize_t n = send(conn, resp.data() + sent, resp.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
}

}  // namespace fedtrain
