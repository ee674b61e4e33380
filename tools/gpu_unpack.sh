#!/usr/bin/env bash
# Unpack what tools/gpu_round.sh sent back: FILES_AT/round.tar.00, .01, ... -> runs/gpu/<model>/ (or DEST).
set -euo pipefail
src=${1:?usage: tools/gpu_unpack.sh FILES_AT [DEST]}
dest=${2:-runs/gpu}
ls "$src"/round.tar.* >/dev/null 2>&1 || { echo "no round.tar.* parts in $src" >&2; exit 1; }
mkdir -p "$dest"
cat "$src"/round.tar.* | tar -x -C "$dest"
for d in "$dest"/*/; do
  [ -f "$d/model.safetensors" ] && echo "$d: $(stat -c %s "$d/model.safetensors") bytes of weights, $(wc -l < "$d/log.jsonl" 2>/dev/null || echo 0) log lines"
done
