#!/usr/bin/env bash
# The RQM validation experiments of docs/privacy.md §6, written as tables (markdown and CSV)
# and one plot (SVG) into OUT (default runs/validate-privacy):
#   V-RQM-1  the per-coordinate RDP reference table, from `fedtrain privacy --order`, against
#            the reference values to 1e-4                          -> v1_table.md
#   V-RQM-2  distributed mean estimation: RQM's empirical MSE against its exact variance (5%),
#            next to the local Gaussian at the same ε₁(8)           -> v2_table.md, v2.csv
#   V-RQM-3  federated softmax regression on the synthetic data set (100 clients, 10 per round,
#            one local step per round): test accuracy against the accounted ε for RQM (m = 8),
#            the local Gaussian and no privacy                      -> v3_table.md, v3.csv, v3.svg
# Usage: scripts/validate_privacy.sh [BUILD_DIR] [OUT]     (BUILD_DIR default: build)
# Exit 1 when V-RQM-1 or V-RQM-2 misses its tolerance. Takes a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=${2:-runs/validate-privacy}
bin="$build/cli/fedtrain"
mkdir -p "$out"
status=0

# ---- V-RQM-1 ------------------------------------------------------------------------------
rdp() {  # c delta m q alpha -> the composed RDP of one coordinate, one message
  "$bin" privacy --mechanism rqm --clip "$1" --range-extension "$2" --levels "$3" \
    --keep-prob "$4" --order "$5" --dim 1 --rounds 1 | sed 's/.*"rdp":\([^,}]*\).*/\1/'
}
{
  echo "| c | Δ | m | q | α | reference | fedtrain | |diff| |"
  echo "|---|---|---|---|---|---|---|---|"
} > "$out/v1_table.md"
while read -r c delta m q alpha want; do
  got=$(rdp "$c" "$delta" "$m" "$q" "$alpha")
  line=$(python3 -c "
g=float('$got'); w=float('$want'); d=abs(g-w)
print('| $c | $delta | $m | $q | $alpha | $want | %.6f | %.1e |' % (g, d)); exit(0 if d <= 1e-4 else 1)") ||
    { status=1; line="$line (OFF)"; }
  echo "$line" >> "$out/v1_table.md"
done <<'EOF'
1 1 8 0.1 8 1.3516
1 1 8 0.3 8 2.1709
1 1 8 0.5 8 3.3782
1 1 8 0.7 8 5.3005
1 1 8 0.9 8 9.5832
1 0.25 8 0.5 8 5.7045
1 0.5 8 0.5 8 4.7149
1 2 8 0.5 8 2.3609
1 4 8 0.5 8 1.3545
1 1 6 0.5 2 2.3966
1 1 6 0.5 8 2.7038
1 1 6 0.5 32 2.7859
1 1 8 0.5 inf 3.5483
1 1 2 0.5 inf 1.0986
EOF
echo "V-RQM-1:"; cat "$out/v1_table.md"

# ---- V-RQM-2 ------------------------------------------------------------------------------
echo; echo "V-RQM-2:"
"$build/bench/rqm_mean_estimation" --csv "$out/v2.csv" | tee "$out/v2_table.md" || status=1

# ---- V-RQM-3 ------------------------------------------------------------------------------
echo; echo "V-RQM-3:"
base=(--config examples/synthetic_logreg.json --set output.progress=none
      --set data.synthetic.num_devices=100 --set federation.num_clients=100
      --set federation.clients_per_round=10 --set local.steps=1 --set local.lr=0.5
      --set rounds=150 --set eval_every=150)
mkdir -p "$out/v3_runs"
echo "mechanism,target_epsilon,epsilon,test_accuracy" > "$out/v3.csv"
run() {  # label target extra-args...
  local label=$1 target=$2; shift 2
  local dir="$out/v3_runs/$label-$target"
  rm -rf "$dir"
  "$bin" simulate "${base[@]}" --out "$dir" "$@" > "$dir.log" 2>&1 || { echo "$label $target FAILED"; tail -3 "$dir.log"; return; }
  local summary
  summary=$(cat "$dir"/*/summary.json)
  local acc eps
  acc=$(echo "$summary" | sed 's/.*"test_accuracy":\([^,}]*\).*/\1/')
  eps=$(echo "$summary" | grep -q '"epsilon"' && echo "$summary" | sed 's/.*"epsilon":\([^,}]*\).*/\1/' || echo inf)
  echo "$label,$target,$eps,$acc" >> "$out/v3.csv"
}
run none 0
for t in 2000 5000 20000 100000 1000000; do
  run rqm "$t" --set privacy.mechanism=rqm --set privacy.clip=0.1 --set privacy.levels=8 \
    --set privacy.target_epsilon="$t"
  run gaussian "$t" --set privacy.mechanism=gaussian --set privacy.placement=local \
    --set privacy.clip=0.1 --set privacy.target_epsilon="$t"
done
python3 - "$out" <<'PYEOF'
import csv, math, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(f"{out}/v3.csv")))
with open(f"{out}/v3_table.md", "w") as f:
    f.write("| mechanism | target ε | accounted ε (δ = 1e-5, untrusted server) | test accuracy |\n|---|---|---|---|\n")
    for r in rows:
        f.write(f"| {r['mechanism']} | {r['target_epsilon']} | {float(r['epsilon']):.4g} | {float(r['test_accuracy']):.4f} |\n")
print(open(f"{out}/v3_table.md").read())
# Accuracy against ε (log axis) as an SVG: one polyline per mechanism, no privacy dashed.
W, H, L, R, T, B = 640, 420, 70, 20, 30, 50
pts = {m: sorted((float(r["epsilon"]), float(r["test_accuracy"])) for r in rows if r["mechanism"] == m)
       for m in ("rqm", "gaussian")}
none = [float(r["test_accuracy"]) for r in rows if r["mechanism"] == "none"]
eps_all = [e for v in pts.values() for e, _ in v if e > 0 and math.isfinite(e)]
lo, hi = math.floor(math.log10(min(eps_all))), math.ceil(math.log10(max(eps_all)))
accs = [a for v in pts.values() for _, a in v] + none
amax = max(1e-9, max(accs))
X = lambda e: L + (math.log10(e) - lo) / max(1e-9, hi - lo) * (W - L - R)
Y = lambda a: H - B - a / amax * (H - T - B)
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W/2}" y="18" text-anchor="middle">V-RQM-3: test accuracy against accounted epsilon (synthetic, 100 clients)</text>',
       f'<line x1="{L}" y1="{H-B}" x2="{W-R}" y2="{H-B}" stroke="black"/>',
       f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H-B}" stroke="black"/>']
for k in range(lo, hi + 1):
    svg.append(f'<text x="{X(10**k)}" y="{H-B+16}" text-anchor="middle">1e{k}</text>')
for i in range(6):
    a = amax * i / 5
    svg.append(f'<text x="{L-6}" y="{Y(a)+4}" text-anchor="end">{a:.2f}</text>')
svg.append(f'<text x="{(L+W-R)/2}" y="{H-12}" text-anchor="middle">epsilon (delta = 1e-5, untrusted server; log scale)</text>')
colors = {"rqm": "#1f77b4", "gaussian": "#d62728"}
for m, v in pts.items():
    if not v:
        continue
    svg.append('<polyline fill="none" stroke-width="2" stroke="%s" points="%s"/>' % (
        colors[m], " ".join(f"{X(e):.1f},{Y(a):.1f}" for e, a in v)))
    for e, a in v:
        svg.append(f'<circle cx="{X(e):.1f}" cy="{Y(a):.1f}" r="3" fill="{colors[m]}"/>')
if none:
    svg.append(f'<line x1="{L}" y1="{Y(none[0]):.1f}" x2="{W-R}" y2="{Y(none[0]):.1f}" stroke="gray" stroke-dasharray="6,4"/>')
for i, (name, col) in enumerate((("RQM m=8", colors["rqm"]), ("local Gaussian", colors["gaussian"]), ("no privacy", "gray"))):
    svg.append(f'<rect x="{L+10}" y="{T+8+18*i}" width="14" height="4" fill="{col}"/><text x="{L+30}" y="{T+14+18*i}">{name}</text>')
svg.append("</svg>")
open(f"{out}/v3.svg", "w").write("\n".join(svg))
print(f"wrote {out}/v3.svg")
PYEOF
exit $status
