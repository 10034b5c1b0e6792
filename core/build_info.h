// What this binary was built from: fedtrain's version (CMake's project version), the git
// commit of the source tree ("<sha>-dirty" when tracked files had uncommitted changes,
// "unknown" when it was not built from a git checkout) and the CMake build type. Printed by
// `fedtrain --version` and recorded in summary.json. Defined in a file the build generates
// (cmake/build_info.cmake).
#ifndef FEDTRAIN_CORE_BUILD_INFO_H_
#define FEDTRAIN_CORE_BUILD_INFO_H_

namespace fedtrain {

const char* BuildVersion();
const char* BuildGitCommit();
const char* BuildType();

}  // namespace fedtrain

#endif  // FEDTRAIN_CORE_BUILD_INFO_H_
