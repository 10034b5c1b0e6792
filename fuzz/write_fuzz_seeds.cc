// Writes the fuzzers' seed inputs (checked in under fuzz/corpus/): valid inputs made by the
// code the fuzzers test, in the input formats the fuzzers' headers describe.
// Usage: write_fuzz_seeds CORPUS_DIR   (writes CORPUS_DIR/{push_decoder,membership,checkpoint}/)
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "fedtrain/v1/messages.pb.h"
#include "server/checkpoint.h"

namespace {

namespace fs = std::filesystem;

bool Write(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

std::string Bytes(std::initializer_list<uint8_t> b) { return std::string(b.begin(), b.end()); }

void Varint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// An update's chunk stream as GrpcWorkerClient::Push writes it: the envelope, then each
// tensor's bytes, in chunks of at most `chunk_data` data bytes; the first chunk carries the
// header. Framed for push_decoder_fuzzer: options byte, piece size, then u16 length + chunk.
std::string PushSeed(const fedtrain::v1::UpdateMsg& update, size_t chunk_data, uint8_t opts,
                     uint8_t piece_size) {
  fedtrain::v1::UpdateMsg envelope_msg = update;
  std::string tensors;
  std::vector<uint64_t> part_bytes;
  for (fedtrain::v1::Tensor& t : *envelope_msg.mutable_up()->mutable_parts()) {
    part_bytes.push_back(t.data().size());
    tensors += t.data();
    t.clear_data();
  }
  const std::string all = envelope_msg.SerializeAsString() + tensors;
  std::string out;
  out.push_back(static_cast<char>(opts));
  out.push_back(static_cast<char>(piece_size));
  size_t off = 0;
  bool first = true;
  while (first || off < all.size()) {
    std::string chunk;
    if (first) {
      chunk.push_back(0x18);  // 3: total_bytes
      Varint(all.size(), &chunk);
      if (!part_bytes.empty()) {
        std::string packed;
        for (uint64_t n : part_bytes) Varint(n, &packed);
        chunk.push_back(0x2A);  // 5: part_bytes
        Varint(packed.size(), &chunk);
        chunk += packed;
      }
    }
    const size_t n = std::min(chunk_data, all.size() - off);
    chunk.push_back(0x22);  // 4: data
    Varint(n, &chunk);
    chunk.append(all, off, n);
    off += n;
    first = false;
    out.push_back(static_cast<char>(chunk.size() & 0xFF));
    out.push_back(static_cast<char>(chunk.size() >> 8));
    out += chunk;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: write_fuzz_seeds CORPUS_DIR\n");
    return 2;
  }
  const fs::path dir = argv[1];
  bool ok = true;

  // Push: an update with two tensors outside the envelope, and one without.
  fedtrain::v1::UpdateMsg u;
  u.set_round(3);
  u.set_client_id(5);
  u.set_num_samples(10);
  u.set_local_steps(2);
  u.set_train_loss(0.5);
  fedtrain::v1::Tensor* t = u.mutable_up()->add_parts();
  t->set_codec("dense/1");
  t->set_dim(4);
  t->set_data(std::string(16, '\x3f'));
  t = u.mutable_up()->add_parts();
  t->set_codec("topk/1");
  t->set_dim(8);
  t->set_data(std::string(24, '\x01'));
  (*u.mutable_up()->mutable_scalars())["loss"] = 1.0;
  ok &= Write(dir / "push_decoder" / "two_tensors", PushSeed(u, 20, 0x00, 7));
  ok &= Write(dir / "push_decoder" / "two_tensors_referenced", PushSeed(u, 64, 0x08, 0));
  fedtrain::v1::UpdateMsg plain = u;
  for (fedtrain::v1::Tensor& p : *plain.mutable_up()->mutable_parts()) p.clear_data();
  plain.mutable_up()->mutable_parts()->RemoveLast();
  ok &= Write(dir / "push_decoder" / "envelope_only", PushSeed(plain, 1024, 0x00, 0));

  // Membership: three slots; three joins, streams, heartbeats, time, sessions, routing, a
  // worker gone and its slot taken over; and one valid session credential.
  const std::string ops = Bytes({2, 10,                          // 3 slots, 11 ms beats
                                 0x00, 'a', 'b', 'c', 'd',        // three joins
                                 0x00, 'e', 'f', 'g', 'h',        //
                                 0x00, 'i', 'j', 'k', 'l',        //
                                 0x14, 0x24, 0x34,                // OpenStream 1, 2, 3
                                 0x13, 0x23,                      // Heartbeat 1, 2
                                 0x17, 1, 2,                      // sessions of worker 1
                                 0x08, 0x18, 0x28,                // TaskRecipient 0, 1, 2
                                 0x09, 1, 2,                      // a client's slot
                                 0x25, 0xf6,                      // 2's stream closes; time
                                 0x11, 'm', 'n', 'o', 'p',        // a join into slot 1
                                 0x32, 0x09, 0, 7,                // 3 leaves; routing
                                 0x01, 'q', 'r', 's', 't'});      // slot 0 is live: refused
  ok &= Write(dir / "membership" / "join_route_rejoin", ops);
  ok &= Write(dir / "membership" / "credential",
              std::string("\x02\x0a\x0f", 3) +
                  absl::StrCat("17.", absl::BytesToHexString(std::string(32, '\x5a'))));

  // Checkpoint: a file SaveCheckpoint wrote, as a whole file and as a body to frame.
  fedtrain::CoordinatorSnapshot snap;
  snap.state.round = 4;
  snap.state.x = {1.0f, -2.0f, 0.5f};
  snap.state.vectors["momentum"] = {0.25f, 0.0f, 1.0f};
  snap.algorithm_extra["fedopt.m"] = {1.0, 2.0};
  snap.accepted_through = {{0, 3}, {7, 4}};
  snap.cum_bytes_up = 1000;
  snap.cum_bytes_down = 2000;
  snap.wall_s = 1.5;
  const fs::path tmp = fs::temp_directory_path() / absl::StrCat("fedtrain_seed_ckpt_", getpid());
  if (!fedtrain::SaveCheckpoint(tmp.string(), snap, {"fedavg", "seed-fingerprint"}).ok()) {
    std::fprintf(stderr, "write_fuzz_seeds: cannot write a checkpoint at %s\n", tmp.c_str());
    return 1;
  }
  std::ifstream in(tmp, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string file = ss.str();
  fs::remove(tmp);
  ok &= Write(dir / "checkpoint" / "file", std::string(1, '\x00') + file);
  ok &= Write(dir / "checkpoint" / "body",
              std::string(1, '\x01') + file.substr(16, file.size() - 24));
  ok &= Write(dir / "checkpoint" / "body_own_identity",
              std::string(1, '\x03') + file.substr(16, file.size() - 24));
  if (!ok) {
    std::fprintf(stderr, "write_fuzz_seeds: cannot write under %s\n", dir.c_str());
    return 1;
  }
  return 0;
}
