// A ClientStateStore on disk, for populations whose per-client state (control variates,
// error-feedback memory, ...) does not fit in RAM, and for a deployed worker that keeps its own
// state across restarts. Same contract as MemoryClientStateStore: Load of a client never saved
// gives an empty state, and saving an empty state stores nothing (stateless algorithms pay
// nothing per client, on disk or in memory).
//
// Layout of a store folder:
//   <dir>/STORE          the store header (written once, at creation)
//   <dir>/LOCK           flock()ed while a store object has the folder open
//   <dir>/<hh>/<id>.cs   one record per client, hh = the client id's low byte in hex (each
//                        folder made when its first record is written)
//
// Crash safety: every write goes to a unique temporary file in the record's folder, which is
// renamed over the record only when complete (rename is atomic on POSIX file systems), so a
// crash leaves either the old record or the new one, never a torn one. With `sync` the file
// is fsync()ed before the rename and the folder after it, which makes a saved state survive a
// power loss as well; without it a process crash is still safe. Temporary files left by a
// crash are never read, and are removed when the store is next opened.
//
// Both files are little-endian binary (x86-64 and aarch64 hosts), and both end with the
// 64-bit FNV-1a (core/vec.h Fnv1a64) of all the bytes before it:
//   STORE:  "FTCSTORE" | u32 format_version | u32 state_version | u64 dim |
//           u32 len, algorithm name | u64 checksum
//   record: "FTCSRECD" | u32 format_version | u32 state_version | u64 dim | u64 client id |
//           u32 len, algorithm name |
//           u32 n, n x (u32 len, name | u64 count | count x f32)   ClientState::vectors
//           u32 n, n x (u32 len, name | u64 count | count x f64)   ClientState::wide
//           u64 checksum
// Each record repeats the store's identity, so a record copied in from another store is
// refused too. Opening a folder made for another model dimension, algorithm or state version
// is refused with FailedPrecondition naming both; a record that fails its checksum or does not
// parse is DataLoss naming the client and the file: a damaged state is never used.
//
// Memory: no index is kept (the file system is the index), so memory use does not depend on
// how many clients are stored; a Load or Save holds one client's state at a time.
// Thread-safe: different clients may be loaded and saved concurrently (no shared mutable state
// but counters). Calls for the same client must not overlap (the ClientStateStore contract:
// a client's state is only touched while that client runs a task). One store object per
// folder, across processes too (the LOCK file).
#ifndef FEDTRAIN_CLIENT_FILE_CLIENT_STATE_STORE_H_
#define FEDTRAIN_CLIENT_FILE_CLIENT_STATE_STORE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/client_state_store.h"

namespace fedtrain {

struct FileStateStoreOptions {
  std::string dir;        // created when missing
  uint64_t dim = 0;       // model dimension d
  std::string algorithm;  // AlgorithmFactory::name()
  int state_version = 0;  // AlgorithmFactory::state_version()
  bool sync = true;       // fsync before rename (power-loss durability); see above
};

class FileClientStateStore final : public ClientStateStore {
 public:
  static constexpr uint32_t kFormatVersion = 1;

  // Creates the folder and its header, or opens an existing one. FailedPrecondition when the
  // folder was made for another d, algorithm or state version (naming both), or is open in
  // another store object; DataLoss when STORE is damaged; InvalidArgument for an empty dir or
  // algorithm name; Internal for file-system errors (naming the path).
  static absl::StatusOr<std::unique_ptr<FileClientStateStore>> Open(FileStateStoreOptions opts);
  ~FileClientStateStore() override;

  absl::Status Load(ClientId id, ClientState* out) override;
  absl::Status Save(ClientId id, ClientState state) override;

  // True when at least one client's record is stored (scans the folder; stops at the first).
  absl::StatusOr<bool> HasRecords() const;
  // The record file of client `id` (whether or not it exists).
  std::string RecordPath(ClientId id) const;
  const FileStateStoreOptions& options() const { return opts_; }

  struct Stats {
    uint64_t loads = 0, saves = 0;  // calls that read / wrote a record
    uint64_t bytes_read = 0, bytes_written = 0;
  };
  Stats stats() const;

 private:
  FileClientStateStore(FileStateStoreOptions opts, int lock_fd)
      : opts_(std::move(opts)), lock_fd_(lock_fd) {}

  const FileStateStoreOptions opts_;
  const int lock_fd_;
  std::atomic<uint64_t> next_tmp_{0};
  std::atomic<uint64_t> loads_{0}, saves_{0}, bytes_read_{0}, bytes_written_{0};
};

}  // namespace fedtrain

#endif  // FEDTRAIN_CLIENT_FILE_CLIENT_STATE_STORE_H_
