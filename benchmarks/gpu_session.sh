#!/usr/bin/env bash
# Every GPU check in one go, sized for a few minutes of a lent GPU machine (an H200 took about
# 5; see benchmarks/RESULTS.md). Run from the repository root on the GPU machine:
#
#   bash benchmarks/gpu_session.sh [OUT]        # OUT: folder for logs and JSON (default $OUT or /tmp/harvest-gpu)
#   STEPS="job tests" JOB_RUNS=2 bash benchmarks/gpu_session.sh     # some steps; the job runs twice
#
# 1. kernels: benchmarks/kernels_gpu.py at 4 pixels per load, plus the sweep of loads per round;
# 2. the indices job's worker, one GPU actor against one CPU actor (benchmarks/indices_device.py),
#    at pack 4 and at pack 1;
# 3. the real-device tests (pytest -m gpu).
# Each step has its own time limit, and a failed step does not stop the next.
#
# The GPU machine's Python may lack the project's pure dependencies and may hold a NumPy newer
# than its numba-cuda supports: wheels for them (cp312) in .whl/ are installed to /tmp/site first:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     numpy==2.4.6 zarr numcodecs donfig google-crc32c pydantic pydantic_core annotated_types \
#     typing_inspection typing_extensions affine pyproj
# and the job's cube template, which needs rioxarray and dask to make (its data is written there):
#   python -m benchmarks.indices_device --template-only --work .gpu-work --tiles 12 --dates 24 --tile-px 512
# Carry both folders (.whl and .gpu-work).
set -u
OUT_DIR=${1:-${OUT:-/tmp/harvest-gpu}}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee "$OUT_DIR/gpu.txt"
python3 -c "import numpy, numba, zarr; from numba import cuda; print('numpy', numpy.__version__, \
'numba', numba.__version__, 'zarr', zarr.__version__, 'cuda', cuda.is_available())" 2>&1 | tee -a "$OUT_DIR/gpu.txt"

STEPS=" ${STEPS:-kernels job tests} "
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to OUT_DIR/NAME.log
    local name=$1 limit=$2
    shift 2
    [[ $STEPS == *" ${name%%_*} "* ]] || return 0
    echo "== $name ($(date +%T), limit ${limit}s): $*"
    local t0=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$OUT_DIR/$name.log"
    echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s" | tee -a "$OUT_DIR/$name.log"
}

step kernels 210 python3 -m benchmarks.kernels_gpu --pack 4 --sweep --packs 1,4 --unrolls 1,2,4 \
    --json "$OUT_DIR/kernels_gpu.json"
WORK=/tmp/harvest-gpu-work
rm -rf "$WORK" && mkdir -p "$WORK" && { [ ! -d .gpu-work ] || cp -r .gpu-work/. "$WORK/"; }
JOB=(python3 -m benchmarks.indices_device --tiles 12 --dates 24 --tile-px 512 --work "$WORK")
for run in $(seq "${JOB_RUNS:-1}"); do  # alternated, so a drift of the machine shows as spread
    step job_pack4 90 "${JOB[@]}" --pack 4 --json "$OUT_DIR/indices_device_pack4_$run.json"
    step job_pack1 90 "${JOB[@]}" --pack 1 --json "$OUT_DIR/indices_device_pack1_$run.json"
done
# test_real_data.py reads GeoTIFFs with rasterio, which the GPU machine lacks; it has no GPU test
step tests 240 python3 -m pytest -q -p no:cacheprovider -m gpu tests/cluster/kernels \
    --ignore=tests/cluster/kernels/test_real_data.py
