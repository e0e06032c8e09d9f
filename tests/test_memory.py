"""Freed memory stays in a training process: the same big tensors every step no longer fault their pages in."""
import subprocess
import sys

import pytest

STEPS = """
import resource, sys
from pretrain.core.memory import keep_freed_memory
if not keep_freed_memory():
    print("no mallopt"); sys.exit()
import torch
import torch.nn.functional as F
torch.set_num_threads(2)
torch.manual_seed(0)
v, w = torch.rand(100, 1, 28, 28), torch.randn(32, 1, 5, 5)
def step():  # a convolutional autoencoder's pass at batch 100: 32 maps of 28 x 28 (10 MB) made and freed
    code = F.max_pool2d(torch.relu(F.conv2d(v, w, padding=2)), 2)
    return float(F.conv_transpose2d(F.interpolate(code, size=(28, 28)), w, padding=2).sigmoid().sum())
for _ in range(8):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES_PER_TENSOR = 100 * 32 * 28 * 28 * 4 // 4096


def test_steps_that_free_and_make_the_same_tensors_do_not_fault_them_in_again():
    """With glibc's defaults at 2 threads the 10 steps took 29,000 to 99,000 faults (4 runs); kept, 0."""
    out = subprocess.run([sys.executable, "-c", STEPS], capture_output=True, text=True, check=True).stdout.strip()
    if out == "no mallopt":
        pytest.skip("no glibc mallopt here")
    assert int(out) < 10 * PAGES_PER_TENSOR / 2, out  # under half a tensor's pages a step, on average
