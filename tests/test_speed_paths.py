"""The fast paths: closed-form RBM gradients equal autograd, build no graph; CUDA paths where a GPU exists."""
import pytest
import torch

from pretrain.greedy import layer_optimizer, run_epoch
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
    """run_epoch on one batch = the closed-form gradient through torch's SGD (momentum kept in its state)."""
    layer, ref = build("rbm:7,momentum=0.9"), build("rbm:7,momentum=0.9")
    v = batch("rbm")
    opt, ref_opt = layer_optimizer(layer, 0.05), layer_optimizer(ref, 0.05)
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
