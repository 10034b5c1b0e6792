// Placeholder: the family's algorithms are being written.
#include "aggregators/registry.h"

namespace fedtrain {

void RegisterProxFamily(AlgorithmRegistry*) {}

}  // namespace fedtrain
