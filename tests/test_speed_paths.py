"""The fast paths: closed-form RBM gradients equal autograd, build no graph; CUDA paths where a GPU exists."""
import json

import numpy as np
import pytest
import torch

from pretrain.core.batches import device_batches
from pretrain.training.epoch import LOSS_EVERY, layer_optimizer, run_epoch
from pretrain.layers import LayerSpec

RBM_SPECS = ["rbm:7", "rbm:7,pcd=true", "rbm:7,k=3", "rbm:7,negative_visible=sample,pcd=true",
             "rbm:7,sparsity=0.1,sparsity_cost=0.5", "grbm:7", "grbm:7,learn_std=true,min_std=0.5",
             "grbm:7,learn_std=true,sparsity=0.2,k=2"]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def build(spec, n_visible=12, dtype=torch.float64):
    torch.manual_seed(0)
    layer = LayerSpec.parse(spec).build(n_visible, "real" if spec.startswith("grbm") else "unit").to(dtype)
    with torch.no_grad():  # weights and scales large enough for every term to matter
        layer.weight.mul_(30)
        if hasattr(layer, "log_std"):
            layer.log_std.uniform_(-1.5, 0.5)  # some scales clamped at min_std=0.5, some not
    return layer


def batch(spec, rows=9, n_visible=12, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    if spec.startswith("grbm"):
        return torch.randn(rows, n_visible, generator=g, dtype=dtype)
    return torch.rand(rows, n_visible, generator=g, dtype=dtype)


def trainable(layer):
    return [p for p in layer.parameters() if p.requires_grad]


@pytest.mark.parametrize("spec", RBM_SPECS)
def test_closed_form_gradient_and_loss_equal_autograd(spec):
    closed, auto = build(spec), build(spec)
    v = batch(spec)
    if "pcd" in spec:  # PCD chains of another size than the batch, as the scikit-learn drop-in has
        chain = torch.bernoulli(torch.full((5, 7), 0.5, dtype=torch.float64))
        closed.chain, auto.chain = chain.clone(), chain.clone()
    torch.manual_seed(3)
    loss = closed.accumulate_gradients(v)
    torch.manual_seed(3)
    want = auto.loss(v)
    want.backward()
    torch.testing.assert_close(loss, want.detach())
    for got, ref in zip(trainable(closed), trainable(auto)):
        torch.testing.assert_close(got.grad, ref.grad)
        assert ref.grad.abs().max() > 1e-6  # each gradient is exercised
    assert torch.equal(closed.chain, auto.chain)


@pytest.mark.parametrize("spec", RBM_SPECS)
def test_closed_form_builds_no_graph_and_accumulates_like_backward(spec):
    layer = build(spec)
    v = batch(spec)
    torch.manual_seed(4)
    loss = layer.accumulate_gradients(v)
    assert not loss.requires_grad and loss.grad_fn is None and loss.ndim == 0
    assert all(p.grad.grad_fn is None for p in trainable(layer))
    once = [p.grad.clone() for p in trainable(layer)]
    layer.chain = torch.empty(0, 7, dtype=torch.float64)  # PCD restarts its chains: the same draws again
    torch.manual_seed(4)
    layer.accumulate_gradients(v)  # adds to .grad, as a second backward would
    for twice, single in zip([p.grad for p in trainable(layer)], once):
        torch.testing.assert_close(twice, 2 * single)


def test_autoencoders_keep_autograd():
    layer = LayerSpec.parse("ae:5").build(12, "unit")
    loss = layer.accumulate_gradients(torch.rand(8, 12))
    assert loss.grad_fn is None and all(p.grad is not None for p in layer.parameters())


def test_trainer_step_equals_a_hand_written_sgd_step_with_momentum():
    """run_epoch on one batch = autograd's gradient through torch's SGD (momentum kept in its state)."""
    layer, ref = build("rbm:7,momentum=0.9"), build("rbm:7,momentum=0.9")
    v = batch("rbm")
    opt, ref_opt = layer_optimizer(layer, 0.05), torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
    for seed in (5, 6):
        torch.manual_seed(seed)
        run_epoch(layer, opt, v, batch_size=len(v))
        torch.manual_seed(seed)
        order = torch.randperm(len(v))
        ref_opt.zero_grad()
        ref.loss(v[order]).backward()
        ref_opt.step()
    for got, want in zip(layer.parameters(), ref.parameters()):
        torch.testing.assert_close(got, want)


def test_device_batches_are_the_shuffled_rows():
    x = torch.arange(23 * 3, dtype=torch.float32).reshape(23, 3)
    order = torch.randperm(23)
    batches = list(device_batches(x, order, 5, torch.device("cpu")))
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    assert torch.equal(torch.cat(batches), x[order])


@cuda
def test_memory_mapped_rows_reach_the_gpu_through_pinned_staging(tmp_path):
    rows = np.lib.format.open_memmap(tmp_path / "codes.npy", mode="w+", dtype=np.float32, shape=(1001, 7))
    rows[:] = np.random.default_rng(0).random((1001, 7))
    x = torch.from_numpy(rows)
    order = torch.randperm(1001)
    batches = [b.clone() for b in device_batches(x, order, 100, torch.device("cuda"))]
    assert all(b.is_cuda for b in batches) and not x.is_pinned()
    assert torch.equal(torch.cat(batches).cpu(), x[order])


@cuda
def test_gpu_training_from_a_memory_map_equals_training_from_gpu_memory(tmp_path):
    rows = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=(500, 12))
    rows[:] = np.random.default_rng(1).random((500, 12))
    stacks = []
    for x in (torch.from_numpy(rows), torch.from_numpy(np.array(rows)).cuda()):
        torch.manual_seed(0)
        layer = LayerSpec.parse("rbm:7,pcd=true").build(12, "unit").cuda()
        optimizer = layer_optimizer(layer, 0.1)
        for _ in range(2):
            run_epoch(layer, optimizer, x, 50)
        stacks.append(layer.state_dict())
    for name in stacks[0]:
        assert torch.equal(stacks[0][name], stacks[1][name]), name


@cuda
def test_gpu_resume_equals_uninterrupted(tmp_path, crash_at_epoch):
    """The CUDA generator's state is in the checkpoint, so a resumed GPU run draws the same samples."""
    import pretrain

    def run(out, **kwargs):
        return pretrain.pretrain_stack("digits", ["rbm:16,pcd=true"], out, epochs=3, batch_size=50, seed=2,
                                       device="cuda", progress=False, **kwargs)

    whole = run(tmp_path / "whole")
    crash_at_epoch(3)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "crashed")
    crash_at_epoch(None)
    resumed = run(tmp_path / "crashed", resume=True)
    for a, b in zip(whole.layers, resumed.layers):
        for name, tensor in a.state_dict().items():
            assert torch.equal(tensor, b.state_dict()[name]), name


def test_profile_shows_where_the_time_went_and_the_record_keeps_it(tmp_path):
    from click.testing import CliRunner

    from pretrain.cli import main
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["digits", "-l", "rbm:16", "-o", str(out), "--epochs", "2", "-q",
                                       "--no-plots", "--profile"])
    assert result.exit_code == 0, result.output
    for phase in ("training epochs", "monitors", "checkpoints", "preprocessing", "data loading", "other"):
        assert phase in result.output
    seconds = json.loads((out / "stack.json").read_text())["seconds"]
    assert {"training epochs", "monitors", "checkpoints", "preprocessing"} <= set(seconds)
    assert all(value >= 0 for value in seconds.values())


def test_pretraining_and_fine_tuning_import_neither_dynamo_nor_symbolic_shapes():
    """Our SGD and Adam never touch torch.optim's dynamo-wrapped methods, nor the probe (SciPy's L-BFGS-B);
    ``to_modules`` builds on the meta device, not through ``skip_init`` (whose ``to_empty`` imports
    torch.fx's symbolic shapes): over a second each."""
    import subprocess
    import sys
    script = ("import sys, pretrain, finetune\n"
              "stack = pretrain.pretrain_stack('digits', ['rbm:8', 'grbm:4', 'ae:4'], epochs=1, progress=False)\n"
              "stack.encoder()\n"
              "for schedule in ('linear', 'full'):\n"
              "    finetune.fine_tune('digits', 'pixels', schedule=schedule, labels_per_class=2, epochs=2,"
              " progress=False)\n"
              "print(sorted(m for m in ('torch._dynamo', 'torch.fx.experimental.symbolic_shapes') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


@pytest.mark.parametrize("spec", ["rbm:32", "rbm:32,k=3"])  # CD: the chains start at the batch's rows
def test_the_reported_loss_estimates_the_whole_batch_gap_without_bias(spec, digits_unit):
    """The loss of a 200-row batch takes its softplus terms from 16 rows: over 200 shuffles its mean stays
    within 4 standard errors of the whole-batch gap (measured: 1.8 for rbm:32), and the gradient still
    equals autograd's over all 200 rows."""
    layer = LayerSpec.parse(spec).build(64, "unit")
    run_epoch(layer, layer_optimizer(layer, 0.1), digits_unit, batch_size=50)  # weights away from their init
    reported, whole = [], []
    for seed in range(200):
        v = digits_unit[torch.randperm(len(digits_unit), generator=torch.Generator().manual_seed(seed))[:200]]
        torch.manual_seed(seed)
        layer.zero_grad(set_to_none=True)
        reported.append(float(layer.accumulate_gradients(v)))
        closed = [p.grad.clone() for p in trainable(layer)]
        torch.manual_seed(seed)
        layer.zero_grad(set_to_none=True)
        loss = layer.loss(v)
        loss.backward()
        whole.append(float(loss.detach()))
        for got, ref in zip(closed, [p.grad for p in trainable(layer)]):
            torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-6)
    reported, whole = torch.tensor(reported), torch.tensor(whole)
    standard_error = reported.std() / len(reported) ** 0.5
    assert abs(reported.mean() - whole.mean()) < 4 * standard_error, (reported.mean(), whole.mean(), standard_error)


@pytest.mark.parametrize("spec", ["rbm:8", "ae:8"])
def test_the_epoch_loss_is_the_mean_of_the_losses_it_asked_for(spec, digits_unit):
    """An RBM is asked for its loss at every LOSS_EVERY-th minibatch; an autoencoder returns one at every
    step and each counts. The epoch's figure is their row-weighted mean (a last batch of 37 rows included)."""
    layer = LayerSpec.parse(spec).build(64, "unit")
    asked, returned = [], []
    accumulate = layer.accumulate_gradients

    def recording(batch, into=None, with_loss=True):
        asked.append(with_loss)
        loss = accumulate(batch, into, with_loss)
        returned.append(None if loss is None else (float(loss), batch.shape[0]))
        return loss

    layer.accumulate_gradients = recording
    x = digits_unit[:12 * 100 + 37]
    loss = run_epoch(layer, layer_optimizer(layer, 0.01), x, batch_size=100)
    assert asked == [step % LOSS_EVERY == 0 for step in range(13)]
    counted = [r for r in returned if r is not None]
    assert len(counted) == (13 if spec.startswith("ae") else len(range(0, 13, LOSS_EVERY)))
    expected = sum(value * rows for value, rows in counted) / sum(rows for _, rows in counted)
    assert loss == pytest.approx(expected, rel=1e-5)
