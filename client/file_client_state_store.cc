#include "client/file_client_state_store.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include "absl/strings/string_view.h"
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"
#include "core/vec.h"

namespace fedtrain {
namespace {

constexpr char kStoreMagic[8] = {'F', 'T', 'C', 'S', 'T', 'O', 'R', 'E'};
constexpr char kRecordMagic[8] = {'F', 'T', 'C', 'S', 'R', 'E', 'C', 'D'};
constexpr int kNumShards = 256;  // <dir>/00 .. <dir>/ff, by the client id's low byte
constexpr absl::string_view kRecordSuffix = ".cs";
constexpr absl::string_view kTmpInfix = ".tmp.";

std::string ErrnoText(int err) { return std::strerror(err); }

absl::Status FsError(const std::string& what, const std::string& path, int err) {
  return absl::InternalError(absl::StrCat("client state store: cannot ", what, " ", path, ": ",
                                          ErrnoText(err)));
}

std::string ShardDir(const std::string& dir, ClientId id) {
  return absl::StrFormat("%s/%02x", dir, static_cast<unsigned>(id & 0xff));
}

// Appends little-endian fields (the host order on every platform we build for).
class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  void Bytes(const void* p, size_t n) {
    if (n > 0) out_->append(static_cast<const char*>(p), n);  // p may be null when n == 0
  }
  void U32(uint32_t v) { Bytes(&v, sizeof v); }
  void U64(uint64_t v) { Bytes(&v, sizeof v); }
  void Str(const std::string& s) {
    U32(static_cast<uint32_t>(s.size()));
    Bytes(s.data(), s.size());
  }
  void Checksum() { U64(Fnv1a64(out_->data(), out_->size())); }

 private:
  std::string* out_;
};

// Reads the fields Writer wrote; every read is bounds-checked and a failure sticks.
class Reader {
 public:
  explicit Reader(absl::string_view in) : in_(in) {}
  bool Bytes(void* p, size_t n) {
    if (!ok_ || n > in_.size() - pos_) return ok_ = false;
    if (n == 0) return true;  // p may be null (an empty vector's data())
    std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool U32(uint32_t* v) { return Bytes(v, sizeof *v); }
  bool U64(uint64_t* v) { return Bytes(v, sizeof *v); }
  bool Str(std::string* s) {
    uint32_t n = 0;
    if (!U32(&n) || n > remaining()) return ok_ = false;
    s->assign(in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  // A count of `elem`-byte items that must fit in what is left (so a damaged count can
  // never make us allocate more than the file holds).
  bool Count(size_t elem, uint64_t* n) {
    if (!U64(n) || *n > remaining() / elem) return ok_ = false;
    return true;
  }
  size_t remaining() const { return in_.size() - pos_; }
  bool ok() const { return ok_; }

 private:
  absl::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// The whole file; NotFound (quietly) when it does not exist.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(path);
    return FsError("open", path, errno);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return FsError("stat", path, err);
  }
  std::string buf(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < buf.size()) {
    const ssize_t r = ::read(fd, buf.data() + done, buf.size() - done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      const int err = errno;
      ::close(fd);
      return FsError("read", path, err);
    }
    if (r == 0) break;  // shrank under us: the checksum will say so
    done += static_cast<size_t>(r);
  }
  ::close(fd);
  buf.resize(done);
  return buf;
}

absl::Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return FsError("open folder", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return FsError("fsync folder", dir, err);
  return absl::OkStatus();
}

// Writes `bytes` to `tmp`, then renames it to `path` (see the header: crash safety).
absl::Status WriteAtomically(const std::string& tmp, const std::string& path,
                             const std::string& bytes, bool sync) {
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0 && errno == ENOENT) {  // the shard folder's first record
    const std::string dir = std::filesystem::path(tmp).parent_path().string();
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return FsError("create", dir, errno);
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  }
  if (fd < 0) return FsError("create", tmp, errno);
  absl::Status status;
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      status = FsError("write", tmp, errno);
      break;
    }
    done += static_cast<size_t>(w);
  }
  if (status.ok() && sync && ::fsync(fd) != 0) status = FsError("fsync", tmp, errno);
  if (::close(fd) != 0 && status.ok()) status = FsError("close", tmp, errno);
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0)
    status = FsError(absl::StrCat("rename ", tmp, " to"), path, errno);
  if (!status.ok()) {
    ::unlink(tmp.c_str());
    return status;
  }
  if (sync) return SyncDir(std::filesystem::path(path).parent_path().string());
  return absl::OkStatus();
}

std::string Identity(const std::string& algorithm, uint64_t state_version, uint64_t dim) {
  return absl::StrCat("algorithm \"", algorithm, "\" (state version ", state_version,
                      "), d = ", dim);
}

// True when the last 8 bytes of `b` are the FNV-1a of the bytes before them.
bool ChecksumMatches(const std::string& b) {
  uint64_t stored;
  if (b.size() < sizeof stored) return false;
  std::memcpy(&stored, b.data() + b.size() - sizeof stored, sizeof stored);
  return Fnv1a64(b.data(), b.size() - sizeof stored) == stored;
}

bool IsTmpName(absl::string_view name) { return absl::StrContains(name, kTmpInfix); }

bool IsRecordName(absl::string_view name) {
  return !IsTmpName(name) && name.size() > kRecordSuffix.size() &&
         absl::EndsWith(name, kRecordSuffix);
}

}  // namespace

absl::StatusOr<std::unique_ptr<FileClientStateStore>> FileClientStateStore::Open(
    FileStateStoreOptions opts) {
  namespace fs = std::filesystem;
  if (opts.dir.empty())
    return absl::InvalidArgumentError("client state store: the folder name is empty");
  if (opts.algorithm.empty())
    return absl::InvalidArgumentError("client state store: the algorithm name is empty");
  if (opts.state_version < 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "client state store: state version must be >= 0, got ", opts.state_version));
  std::error_code ec;
  fs::create_directories(opts.dir, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("client state store: cannot create folder ",
                                            opts.dir, ": ", ec.message()));

  // One store object per folder: two writers of one client would race on its record.
  const std::string lock_path = opts.dir + "/LOCK";
  const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) return FsError("open", lock_path, errno);
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(lock_fd);
    if (err == EWOULDBLOCK)
      return absl::FailedPreconditionError(absl::StrCat(
          "client state store ", opts.dir,
          " is already open (in this or another process); one store per folder"));
    return FsError("lock", lock_path, err);
  }
  // From here on the object owns lock_fd (its destructor closes it) whatever happens.
  std::unique_ptr<FileClientStateStore> store(new FileClientStateStore(opts, lock_fd));

  const std::string header_path = opts.dir + "/STORE";
  const std::string want =
      Identity(opts.algorithm, static_cast<uint64_t>(opts.state_version), opts.dim);
  absl::StatusOr<std::string> header = ReadWholeFile(header_path);
  if (header.ok()) {
    const std::string& h = *header;
    if (h.size() < sizeof(kStoreMagic) + sizeof(uint64_t) || !ChecksumMatches(h))
      return absl::DataLossError(absl::StrCat("client state store header ", header_path,
                                              " is damaged (checksum mismatch)"));
    Reader r(absl::string_view(h).substr(0, h.size() - sizeof(uint64_t)));
    char magic[sizeof(kStoreMagic)];
    uint32_t format = 0, state_version = 0;
    uint64_t dim = 0;
    std::string algorithm;
    r.Bytes(magic, sizeof magic);
    r.U32(&format);
    if (!r.ok() || std::memcmp(magic, kStoreMagic, sizeof magic) != 0)
      return absl::DataLossError(
          absl::StrCat(header_path, " is not a fedtrain client state store header"));
    if (format != kFormatVersion)
      return absl::UnimplementedError(absl::StrCat(
          "client state store ", opts.dir, " has format version ", format,
          "; this build reads version ", kFormatVersion));
    r.U32(&state_version);
    r.U64(&dim);
    r.Str(&algorithm);
    if (!r.ok() || r.remaining() != 0)
      return absl::DataLossError(absl::StrCat("client state store header ", header_path,
                                              " is damaged (bad layout)"));
    if (algorithm != opts.algorithm || state_version != static_cast<uint32_t>(opts.state_version) ||
        dim != opts.dim)
      return absl::FailedPreconditionError(absl::StrCat(
          "client state store ", opts.dir, " was made for ",
          Identity(algorithm, state_version, dim), "; this run needs ", want,
          ": a state is never reused across models or algorithms; use another folder, or "
          "delete this one to start over"));
  } else if (absl::IsNotFound(header.status())) {
    std::string h;
    Writer w(&h);
    w.Bytes(kStoreMagic, sizeof kStoreMagic);
    w.U32(kFormatVersion);
    w.U32(static_cast<uint32_t>(opts.state_version));
    w.U64(opts.dim);
    w.Str(opts.algorithm);
    w.Checksum();
    const std::string tmp = absl::StrCat(header_path, kTmpInfix, ::getpid());
    ::unlink(tmp.c_str());  // a crash's leftover (we hold the lock)
    FT_RETURN_IF_ERROR(WriteAtomically(tmp, header_path, h, opts.sync));
  } else {
    return header.status();
  }

  // Shard folders are made on first use. Temporary files in them are a crash's leftovers
  // (we hold the lock: nobody is writing one).
  for (int s = 0; s < kNumShards; ++s) {
    const std::string shard = absl::StrFormat("%s/%02x", opts.dir, s);
    for (fs::directory_iterator it(shard, ec), end; !ec && it != end; it.increment(ec)) {
      if (IsTmpName(it->path().filename().string())) {
        std::error_code rm;
        fs::remove(it->path(), rm);
      }
    }
    if (ec && ec != std::errc::no_such_file_or_directory)
      return absl::InternalError(absl::StrCat("client state store: cannot list folder ", shard,
                                              ": ", ec.message()));
  }
  return store;
}

FileClientStateStore::~FileClientStateStore() { ::close(lock_fd_); }

std::string FileClientStateStore::RecordPath(ClientId id) const {
  return absl::StrCat(ShardDir(opts_.dir, id), "/", id, kRecordSuffix);
}

absl::Status FileClientStateStore::Load(ClientId id, ClientState* out) {
  const std::string path = RecordPath(id);
  absl::StatusOr<std::string> bytes = ReadWholeFile(path);
  if (absl::IsNotFound(bytes.status())) {
    *out = ClientState{};
    return absl::OkStatus();
  }
  if (!bytes.ok()) {
    return absl::Status(bytes.status().code(),
                        absl::StrCat("client ", id, ": ", bytes.status().message()));
  }
  const std::string& b = *bytes;
  auto damaged = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat("client ", id, ": state record ", path,
                                            " is damaged (", what,
                                            "); refusing to use it. Delete the file to "
                                            "restart this client from an empty state"));
  };
  if (b.size() < sizeof(kRecordMagic) + sizeof(uint64_t)) return damaged("truncated");
  if (!ChecksumMatches(b)) return damaged("checksum mismatch");

  Reader r(absl::string_view(b).substr(0, b.size() - sizeof(uint64_t)));
  char magic[sizeof(kRecordMagic)];
  uint32_t format = 0, state_version = 0;
  uint64_t dim = 0, client = 0;
  std::string algorithm;
  r.Bytes(magic, sizeof magic);
  r.U32(&format);
  if (!r.ok() || std::memcmp(magic, kRecordMagic, sizeof magic) != 0)
    return damaged("not a client state record");
  if (format != kFormatVersion)
    return absl::UnimplementedError(absl::StrCat("client ", id, ": state record ", path,
                                                 " has format version ", format,
                                                 "; this build reads version ",
                                                 kFormatVersion));
  r.U32(&state_version);
  r.U64(&dim);
  r.U64(&client);
  r.Str(&algorithm);
  if (!r.ok()) return damaged("bad header");
  if (client != id) return damaged(absl::StrCat("it holds client ", client));
  if (algorithm != opts_.algorithm ||
      state_version != static_cast<uint32_t>(opts_.state_version) || dim != opts_.dim)
    return absl::FailedPreconditionError(absl::StrCat(
        "client ", id, ": state record ", path, " was written for ",
        Identity(algorithm, state_version, dim), "; this store is for ",
        Identity(opts_.algorithm, static_cast<uint64_t>(opts_.state_version), opts_.dim)));

  ClientState state;
  uint32_t n = 0;
  r.U32(&n);
  for (uint32_t i = 0; r.ok() && i < n; ++i) {
    std::string name;
    uint64_t count = 0;
    if (!r.Str(&name) || !r.Count(sizeof(float), &count)) break;
    std::vector<float> v(count);
    r.Bytes(v.data(), count * sizeof(float));
    if (!state.vectors.emplace(std::move(name), std::move(v)).second)
      return damaged("a vector name repeats");
  }
  r.U32(&n);
  for (uint32_t i = 0; r.ok() && i < n; ++i) {
    std::string name;
    uint64_t count = 0;
    if (!r.Str(&name) || !r.Count(sizeof(double), &count)) break;
    std::vector<double> v(count);
    r.Bytes(v.data(), count * sizeof(double));
    if (!state.wide.emplace(std::move(name), std::move(v)).second)
      return damaged("a wide vector name repeats");
  }
  if (!r.ok() || r.remaining() != 0) return damaged("bad layout");
  *out = std::move(state);
  loads_.fetch_add(1, std::memory_order_relaxed);
  bytes_read_.fetch_add(b.size(), std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status FileClientStateStore::Save(ClientId id, ClientState state) {
  const std::string path = RecordPath(id);
  if (state.vectors.empty() && state.wide.empty()) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return absl::InternalError(absl::StrCat("client ", id, ": cannot remove ", path, ": ",
                                              ErrnoText(errno)));
    return absl::OkStatus();
  }
  size_t size = 64 + opts_.algorithm.size();
  for (const auto& [name, v] : state.vectors) size += 16 + name.size() + v.size() * sizeof(float);
  for (const auto& [name, v] : state.wide) size += 16 + name.size() + v.size() * sizeof(double);
  std::string buf;
  buf.reserve(size);
  Writer w(&buf);
  w.Bytes(kRecordMagic, sizeof kRecordMagic);
  w.U32(kFormatVersion);
  w.U32(static_cast<uint32_t>(opts_.state_version));
  w.U64(opts_.dim);
  w.U64(id);
  w.Str(opts_.algorithm);
  w.U32(static_cast<uint32_t>(state.vectors.size()));
  for (const auto& [name, v] : state.vectors) {
    w.Str(name);
    w.U64(v.size());
    w.Bytes(v.data(), v.size() * sizeof(float));
  }
  w.U32(static_cast<uint32_t>(state.wide.size()));
  for (const auto& [name, v] : state.wide) {
    w.Str(name);
    w.U64(v.size());
    w.Bytes(v.data(), v.size() * sizeof(double));
  }
  w.Checksum();
  // Unique per write, so even overlapping writes of one client never share a temporary.
  const std::string tmp = absl::StrCat(path, kTmpInfix, ::getpid(), ".",
                                       next_tmp_.fetch_add(1, std::memory_order_relaxed));
  if (absl::Status s = WriteAtomically(tmp, path, buf, opts_.sync); !s.ok())
    return absl::Status(s.code(), absl::StrCat("client ", id, ": ", s.message()));
  saves_.fetch_add(1, std::memory_order_relaxed);
  bytes_written_.fetch_add(buf.size(), std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::StatusOr<bool> FileClientStateStore::HasRecords() const {
  namespace fs = std::filesystem;
  for (int s = 0; s < kNumShards; ++s) {
    const std::string shard = absl::StrFormat("%s/%02x", opts_.dir, s);
    std::error_code ec;
    for (fs::directory_iterator it(shard, ec), end; !ec && it != end; it.increment(ec)) {
      if (IsRecordName(it->path().filename().string())) return true;
    }
    if (ec && ec != std::errc::no_such_file_or_directory)
      return absl::InternalError(absl::StrCat("client state store: cannot list folder ", shard,
                                              ": ", ec.message()));
  }
  return false;
}

FileClientStateStore::Stats FileClientStateStore::stats() const {
  Stats s;
  s.loads = loads_.load(std::memory_order_relaxed);
  s.saves = saves_.load(std::memory_order_relaxed);
  s.bytes_read = bytes_read_.load(std::memory_order_relaxed);
  s.bytes_written = bytes_written_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace fedtrain
