#!/usr/bin/env python3
"""Fails when a source file includes a header from a folder its layer may not use.

fedtrain's folders form layers (docs/architecture.md); a folder may include headers from
its own folder and from the folders listed for it below, nothing else. The check reads the
`#include "folder/..."` lines of every non-test source file (.h, .cc) in the layered
folders, so a wrong-way dependency fails CTest instead of creeping back in silently. Test
files (*_test.cc) may reach higher (e.g. an algorithm test drives a Worker) and are not
checked; neither are bench/, tests/ and examples/, which sit on top of everything.

Usage: check_layering.py SOURCE_ROOT   (exit 0: clean; 1: violations, one line each)
"""
import os
import re
import sys

# Lowest first. Each folder lists the folders it may include besides itself. "fedtrain/v1"
# (the generated messages) counts as proto.
ALLOWED = {
    "core": set(),
    "proto": {"core"},
    "wire": {"core"},
    "compression": {"core", "proto", "wire"},
    "data": {"core"},
    "models": {"core", "data"},
    "aggregators": {"core", "proto", "wire", "compression", "data", "models"},
    "attacks": {"core", "wire"},
    "comm": {"core", "proto"},
    "client": {"core", "proto", "wire", "compression", "data", "models", "aggregators", "comm",
               "attacks"},
    "server": {"core", "proto", "wire", "compression", "data", "models", "aggregators", "comm",
               "attacks"},
    "plot": {"core"},
    "runtime": {"core", "proto", "wire", "compression", "data", "models", "aggregators", "comm",
                "client", "server", "attacks"},
    "sim": {"core", "proto", "wire", "compression", "data", "models", "aggregators", "comm",
            "client", "server", "runtime", "attacks"},
    "fuzz": {"core", "proto", "wire", "compression", "data", "models", "aggregators", "comm",
             "server"},
    "cli": {"core", "proto", "wire", "compression", "data", "models", "aggregators", "comm",
            "client", "server", "runtime", "sim", "plot", "attacks"},
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def target_folder(path):
    if path.startswith("fedtrain/v1/"):
        return "proto"
    head = path.split("/", 1)[0]
    return head if "/" in path and head in ALLOWED else None


def check(root):
    problems = []
    for folder in sorted(ALLOWED):
        top = os.path.join(root, folder)
        if not os.path.isdir(top):
            continue
        for dirpath, _, files in os.walk(top):
            for name in sorted(files):
                if not name.endswith((".h", ".cc")) or name.endswith("_test.cc"):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                with open(path, encoding="utf-8") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        dep = target_folder(m.group(1))
                        if dep is None or dep == folder or dep in ALLOWED[folder]:
                            continue
                        problems.append(f"{rel}:{lineno}: {folder}/ may not include "
                                        f"\"{m.group(1)}\" ({dep}/ is not below {folder}/)")
    return problems


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    root = sys.argv[1]
    if not os.path.isdir(os.path.join(root, "core")):
        print(f"check_layering: {root} is not fedtrain's source root (no core/)", file=sys.stderr)
        return 2
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print(f"check_layering: {len(problems)} include(s) point the wrong way")
        return 1
    print("check_layering: every include points down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
