// The server's Prometheus endpoint (`fedtrain server --metrics-listen HOST:PORT`): a small
// HTTP/1.1 listener on a thread of its own that answers "GET /metrics" (and "GET /") with
// Prometheus' text exposition format and anything else with 404, one connection at a time,
// closing each after its answer. Requests are read with a 2 s timeout and at most 8 KiB, so a
// slow or oversized client cannot hold the thread. Thread-safe: `render` is called on the
// listener's thread for each request and must be safe to call from it.
#ifndef FEDTRAIN_COMM_METRICS_HTTP_H_
#define FEDTRAIN_COMM_METRICS_HTTP_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace fedtrain {

// One sample of the exposition: `# HELP`, `# TYPE` (gauge or counter) and `name value`.
struct PromMetric {
  std::string name, type, help;
  double value = 0.0;
};
// The text exposition of `metrics` (NaN is written as "NaN", as Prometheus reads it).
std::string PromText(const std::vector<PromMetric>& metrics);

class MetricsHttpServer {
 public:
  // Listens on "HOST:PORT" (an IPv4 address or host name; port 0 picks a free one).
  // InvalidArgument for a malformed address, Unavailable when it cannot bind.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& listen, std::function<std::string()> render);
  ~MetricsHttpServer();  // stops the thread and closes the socket
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;
  // "HOST:PORT" with the port actually bound.
  const std::string& address() const { return address_; }

 private:
  MetricsHttpServer(int fd, std::string address, std::function<std::string()> render);
  void Serve();
  void Answer(int conn);
  int fd_;
  int stop_pipe_[2] = {-1, -1};
  std::string address_;
  std::function<std::string()> render_;
  std::thread thread_;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_COMM_METRICS_HTTP_H_
