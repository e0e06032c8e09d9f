"""Our SGD steps as torch.optim.SGD does, bit for bit (folded into the products: up to rounding); its state
resumes a run exactly."""
import pytest
import torch

import pretrain
from pretrain.layers import LayerSpec
from pretrain.training.adam import Adam
from pretrain.training.epoch import layer_optimizer, run_epoch
from pretrain.training.sgd import SGD


def layer(spec="rbm:7,momentum=0.9,weight_decay=0.01", dtype=torch.float32):
    torch.manual_seed(0)
    return LayerSpec.parse(spec).build(12, "unit").to(dtype)


def gradients(step, module):
    """Fixed gradients for step ``step``, one tensor per parameter; the visible bias gets none at step 1."""
    g = torch.Generator().manual_seed(step)
    return [None if step == 1 and name == "visible_bias" else torch.randn(p.shape, generator=g, dtype=p.dtype)
            for name, p in module.named_parameters()]


@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.5, 0.01), (0.0, 0.1)])
@pytest.mark.parametrize("foreach", [False, True])
def test_steps_equal_torch_sgd_bit_for_bit(momentum, weight_decay, foreach):
    """Several steps on the same gradients, one parameter starting late, decay on the weights only."""
    ours, theirs = layer(), layer()
    mine = SGD(ours.parameter_groups(weight_decay), lr=0.05, momentum=momentum)
    reference = torch.optim.SGD(theirs.parameter_groups(weight_decay), lr=0.05, momentum=momentum, foreach=foreach)
    for step in range(5):
        for module in (ours, theirs):
            for p, g in zip(module.parameters(), gradients(step, module)):
                p.grad = None if g is None else g.clone()
        mine.step()
        reference.step()
        for a, b in zip(ours.parameters(), theirs.parameters()):
            assert torch.equal(a, b), (step, momentum, weight_decay)


def test_state_dict_has_torch_layout_and_resumes_from_torch_state():
    """A checkpoint's optimizer state written by torch.optim.SGD continues here as it would in torch."""
    ours, theirs = layer(), layer()
    reference = torch.optim.SGD(theirs.parameter_groups(0.01), lr=0.05, momentum=0.9)
    for step in range(2):
        for p, g in zip(theirs.parameters(), gradients(step, theirs)):
            p.grad = g
        reference.step()
    ours.load_state_dict(theirs.state_dict())
    mine = SGD(ours.parameter_groups(0.01), lr=0.05, momentum=0.9)
    mine.load_state_dict(reference.state_dict())
    for step in (2, 3):
        for module in (ours, theirs):
            for p, g in zip(module.parameters(), gradients(step, module)):
                p.grad = g
        mine.step()
        reference.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)
    saved = mine.state_dict()
    assert saved["param_groups"][0]["params"] == [0] and set(saved["state"]) == {0, 1, 2}
    assert torch.equal(saved["state"][0]["momentum_buffer"], reference.state[theirs.weight]["momentum_buffer"])


def test_a_state_dict_of_other_groups_is_refused():
    mine = SGD(layer().parameter_groups(0.0), lr=0.1, momentum=0.5)
    with pytest.raises(ValueError, match="groups of"):
        mine.load_state_dict({"state": {}, "param_groups": [{"params": [0, 1, 2]}]})


def test_the_trainer_uses_it_for_rbms_and_our_adam_for_autoencoders():
    assert isinstance(layer_optimizer(layer(), 0.1), SGD)
    autoencoder = LayerSpec.parse("ae:5").build(12, "unit")
    assert isinstance(layer_optimizer(autoencoder, 0.1), Adam)


@pytest.mark.parametrize("kind", ["rbm", "grbm"])
@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 0.01), (0.0, 0.01), (0.5, 0.0)])
def test_run_epoch_with_it_equals_run_epoch_with_torch_sgd(kind, momentum, weight_decay):
    """Float64 PCD epochs: with the updates of the weight and the biases folded into their products and sums
    (every branch of ``fold``; a grbm folds its hidden biases, not its visible ones) the weights and chains
    are torch's SGD's up to the order of the sums."""
    def build():
        torch.manual_seed(0)
        return LayerSpec.parse(spec).build(12, "unit" if kind == "rbm" else "real").to(torch.float64)

    spec = f"{kind}:7,momentum={momentum},weight_decay={weight_decay},pcd=true"
    x = torch.rand(60, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    states = []
    for optimizer in (SGD, torch.optim.SGD):
        rbm = build()
        stepper = optimizer(rbm.parameter_groups(weight_decay), lr=0.05, momentum=momentum)
        torch.manual_seed(2)
        for _ in range(3):
            run_epoch(rbm, stepper, x, batch_size=10)
        states.append(rbm.state_dict())
    for name in ("weight", "hidden_bias", "visible_bias"):
        assert not torch.equal(states[0][name], build().state_dict()[name]), name
    for name in states[0]:
        torch.testing.assert_close(states[0][name], states[1][name], rtol=1e-12, atol=1e-14, msg=name)


def test_fold_sends_the_weight_to_its_buffer_and_the_step_completes_it():
    """After ``fold`` the caller adds scale * g to the buffer; the step then equals torch's step on .grad = g."""
    for momentum, weight_decay in [(0.0, 0.0), (0.9, 0.01), (0.0, 0.01)]:
        ours, theirs = layer(), layer()
        mine = SGD(ours.parameter_groups(weight_decay), lr=0.05, momentum=momentum)
        reference = torch.optim.SGD(theirs.parameter_groups(weight_decay), lr=0.05, momentum=momentum)
        for step in range(3):
            g = gradients(step, ours)[0]
            into = mine.fold([ours.weight])
            if momentum or not weight_decay:
                buffer, scale = into[ours.weight]
                with torch.no_grad():
                    buffer.add_(g, alpha=scale)
            else:  # decay without momentum is not folded: the gradient goes to .grad
                assert into == {}
                ours.weight.grad = g.clone()
            mine.step()
            theirs.weight.grad = g.clone()
            reference.step()
            torch.testing.assert_close(ours.weight, theirs.weight, rtol=1e-6, atol=1e-7)
        assert not mine.folded


def test_resume_mid_layer_with_momentum_equals_the_uninterrupted_run(tmp_path, crash_at_epoch):
    """Killed in an RBM's third epoch (momentum 0.9, weight decay): the resumed stack is bit for bit the same."""
    layers = ["rbm:16,momentum=0.9,weight_decay=0.001"]

    def run(out, **kwargs):
        return pretrain.pretrain_stack("digits", layers, out, epochs=4, batch_size=50, seed=3, progress=False,
                                       **kwargs)

    whole = run(tmp_path / "whole")
    crash_at_epoch(3)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "crashed")
    saved = torch.load(tmp_path / "crashed" / "checkpoint.pt", weights_only=True)
    assert saved["current"]["epoch"] == 2
    assert saved["current"]["optimizer"]["state"][0]["momentum_buffer"].abs().max() > 0
    crash_at_epoch(None)
    resumed = run(tmp_path / "crashed", resume=True)
    for name, tensor in whole.layers[0].state_dict().items():
        assert torch.equal(tensor, resumed.layers[0].state_dict()[name]), name
