#!/usr/bin/env bash
# The README's first command, timed as a new user meets it: a fresh `git clone` of REF into a
# temporary directory, a cold target directory, then the seconds from `cargo run --example
# restate` to the first successful scrape of http://127.0.0.1:9000/metrics.
#
#   scripts/first_scrape_time.sh [REF]     # REF defaults to HEAD of this checkout
#
# Crates must already be downloaded (`cargo fetch` once); the clone shares ~/.cargo. Prints the
# wall time to the first scrape and the CPU time (user + sys) of cargo and every rustc it ran,
# which depends far less on what else the machine is doing than the wall time. Port 9000 must
# be free.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
ref="${1:-HEAD}"
work="$(mktemp -d "${TMPDIR:-/tmp}/first-scrape.XXXXXX")"
trap 'rm -rf "$work"' EXIT

git clone --quiet --no-local "$repo" "$work/src"
git -C "$work/src" checkout --quiet --detach "$(git -C "$repo" rev-parse "$ref")"
export CARGO_TARGET_DIR="$work/target"
if curl -fsS -o /dev/null http://127.0.0.1:9000/metrics 2>/dev/null; then
  echo "error: something already answers on 127.0.0.1:9000; stop it first" >&2
  exit 1
fi

cd "$work/src"
start=$(date +%s.%N)
# setsid: cargo (which execs the example) leads its own process group, stopped as one below.
setsid /usr/bin/time -f '%U %S' -o "$work/cpu" cargo run --quiet --example restate \
  >"$work/run.log" 2>&1 &
leader=$!
until curl -fsS -o /dev/null http://127.0.0.1:9000/metrics 2>/dev/null; do
  if ! kill -0 "$leader" 2>/dev/null; then
    echo "error: cargo run exited before /metrics answered:" >&2
    cat "$work/run.log" >&2
    exit 1
  fi
  sleep 0.2
done
end=$(date +%s.%N)
kill -INT -- "-$leader" 2>/dev/null || true
wait "$leader" 2>/dev/null || true

read -r user sys <"$work/cpu"
echo "ref:                 $(git rev-parse --short HEAD) ($ref)"
echo "first scrape after:  $(echo "$end - $start" | bc) s (wall)"
echo "cargo+rustc CPU:     $(echo "$user + $sys" | bc) s (user $user s + sys $sys s)"
echo "load average:        $(cut -d' ' -f1-3 /proc/loadavg) (after; other work on the machine slows the wall time)"
