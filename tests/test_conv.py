"""Convolutional layers (cae, crbm): what they learn, their closed-form gradient, their codes as a CNN body."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import finetune
import pretrain
from finetune.networks.sources import load_source
from finetune.training.augment import Augment, make_augment
from pretrain.core.errors import LayerwiseError
from pretrain.layers import LayerSpec, pooling
from pretrain.training import greedy

from test_layers import error, train

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CONV_STACKS = [["cae:6,kernel=3", "cae:8,kernel=3"], ["crbm:6,kernel=3", "rbm:16"], ["cae:6,kernel=3,pool=1", "ae:12"],
               ["cae:6,kernel=3,stride=2,pool=1", "crbm:8,kernel=3,stride=2,pool=1"],
               ["crbm:6,kernel=3,pooling=probabilistic", "crbm:8,kernel=3,pooling=probabilistic,pool=3"]]


@pytest.fixture(scope="module")
def digits_maps(digits_unit):
    """The digits as one-channel 8 x 8 images ``[N, 1, 8, 8]`` in [0, 1]."""
    return digits_unit.reshape(-1, 1, 8, 8)


@pytest.mark.parametrize("spec", ["crbm:6,kernel=3", "crbm:4,kernel=3,sparsity=0.1,k=2", "crbm:5,kernel=5,pool=1,pcd=true",
                                  "crbm:4,kernel=3,visible=gaussian", "crbm:4,kernel=3,stride=2,pool=1",
                                  "crbm:4,kernel=3,pooling=probabilistic,sparsity=0.1",
                                  "crbm:4,kernel=3,pooling=probabilistic,pool=3,pcd=true,visible=gaussian"])
def test_closed_form_crbm_gradient_equals_autograd_of_its_free_energy_loss(spec):
    layer = LayerSpec.parse(spec).build((2, 7, 9), "unit").double()
    with torch.no_grad():  # away from the near-zero start, so that every term counts
        layer.weight.normal_(0, 0.3), layer.hidden_bias.normal_(), layer.visible_bias.normal_()
    v = torch.rand(5, 2, 7, 9, dtype=torch.float64)
    chain, state = layer.chain.clone(), torch.get_rng_state()
    auto_loss = layer.loss(v)
    auto_loss.backward()
    auto = {name: p.grad.clone() for name, p in layer.named_parameters()}
    layer.zero_grad(set_to_none=True)
    layer.chain, _ = chain, torch.set_rng_state(state)  # the same Gibbs chain again
    closed_loss = layer.accumulate_gradients(v)
    torch.testing.assert_close(closed_loss, auto_loss.detach(), rtol=1e-10, atol=1e-12)
    for name, p in layer.named_parameters():
        torch.testing.assert_close(p.grad, auto[name], rtol=1e-9, atol=1e-12, msg=name)
    layer.zero_grad(set_to_none=True)
    layer.chain, _ = chain, torch.set_rng_state(state)  # and once more without the loss (the trainer's usual step)
    assert layer.accumulate_gradients(v, with_loss=False) is None
    for name, p in layer.named_parameters():
        torch.testing.assert_close(p.grad, auto[name], rtol=1e-9, atol=1e-12, msg=f"{name}, no loss")


# Error after 6 epochs as a fraction of the untrained error; measured ratios are in the comments.
@pytest.mark.parametrize("spec, ratio", [
    ("cae:16,kernel=3", 0.5), ("cae:16,kernel=3,noise=none,act=sigmoid", 0.5), ("cae:8,kernel=5,tied=false", 0.5),
    ("crbm:16,kernel=3,momentum=0.9", 0.8), ("crbm:16,kernel=3,pcd=true,momentum=0.9", 0.8),
    ("cae:16,kernel=3,stride=2,pool=1", 0.5), ("crbm:16,kernel=3,stride=2,pool=1,momentum=0.9", 0.8),
    ("crbm:16,kernel=3,pooling=probabilistic,momentum=0.9", 0.8),
])
def test_conv_reconstruction_error_falls_on_digits(spec, ratio, digits_maps):
    layer = LayerSpec.parse(spec).build((1, 8, 8), "unit")
    before = error(layer, digits_maps)
    after = error(train(layer, digits_maps, epochs=6), digits_maps)
    assert after < ratio * before, (before, after)


@pytest.mark.parametrize("layers", CONV_STACKS)
def test_conv_stack_codes_equal_its_cnn_body(layers, tmp_path):
    stack = pretrain.pretrain_stack("digits", layers, out=tmp_path, epochs=2, progress=False)
    data = pretrain.load_data("digits")
    x = stack.preprocess(data.x_test[:50])
    assert x.shape == (50, 1, 8, 8)  # images stay images
    body = load_source(str(tmp_path), data).body().eval()
    with torch.no_grad():
        torch.testing.assert_close(body(body.preprocess(data.x_test[:50])), torch.from_numpy(stack.transform(data.x_test[:50])))
        codes = x
        for layer in stack.layers:  # the layers' own forward passes, flattened where a dense one starts
            codes = layer(codes if layer.convolutional else codes.flatten(1))
    torch.testing.assert_close(body(body.preprocess(data.x_test[:50])), codes.flatten(1))
    assert body.out_features == stack.layers[-1].n_hidden
    reloaded = pretrain.load_stack(tmp_path)
    assert np.array_equal(reloaded.transform(data.x_test[:50]), stack.transform(data.x_test[:50]))


def test_conv_maps_are_cached_as_maps(tmp_path, monkeypatch):
    cached = []
    real_encode = greedy.encode

    def encode(layer, x, path=None):
        codes = real_encode(layer, x, path)
        cached.append((tuple(codes.shape[1:]), path is not None))
        return codes

    monkeypatch.setattr(greedy, "encode", encode)
    pretrain.pretrain_stack("digits", ["cae:4,kernel=3", "cae:5,kernel=3", "rbm:8"], out=tmp_path, epochs=1,
                            cache_dir=tmp_path / "cache", progress=False)
    # training and held-out codes of layers 1 and 2, in memory-mapped files under the cache folder
    assert cached == [((4, 4, 4), True)] * 2 + [((5, 2, 2), True)] * 2, cached


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda)])
def test_resume_of_a_conv_stack_equals_uninterrupted(tmp_path, monkeypatch, device):
    def run(out, resume=False):
        return pretrain.pretrain_stack("digits", ["crbm:4,kernel=3,pcd=true", "cae:4,kernel=3"], out=out, epochs=3,
                                       seed=5, resume=resume, progress=False, device=device)
    straight = run(tmp_path / "straight")
    real_run_epoch, calls = greedy.run_epoch, {"n": 0}

    def crash(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # second layer, second epoch
            raise KeyboardInterrupt
        return real_run_epoch(*args, **kwargs)

    monkeypatch.setattr(greedy, "run_epoch", crash)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "crashed")
    monkeypatch.setattr(greedy, "run_epoch", real_run_epoch)
    resumed = run(tmp_path / "crashed", resume=True)
    for a, b in zip(resumed.layers, straight.layers):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name


@cuda
def test_a_conv_stack_fine_tunes_on_cuda_as_on_the_cpu(tmp_path):
    pretrain.pretrain_stack("digits", ["cae:4,kernel=3", "crbm:4,kernel=3"], out=tmp_path, epochs=2, progress=False)
    probes = [finetune.fine_tune("digits", str(tmp_path), schedule="linear", labels_per_class=5, device=device,
                                 progress=False).metrics["test_accuracy"] for device in ("cpu", "cuda")]
    assert abs(probes[0] - probes[1]) <= 0.02, probes  # the same converged probe on features equal to rounding
    tuned = finetune.fine_tune("digits", str(tmp_path), schedule="two-stage", labels_per_class=5, augment="shift",
                               semi="consistency", epochs=2, device="cuda", progress=False)  # shifts on the GPU
    assert tuned.metrics["test_accuracy"] >= probes[1] - 0.1


@pytest.mark.parametrize("layers, message", [
    (["rbm:16", "cae:4"], "put convolutional layers first"),
    (["cae:4,kernel=4"], "use an odd kernel size"),
    (["crbm:4,kernel=3,stride=4"], "use a stride of at most 3"),
])
def test_conv_misuse_is_one_line(layers, message, tmp_path):
    with pytest.raises(LayerwiseError, match=message):
        pretrain.pretrain_stack("digits", layers, epochs=1, progress=False)


@pytest.mark.parametrize("kind", ["cae", "crbm"])
@pytest.mark.parametrize("height, width, stride", [(8, 8, 2), (7, 9, 2), (9, 10, 3)])
def test_a_strided_layer_maps_back_to_its_input_size(kind, height, width, stride):
    layer = LayerSpec.parse(f"{kind}:3,kernel=5,stride={stride},pool=2").build((2, height, width), "unit")
    v = torch.rand(4, 2, height, width)
    maps = -(-height // stride), -(-width // stride)  # ceil: "same" convolutions at a stride
    assert layer.map_shape[1:] == maps and layer(v).shape == (4, 3, -(-maps[0] // 2), -(-maps[1] // 2))
    assert layer.decode(layer(v)).shape == v.shape
    assert layer.to_modules()(v).shape == layer(v).shape


def test_probabilistic_max_pooling_draws_at_most_one_unit_per_block_at_its_probabilities():
    torch.manual_seed(0)
    pre = torch.randn(1, 2, 5, 5, dtype=torch.float64) * 2  # 5 x 5 maps: partial 2 x 2 blocks at the edges
    h = pooling.unit_probabilities(pre, 2)
    draws = torch.stack([pooling.sample_units(h.expand(4000, -1, -1, -1), 2) for _ in range(5)]).flatten(0, 1)
    assert pooling.to_blocks(draws, 2, 0.0).sum(-1).max() == 1  # never two units of a block on
    # 20,000 draws: a frequency's standard error is at most 0.0036, so 0.02 is over 5 of them
    torch.testing.assert_close(draws.mean(0, keepdim=True), h, atol=0.02, rtol=0)
    on = pooling.pooled_probabilities(pre, 2)
    torch.testing.assert_close(on, pooling.to_blocks(h, 2, 0.0).sum(-1))
    assert (on >= F.max_pool2d(h, 2, ceil_mode=True)).all() and (on < 1).all()


def test_probabilistic_max_pooling_over_one_unit_is_the_plain_crbm():
    plain = LayerSpec.parse("crbm:3,kernel=3,pool=1").build((2, 6, 7), "unit").double()
    pooled = LayerSpec.parse("crbm:3,kernel=3,pool=1,pooling=probabilistic").build((2, 6, 7), "unit").double()
    pooled.load_state_dict(plain.state_dict())
    v = torch.rand(4, 2, 6, 7, dtype=torch.float64)
    torch.testing.assert_close(pooled(v), plain(v))
    torch.testing.assert_close(pooled.free_energy(v), plain.free_energy(v))


def test_conv_layers_need_images():
    with pytest.raises(LayerwiseError, match="need images"):
        pretrain.pretrain_stack(np.random.rand(50, 20).astype(np.float32), ["cae:4"], epochs=1, progress=False)


def test_augmentation_touches_training_batches_only(digits, tmp_path, monkeypatch):
    stack = tmp_path / "stack"
    pretrain.pretrain_stack("digits", ["cae:4,kernel=3"], out=stack, epochs=1, progress=False)
    seen = []
    real_call = Augment.__call__

    def spy(self, x):
        seen.append(x.clone())
        return real_call(self, x)

    monkeypatch.setattr(Augment, "__call__", spy)
    model = finetune.fine_tune(digits, str(stack), schedule="two-stage", labels_per_class=3, augment="shift",
                               epochs=2, progress=False)
    assert seen and model.metrics["augment"] == "shift"
    test_images = load_source(str(stack), digits).body().preprocess(digits.x_test).flatten(1)
    augmented = torch.cat(seen).flatten(1)
    assert len(augmented) >= 300  # every step of the stage that trains (at least min_steps)
    assert not (torch.cdist(augmented, test_images).min(1).values < 1e-6).any()  # no test image among them


def test_shift_moves_images_and_keeps_flat_rows_flat():
    torch.manual_seed(0)
    images = torch.zeros(64, 1, 28, 28)
    images[:, :, 10:18, 10:18] = 1
    shifted = make_augment("shift", (28, 28, 1))(images)
    assert shifted.shape == images.shape and (shifted != images).any(1).any(1).any(1).float().mean() > 0.5
    assert torch.equal(shifted.sum((1, 2, 3)), images.sum((1, 2, 3)))  # moved by up to 2 px: nothing falls off
    flat = make_augment("crop-flip", (28, 28, 1))(images.flatten(1))
    assert flat.shape == (64, 784)
    with pytest.raises(LayerwiseError, match="not images"):
        make_augment("shift", None)


def test_linear_on_a_conv_stack_matches_sklearn_on_the_same_cached_features(digits, tmp_path):
    from finetune.study.budget import Budget, sample_labels
    from test_probe import SEEDS, sklearn_accuracy
    stack = str(tmp_path / "stack")
    pretrain.pretrain_stack("digits", ["cae:8,kernel=3"], out=stack, epochs=5, progress=False)
    body = load_source(stack, digits).body().eval()
    with torch.no_grad():  # the features the probe caches: the frozen body's flattened maps
        features, test_features = body(body.preprocess(digits.x_train)), body(body.preprocess(digits.x_test))
    ours, theirs = [], []
    for seed in SEEDS:
        ours.append(finetune.fine_tune(digits, stack, schedule="linear", labels_per_class=5, seed=seed,
                                       progress=False).metrics["test_accuracy"])
        rows = sample_labels(digits.y_train, Budget(per_class=5), seed)
        theirs.append(sklearn_accuracy(features[rows].numpy(), digits.y_train[rows], test_features.numpy(),
                                       digits.y_test))
    assert abs(np.mean(ours) - np.mean(theirs)) <= 0.01, (ours, theirs)


def test_colour_photographs_keep_their_channels_through_a_gaussian_crbm(tmp_path):
    """A folder of crops of a real colour photograph (matplotlib's sample of Grace Hopper)."""
    from matplotlib import cbook
    from PIL import Image
    photo = Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(40):
        left, top = 7 * (i % 8), 9 * (i // 8)
        photo.crop((left * 6, top * 6, left * 6 + 192, top * 6 + 192)).resize((24, 24)).save(folder / f"{i}.png")
    stack = pretrain.pretrain_stack(f"folder:{folder}", ["crbm:4,kernel=3,visible=gaussian", "cae:4,kernel=3"],
                                    out=tmp_path / "stack", epochs=4, batch_size=10, progress=False)
    prep = stack.preprocessing
    assert prep.mode == "standardize" and prep.mean.shape == (3,) and prep.layout == "image"
    x = stack.preprocess(np.stack([np.asarray(Image.open(folder / "0.png"))]))
    assert x.shape == (1, 3, 24, 24) and stack.layers[0].gaussian
    errors = [h["recon_val"] for h in stack.info["history"] if h["layer"] == 0]
    assert errors[-1] < 0.8 * errors[0], errors  # measured over 3 seeds: 0.34-0.55 of the start
    assert stack.transform(np.stack([np.asarray(Image.open(folder / "0.png"))])).shape == (1, 4 * 6 * 6)


def test_score_says_in_one_line_that_it_does_not_score_a_crbm(tmp_path):
    from click.testing import CliRunner
    from pretrain.cli import main
    pretrain.pretrain_stack("digits", ["crbm:4,kernel=3"], out=tmp_path, epochs=1, progress=False)
    result = CliRunner().invoke(main, ["--score", str(tmp_path)])
    assert result.exit_code == 1 and "not computed here" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_winner_take_all_keeps_one_unit_per_map_in_the_given_share_of_the_batch():
    from pretrain.layers.cae import winners_only
    maps = torch.rand(40, 6, 5, 7)  # continuous values: no ties
    kept = winners_only(maps, 0.25)
    survivors = (kept != 0).sum((2, 3))  # [N, F]
    assert survivors.max() == 1 and (survivors.sum(0) == 10).all()  # 25% of 40 images in every map
    largest = maps.flatten(2).max(2).values
    assert torch.equal(kept.flatten(2).max(2).values[survivors == 1], largest[survivors == 1])


def test_a_winner_take_all_cae_lowers_its_training_loss_on_digits(digits_maps):
    # Measured after 6 epochs: 0.72-0.73 of the untrained loss over seeds 0-2 (digits' training split).
    layer = LayerSpec.parse("cae:16,kernel=5,winners=0.5,noise=none").build((1, 8, 8), "unit")
    with torch.no_grad():
        before = float(layer.loss(digits_maps))
    train(layer, digits_maps, epochs=6)
    with torch.no_grad():
        after = float(layer.loss(digits_maps))
    assert after < 0.85 * before, (before, after)
