#!/usr/bin/env bash
# Download the wheels the lent GPU machine lacks (Python 3.12, x86-64) into .whl/ (git-ignored).
# On the device, start each command with:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD || exit
set -euo pipefail
cd "$(dirname "$0")/.."
# .whl/ is git-ignored (see .gitignore): name it in the device tool's carry list
for pkg in constriction==0.5.0 pytorch-msssim==1.0.0; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "$pkg"
done
ls -la .whl
