#!/usr/bin/env python3
"""Robust-aggregation validation grid (docs/robust.md "Validation").

Runs attacks x rules x seeds on Fashion-MNIST with 15 clients of which clients 0..2 are
faulty (examples/robust/fmnist_mlp64_p15_f3.json), one `fedtrain simulate` per cell, up to
--jobs at a time, and writes into --results (default results/):

  robust_validation.csv     one row per run (status, final test accuracy, time, message)
  robust_validation.md      3-seed means, per-seed values, the side-by-side with the
                            prototype numbers typed in below, the acceptance checks
  robust_validation.svg     heat maps: this port, the prototype, their difference
  robust_curves_<attack>.svg  accuracy curves of every rule, first seed (`fedtrain plot`)

A run that fedtrain refuses or that fails is reported with fedtrain's own message, in the
CSV, the tables and on stderr, and makes this script exit with status 1 after writing its
outputs. The one outcome that is not a failure is a rule refusing a round because too few
updates arrived (fedtrain's "reducer ... needs p >= ..." error, e.g. Bulyan under
crash_omit): that is the behaviour the spec asks for and is recorded as "rejected".

Standard library only. Example (the full grid, two runs at a time, lowered priority):
  nice -n 10 python3 examples/robust/validate.py --jobs 2
  python3 examples/robust/validate.py --attacks none,alie --rules mean,flag --seeds 1
"""

import argparse
import concurrent.futures
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

ATTACKS = ["none", "random_uniform", "gaussian", "sign_flip", "alie", "ipm", "label_flip",
           "crash_omit", "augmented"]
RULES = ["mean", "median", "trimmed_mean", "krum", "multi_krum", "bulyan", "geometric_median",
         "centered_clipping", "flag"]
# Column names used by the spec's table.
LABEL = {"mean": "Mean", "median": "CM", "trimmed_mean": "CWTM", "krum": "Krum",
         "multi_krum": "Multi-Krum", "bulyan": "Bulyan", "geometric_median": "GM",
         "centered_clipping": "CC", "flag": "FA"}

# Rule settings of the experiment (algorithm.reducer.params.*); f = 3 comes from the config.
# Multi-Krum keeps its default mk = p - f, taken on the updates that arrived (12 under
# crash_omit, where p = 12 and mk = 12 would exceed p - f = 9 and be refused).
RULE_PARAMS = {
    "mean": [], "median": [], "trimmed_mean": [], "krum": [], "multi_krum": [], "bulyan": [],
    "geometric_median": ["nu=1e-6", "iterations=20"],
    "centered_clipping": ["tau=1", "iterations=1"],
    "flag": ["m=8", "lambda=0", "iterations=1", "init=orthogonal"],
}
# Attack settings (attack.*); the faulty clients [0, 1, 2] come from the config.
ATTACK_PARAMS = {
    "none": [],
    "random_uniform": [],
    "gaussian": ["sigma=200"],
    "sign_flip": ["scale=1", "omniscient=false"],  # -1 x own update (spec section 3 default)
    "alie": ["z=0.4307", "omniscient=true"],
    "ipm": ["eps=0.1"],
    "label_flip": [],
    "crash_omit": [],
    "augmented": ["rho=1"],
}

# The prototype's numbers (single seed, test accuracy in %), per attack, in RULES order.
# "R" = the rule refused the rounds (Bulyan needs p >= 4f+3 = 15, got 12).
PROTOTYPE_ROWS = """
none            86.2 84.4 85.4 79.1 85.5 83.1 86.1 82.1 85.7
random_uniform  23.9 35.2 27.4 79.1 84.7 34.0 29.4 19.7 46.3
gaussian        36.4 84.7 83.8 78.1 85.5 82.1 85.7 79.1 85.0
sign_flip       84.8 82.7 84.0 75.1 84.4 78.0 85.1 82.1 84.8
alie            78.2 29.9 33.5 30.3 48.7 21.1 30.4 59.6 77.9
ipm             85.1 82.2 84.2 53.9 85.6 79.7 85.2 82.7 84.0
label_flip      84.5 78.9 72.5 78.6 85.5 71.5 85.4 82.8 84.6
crash_omit      85.5 83.1 84.7 78.8 84.5 R    85.4 79.6 85.4
augmented       85.6 84.3 85.0 77.7 85.5 82.8 85.5 83.6 85.4
"""


def prototype():
    table = {}
    for line in PROTOTYPE_ROWS.strip().splitlines():
        name, *cells = line.split()
        assert len(cells) == len(RULES), name
        table[name] = {r: (None if c == "R" else float(c)) for r, c in zip(RULES, cells)}
    return table


def run_name(attack, rule, seed):
    return f"{attack}__{rule}__s{seed}"


def command(args, attack, rule, seed):
    cmd = [args.fedtrain, "simulate", "--config", args.config,
           "--set", f"seed={seed}",
           "--set", f"output.dir={args.runs}",
           "--set", f"output.run_name={run_name(attack, rule, seed)}",
           "--set", "output.progress=none",
           "--set", "output.save_model=false",
           "--set", f"threads={args.threads}",
           "--set", f"algorithm.reducer.name={rule}",
           "--set", f"attack.name={attack}"]
    for kv in RULE_PARAMS[rule]:
        cmd += ["--set", f"algorithm.reducer.params.{kv}"]
    for kv in ATTACK_PARAMS[attack]:
        cmd += ["--set", f"attack.{kv}"]
    for kv in args.set:
        cmd += ["--set", kv]
    return cmd


def last_line(text):
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return lines[-1] if lines else ""


def read_summary(folder):
    with open(os.path.join(folder, "summary.json")) as fh:
        return json.load(fh)


def one_run(args, attack, rule, seed):
    """Runs (or, with --reuse, reads) one cell; returns a CSV row as a dict."""
    name = run_name(attack, rule, seed)
    folder = os.path.join(args.runs, name)
    row = {"attack": attack, "rule": rule, "seed": seed, "status": "", "test_accuracy": "",
           "test_loss": "", "rounds": "", "wall_s": "", "weights_fnv1a64": "", "message": ""}
    if args.reuse and os.path.exists(os.path.join(folder, "summary.json")):
        s = read_summary(folder)
        row.update(status="ok", test_accuracy=100.0 * s["test_accuracy"],
                   test_loss=s["test_loss"], rounds=s["rounds"], wall_s=round(s["wall_s"], 2),
                   weights_fnv1a64=s.get("weights_fnv1a64", ""), message="reused")
        return row
    for stale in (folder, folder + ".partial"):
        if os.path.isdir(stale):
            shutil.rmtree(stale)
    cmd = command(args, attack, rule, seed)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    row["wall_s"] = round(time.monotonic() - t0, 2)
    if proc.returncode == 0:
        try:
            s = read_summary(folder)
        except (OSError, ValueError) as e:
            row.update(status="error", message=f"fedtrain exited 0 but {folder}/summary.json "
                                              f"could not be read: {e}")
            return row
        acc = 100.0 * s["test_accuracy"]
        row.update(test_accuracy=acc, test_loss=s["test_loss"], rounds=s["rounds"],
                   weights_fnv1a64=s.get("weights_fnv1a64", ""))
        row["status"] = "ok" if math.isfinite(acc) else "nan"
        return row
    msg = last_line(proc.stderr) or last_line(proc.stdout) or f"exit status {proc.returncode}"
    # The results name run folders relative to --runs, so they do not depend on where it was.
    row["message"] = msg.replace(os.path.abspath(args.runs) + "/", "runs/")
    # A rule refusing a round for too few updates is the specified outcome, not a failure.
    row["status"] = "rejected" if "needs p >=" in msg else "error"
    return row


# ---------------------------------------------------------------------------------------
# Tables


def fmt(v, digits=1):
    return "—" if v is None else f"{v:.{digits}f}"


def cell_mean(rows):
    """3-seed mean of the ok runs, or None; plus a status summary for the cell."""
    ok = [r["test_accuracy"] for r in rows if r["status"] == "ok"]
    statuses = sorted({r["status"] for r in rows})
    mean = sum(ok) / len(ok) if ok else None
    return mean, statuses, len(ok)


def cell_text(rows, nseeds):
    if not rows:
        return "not run"
    mean, statuses, nok = cell_mean(rows)
    if nok == len(rows):
        return fmt(mean)
    if "rejected" in statuses and nok == 0:
        return "rejected"
    if nok == 0:
        return "**error**" if "error" in statuses else "/".join(statuses)
    return f"{fmt(mean)} ({nok}/{len(rows)} ok)"


def write_markdown(path, results, attacks, rules, seeds, proto, checks, timing):
    by = {}
    for r in results:
        by.setdefault((r["attack"], r["rule"]), []).append(r)
    out = []
    w = out.append
    w("# Robust aggregation validation (Fashion-MNIST, p = 15, f = 3)\n")
    rounds = sorted({r["rounds"] for r in results if r["status"] == "ok"})
    w(f"Seeds {', '.join(map(str, seeds))}; final test accuracy in % after "
      f"{'/'.join(map(str, rounds)) or '?'} rounds; "
      "config `examples/robust/fmnist_mlp64_p15_f3.json`, generated by "
      "`examples/robust/validate.py`.\n")
    w("## Mean over seeds\n")
    w("| attack | " + " | ".join(LABEL[r] for r in rules) + " |")
    w("|---" * (len(rules) + 1) + "|")
    for a in attacks:
        w(f"| {a} | " + " | ".join(cell_text(by.get((a, r), []), len(seeds)) for r in rules)
          + " |")
    w("\n## Per seed\n")
    w("| attack | " + " | ".join(LABEL[r] for r in rules) + " |")
    w("|---" * (len(rules) + 1) + "|")
    for a in attacks:
        cells = []
        for r in rules:
            rs = sorted(by.get((a, r), []), key=lambda x: x["seed"])
            cells.append(" / ".join(fmt(x["test_accuracy"]) if x["status"] == "ok"
                                    else x["status"] for x in rs) or "not run")
        w(f"| {a} | " + " | ".join(cells) + " |")
    w("\n## Next to the prototype\n")
    w("Each cell: this port's mean over seeds, the prototype's single-seed number, and the "
      "difference.\n")
    w("| attack | " + " | ".join(LABEL[r] for r in rules) + " |")
    w("|---" * (len(rules) + 1) + "|")
    for a in attacks:
        cells = []
        for r in rules:
            mean, statuses, nok = cell_mean(by.get((a, r), []))
            pv = proto.get(a, {}).get(r)
            ptxt = "rejected" if a in proto and pv is None else fmt(pv)
            if mean is None:
                cells.append(f"{cell_text(by.get((a, r), []), len(seeds))} vs {ptxt}")
            elif pv is None:
                cells.append(f"{fmt(mean)} vs {ptxt}")
            else:
                cells.append(f"{fmt(mean)} vs {ptxt} ({mean - pv:+.1f})")
        w(f"| {a} | " + " | ".join(cells) + " |")
    w("\n## Acceptance checks (spec §5.2, on the means over seeds)\n")
    for name, verdict, details in checks:
        w(f"* **{verdict}** — {name}")
        for d in details:
            w(f"  * {d}")
    failures = [r for r in results if r["status"] in ("error", "nan")]
    if failures:
        w("\n## Runs that failed\n")
        for r in failures:
            w(f"* {r['attack']} / {r['rule']} / seed {r['seed']}: {r['status']}: "
              f"`{r['message']}`")
    w("\n## Time\n")
    w(timing)
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")


# ---------------------------------------------------------------------------------------
# Acceptance checks


def acceptance(results, proto, rules):
    by = {}
    for r in results:
        by.setdefault((r["attack"], r["rule"]), []).append(r)

    def m(a, r):
        rows = by.get((a, r), [])
        mean, _, nok = cell_mean(rows)
        return mean if rows and nok == len(rows) else None

    checks = []

    def check(name, conds):
        # conds: list of (text, attack, rule, predicate on the mean)
        details, held, missing = [], True, False
        for text, a, r, pred in conds:
            v = m(a, r)
            if v is None:
                missing = True
                details.append(f"{text}: no complete result ({a} / {LABEL[r]})")
                continue
            ok = pred(v)
            held &= ok
            details.append(f"{text}: {v:.1f} {'yes' if ok else 'NO'}")
        verdict = "not evaluated" if missing and held else ("held" if held else "did not hold")
        checks.append((name, verdict, details))

    base = m("none", "mean")
    conds = []
    for r in rules:
        if r == "mean":
            continue
        tol = 10 if r == "krum" else 5 if r in ("centered_clipping", "bulyan") else 3
        conds.append((f"none: |{LABEL[r]} - Mean| <= {tol}", "none", r,
                      (lambda v, t=tol: base is not None and abs(v - base) <= t)))
    check("no attack: every rule within 3 points of the mean (Krum 10, CC and Bulyan 5)",
          conds)
    check("gaussian: mean < 50%, every robust rule > 75%",
          [("gaussian: Mean < 50", "gaussian", "mean", lambda v: v < 50)] +
          [(f"gaussian: {LABEL[r]} > 75", "gaussian", r, lambda v: v > 75)
           for r in rules if r != "mean"])
    check("IPM: Krum < 65%; Multi-Krum, GM, FA > 80%",
          [("ipm: Krum < 65", "ipm", "krum", lambda v: v < 65)] +
          [(f"ipm: {LABEL[r]} > 80", "ipm", r, lambda v: v > 80)
           for r in ("multi_krum", "geometric_median", "flag")])
    check("ALIE: CM, CWTM, Krum, Bulyan < 45%; GM, Multi-Krum < 65%; mean, FA > 65%",
          [(f"alie: {LABEL[r]} < 45", "alie", r, lambda v: v < 45)
           for r in ("median", "trimmed_mean", "krum", "bulyan")] +
          [(f"alie: {LABEL[r]} < 65", "alie", r, lambda v: v < 65)
           for r in ("geometric_median", "multi_krum")] +
          [(f"alie: {LABEL[r]} > 65", "alie", r, lambda v: v > 65) for r in ("mean", "flag")])
    check("random_uniform: mean, CM, CWTM, GM < 45%; Multi-Krum, Krum > 75%; FA in (35, 60)",
          [(f"random_uniform: {LABEL[r]} < 45", "random_uniform", r, lambda v: v < 45)
           for r in ("mean", "median", "trimmed_mean", "geometric_median")] +
          [(f"random_uniform: {LABEL[r]} > 75", "random_uniform", r, lambda v: v > 75)
           for r in ("multi_krum", "krum")] +
          [("random_uniform: 35 < FA < 60", "random_uniform", "flag",
            lambda v: 35 < v < 60)])

    # Bulyan under crash_omit must be refused by the requirement check, not produce NaN.
    rows = by.get(("crash_omit", "bulyan"), [])
    if not rows:
        checks.append(("crash_omit with Bulyan reports the requirement violation",
                       "not evaluated", ["no run"]))
    else:
        good = all(r["status"] == "rejected" and "4f+3" in r["message"] for r in rows)
        checks.append(("crash_omit with Bulyan reports the requirement violation",
                       "held" if good else "did not hold",
                       [f"seed {r['seed']}: {r['status']}: {r['message'] or '(no message)'}"
                        for r in rows]))

    details, within, total, missing = [], 0, 0, 0
    for a, row in proto.items():
        for r in rules:
            pv = row.get(r)
            if pv is None:
                continue
            v = m(a, r)
            if v is None:
                missing += 1
                continue
            total += 1
            if abs(v - pv) <= 3:
                within += 1
            else:
                details.append(f"{a} / {LABEL[r]}: {v:.1f} vs {pv:.1f} ({v - pv:+.1f})")
    details.insert(0, f"{within} of {total} cells within 3 points"
                   + (f"; {missing} cells without a complete result" if missing else ""))
    verdict = ("did not hold" if within < total else
               "not evaluated" if missing else "held")
    checks.append(("port vs prototype: each cell within 3 points", verdict, details))
    return checks


# ---------------------------------------------------------------------------------------
# SVG heat maps


def colour(v, lo=10.0, hi=90.0):
    """Red (lo) -> yellow -> green (hi)."""
    t = max(0.0, min(1.0, (v - lo) / (hi - lo)))
    if t < 0.5:
        r, g = 230, int(80 + 2 * t * 150)
    else:
        r, g = int(230 - (t - 0.5) * 2 * 180), 200
    return f"rgb({r},{g},80)"


def diff_colour(d, span=20.0):
    """Blue (port below the prototype) -> white -> orange (above)."""
    t = max(-1.0, min(1.0, d / span))
    if t < 0:
        k = int(255 * (1 + t))
        return f"rgb({k},{k},255)"
    k = int(255 * (1 - t))
    return f"rgb(255,{int(255 - t * 90)},{k})"


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_svg(path, results, attacks, rules, proto):
    by = {}
    for r in results:
        by.setdefault((r["attack"], r["rule"]), []).append(r)
    cw, ch, left, top = 62, 26, 120, 60
    pw = left + cw * len(rules) + 30
    width, height = 3 * pw, top + ch * len(attacks) + 50
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    panels = [("this port (mean over seeds)", "port"), ("prototype (spec, one seed)", "proto"),
              ("port minus prototype", "diff")]
    for k, (title, kind) in enumerate(panels):
        x0 = k * pw
        svg.append(f'<text x="{x0 + left}" y="20" font-size="14" font-weight="bold">'
                   f'{esc(title)}</text>')
        for j, r in enumerate(rules):
            x = x0 + left + j * cw + cw / 2
            svg.append(f'<text x="{x}" y="{top - 8}" text-anchor="middle">{LABEL[r]}</text>')
        for i, a in enumerate(attacks):
            y = top + i * ch
            svg.append(f'<text x="{x0 + left - 6}" y="{y + ch / 2 + 4}" text-anchor="end">'
                       f'{esc(a)}</text>')
            for j, r in enumerate(rules):
                x = x0 + left + j * cw
                mean, statuses, nok = cell_mean(by.get((a, r), []))
                pv = proto.get(a, {}).get(r)
                if kind == "port":
                    v, text = mean, (fmt(mean) if mean is not None else
                                     ("rej." if "rejected" in statuses else
                                      "err." if "error" in statuses else ""))
                    fill = colour(v) if v is not None else "#dddddd"
                elif kind == "proto":
                    v, text = pv, (fmt(pv) if pv is not None else
                                   ("rej." if a in proto else ""))
                    fill = colour(v) if v is not None else "#dddddd"
                else:
                    if mean is not None and pv is not None:
                        d = mean - pv
                        text, fill = f"{d:+.1f}", diff_colour(d)
                    else:
                        text, fill = "", "#dddddd"
                svg.append(f'<rect x="{x}" y="{y}" width="{cw - 2}" height="{ch - 2}" '
                           f'fill="{fill}"/>')
                svg.append(f'<text x="{x + cw / 2 - 1}" y="{y + ch / 2 + 3}" '
                           f'text-anchor="middle">{text}</text>')
    svg.append(f'<text x="10" y="{height - 15}">final test accuracy (%); colour '
               'scale red 10% to green 90%; grey: no result (err. = the run failed, rej. = '
               'the rule refused the rounds)</text>')
    svg.append("</svg>")
    with open(path, "w") as fh:
        fh.write("\n".join(svg) + "\n")


# ---------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fedtrain", default=os.path.join(ROOT, "build", "cli", "fedtrain"))
    ap.add_argument("--config",
                    default=os.path.join(HERE, "fmnist_mlp64_p15_f3.json"))
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads of each run (results do not depend on it; default 1)")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--attacks", default=",".join(ATTACKS))
    ap.add_argument("--rules", default=",".join(RULES))
    ap.add_argument("--runs", default=os.path.join("runs", "robust_validation"),
                    help="folder of the run folders")
    ap.add_argument("--results", default="results", help="folder of the outputs")
    ap.add_argument("--reuse", action="store_true",
                    help="read finished runs (summary.json present) instead of rerunning")
    ap.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                    help="extra override for every run, e.g. rounds=50 (repeatable)")
    ap.add_argument("--no-curves", action="store_true", help="skip the `fedtrain plot` curves")
    args = ap.parse_args()

    seeds = [int(s) for s in args.seeds.split(",") if s]
    attacks = [a for a in args.attacks.split(",") if a]
    rules = [r for r in args.rules.split(",") if r]
    for a in attacks:
        if a not in ATTACK_PARAMS:
            ap.error(f"unknown attack '{a}' (known: {', '.join(ATTACKS)})")
    for r in rules:
        if r not in RULE_PARAMS:
            ap.error(f"unknown rule '{r}' (known: {', '.join(RULES)})")
    if args.jobs < 1:
        ap.error("--jobs must be >= 1")
    if not os.access(args.fedtrain, os.X_OK):
        ap.error(f"fedtrain binary not found at {args.fedtrain} (build it or pass --fedtrain)")
    os.makedirs(args.runs, exist_ok=True)
    os.makedirs(args.results, exist_ok=True)

    cells = [(a, r, s) for a in attacks for r in rules for s in seeds]
    results = []
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futs = {pool.submit(one_run, args, a, r, s): (a, r, s) for a, r, s in cells}
        for k, fut in enumerate(concurrent.futures.as_completed(futs), 1):
            row = fut.result()
            results.append(row)
            tag = f"[{k}/{len(cells)}] {row['attack']} / {row['rule']} / seed {row['seed']}"
            if row["status"] == "ok":
                print(f"{tag}: {row['test_accuracy']:.2f}% ({row['wall_s']} s)", file=sys.stderr)
            else:
                print(f"{tag}: {row['status'].upper()}: {row['message']}", file=sys.stderr)
    elapsed = time.monotonic() - t0
    order = {(a, r, s): i for i, (a, r, s) in enumerate(cells)}
    results.sort(key=lambda x: order[(x["attack"], x["rule"], x["seed"])])

    csv_path = os.path.join(args.results, "robust_validation.csv")
    with open(csv_path, "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(results[0].keys()))
        wr.writeheader()
        for row in results:
            out = dict(row)
            if isinstance(out["test_accuracy"], float):
                out["test_accuracy"] = f"{out['test_accuracy']:.2f}"
            wr.writerow(out)

    proto = prototype()
    checks = acceptance(results, proto, rules)
    ran = [r for r in results if isinstance(r["wall_s"], (int, float)) and r["message"] != "reused"]
    per_rule = []
    for r in rules:
        ts = [x["wall_s"] for x in ran if x["rule"] == r and x["status"] == "ok"]
        if ts:
            per_rule.append(f"{LABEL[r]} {sum(ts) / len(ts):.1f} s")
    reused = len(results) - len(ran)
    timing = (f"{len(ran)} runs in {elapsed:.0f} s with --jobs {args.jobs} and "
              f"--threads {args.threads}"
              + (f" ({reused} more read from earlier runs with --reuse)" if reused else "")
              + ". Mean wall time of a finished run per rule: "
              + (", ".join(per_rule) if per_rule else "n/a") + ".\n")
    md_path = os.path.join(args.results, "robust_validation.md")
    write_markdown(md_path, results, attacks, rules, seeds, proto, checks, timing)
    svg_path = os.path.join(args.results, "robust_validation.svg")
    write_svg(svg_path, results, attacks, rules, proto)

    if not args.no_curves:
        for a in attacks:
            dirs = [os.path.join(args.runs, run_name(a, r, seeds[0])) for r in rules]
            dirs = [d for d in dirs if os.path.exists(os.path.join(d, "metrics.csv"))]
            if not dirs:
                continue
            out = os.path.join(args.results, f"robust_curves_{a}.svg")
            proc = subprocess.run([args.fedtrain, "plot", *dirs, "-o", out, "--title",
                                   f"attack {a}, seed {seeds[0]}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                print(f"fedtrain plot failed for {a}: {last_line(proc.stderr)}", file=sys.stderr)

    print(f"wrote {csv_path}, {md_path}, {svg_path}", file=sys.stderr)
    for name, verdict, _ in checks:
        print(f"  {verdict:>13}: {name}", file=sys.stderr)
    failed = [r for r in results if r["status"] in ("error", "nan")]
    if failed:
        print(f"validate.py: {len(failed)} of {len(results)} runs FAILED:", file=sys.stderr)
        seen = set()
        for r in failed:
            key = (r["attack"], r["message"])
            if key not in seen:
                seen.add(key)
                print(f"  {r['attack']} ({r['rule']}, ...): {r['message']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
