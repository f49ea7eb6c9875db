#!/usr/bin/env bash
# Benchmark of hl-synth (not part of the default tests).
#
# 1. Measures the raw sequential write speed of the disk holding the output
#    directory (dd with conv=fdatasync, same byte count as the 10,000-patient run).
# 2. Runs hl-synth for 10,000 and 100,000 patients (uncompressed NDJSON, no OMOP)
#    and prints patients/s, resources/s, MB/s, peak memory and the ratio of its MB/s
#    to the raw write speed. Target: ratio >= 0.5, memory flat in N.
#
# Usage: bench/synth/run.sh [BUILD_DIR] [OUT_PARENT]   (defaults: build, /tmp)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD="${1:-build}"
PARENT="${2:-/tmp}"
BIN="$BUILD/synthetic/hl-synth"
[ -x "$BIN" ] || { echo "build first: ninja -C $BUILD"; exit 2; }
W="$(mktemp -d "$PARENT/hl-synth-bench.XXXXXX")"
trap 'rm -rf "$W"' EXIT
THREADS="${HL_BENCH_THREADS:-$(nproc)}"

run() { # N -> prints "seconds bytes resources maxrss_kb"
  local n=$1 out="$W/out-$1"
  /usr/bin/time -f "%e %M" -o "$W/time" "$BIN" --patients "$n" --threads "$THREADS" --out "$out" \
    --progress never >"$W/summary"
  local bytes res
  bytes=$(du -sb "$out" | cut -f1)
  res=$(awk '/totals:/ {print $2}' "$W/summary")
  read -r sec rss <"$W/time"
  rm -rf "$out"
  echo "$sec $bytes $res $rss"
}

echo "hl-synth benchmark: $(nproc) CPUs, $THREADS threads, output under $PARENT"
read -r s10 b10 r10 m10 < <(run 10000)
MB=$(( (b10 + 1048575) / 1048576 ))
dd if=/dev/zero of="$W/raw" bs=1M count="$MB" conv=fdatasync 2>"$W/dd"
rm -f "$W/raw"
raw=$(awk '/copied/ {for (i=2;i<=NF;i++) if ($i == "s,") s=$(i-1); print s}' "$W/dd")
raw_mbs=$(awk -v b=$((MB*1048576)) -v s="$raw" 'BEGIN{printf "%.1f", b/s/1e6}')
echo "raw sequential write (dd conv=fdatasync, $MB MiB): $raw_mbs MB/s"
report() {
  awk -v n="$1" -v s="$2" -v b="$3" -v r="$4" -v m="$5" -v raw="$raw_mbs" 'BEGIN{
    mbs=b/s/1e6;
    printf "N=%-7d %7.2f s  %8.0f patients/s  %9.0f resources/s  %7.1f MB/s  peak RSS %6.1f MB  ratio %.2f\n",
      n, s, n/s, r/s, mbs, m/1024, mbs/raw }'
}
report 10000 "$s10" "$b10" "$r10" "$m10"
read -r s100 b100 r100 m100 < <(run 100000)
report 100000 "$s100" "$b100" "$r100" "$m100"
