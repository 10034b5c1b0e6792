// IDX reader (the (Fashion-)MNIST file format; see idx.h). Files are read through zlib's
// gz* API, which decompresses gzip input and passes plain files through unchanged, so one
// code path serves both. Every error names the file it is about.
#include "data/idx.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

// IDX magic: two zero bytes, the element type (0x08 = unsigned byte), the number of dims.
constexpr uint32_t kImagesMagic = 0x00000803;
constexpr uint32_t kLabelsMagic = 0x00000801;

// Pixels are read in bounded chunks, and at most this many floats are reserved up front, so
// a corrupt header that claims billions of images fails with DataLoss where the real data
// ends instead of first trying to allocate what the header claims.
constexpr size_t kChunkBytes = size_t{1} << 20;
constexpr size_t kMaxReserveFloats = size_t{1} << 26;  // 256 MiB; Fashion-MNIST needs 180

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzHandle = std::unique_ptr<gzFile_s, GzCloser>;

std::string Hex32(uint32_t v) { return absl::StrCat("0x", absl::Hex(v, absl::kZeroPad8)); }

absl::Status OpenError(const std::string& path, int err) {
  if (err == ENOENT || err == ENOTDIR) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  }
  return absl::Status(absl::ErrnoToStatusCode(err),
                      absl::StrCat(path, ": cannot open: ", std::strerror(err)));
}

absl::StatusOr<GzHandle> Open(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return OpenError(path, errno);
  if (S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory, not an IDX file"));
  }
  errno = 0;
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return OpenError(path, errno != 0 ? errno : ENOMEM);
  gzbuffer(f, 256 * 1024);  // fewer, larger reads: the default 8 KiB is slow on 47 MB
  return GzHandle(f);
}

// Reads up to `n` bytes into `buf`; `*got` < n only at the end of the file. DataLoss naming
// the file and `what` on a read error (for gzip input: a corrupt or cut-off stream).
absl::Status ReadUpTo(gzFile f, const std::string& path, const char* what, uint8_t* buf,
                      size_t n, size_t* got) {
  *got = 0;
  while (*got < n) {
    const unsigned want = static_cast<unsigned>(std::min<size_t>(n - *got, INT_MAX));
    const int r = gzread(f, buf + *got, want);
    if (r < 0) {
      int zerr = 0;
      const char* msg = gzerror(f, &zerr);
      return absl::DataLossError(absl::StrCat(path, ": read error in ", what, " after ",
                                              *got, " bytes: ", msg ? msg : "unknown"));
    }
    if (r == 0) break;
    *got += static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

// Reads the `n` bytes of `what` that start `offset` bytes into that block (of `total`
// bytes), in one call; the truncation message counts from the block's start.
absl::Status ReadBlock(gzFile f, const std::string& path, const char* what, uint8_t* buf,
                       size_t n, size_t offset, size_t total) {
  size_t got = 0;
  FT_RETURN_IF_ERROR(ReadUpTo(f, path, what, buf, n, &got));
  if (got < n) {
    return absl::DataLossError(absl::StrCat(path, ": truncated ", what, ": expected ", total,
                                            " bytes, file ends after ", offset + got));
  }
  return absl::OkStatus();
}

// Reads header fields [first, first + count) of a `fields`-field header (big-endian uint32s)
// into out[first..]. The magic is read on its own first, so a wrong file is reported as
// such even when it is shorter than the header we expected.
absl::Status ReadHeader(gzFile f, const std::string& path, uint32_t* out, int first, int count,
                        int fields) {
  uint8_t b[16];
  FT_CHECK(count >= 1 && count <= 4);
  const size_t n = 4 * static_cast<size_t>(count);
  FT_RETURN_IF_ERROR(ReadBlock(f, path, "header", b, n, 4 * static_cast<size_t>(first),
                               4 * static_cast<size_t>(fields)));
  out += first;
  for (int i = 0; i < count; ++i) {
    out[i] = (uint32_t{b[4 * i]} << 24) | (uint32_t{b[4 * i + 1]} << 16) |
             (uint32_t{b[4 * i + 2]} << 8) | uint32_t{b[4 * i + 3]};
  }
  return absl::OkStatus();
}

absl::Status CheckMagic(const std::string& path, uint32_t got, uint32_t want, const char* kind) {
  if (got == want) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(path, ": bad magic ", Hex32(got), ", expected ",
                                          Hex32(want), " (IDX ", kind, ")"));
}

absl::StatusOr<std::vector<int32_t>> ReadLabels(const std::string& path, int num_classes) {
  FT_ASSIGN_OR_RETURN(GzHandle f, Open(path));
  uint32_t h[2];
  FT_RETURN_IF_ERROR(ReadHeader(f.get(), path, h, 0, 1, 2));
  FT_RETURN_IF_ERROR(CheckMagic(path, h[0], kLabelsMagic, "labels: uint8, 1 dimension"));
  FT_RETURN_IF_ERROR(ReadHeader(f.get(), path, h, 1, 1, 2));
  const size_t n = h[1];
  std::vector<uint8_t> raw;
  raw.reserve(std::min(n, kChunkBytes));
  for (size_t done = 0; done < n;) {
    const size_t take = std::min(kChunkBytes, n - done);
    raw.resize(done + take);
    FT_RETURN_IF_ERROR(ReadBlock(f.get(), path, "labels", raw.data() + done, take, done, n));
    done += take;
  }
  std::vector<int32_t> labels(n);
  for (size_t i = 0; i < n; ++i) {
    if (raw[i] >= num_classes) {
      return absl::DataLossError(absl::StrCat(path, ": label ", int{raw[i]}, " of sample ", i,
                                              " is >= num_classes ", num_classes));
    }
    labels[i] = raw[i];
  }
  return labels;
}

}  // namespace

absl::StatusOr<Dataset> LoadIdx(const std::string& images_path, const std::string& labels_path,
                                int num_classes, bool scale) {
  if (num_classes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("LoadIdx: num_classes must be > 0, got ", num_classes));
  }
  // Labels first: they are small, and their count lets us refuse a mismatched pair from the
  // image header alone, before reading 47 MB of pixels.
  FT_ASSIGN_OR_RETURN(std::vector<int32_t> labels, ReadLabels(labels_path, num_classes));

  FT_ASSIGN_OR_RETURN(GzHandle f, Open(images_path));
  uint32_t h[4];
  FT_RETURN_IF_ERROR(ReadHeader(f.get(), images_path, h, 0, 1, 4));
  FT_RETURN_IF_ERROR(
      CheckMagic(images_path, h[0], kImagesMagic, "images: uint8, 3 dimensions"));
  FT_RETURN_IF_ERROR(ReadHeader(f.get(), images_path, h, 1, 3, 4));
  const size_t n = h[1];
  const size_t features = size_t{h[2]} * size_t{h[3]};  // < 2^64: each factor < 2^32
  if (n != labels.size()) {
    return absl::DataLossError(absl::StrCat(images_path, " has ", n, " images but ",
                                            labels_path, " has ", labels.size(), " labels"));
  }
  if (features == 0 && n > 0) {
    return absl::DataLossError(absl::StrCat(images_path, ": images of ", h[2], "x", h[3],
                                            " pixels hold no data"));
  }
  if (n > 0 && features > SIZE_MAX / sizeof(float) / n) {
    return absl::DataLossError(absl::StrCat(images_path, ": header claims ", n, " images of ",
                                            h[2], "x", h[3], " pixels, too many to hold"));
  }
  const size_t total = n * features;

  Dataset d;
  d.num_features = features;
  d.num_classes = num_classes;
  d.features.reserve(std::min(total, kMaxReserveFloats));
  std::vector<uint8_t> chunk(std::min(total, kChunkBytes));
  for (size_t done = 0; done < total;) {
    const size_t take = std::min(kChunkBytes, total - done);
    FT_RETURN_IF_ERROR(
        ReadBlock(f.get(), images_path, "pixels", chunk.data(), take, done, total));
    if (scale) {
      for (size_t i = 0; i < take; ++i) d.features.push_back(static_cast<float>(chunk[i]) / 255.0f);
    } else {
      for (size_t i = 0; i < take; ++i) d.features.push_back(static_cast<float>(chunk[i]));
    }
    done += take;
  }
  d.labels = std::move(labels);
  return d;
}

absl::StatusOr<Dataset> LoadFashionMnist(const std::string& dir, bool train, bool scale) {
  const std::string prefix = absl::StrCat(dir, "/", train ? "train" : "t10k");
  return LoadIdx(prefix + "-images-idx3-ubyte.gz", prefix + "-labels-idx1-ubyte.gz", 10, scale);
}

}  // namespace fedtrain
