#!/usr/bin/env bash
# Make room in what the device tool carries (64 MiB in all, tracked files included): the shipped weights
# (lic/weights/*.safetensors, ~43 MiB) plus a training pack do not fit.  Before a GPU round:
#   tools/gpu_stash.sh save      # copies the weights of MODELS into .resume/ (unless one is there already),
#                                # then moves every shipped weights file into .stash/
# and straight after the device call returns:
#   tools/gpu_stash.sh restore   # puts them back (git status is clean again)
# The round then starts each model from .resume/<model>.safetensors (tools/gpu_round.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${MODELS:-"bmshj2018-hyperprior toderici2017-rnn su2020-rnn-hyperprior"}
case "${1:-}" in
  save)
    mkdir -p .resume .stash
    for m in $MODELS; do
      [ -f ".resume/$m.safetensors" ] || cp "lic/weights/$m.safetensors" ".resume/$m.safetensors"
    done
    mv lic/weights/*.safetensors .stash/
    echo "weights moved to .stash/; .resume/ holds: $(ls .resume | tr '\n' ' ')"
    # what the device call will carry: the working tree git sees (tracked and untracked-not-ignored files)
    # and the ignored folders named in carry (stat skips the weights just moved away); the device tool carries
    # 64 MiB at most, so a round over it is stopped here, before any device time is spent
    tree=$(set +o pipefail; { git ls-files -z; git ls-files -z -o --exclude-standard; } | xargs -0 -r stat -c %s -- 2>/dev/null \
            | awk '{s += $1} END {print s + 0}')
    carried=$(set +o pipefail; du -scb .data/pack .whl .resume 2>/dev/null | tail -n 1 | cut -f1)
    total=$((tree + carried))
    echo "carry: $((total / 1048576)) MiB of 64 (working tree $((tree / 1048576)), .data/pack + .whl + .resume $((carried / 1048576)))"
    if [ "$total" -gt $((64 * 1048576)) ]; then
      mv .stash/*.safetensors lic/weights/
      echo "too much to carry: weights put back in lic/weights/; make a smaller pack (python tools/gpu_pack.py --mib N) or name fewer MODELS" >&2
      exit 1
    fi ;;
  restore)
    ls .stash/*.safetensors >/dev/null 2>&1 || { echo "nothing in .stash/"; exit 1; }
    mv .stash/*.safetensors lic/weights/
    git status --short lic/weights ;;
  *) echo "usage: tools/gpu_stash.sh save|restore" >&2; exit 2 ;;
esac
