// Placeholder: the family's algorithms are being written.
#include "aggregators/registry.h"

namespace fedtrain {

void RegisterScaffoldFamily(AlgorithmRegistry*) {}

}  // namespace fedtrain
