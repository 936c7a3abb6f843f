#!/usr/bin/env bash
# On a CUDA machine, in one go: the unit tests (GPU-only tests included), one notebook in full mode
# (03_pipeline: claims enforced) and the benchmark on the GPU. Every log and figure is saved under
# one folder, printed at the start and at the end. Run from anywhere:
#
#     bash benchmarks/gpu_check.sh            # PY=/path/to/python to pick the interpreter
#
# Without CUDA it stops at once with a clear message (exit 2). Exit 1 if any step failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
if [[ -z "${PY:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
OUT="${GPU_CHECK_OUT:-$ROOT/build/gpu_check/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
echo "gpu_check: figures and logs go to $OUT"

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>"$OUT/cuda_probe.err"; then
    echo "gpu_check: no CUDA device visible to $PY (torch.cuda.is_available() is False, or torch is missing:" >&2
    echo "  see $OUT/cuda_probe.err). Run this on a machine with an NVIDIA GPU and a CUDA build of torch," >&2
    echo "  e.g. make venv TORCH_INDEX=https://download.pytorch.org/whl/cu128" >&2
    exit 2
fi
"$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "device", torch.cuda.get_device_name(0))' \
    | tee "$OUT/device.txt"
command -v nvidia-smi >/dev/null && nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1

FAILED=()
step() {   # step NAME COMMAND...: run it, log to $OUT/NAME.log, remember a failure and go on
    local name="$1"; shift
    echo "== $name: $*"
    local t0=$SECONDS
    if "$@" > "$OUT/$name.log" 2>&1; then
        echo "   ok ($((SECONDS - t0)) s)"
    else
        echo "   FAILED ($((SECONDS - t0)) s): see $OUT/$name.log (last lines below)"
        tail -n 15 "$OUT/$name.log" | sed 's/^/   | /'
        FAILED+=("$name")
    fi
}

# 1. Unit tests (not the smoke runs of every notebook, not the JupyterLab server test), CUDA-only tests
#    included (tests/test_cuda_ready.py).
step unit_tests env PTM_SMOKE=1 TQDM_DISABLE=1 "$PY" -m pytest tests -q -p no:cacheprovider -n 4 --dist loadfile \
    --ignore=tests/test_notebooks.py --ignore=tests/test_lab.py
# 2. One notebook in full mode, on the GPU (ptm_lib.device picks CUDA); its results file is copied.
step notebook_03_full "$PY" -m ptm_lib.course run notebooks/03_pipeline.ipynb
cp build/results/03_pipeline.json build/notebooks/03_pipeline.ipynb "$OUT/" 2>/dev/null
# 3. The benchmark, training steps on the GPU (int8 inference stays on the CPU).
step bench "$PY" -m benchmarks --device cuda --out "$OUT/bench"

echo "gpu_check: figures and logs in $OUT (benchmark table: $OUT/bench/README.md)"
if (( ${#FAILED[@]} )); then
    echo "gpu_check: FAILED steps: ${FAILED[*]}" >&2
    exit 1
fi
echo "gpu_check: every step passed"
