"""A tiny RBM whose likelihood is computable by enumeration: CD must raise it, and follow its formula."""
import itertools

import torch

from pretrain.training.epoch import layer_optimizer, run_epoch
from pretrain.layers import LayerSpec
from pretrain.layers.energy import bernoulli_sample

N_VISIBLE, N_HIDDEN = 6, 4


def log_likelihood(rbm, v):
    """Exact mean log p(v) = -F(v) - log Z, with Z summed over all 2^6 visible vectors."""
    every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=N_VISIBLE)))
    with torch.no_grad():
        log_z = torch.logsumexp(-rbm.free_energy(every), 0)
        return float((-rbm.free_energy(v) - log_z).mean())


def prototype_data(n=2000):
    """Two binary prototypes with 5% of bits flipped: a distribution an RBM with 4 hidden units can fit."""
    prototypes = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1]], dtype=torch.float32)
    v = prototypes[torch.randint(0, 2, (n,))]
    flips = torch.rand_like(v) < 0.05
    return torch.where(flips, 1 - v, v)


def train(options, data, lr, epochs=30):
    rbm = LayerSpec.parse(f"rbm:{N_HIDDEN}{options}").build(N_VISIBLE, "unit")
    optimizer = layer_optimizer(rbm, lr)
    for _ in range(epochs):
        run_epoch(rbm, optimizer, data, batch_size=20)
    return rbm


def test_cd_raises_the_exact_log_likelihood():
    data = prototype_data()
    torch.manual_seed(1)
    before = log_likelihood(LayerSpec.parse(f"rbm:{N_HIDDEN}").build(N_VISIBLE, "unit"), data)
    torch.manual_seed(1)
    after = log_likelihood(train("", data, 0.1), data)
    # Uniform model: 6 log 0.5 = -4.16; the data's entropy is about 0.69 + 6 * 0.199 = 1.89 nats.
    assert before < -4.0
    assert after > -2.6, (before, after)


def test_pcd_raises_the_exact_log_likelihood():
    data = prototype_data()
    assert log_likelihood(train(",pcd=true", data, 0.05), data) > -2.8


def test_cd_update_matches_its_formula():
    """One SGD step (no momentum) moves W by lr * (<h v>_data - <h v>_model), likewise the biases."""
    rbm = LayerSpec.parse(f"rbm:{N_HIDDEN},momentum=0,k=1").build(N_VISIBLE, "unit")
    v = prototype_data(32)
    lr = 0.1
    weight, vbias, hbias = (p.detach().clone() for p in (rbm.weight, rbm.visible_bias, rbm.hidden_bias))

    torch.manual_seed(7)
    h_data = torch.sigmoid(v @ weight.t() + hbias)
    h_sample = bernoulli_sample(h_data)
    v_model = torch.sigmoid(h_sample @ weight + vbias)  # CD-1: mean-field visible reconstruction
    h_model = torch.sigmoid(v_model @ weight.t() + hbias)
    expected_weight = weight + lr * (h_data.t() @ v - h_model.t() @ v_model) / len(v)
    expected_vbias = vbias + lr * (v - v_model).mean(0)
    expected_hbias = hbias + lr * (h_data - h_model).mean(0)

    torch.manual_seed(7)
    optimizer = layer_optimizer(rbm, lr)
    rbm.accumulate_gradients(v)  # what the trainer calls
    optimizer.step()
    torch.testing.assert_close(rbm.weight.detach(), expected_weight)
    torch.testing.assert_close(rbm.visible_bias.detach(), expected_vbias)
    torch.testing.assert_close(rbm.hidden_bias.detach(), expected_hbias)


def test_closed_form_gradient_equals_autograd_of_the_free_energy_gap():
    rbm = LayerSpec.parse(f"rbm:{N_HIDDEN}").build(N_VISIBLE, "unit")
    v = prototype_data(16)
    torch.manual_seed(3)
    rbm.accumulate_gradients(v)
    fused = [p.grad.clone() for p in (rbm.weight, rbm.visible_bias, rbm.hidden_bias)]
    rbm.zero_grad()
    torch.manual_seed(3)
    with torch.no_grad():
        v_model, _ = rbm.negative_phase(rbm(v))
    (rbm.free_energy(v).mean() - rbm.free_energy(v_model).mean()).backward()
    for got, want in zip(fused, (rbm.weight.grad, rbm.visible_bias.grad, rbm.hidden_bias.grad)):
        torch.testing.assert_close(got, want)


def test_pseudo_likelihood_matches_scikit_learn_definition():
    """score_samples: n_visible * log sigmoid(F(v with one bit flipped) - F(v))."""
    rbm = LayerSpec.parse(f"rbm:{N_HIDDEN}").build(N_VISIBLE, "unit")
    v = prototype_data(1)
    torch.manual_seed(5)
    got = rbm.pseudo_likelihood(v)
    torch.manual_seed(5)
    col = int(torch.randint(0, N_VISIBLE, (1,)))
    flipped = v.clone()
    flipped[0, col] = 1 - flipped[0, col]
    want = N_VISIBLE * torch.nn.functional.logsigmoid(rbm.free_energy(flipped) - rbm.free_energy(v))
    torch.testing.assert_close(got, want.detach())


def test_gibbs_samples_resemble_the_training_data():
    data = prototype_data()
    samples = train("", data, 0.1).sample(500, steps=50)
    torch.testing.assert_close(samples.mean(0), data.mean(0), atol=0.12, rtol=0)
