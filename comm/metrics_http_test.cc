// comm/metrics_http.h: the exposition text, and the endpoint answering a real HTTP client
// over loopback (GET /metrics, 404 elsewhere, 405 for other methods), port 0.
#include "comm/metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <string>

#include "absl/strings/numbers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A plain HTTP/1.1 client: sends `request` to 127.0.0.1:port, returns the whole answer.
std::string Fetch(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return "connect failed";
  }
  (void)!write(fd, request.data(), request.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

TEST(MetricsHttpTest, PromTextFormat) {
  EXPECT_EQ(PromText({{"fedtrain_rounds_completed", "gauge", "Rounds done.", 12},
                      {"fedtrain_bytes_up_total", "counter", "Uplink bytes.", 9540000000.0},
                      {"fedtrain_test_accuracy", "gauge", "Last accuracy.", std::nan("")},
                      {"fedtrain_round_seconds", "gauge", "Last round.", 0.25}}),
            "# HELP fedtrain_rounds_completed Rounds done.\n"
            "# TYPE fedtrain_rounds_completed gauge\n"
            "fedtrain_rounds_completed 12\n"
            "# HELP fedtrain_bytes_up_total Uplink bytes.\n"
            "# TYPE fedtrain_bytes_up_total counter\n"
            "fedtrain_bytes_up_total 9540000000\n"
            "# HELP fedtrain_test_accuracy Last accuracy.\n"
            "# TYPE fedtrain_test_accuracy gauge\n"
            "fedtrain_test_accuracy NaN\n"
            "# HELP fedtrain_round_seconds Last round.\n"
            "# TYPE fedtrain_round_seconds gauge\n"
            "fedtrain_round_seconds 0.25\n");
}

TEST(MetricsHttpTest, ServesMetricsToAnHttpClient) {
  std::atomic<int> rounds{3};
  FT_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<MetricsHttpServer> s,
      MetricsHttpServer::Start("127.0.0.1:0", [&rounds] {
        return PromText({{"fedtrain_rounds_completed", "gauge", "Rounds done.",
                          static_cast<double>(rounds.load())}});
      }));
  const std::string addr = s->address();
  ASSERT_THAT(addr, StartsWith("127.0.0.1:"));
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(addr.substr(addr.find(':') + 1), &port));
  ASSERT_GT(port, 0);
  std::string r = Fetch(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(r, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(r, HasSubstr("\r\n\r\n# HELP fedtrain_rounds_completed"));
  EXPECT_THAT(r, HasSubstr("\nfedtrain_rounds_completed 3\n"));
  const std::string body = r.substr(r.find("\r\n\r\n") + 4);
  EXPECT_THAT(r, HasSubstr("Content-Length: " + std::to_string(body.size()) + "\r\n"));
  rounds = 4;  // rendered per request
  EXPECT_THAT(Fetch(port, "GET / HTTP/1.0\r\n\r\n"), HasSubstr("\nfedtrain_rounds_completed 4\n"));
  EXPECT_THAT(Fetch(port, "GET /other HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 404 Not Found"));
  EXPECT_THAT(Fetch(port, "POST /metrics HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 405"));
  // A client that connects and sends nothing is dropped after the read timeout; the next one
  // is served.
  EXPECT_THAT(Fetch(port, ""), StartsWith("HTTP/1.1 404"));
  EXPECT_THAT(Fetch(port, "GET /metrics HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 200 OK"));
}

TEST(MetricsHttpTest, BadAddressesAreRefused) {
  auto render = [] { return std::string(); };
  EXPECT_EQ(MetricsHttpServer::Start("nocolon", render).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsHttpServer::Start("127.0.0.1:99999", render).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fedtrain
