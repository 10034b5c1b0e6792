#include "server/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/vec.h"
#include "fedtrain/v1/messages.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace fedtrain {
namespace {

constexpr char kMagic[8] = {'F', 'T', 'C', 'K', 'P', 'T', '0', '1'};
constexpr uint32_t kFormatVersion = 1;

template <typename T>
std::string Bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

template <typename T>
absl::Status FromBytes(const std::string& b, const std::string& what, std::vector<T>* out) {
  if (b.size() % sizeof(T) != 0)
    return absl::DataLossError(absl::StrCat(what, ": ", b.size(), " bytes is not a whole number of ",
                                            sizeof(T), "-byte values"));
  out->resize(b.size() / sizeof(T));
  if (!b.empty()) std::memcpy(out->data(), b.data(), b.size());
  return absl::OkStatus();
}

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status WriteAll(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Errno("cannot write", path);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SaveCheckpoint(const std::string& path, const CoordinatorSnapshot& snap,
                            const CheckpointIdentity& id) {
  v1::Checkpoint c;
  c.set_format_version(kFormatVersion);
  c.set_round(snap.state.round);
  c.set_model(Bytes(snap.state.x));
  for (const auto& [k, v] : snap.state.vectors) (*c.mutable_vectors())[k] = Bytes(v);
  for (const auto& [k, v] : snap.algorithm_extra) (*c.mutable_algorithm_extra())[k] = Bytes(v);
  for (const auto& [client, through] : snap.accepted_through) {
    c.add_accepted_ids(client);
    c.add_accepted_through(through);
  }
  c.set_cum_bytes_up(snap.cum_bytes_up);
  c.set_cum_bytes_down(snap.cum_bytes_down);
  c.set_wall_s(snap.wall_s);
  c.set_algorithm(id.algorithm);
  c.set_config_fingerprint(id.config_fingerprint);
  // Deterministic: maps in key order, so the same state always gives the same bytes.
  const size_t size = c.ByteSizeLong();
  if (size > static_cast<size_t>(INT_MAX))
    return absl::ResourceExhaustedError(
        absl::StrCat("checkpoint of round ", snap.state.round, " does not serialize (over 2 GiB)"));
  std::string body(size, '\0');
  {
    google::protobuf::io::ArrayOutputStream array(body.data(), static_cast<int>(size));
    google::protobuf::io::CodedOutputStream out(&array);
    out.SetSerializationDeterministic(true);
    c.SerializeWithCachedSizes(&out);
    if (out.HadError())
      return absl::InternalError(absl::StrCat("checkpoint of round ", snap.state.round,
                                              " did not serialize"));
  }
  const uint64_t len = body.size();
  std::string head(kMagic, sizeof(kMagic));
  head.append(reinterpret_cast<const char*>(&len), sizeof(len));
  uint64_t sum = Fnv1a64(&len, sizeof(len));
  sum = Fnv1a64(body.data(), body.size(), sum);

  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot create", tmp);
  absl::Status st = WriteAll(fd, head.data(), head.size(), tmp);
  if (st.ok()) st = WriteAll(fd, body.data(), body.size(), tmp);
  if (st.ok()) st = WriteAll(fd, reinterpret_cast<const char*>(&sum), sizeof(sum), tmp);
  if (st.ok() && ::fsync(fd) != 0) st = Errno("cannot fsync", tmp);
  if (::close(fd) != 0 && st.ok()) st = Errno("cannot close", tmp);
  if (st.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) st = Errno("cannot rename onto", path);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Errno("cannot open the folder of", path);
  const bool synced = ::fsync(dfd) == 0;
  ::close(dfd);
  if (!synced) return Errno("cannot fsync the folder of", path);
  return absl::OkStatus();
}

absl::StatusOr<CoordinatorSnapshot> LoadCheckpoint(const std::string& path,
                                                   const CheckpointIdentity& expect) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("no checkpoint at ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseCheckpoint(ss.str(), path, expect);
}

absl::StatusOr<CoordinatorSnapshot> ParseCheckpoint(absl::string_view file,
                                                    const std::string& name,
                                                    const CheckpointIdentity& expect) {
  auto damaged = [&](const std::string& why) {
    return absl::DataLossError(absl::StrCat("checkpoint ", name, " is damaged: ", why));
  };
  if (file.size() < sizeof(kMagic) + 16 ||
      std::memcmp(file.data(), kMagic, sizeof(kMagic)) != 0)
    return damaged("not a fedtrain checkpoint (bad magic or too short)");
  uint64_t len = 0, sum = 0;
  std::memcpy(&len, file.data() + sizeof(kMagic), sizeof(len));
  if (len != file.size() - sizeof(kMagic) - 16)
    return damaged(absl::StrCat("length field says ", len, " bytes, the file holds ",
                                file.size() - sizeof(kMagic) - 16));
  const char* body = file.data() + sizeof(kMagic) + sizeof(len);
  std::memcpy(&sum, body + len, sizeof(sum));
  uint64_t want = Fnv1a64(&len, sizeof(len));
  want = Fnv1a64(body, len, want);
  if (sum != want) return damaged("checksum mismatch");
  v1::Checkpoint c;
  if (len > static_cast<uint64_t>(INT_MAX) || !c.ParseFromArray(body, static_cast<int>(len)))
    return damaged("does not parse");
  if (c.format_version() != kFormatVersion)
    return absl::FailedPreconditionError(absl::StrCat("checkpoint ", name, " has format version ",
                                                      c.format_version(), "; this fedtrain reads ",
                                                      kFormatVersion));
  if (c.algorithm() != expect.algorithm)
    return absl::FailedPreconditionError(absl::StrCat("checkpoint ", name, " is of algorithm ",
                                                      c.algorithm(), "; this run uses ",
                                                      expect.algorithm));
  if (c.config_fingerprint() != expect.config_fingerprint)
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", name, " was written by a run with another config (only threads, output "
        "and checkpoint settings may change on --resume); compare with the run folder's "
        "config.json"));
  if (c.accepted_ids_size() != c.accepted_through_size())
    return damaged("accepted_ids and accepted_through differ in length");
  CoordinatorSnapshot s;
  s.state.round = c.round();
  FT_RETURN_IF_ERROR(FromBytes(c.model(), "model", &s.state.x));
  for (const auto& [k, v] : c.vectors()) FT_RETURN_IF_ERROR(FromBytes(v, k, &s.state.vectors[k]));
  for (const auto& [k, v] : c.algorithm_extra())
    FT_RETURN_IF_ERROR(FromBytes(v, k, &s.algorithm_extra[k]));
  for (int i = 0; i < c.accepted_ids_size(); ++i)
    s.accepted_through[c.accepted_ids(i)] = c.accepted_through(i);
  s.cum_bytes_up = c.cum_bytes_up();
  s.cum_bytes_down = c.cum_bytes_down();
  s.wall_s = c.wall_s();
  return s;
}

}  // namespace fedtrain
