#!/usr/bin/python3
"""Static check of deploy/Dockerfile, for machines without Docker (the project's own).

usage: /usr/bin/python3 deploy/check_dockerfile.py --binary FILE --binary-dir DIR
                        [--source-dir DIR] [--dockerfile FILE] [--skip-packages]

--binary is the fedtrain executable CMake built ($<TARGET_FILE:fedtrain>) in the build tree
--binary-dir (CMAKE_BINARY_DIR); --source-dir is the repository (the build context, default:
this script's parent folder); --dockerfile defaults to deploy/Dockerfile there, and its
ignore file is <dockerfile>.dockerignore beside it. Checks:
  - stages: the build stage is FROM debian:bookworm, the last (runtime) stage FROM
    debian:bookworm-slim; stage names are unique; COPY --from names an earlier stage;
  - every COPY/ADD source from the context exists in the repository and is not excluded by
    the ignore file, which must exclude .git, scripts/build.sh's build folders and
    --binary-dir when it is in the repository (a host CMakeCache.txt copied into the image
    breaks the build there);
  - every script a RUN starts (scripts/*.sh, deploy/*.sh) exists and was copied into the
    stage before that RUN;
  - scripts/install_deps.sh and `scripts/build.sh release` run in the build stage; the file
    the runtime stage copies out of it is exactly where that build puts the fedtrain binary
    (scripts/build.sh's folder + the binary's path in the CMake build tree), and
    deploy/runtime_packages.sh runs on that same file;
  - the ENTRYPOINT (exec form) is the copied binary, named like the CMake target's file;
  - deploy/runtime_packages.sh, run here on --binary, succeeds and its packages hold every
    shared library the binary loads (checked the other way round, from `dpkg-query -L`);
  - USER is numeric and non-root, and equals the runAsUser of the manifests in deploy/k8s.
Exits 1 naming the Dockerfile line of each problem, 2 on bad usage.
"""
import argparse
import glob
import json
import os
import posixpath
import re
import shlex
import subprocess
import sys

PROG = "check_dockerfile.py"


class Instr:
    def __init__(self, line, cmd, args):
        self.line, self.cmd, self.args = line, cmd, args


def parse(path):
    """Instructions of a Dockerfile, continuation lines joined, comments dropped."""
    out, buf, start = [], "", None
    with open(path) as f:
        for n, raw in enumerate(f, start=1):
            line = raw.rstrip("\n")
            if not buf and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if buf and line.lstrip().startswith("#"):
                continue  # comment lines inside a continued instruction
            if start is None:
                start = n
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            buf += line
            cmd, _, args = buf.strip().partition(" ")
            out.append(Instr(start, cmd.upper(), args.strip()))
            buf, start = "", None
    if buf:
        cmd, _, args = buf.strip().partition(" ")
        out.append(Instr(start, cmd.upper(), args.strip()))
    return out


def split_args(args):
    """Words of an instruction: JSON (exec) form or shell-like form."""
    if args.startswith("["):
        try:
            v = json.loads(args)
            if isinstance(v, list) and all(isinstance(x, str) for x in v):
                return v, True
        except ValueError:
            pass
    return shlex.split(args), False


def ignore_patterns(path):
    pats = []
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    neg = line.startswith("!")
                    p = posixpath.normpath(line.lstrip("!").lstrip("/"))
                    pats.append((neg, glob_regex(p)))
    return pats


def glob_regex(p):
    rx = ""
    i = 0
    while i < len(p):
        if p.startswith("**/", i):
            rx += "(.*/)?"
            i += 3
        elif p.startswith("**", i):
            rx += ".*"
            i += 2
        elif p[i] == "*":
            rx += "[^/]*"
            i += 1
        elif p[i] == "?":
            rx += "[^/]"
            i += 1
        else:
            rx += re.escape(p[i])
            i += 1
    return re.compile(rx + "$")


def excluded(rel, pats):
    """Docker semantics: a path is excluded when it or a parent matches (last match wins)."""
    rel = posixpath.normpath(rel)
    if rel == ".":
        return False
    parts = rel.split("/")
    result = False
    for neg, rx in pats:
        for k in range(1, len(parts) + 1):
            if rx.match("/".join(parts[:k])):
                result = not neg
                break
    return result


def shown(path, src):
    """path relative to the repository when inside it."""
    return os.path.relpath(path, src) if path.startswith(src + os.sep) else path


def build_dirs(build_sh):
    """Every folder scripts/build.sh builds into (its dir=... assignments)."""
    with open(build_sh) as f:
        return sorted(set(re.findall(r"^\s*dir=([^\s;]+)", f.read(), re.M)))


def build_dir_of_release(build_sh):
    """The folder scripts/build.sh builds the release mode into."""
    with open(build_sh) as f:
        text = f.read()
    m = re.search(r"^\s*release\)\s*\n\s*dir=([^\s;]+)", text, re.M)
    return m.group(1) if m else None


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(prog=PROG, description="Static check of deploy/Dockerfile.")
    ap.add_argument("--binary", required=True)
    ap.add_argument("--binary-dir", required=True)
    ap.add_argument("--source-dir", default=os.path.dirname(here))
    ap.add_argument("--dockerfile")
    ap.add_argument("--skip-packages", action="store_true",
                    help="skip the runtime_packages.sh check (a few seconds: dpkg file lists)")
    a = ap.parse_args()
    src = os.path.abspath(a.source_dir)
    dockerfile = os.path.abspath(a.dockerfile or os.path.join(src, "deploy", "Dockerfile"))
    for p, what in ((dockerfile, "Dockerfile"), (a.binary, "--binary")):
        if not os.path.isfile(p):
            print(f"{PROG}: {what} {p}: no such file", file=sys.stderr)
            return 2
    binary = os.path.abspath(a.binary)
    bindir = os.path.abspath(a.binary_dir)
    if not binary.startswith(bindir + os.sep):
        print(f"{PROG}: --binary {binary} is not inside --binary-dir {bindir}", file=sys.stderr)
        return 2

    errors = []
    name = shown(dockerfile, src)

    def err(instr, msg):
        errors.append(f"{name}:{instr.line}: {instr.cmd}: {msg}" if instr else f"{name}: {msg}")

    ignore_file = dockerfile + ".dockerignore"
    if not os.path.isfile(ignore_file):
        ignore_file = os.path.join(src, ".dockerignore")
    pats = ignore_patterns(ignore_file)
    if not os.path.isfile(ignore_file):
        err(None, f"no {os.path.basename(dockerfile)}.dockerignore beside it (nor .dockerignore "
            "in the context): the whole repository, build folders included, would be sent")
    # Version control, scripts/build.sh's build folders, and this build tree if it is in
    # the repository.
    musts = [".git"] + build_dirs(os.path.join(src, "scripts", "build.sh"))
    if bindir.startswith(src + os.sep):
        musts.append(os.path.relpath(bindir, src))
    for must in musts:
        if not excluded(must, pats):
            err(None, f"{shown(ignore_file, src)} does not exclude '{must}' from the context")

    instrs = parse(dockerfile)
    stages = []  # dicts: name, base, instrs, workdir, copies [(src_rel or None, from, src, dest)]
    for ins in instrs:
        if ins.cmd == "FROM":
            words = ins.args.split()
            stage = {"name": None, "base": words[0] if words else "", "from": ins, "instrs": [],
                     "workdir": "/", "copies": [], "runs": []}
            if len(words) == 3 and words[1].upper() == "AS":
                stage["name"] = words[2]
                if any(s["name"] == words[2] for s in stages):
                    err(ins, f"stage name '{words[2]}' used twice")
            elif len(words) != 1:
                err(ins, f"cannot read '{ins.args}'")
            stages.append(stage)
            continue
        if not stages:
            if ins.cmd != "ARG":
                err(ins, "before the first FROM")
            continue
        st = stages[-1]
        st["instrs"].append(ins)
        if ins.cmd == "WORKDIR":
            st["workdir"] = posixpath.normpath(posixpath.join(st["workdir"], ins.args))
        elif ins.cmd in ("COPY", "ADD"):
            words, _ = split_args(ins.args)
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            if len(paths) < 2:
                err(ins, "needs a source and a destination")
                continue
            frm = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            dest = paths[-1]
            dest_abs = posixpath.normpath(posixpath.join(st["workdir"], dest))
            if dest.endswith("/") or dest in (".", "./"):
                dest_abs += "/"
            for s in paths[:-1]:
                st["copies"].append((frm, s, dest_abs, ins))
                if frm is None:
                    if s.startswith("/") or posixpath.normpath(s).startswith(".."):
                        err(ins, f"source '{s}' is outside the build context")
                    elif not glob.glob(os.path.join(src, s)):
                        err(ins, f"source '{s}' does not exist in {src}")
                    elif excluded(s, pats):
                        err(ins, f"source '{s}' is excluded by {os.path.basename(ignore_file)}")
                elif not any(x["name"] == frm for x in stages[:-1]):
                    err(ins, f"--from={frm} names no earlier stage")
        elif ins.cmd == "RUN":
            st["runs"].append(ins)
            for script in re.findall(r"(?<![\w/.-])((?:scripts|deploy)/[\w./-]+\.sh)", ins.args):
                rel = script
                target = posixpath.normpath(posixpath.join(st["workdir"], rel))
                if not os.path.isfile(os.path.join(src, rel)):
                    err(ins, f"runs {rel}, which is not in the repository")
                    continue
                ok = False
                for frm, s, dest_abs, cins in st["copies"]:
                    if frm is not None or cins.line > ins.line:
                        continue
                    if s in (".", "./"):
                        base = dest_abs.rstrip("/") or "/"
                        if target.startswith(base.rstrip("/") + "/") and \
                                posixpath.relpath(target, base) == posixpath.normpath(rel):
                            ok = not excluded(rel, pats)
                    else:
                        d = dest_abs + posixpath.basename(s) if dest_abs.endswith("/") else dest_abs
                        if d == target and posixpath.normpath(s) == posixpath.normpath(rel):
                            ok = True
                    if ok:
                        break
                if not ok:
                    err(ins, f"runs {rel} ({target}) before any COPY brought it into the stage")

    if len(stages) < 2:
        err(None, "want a build stage and a runtime stage")
        return report(errors)
    build, runtime = stages[0], stages[-1]
    if build["base"] != "debian:bookworm":
        err(build["from"], f"the build stage is FROM {build['base']}; want debian:bookworm "
            "(the dependencies are Debian 12 packages)")
    if runtime["base"] != "debian:bookworm-slim":
        err(runtime["from"], f"the runtime stage is FROM {runtime['base']}; want debian:bookworm-slim")

    # The build: install_deps.sh, then build.sh release; where the binary lands.
    runs = " ; ".join(r.args for r in build["runs"])
    if "scripts/install_deps.sh" not in runs:
        err(build["from"], "the build stage does not run scripts/install_deps.sh")
    build_run = next((r for r in build["runs"] if re.search(r"scripts/build\.sh(\s+release)?(\s|$)", r.args)), None)
    expected = None
    if build_run is None or re.search(r"scripts/build\.sh\s+sanitize", build_run.args):
        err(build["from"], "the build stage does not run `scripts/build.sh release`")
    else:
        bdir = build_dir_of_release(os.path.join(src, "scripts", "build.sh"))
        if bdir is None:
            err(build_run, "cannot find the release mode's dir= in scripts/build.sh")
        else:
            # The WORKDIR in force at that RUN.
            wd = "/"
            for ins in build["instrs"]:
                if ins.line > build_run.line:
                    break
                if ins.cmd == "WORKDIR":
                    wd = posixpath.normpath(posixpath.join(wd, ins.args))
            rel_bin = os.path.relpath(binary, bindir).replace(os.sep, "/")
            expected = posixpath.normpath(posixpath.join(wd, bdir, rel_bin))
            m = re.search(r"runtime_packages\.sh\s+(\S+)", runs)
            if not m:
                err(build_run, "the build stage does not run deploy/runtime_packages.sh")
            elif posixpath.normpath(posixpath.join(wd, m.group(1))) != expected:
                err(build_run, f"runtime_packages.sh runs on {m.group(1)}, not on the built "
                    f"binary {expected}")

    # The runtime stage copies that binary and runs it.
    copied = None
    for frm, s, dest_abs, cins in runtime["copies"]:
        if frm is not None and frm == build["name"] and expected and posixpath.normpath(s) == expected:
            copied = dest_abs + posixpath.basename(s) if dest_abs.endswith("/") else dest_abs
    if expected and copied is None:
        err(runtime["from"], f"the runtime stage copies no {expected} from stage "
            f"'{build['name']}' (where scripts/build.sh puts CMake's {os.path.relpath(binary, bindir)})")
    if not any(frm == build["name"] and "runtime-packages" in s for frm, s, _, _ in runtime["copies"]) \
            or not any("runtime-packages" in r.args and "apt-get install" in r.args for r in runtime["runs"]):
        err(runtime["from"], "the runtime stage does not install the build stage's runtime-packages list")
    entry = [i for i in runtime["instrs"] if i.cmd == "ENTRYPOINT"]
    if not entry:
        err(runtime["from"], "the runtime stage has no ENTRYPOINT")
    else:
        words, exec_form = split_args(entry[-1].args)
        if not exec_form:
            err(entry[-1], "use the exec form ([\"/path/fedtrain\"]) so that arguments reach fedtrain")
        elif not words:
            err(entry[-1], "is empty")
        else:
            if posixpath.basename(words[0]) != os.path.basename(binary):
                err(entry[-1], f"runs '{words[0]}'; the CMake target builds '{os.path.basename(binary)}'")
            if copied and words[0] != copied and not (
                    "/" not in words[0] and posixpath.basename(copied) == words[0]
                    and posixpath.dirname(copied) in ("/usr/local/bin", "/usr/bin", "/bin")):
                err(entry[-1], f"runs '{words[0]}', but the binary is copied to {copied}")

    # USER: numeric, non-root, the manifests' runAsUser.
    users = [i for i in runtime["instrs"] if i.cmd == "USER"]
    if not users:
        err(runtime["from"], "the runtime stage runs as root (no USER)")
    else:
        uid = users[-1].args.split(":")[0]
        if not uid.isdigit() or uid == "0":
            err(users[-1], f"'{users[-1].args}': want a numeric non-root uid (Kubernetes' "
                "runAsNonRoot can only check numeric ones)")
        else:
            for y in sorted(glob.glob(os.path.join(src, "deploy", "k8s", "*.yaml"))):
                with open(y) as f:
                    for n, line in enumerate(f, start=1):
                        m = re.match(r"\s*runAsUser:\s*(\d+)", line)
                        if m and m.group(1) != uid:
                            err(users[-1], f"uid {uid}, but {os.path.relpath(y, src)}:{n} has "
                                f"runAsUser {m.group(1)}")

    if not a.skip_packages:
        check_runtime_packages(src, binary, err)
    return report(errors, len(instrs), len(stages))


def check_runtime_packages(src, binary, err):
    """deploy/runtime_packages.sh on the real binary, verified the other way round: every
    library ldd resolves is a file of one of the packages it printed (dpkg-query -L)."""
    rp = os.path.join(src, "deploy", "runtime_packages.sh")
    proc = subprocess.run(["bash", rp, binary], capture_output=True, text=True)
    if proc.returncode != 0:
        err(None, f"deploy/runtime_packages.sh {binary} failed ({proc.returncode}): {proc.stderr.strip()}")
        return
    pkgs = proc.stdout.split()
    files = set()
    if pkgs:
        listing = subprocess.run(["dpkg-query", "-L"] + pkgs, capture_output=True, text=True)
        files = {os.path.realpath(p) for p in listing.stdout.split("\n") if p.startswith("/")}
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    libs = re.findall(r"=>\s+(/\S+)", ldd)
    if not libs:
        err(None, f"ldd {binary} lists no libraries")
    for lib in libs:
        if os.path.realpath(lib) not in files:
            err(None, f"runtime_packages.sh lists no package holding {lib} (packages: {' '.join(pkgs)})")


def report(errors, n_instr=0, n_stages=0):
    if errors:
        for e in errors:
            print(f"{PROG}: {e}", file=sys.stderr)
        print(f"{PROG}: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    print(f"{PROG}: OK ({n_stages} stages, {n_instr} instructions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
