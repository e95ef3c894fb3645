#!/usr/bin/env bash
# Two builds of the engine bench compared in same-time pairs, without the order bias.
#
#   benches/engine-pairs.sh A B [PAIRS] [FILTER]
#
# A and B are bench executables (`cargo bench -p boxoffice-benches --bench engine --no-run`
# prints the path; copy it out before building the other commit). Each pair runs both at
# once, one per core (`taskset`), FILTER (default `engine/standard_mix$`) for 5 s after 1 s
# of warm-up, and prints both figures and B's throughput over A's; the summary gives the
# median ratio and how many pairs B won.
#
# Why this shape (BENCHMARKS.md, "Session 30"): on this 2-core machine the side launched
# second measures faster: one binary against itself won 6 of 6 plain pairs by about 5%
# from the second place. Each side here, once its measurement is done, keeps running the
# same bench as filler until the other's is done too (so neither ends alone), but the
# launch order still shows by 5-15%; so the side launched first alternates every pair (and
# the cores every two pairs), and each two pairs, one in either order, give one
# order-balanced ratio, the geometric mean of the two: the figure to read.
set -euo pipefail
A="$1"
B="$2"
PAIRS="${3:-6}"
FILTER="${4:-engine/standard_mix\$}"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

# side NAME EXE CORE: the measured run, then filler until the other side's is done.
side() {
  local name="$1" exe="$2" core="$3"
  taskset -c "$core" "$exe" --bench "$FILTER" --warm-up-time 1 --measurement-time 5 --noplot \
    >"$WORK/$name.txt" 2>&1
  touch "$WORK/$name.done"
  local other=a
  [[ "$name" == a ]] && other=b
  while [[ ! -e "$WORK/$other.done" ]]; do
    timeout 2 taskset -c "$core" "$exe" --bench "$FILTER" --warm-up-time 1 \
      --measurement-time 5 --noplot >/dev/null 2>&1 || true
  done
}

# throughput FILE: the median throughput criterion printed, in millions per second (or the
# median time in ns for a bench without a throughput).
throughput() {
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
match = re.search(r"thrpt:\s+\[\S+ \S+ (\S+) (\S+)", text)
if match:
    value, unit = float(match.group(1)), match.group(2)
    print(value * {"Kelem/s": 1e-3, "Melem/s": 1.0, "Gelem/s": 1e3}[unit])
else:
    value, unit = re.search(r"time:\s+\[\S+ \S+ (\S+) (\S+)", text).groups()
    print(float(value) * {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6}[unit])
PY
}

ratios=()
for pair in $(seq 1 "$PAIRS"); do
  rm -f "$WORK"/*.done
  if (((pair - 1) / 2 % 2)); then core_a=1 core_b=0; else core_a=0 core_b=1; fi
  if ((pair % 2)); then
    side a "$A" "$core_a" & side b "$B" "$core_b" &
    first=A
  else
    side b "$B" "$core_b" & side a "$A" "$core_a" &
    first=B
  fi
  wait
  a="$(throughput "$WORK/a.txt")"
  b="$(throughput "$WORK/b.txt")"
  ratio="$(python3 -c "print(f'{$b / $a:.3f}')")"
  ratios+=("$ratio")
  echo "pair $pair (first $first, A on core $core_a): A $a  B $b  B/A $ratio"
done
python3 - "${ratios[@]}" <<'PY'
import math, statistics, sys
ratios = [float(r) for r in sys.argv[1:]]
print(f"B/A: median {statistics.median(ratios):.3f}, B higher in {sum(r > 1 for r in ratios)} of {len(ratios)} "
      "(throughput: higher is faster; for a time-only bench, higher is slower)")
# Pairs 1+2, 3+4, ...: one launched each way, so the launch order's bias cancels.
balanced = [math.sqrt(a * b) for a, b in zip(ratios[0::2], ratios[1::2])]
if balanced:
    shown = ", ".join(f"{r:.3f}" for r in balanced)
    print(f"order-balanced B/A (two pairs each): {shown}; median {statistics.median(balanced):.3f}, "
          f"B higher in {sum(r > 1 for r in balanced)} of {len(balanced)}")
PY
