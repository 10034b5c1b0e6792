// Clock interface: the Coordinator's only source of time, so tests can use a fake clock.
// RealClock is thread-safe.
#ifndef FEDTRAIN_CORE_CLOCK_H_
#define FEDTRAIN_CORE_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fedtrain {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace fedtrain

#endif  // FEDTRAIN_CORE_CLOCK_H_
