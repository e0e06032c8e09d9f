"""The greedy trainer and the saved stack: caching, checkpoints, resume, reload."""
import json

import numpy as np
import pytest
import torch

import pretrain
from pretrain.training import greedy
from pretrain.core.errors import LayerwiseError
from pretrain.layers.ae import Autoencoder
from pretrain.layers.rbm import BernoulliRBM

LAYERS = ["rbm:32", "ae:16,noise=mask:0.2"]


def run(out=None, **kwargs):
    options = dict(epochs=3, batch_size=50, seed=1, progress=False)
    options.update(kwargs)
    return pretrain.pretrain_stack("digits", LAYERS, out, **options)


def states(stack):
    return [layer.state_dict() for layer in stack.layers]


def assert_same_weights(a, b):
    for sa, sb in zip(states(a), states(b)):
        assert sa.keys() == sb.keys()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), key


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("stack")
    return run(out), out


def test_saved_stack_reloads_bit_for_bit(saved):
    stack, out = saved
    raw = np.random.default_rng(0).integers(0, 17, (20, 8, 8)).astype(np.float64)
    loaded = pretrain.load_stack(out)
    assert np.array_equal(loaded.transform(raw), stack.transform(raw))
    with torch.no_grad():
        assert np.array_equal(loaded.encoder()(loaded.preprocess(raw)).numpy(), stack.transform(raw))
    artifact = torch.load(out / "stack.pt", weights_only=True)
    assert artifact["format"] == "layerwise.stack" and len(artifact["layers"]) == 2


def test_stack_json_is_readable_and_complete(saved):
    _, out = saved
    info = json.loads((out / "stack.json").read_text())
    assert [layer["kind"] for layer in info["layers"]] == ["rbm", "ae"]
    assert info["preprocessing"]["mode"] == "unit" and info["preprocessing"]["input_shape"] == [8, 8]
    assert info["data"] == "digits" and info["split_seed"] == 0
    history = info["history"]
    assert len(history) == 6 and {"recon_train", "recon_val", "loss"} <= set(history[0])
    assert "free_energy_gap" in history[0] and "free_energy_gap" not in history[-1]
    assert "torch" in info["versions"]


def test_training_error_falls_layer_by_layer(saved):
    history = saved[0].info["history"]
    for layer in (0, 1):
        errors = [h["recon_val"] for h in history if h["layer"] == layer]
        assert errors[-1] < errors[0]


def test_encoder_is_plain_torch(saved):
    encoder = saved[0].encoder()
    assert isinstance(encoder, torch.nn.Sequential)
    kinds = {type(m) for m in encoder.modules()}
    assert kinds <= {torch.nn.Sequential, torch.nn.Linear, torch.nn.Sigmoid, torch.nn.ReLU}


def test_same_seed_same_stack_other_seed_other_stack():
    a, b, c = run(), run(), run(seed=2)
    assert_same_weights(a, b)
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)


def interrupt_epoch(monkeypatch, number):
    """Make the trainer's ``number``-th epoch (counting across layers) die as Ctrl-C would."""
    calls = {"n": 0}
    real_run_epoch = greedy.run_epoch

    def run_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == number:
            raise KeyboardInterrupt
        return real_run_epoch(*args, **kwargs)

    monkeypatch.setattr(greedy, "run_epoch", run_epoch)
    return real_run_epoch


def test_resume_equals_uninterrupted(tmp_path, monkeypatch):
    uninterrupted = run(tmp_path / "straight")
    real_run_epoch = interrupt_epoch(monkeypatch, 5)  # second layer, second epoch
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "crashed")
    assert (tmp_path / "crashed" / "checkpoint.pt").exists()
    assert not (tmp_path / "crashed" / "stack.pt").exists()
    monkeypatch.setattr(greedy, "run_epoch", real_run_epoch)
    resumed = run(tmp_path / "crashed", resume=True)
    assert_same_weights(resumed, uninterrupted)
    assert len(resumed.info["history"]) == len(uninterrupted.info["history"])
    assert not (tmp_path / "crashed" / "checkpoint.pt").exists()


def test_existing_run_is_not_clobbered(saved):
    with pytest.raises(LayerwiseError, match="resume=True to continue it, overwrite=True to start again"):
        run(saved[1])


def test_resume_of_a_finished_run_checks_the_request(saved):
    stack, out = saved
    again = run(out, resume=True)  # the same request: the finished stack, as it was
    assert all(torch.equal(a, b) for a, b in zip(states(again)[0].values(), states(stack)[0].values()))
    with pytest.raises(LayerwiseError, match="finished run with other data, layers or options"):
        run(out, resume=True, epochs=5)
    with pytest.raises(LayerwiseError, match="finished run with other"):
        pretrain.pretrain_stack("digits", ["rbm:8"], out, epochs=3, batch_size=50, seed=1, resume=True,
                                progress=False)


def test_resume_with_other_settings_is_refused(tmp_path, monkeypatch):
    interrupt_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path)
    with pytest.raises(LayerwiseError, match="other settings"):
        run(tmp_path, resume=True, epochs=4)


def test_upper_layers_train_on_cached_codes_never_rerunning_the_stack(monkeypatch):
    """While the autoencoder (layer 2) trains, the RBM below it must never run."""
    ae_steps = {"n": 0}
    rbm_calls_during_ae = []
    real_loss, real_forward = Autoencoder.loss, BernoulliRBM.forward

    def counting_loss(self, v):
        ae_steps["n"] += 1
        return real_loss(self, v)

    def watched_forward(self, v):
        if ae_steps["n"]:
            rbm_calls_during_ae.append(len(v))
        return real_forward(self, v)

    monkeypatch.setattr(Autoencoder, "loss", counting_loss)
    monkeypatch.setattr(BernoulliRBM, "forward", watched_forward)
    run()
    assert ae_steps["n"] > 0 and rbm_calls_during_ae == []


def test_memory_mapped_cache_gives_the_same_stack(tmp_path):
    in_ram = run()
    mapped = run(cache_dir=tmp_path / "cache")
    assert_same_weights(in_ram, mapped)
    assert list((tmp_path / "cache").iterdir()) == []  # the run's private code files are gone once it succeeds


def test_two_runs_sharing_a_cache_folder_each_use_their_own_files(tmp_path, monkeypatch):
    """Cache files are private to their run: the code files two runs map never share a path."""
    import pretrain.training.greedy as greedy
    paths = []
    original = greedy.encode
    monkeypatch.setattr(greedy, "encode", lambda layer, x, path=None: paths.append(path) or original(layer, x, path))
    run(cache_dir=tmp_path / "cache")
    run(cache_dir=tmp_path / "cache")
    assert len(paths) == 4 and len(set(paths)) == 4 and all(p.parent == tmp_path / "cache" for p in paths)


def test_gaussian_first_layer_standardises(tmp_path):
    stack = pretrain.pretrain_stack("digits", ["grbm:16"], epochs=1, progress=False)
    assert stack.preprocessing.mode == "standardize"
    x = stack.preprocess(np.asarray(pretrain.load_data("digits").x_train))
    assert abs(float(x.mean())) < 1e-4


def test_divergence_stops_with_the_remedy():
    with pytest.raises(LayerwiseError, match=r"diverged.*lower its learning rate"):
        pretrain.pretrain_stack("digits", ["grbm:16,lr=50"], epochs=3, progress=False)


def test_data_of_another_shape_is_refused(saved):
    with pytest.raises(LayerwiseError, match="do not fit"):
        saved[0].transform(np.zeros((3, 28, 28)))


def test_array_input_and_validation_off():
    x = np.random.default_rng(0).random((300, 10))
    stack = pretrain.pretrain_stack(x, ["rbm:4"], epochs=2, val_fraction=0.0, progress=False)
    codes = stack.transform(x)
    assert isinstance(codes, np.ndarray) and codes.shape == (300, 4)
    tensor_codes = stack.transform(torch.from_numpy(x))
    assert isinstance(tensor_codes, torch.Tensor) and np.array_equal(tensor_codes.numpy(), codes)
