"""Patch layers (Coates, Lee & Ng 2011): whitening, encoders, pooling, k-means, and a stack that holds them.

Real images: scikit-learn's 8 x 8 digits (grey), and colour images made from them
(three digits as the channels of one image), so that no test needs a download.
"""
import numpy as np
import pytest
import torch

import pretrain
from pretrain.core.errors import LayerwiseError
from pretrain.layers import LayerSpec
from pretrain.layers.encoders import region_edges, region_pool, triangle
from pretrain.layers.kmeans import KMeans
from pretrain.layers.whitening import fit_whitening, normalise, sample_patches
from pretrain.training import greedy
from test_greedy import assert_same_weights, interrupt_epoch


@pytest.fixture(scope="module")
def colour_digits(digits_unit):
    """[599, 3, 8, 8]: each image three digits as its red, green and blue channels."""
    grey = digits_unit[:1797 // 3 * 3].reshape(-1, 3, 8, 8)
    return grey.contiguous()


def layer_on(images, spec):
    layer = LayerSpec.parse(spec).build(tuple(images.shape[1:]), "unit")
    rows = layer.training_rows(images, fit=True)
    layer.init_from_data(rows)
    return layer.eval(), rows


def explicit_patches(images, patch):
    """Every patch, position by position: [N, rows, columns, C patch^2], as the paper extracts them."""
    n, c, h, w = images.shape
    return torch.stack([torch.stack([images[:, :, r:r + patch, s:s + patch].reshape(n, -1)
                                     for s in range(w - patch + 1)], 1) for r in range(h - patch + 1)], 1)


def test_whitened_patches_have_identity_covariance_but_for_their_mean(colour_digits):
    torch.manual_seed(0)
    z = normalise(sample_patches(colour_digits, 50000, 3), 1e-4)
    mean, matrix = fit_whitening(z, 1e-5)
    w = (z - mean) @ matrix
    d = w.shape[1]
    covariance = torch.cov(w.T.double())
    # normalisation removes each patch's mean, so the all-ones direction has no variance left to whiten
    expected = torch.eye(d, dtype=torch.float64) - 1.0 / d
    assert float((covariance - expected).abs().max()) < 0.02
    before = torch.cov(z.T.double())
    assert float((before - torch.diag(before.diag())).abs().max()) > 0.3  # neighbouring pixels were correlated


def test_whitening_folded_into_the_encoder_equals_whitening_each_patch(colour_digits):
    torch.manual_seed(0)
    layer, _ = layer_on(colour_digits[:300], "patch-grbm:12,patch=3,patches=5000")
    images = colour_digits[300:310]
    hp = layer.hparams
    w = (normalise(explicit_patches(images, 3), hp["norm_eps"]) - layer.patch_mean) @ layer.whitening
    codes = layer.learner(w)  # sigmoid(W w + c) at every position
    rows, columns = region_edges(6, 2), region_edges(6, 2)
    expected = torch.stack([codes[:, rows[i]:rows[i + 1], columns[j]:columns[j + 1]].sum((1, 2))
                            for i in range(2) for j in range(2)], -1).reshape(10, 12, 2, 2)
    torch.testing.assert_close(layer(images), expected, rtol=1e-4, atol=1e-4)


def test_triangle_and_soft_threshold_equal_their_formulas():
    torch.manual_seed(0)
    w, centroids = torch.randn(50, 9), torch.randn(7, 9)
    z = torch.cdist(w.double(), centroids.double())
    expected = (z.mean(1, keepdim=True) - z).clamp(min=0)
    torch.testing.assert_close(triangle(w, centroids).double(), expected, rtol=1e-4, atol=1e-4)
    assert 0 < float((expected > 0).double().mean()) < 1  # some features on, some off
    layer, _ = layer_on(torch.rand(40, 1, 6, 6), "patch-sampled:5,patch=3,patches=500,alpha=0.3,grid=1")
    torch.manual_seed(1)
    x = torch.rand(4, 1, 6, 6)
    w = (normalise(explicit_patches(x, 3), layer.hparams["norm_eps"]) - layer.patch_mean) @ layer.whitening
    soft = (w @ layer.learner.weight.T - 0.3).clamp(min=0).sum((1, 2))
    torch.testing.assert_close(layer(x).reshape(4, 5), soft, rtol=1e-4, atol=1e-4)


def test_sum_pooling_over_quadrants_equals_the_sums():
    maps = torch.rand(3, 27, 25, 6)
    pooled = region_pool(maps, 2, "sum")
    quadrants = [maps[:, :14, :13], maps[:, :14, 13:], maps[:, 14:, :13], maps[:, 14:, 13:]]
    expected = torch.stack([q.sum((1, 2)) for q in quadrants], -1).reshape(3, 6, 2, 2)
    torch.testing.assert_close(pooled, expected)
    maxed = torch.stack([q.amax((1, 2)) for q in quadrants], -1).reshape(3, 6, 2, 2)
    assert torch.equal(region_pool(maps, 2, "max"), maxed)


def test_a_kmeans_epoch_lowers_its_objective(colour_digits):
    torch.manual_seed(0)
    _, rows = layer_on(colour_digits, "patch-kmeans:16,patch=3,patches=8000")
    kmeans = KMeans(rows.shape[1], 16)
    kmeans.init_from_data(rows)
    before = float(kmeans.loss(rows).detach())
    for start in range(0, len(rows), 500):
        kmeans.weight.grad = None
        kmeans.accumulate_gradients(rows[start:start + 500])
        with torch.no_grad():
            kmeans.weight -= kmeans.weight.grad  # the trainer's SGD at rate 1
    after = float(kmeans.loss(rows).detach())
    assert after < 0.9 * before, (before, after)


@pytest.mark.parametrize("spec", ["patch-kmeans:10,patch=3,patches=4000", "patch-grbm:10,patch=3,patches=4000",
                                  "patch-ae:10,patch=3,patches=4000,whiten=false"])
def test_a_patch_stack_resumes_bit_for_bit_and_round_trips(tmp_path, monkeypatch, spec):
    def run(out, **kwargs):
        return pretrain.pretrain_stack("digits", [spec, "rbm:16"], out, epochs=2, batch_size=100, seed=3,
                                       progress=False, **kwargs)

    straight = run(tmp_path / "straight")
    real = interrupt_epoch(monkeypatch, 2)  # the patch layer's second epoch
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "crashed")
    monkeypatch.setattr(greedy, "run_epoch", real)
    assert_same_weights(run(tmp_path / "crashed", resume=True), straight)
    loaded = pretrain.load_stack(tmp_path / "straight")
    assert_same_weights(loaded, straight)
    assert float(loaded.layers[0].whitening.abs().sum()) > 0
    raw = pretrain.load_data("digits").x_test[:20]
    np.testing.assert_array_equal(loaded.transform(raw), straight.transform(raw))


@pytest.mark.parametrize("spec, images, message", [
    ("patch-kmeans:8,patch=9", (10, 1, 8, 8), "patch=9 exceeds the 8x8 images: use a patch of at most 8"),
    ("patch-kmeans:8,patch=3,patches=1000", (10, 1, 4, 4), "hold only 40 patches of 3x3; ask for at most 40"),
    ("patch-kmeans:8,patch=7,grid=3", (10, 1, 8, 8), "grid=3 exceeds the 2x2 positions"),
])
def test_impossible_geometry_is_one_line(spec, images, message):
    with pytest.raises(LayerwiseError, match=message):
        layer_on(torch.rand(*images), spec)


def test_constant_images_cannot_be_whitened():
    with pytest.raises(LayerwiseError, match="the patches are constant"):
        layer_on(torch.full((20, 1, 8, 8), 0.5), "patch-kmeans:8,patch=3,patches=500")


def test_images_of_another_size_or_channels_are_refused(colour_digits):
    layer, _ = layer_on(colour_digits[:50], "patch-kmeans:4,patch=3,patches=500")
    for other in (torch.rand(2, 1, 8, 8), torch.rand(2, 3, 10, 10)):
        with pytest.raises(LayerwiseError, match=r"whitened for \[3, 8, 8\]: use images of the size"):
            layer.to_modules()(other)


def test_patch_stacks_fine_tune_beside_their_control(tmp_path):
    import finetune
    out = tmp_path / "kmeans"
    pretrain.pretrain_stack("digits", ["patch-kmeans:32,patch=3,patches=20000"], out, epochs=3, progress=False)
    rows = finetune.compare("digits", [str(out), f"random:{out}"], ["linear", "two-stage"], "10", seeds=1,
                            progress=False)
    accuracy = {(row["source"], row["schedule"]): row["test_accuracy"] for row in rows}
    assert min(accuracy.values()) > 0.7, accuracy  # measured: 0.87-0.93
    with pytest.raises(LayerwiseError, match="patch layers, whose pooled features have none"):
        finetune.compare("digits", [str(out)], ["full"], "10", seeds=1, semi="reconstruction", progress=False)


@pytest.mark.parametrize("kind, dense, option, patch_value", [("patch-ae", "ae", "sparsity", 0.002),
                                                              ("patch-grbm", "grbm", "learn_std", True)])
def test_patch_kinds_take_their_own_learner_defaults_and_leave_the_dense_kinds_alone(kind, dense, option,
                                                                                      patch_value):
    patch_layer = LayerSpec.parse(f"{kind}:8,patch=3").build((3, 8, 8), "unit")
    dense_layer = LayerSpec.parse(f"{dense}:8").build(27, "real")
    assert patch_layer.learner.hparams[option] == patch_value != dense_layer.hparams[option]
    given = LayerSpec.parse(f"{kind}:8,patch=3,{option}={dense_layer.hparams[option]}").build((3, 8, 8), "unit")
    assert given.learner.hparams[option] == dense_layer.hparams[option]  # an option given in the spec wins
    if kind == "patch-ae":  # the rate too: the trainer's default for the patch kind, not the dense one's
        assert (type(patch_layer).default_lr, type(dense_layer).default_lr) == (0.01, 1e-3)
