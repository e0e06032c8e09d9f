#!/usr/bin/env bash
# The checks that need a GPU (issue 18, section 5), in one run of a few minutes on a machine with CUDA:
#   1. the CUDA-marked tests (they skip without a GPU): pinned staging from memory maps, training from a
#      memory map equal to training from GPU memory, a resume on CUDA equal to an uninterrupted run (an RBM
#      stack and a conv one), a conv stack's probe on CUDA equal to the CPU's and its fine-tuning with shifts;
#   2. the RBM trainer's throughput on the GPU against the GPU's matmul and against the CPU
#      (gpu_throughput.py: >= 50% of matmul at batch 1000, >= 20x the CPU at batch 100);
#   3. pretrain under torchrun with NCCL on the GPU: it trains, and stack.json names the backend;
#   4. the README's quick start on --device cuda.
# Run from anywhere, after `pip install -e '.[test]'` and `apt-get install -y dataset-fashion-mnist`
# (or with FASHION pointing at the IDX files); what it prints goes into the README.
#
#     bash examples/benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=$(mktemp -d)
status=0
step() { echo; echo "== $1"; }

step "device"
python -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || { echo "no CUDA device"; exit 1; }

step "CUDA-marked tests"
python -m pytest -q -rs tests/test_speed_paths.py -k "gpu or pinned" || status=1
python -m pytest -q -rs tests/test_conv.py -k cuda || status=1

step "throughput (gpu_throughput.py)"
python examples/benchmarks/gpu_throughput.py || status=1

step "torchrun, NCCL"
torchrun --standalone --nproc_per_node 1 -m pretrain digits -l rbm:128 -l rbm:64 --epochs 3 --device cuda \
    -o "$OUT/nccl" -q --no-plots || status=1
python - "$OUT/nccl/stack.json" <<'EOF' || status=1
import json, sys
distributed = json.load(open(sys.argv[1]))["distributed"]
print(distributed)
assert distributed["backend"] == "nccl", distributed
EOF

step "quick start on CUDA"
pretrain digits -l rbm:128,momentum=0.9 -l rbm:64,momentum=0.9 --epochs 30 -o "$OUT/digits" --device cuda -q \
    && finetune digits --from "$OUT/digits" --from "random:$OUT/digits" --labels-per-class 1,2,5,10 --seeds 3 \
        --device cuda -q || status=1

rm -rf "$OUT"
echo; echo "gpu_check: $([ $status = 0 ] && echo passed || echo FAILED)"
exit $status
