#!/bin/sh
# The paper table's seed grid on a lent GPU (issue 17): several bench/paper_table.py tables at once,
# each with --device cuda and worker processes (--jobs), for at most SECONDS; every finished run is
# saved to OUT/NAME.partial.json as it ends, so a cut-off grid keeps what finished. A GPU run is
# launch-bound (a MiniLM step of batch 16 leaves the H200 mostly idle), so a dozen runs share it well.
#
# On the GPU machine, with .gpu carried (bench/README.md, "GPU"):
#   sh bench/paper_table_gpu.sh 470 "$OUT"
# Back here, with the partial files copied to a results folder:
#   FEDHEADS_BENCH_RESULTS=FOLDER python bench/paper_table.py --report --device cuda --name NAME ... (the flags of its line below)
#
# The tables (each line: its name, then its flags; `--resume` keeps runs already in OUT):
#   paper_table-gpu       dense, mask s=0.9 with sampled heads and the heads-random init, and the two compute-saving
#                         rows nearest dense on the CPU (top 3 blocks; drop with compute s = 0.5), 4 seeds
#   paper_table-r25-gpu   dense and the same mask row at 25 rounds, 4 seeds
#   paper_tune-gpu-a32    dense with LoRA alpha 32 (LoRA's update twice as large, the classifier's unchanged)
#   paper_tune-gpu-lr1.5e-3-a32   the same LoRA update as the presets with half the classifier's rate
set -u
limit=${1:-470}
out=${2:-bench/results}
mkdir -p "$out"
[ -d /tmp/assets ] || python3 bench/peers/carry.py unpack .gpu > "$out/unpack.log" 2>&1 || { cat "$out/unpack.log"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD FEDHEADS_ASSETS_DIR=/tmp/assets FEDHEADS_BENCH_RESULTS="$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1

SHR="mask s=0.9, sampled heads, heads-random init"
table() {  # NAME JOBS FLAGS...
    name=$1 jobs=$2
    shift 2
    timeout "$limit" python3 bench/paper_table.py --device cuda --timing-reps 0 --resume --seeds 4 --name "$name" \
        --jobs "$jobs" "$@" > "$out/$name.log" 2>&1 &
}
table paper_table-gpu 6 --extra --only "dense FedAvg" "$SHR" "$SHR, top 3 blocks" \
    "drop s=0.9, compute s=0.5, sampled heads, heads-random init"
table paper_table-r25-gpu 3 --extra --rounds 25 --only "dense FedAvg" "$SHR"
table paper_tune-gpu-a32 2 --lora-alpha 32 --only "dense FedAvg"
table paper_tune-gpu-lr1.5e-3-a32 2 --lora-alpha 32 --lr 1.5e-3 --only "dense FedAvg"
wait
pkill -f multiprocessing.spawn 2>/dev/null  # the workers of a table cut off by the limit
for f in "$out"/*.log; do echo "== $f"; grep -E '^\s+\[[0-9]+/' "$f" | tail -20; tail -3 "$f"; done
