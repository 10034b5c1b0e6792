// Process-wide allocator settings for the deployed processes, which move model-sized buffers
// (tens of MB to GB) every round.
#ifndef FEDTRAIN_CORE_MEMORY_H_
#define FEDTRAIN_CORE_MEMORY_H_

namespace fedtrain {

// glibc malloc serves allocations above 128 KiB (adaptively up to 32 MiB) with fresh mmap()s
// and returns them on free, and threads other than main allocate from arenas that mmap()
// anything above 64 MiB, so every round's model-sized buffers are page-faulted and zeroed by
// the kernel anew. This keeps allocations below 2 GiB on the one main heap and freed memory
// in the process for the next round (up to 2 GiB of it: the resident size stays near its
// peak). Measured by bench/grpc_push_bench, which prints the page faults of a push (~10 for
// 1 GiB, where a fresh buffer would be 262,144). Call once, early in main, before threads
// start; a no-op on other C libraries.
void KeepLargeAllocations();

}  // namespace fedtrain

#endif  // FEDTRAIN_CORE_MEMORY_H_
