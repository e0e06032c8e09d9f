"""Artifacts (stack, checkpoint, classifier): checksummed, loaded without unpickling code, broken ones one line."""
import pickle
import warnings

import pytest
import torch

from finetune.networks.body import body_from_stack
from finetune.networks.classifier import Classifier, build_head, load_classifier
from pretrain.core.errors import LayerwiseError
from pretrain.core.io import LegacyArtifactWarning, checksum, load_artifact, load_state, rebuilding, save_artifact
from pretrain.layers import LayerSpec
from pretrain.data.preprocess import Preprocessing
from pretrain.training.stack import Stack, load_stack

CHECKPOINT_REMEDY = "start the run again with --overwrite"


class Hostile:
    """Unpickling it creates ``path``: proof that code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def small_stack():
    layers = [LayerSpec.parse("rbm:6,pcd=true").build(16, "unit"), LayerSpec.parse("ae:4").build(6, "unit")]
    layers[0].chain = torch.rand(5, 6).bernoulli()  # persistent chains, as after training
    return Stack([layer.eval() for layer in layers], Preprocessing("unit", (4, 4)), {"data": "digits", "seed": 0})


def small_classifier():
    stack = small_stack()
    head = build_head({"kind": "linear"}, 4, 3)
    return Classifier(body_from_stack(stack, "runs/dbn"), head, {"kind": "linear"}, ["a", "b", "c"],
                      metrics={"accuracy": 0.5})


def checkpoint_content():
    """What greedy.Run.save writes: finished layers, the current layer with its optimizer and rng, history."""
    layer = LayerSpec.parse("rbm:6").build(16, "unit")
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.5)
    for p in layer.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    return {"run": {"data": "digits", "layers": ["rbm:6"], "lr": 0.0}, "finished": [layer.state_dict()],
            "current": {"index": 1, "epoch": 2, "layer": layer.state_dict(), "optimizer": optimizer.state_dict(),
                        "rng": torch.get_rng_state()},
            "history": [{"layer": 0, "epoch": 1, "loss": 0.25, "seconds": 1.5}]}


# --- one saver and one loader per kind -------------------------------------------------------------

def save_kind(kind, folder, content=None):
    """Write a good artifact of ``kind`` in ``folder`` (or ``content`` under its header); its path."""
    if content is not None:
        return save_artifact(content, folder / f"{kind}.pt", kind)
    if kind == "stack":
        return small_stack().save(folder)
    if kind == "classifier":
        return small_classifier().save(folder)
    return save_artifact(checkpoint_content(), folder / "checkpoint.pt", "checkpoint")


def load_kind(kind, path):
    if kind == "stack":
        return load_stack(path)
    if kind == "classifier":
        return load_classifier(path)
    return load_artifact(path, "checkpoint", CHECKPOINT_REMEDY)


def content_of(kind):
    return {"stack": small_stack().to_dict(), "classifier": small_classifier().to_dict(),
            "checkpoint": checkpoint_content()}[kind]


def assert_one_line(error, path):
    message = str(error.value)
    assert error.type is LayerwiseError
    assert "\n" not in message
    assert str(path) in message
    assert any(remedy in message for remedy in ("--overwrite", "again", "restore"))
    assert "weights_only" not in message.replace("refused by weights_only", "")  # never torch's advice


KINDS = ["stack", "checkpoint", "classifier"]


@pytest.mark.parametrize("kind", KINDS)
def test_artifacts_round_trip_and_plain_torch_load_reads_them(kind, tmp_path):
    path = save_kind(kind, tmp_path)
    plain = torch.load(path, map_location="cpu", weights_only=True)
    assert plain["format"] == f"layerwise.{kind}" and plain["version"] == 2 and plain["checksum"] == checksum(plain)
    load_kind(kind, path)


def test_reloaded_stack_and_classifier_compute_the_same(tmp_path):
    stack, model = small_stack(), small_classifier()
    x = torch.rand(5, 16).numpy()
    stack.save(tmp_path / "s")
    model.save(tmp_path / "c")
    loaded = load_stack(tmp_path / "s")
    assert (loaded.transform(x) == stack.transform(x)).all()
    assert torch.equal(loaded.layers[0].chain, stack.layers[0].chain)
    assert (load_classifier(tmp_path / "c").predict_proba(x) == model.predict_proba(x)).all()


# --- every way a file can be broken: one line naming the file and the remedy -----------------------

def flip_tensor_bytes(kind, path):
    """64 bytes flipped inside the bytes of the largest tensor of a good file."""
    data = bytearray(path.read_bytes())
    tensors = []
    walk = [torch.load(path, weights_only=True)]
    while walk:
        value = walk.pop()
        if isinstance(value, torch.Tensor):
            tensors.append(value)
        elif isinstance(value, dict):
            walk.extend(value.values())
        elif isinstance(value, (list, tuple)):
            walk.extend(value)
    largest = max(tensors, key=lambda t: t.numel() * t.element_size())
    start = bytes(data).find(largest.contiguous().numpy().tobytes())
    assert start > 0 and largest.numel() * largest.element_size() >= 64
    for i in range(start, start + 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def rewrite(kind, path, change):
    content = content_of(kind)
    change(content)
    save_artifact(content, path, kind)


BREAKS = {
    "empty": lambda kind, path: path.write_bytes(b""),
    "truncated to half": lambda kind, path: path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2]),
    "last 10 bytes cut": lambda kind, path: path.write_bytes(path.read_bytes()[:-10]),
    "first 100 bytes only": lambda kind, path: path.write_bytes(path.read_bytes()[:100]),
    "garbage": lambda kind, path: path.write_bytes(bytes(range(256)) * 20),
    "text": lambda kind, path: path.write_bytes(b"not a model\n" * 100),
    "plain pickle": lambda kind, path: path.write_bytes(pickle.dumps({"layers": []})),
    "headerless dict": lambda kind, path: torch.save(content_of(kind), path),
    "another kind": lambda kind, path: save_artifact({"x": torch.zeros(2)}, path, "stack" if kind != "stack"
                                                     else "classifier"),
    "newer version": lambda kind, path: torch.save(
        {**(c := content_of(kind)), "format": f"layerwise.{kind}", "version": 3,
         "checksum": checksum({**c, "format": f"layerwise.{kind}", "version": 3})}, path),
    "checksum removed": lambda kind, path: torch.save(
        {k: v for k, v in torch.load(path, weights_only=True).items() if k != "checksum"}, path),
    "64 bytes flipped in a tensor": flip_tensor_bytes,
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(BREAKS))
def test_a_broken_file_is_one_line_naming_it_and_the_remedy(kind, case, tmp_path):
    path = save_kind(kind, tmp_path)
    BREAKS[case](kind, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning ahead of the error line either
        with pytest.raises(LayerwiseError) as error:
            load_kind(kind, path)
    assert_one_line(error, path)


STRUCTURE_BREAKS = {  # files with a valid checksum whose contents do not fit together
    ("stack", "missing key"): lambda c: c.pop("preprocessing"),
    ("stack", "missing layer state"): lambda c: c["layers"][0].pop("state"),
    ("stack", "wrong shape"): lambda c: c["layers"][1]["state"].update(weight=torch.zeros(7, 4)),
    ("stack", "state key renamed"): lambda c: c["layers"][0]["state"].update(W=c["layers"][0]["state"].pop("weight")),
    ("stack", "layers do not chain"): lambda c: c["layers"].reverse(),
    ("stack", "unknown layer kind"): lambda c: c["layers"][0].update(kind="nope"),
    ("stack", "layers not a list"): lambda c: c.update(layers=5),
    ("classifier", "missing key"): lambda c: c.pop("classes"),
    ("classifier", "wrong head shape"): lambda c: c["head"]["state"].update({"1.weight": torch.zeros(3, 5)}),
    ("classifier", "wrong body shape"): lambda c: c["body"]["state"].update({"groups.0.0.weight": torch.zeros(2)}),
    ("classifier", "unknown recipe"): lambda c: c["body"]["recipe"].update(kind="nope"),
}


@pytest.mark.parametrize("kind, case", list(STRUCTURE_BREAKS))
def test_contents_that_do_not_fit_are_one_line_not_a_traceback(kind, case, tmp_path):
    path = tmp_path / f"{kind}.pt"
    rewrite(kind, path, STRUCTURE_BREAKS[kind, case])
    with pytest.raises(LayerwiseError) as error:
        load_kind(kind, path)
    assert_one_line(error, path)


def test_load_state_names_the_misfit_and_rebuilding_makes_it_one_line(tmp_path):
    layer = LayerSpec.parse("rbm:6").build(16, "unit")
    state = {**layer.state_dict(), "weight": torch.zeros(7, 16)}
    with pytest.raises(LayerwiseError, match=r"checkpoint.pt is not a usable checkpoint \(layer 1: weight is "
                                             r"\[7, 16\], not \[6, 16\]\): start the run again"):
        with rebuilding(tmp_path / "checkpoint.pt", "checkpoint", CHECKPOINT_REMEDY):
            load_state(layer, state, "layer 1")
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    with pytest.raises(ValueError, match="lacks"):
        load_state(layer, {"weight": before["weight"]}, "layer 1")
    assert all(torch.equal(v, layer.state_dict()[k]) for k, v in before.items())  # nothing half-loaded


# --- hostile pickles: never run, one line --------------------------------------------------------------

def hostile_zip(path, marker):
    torch.save({"format": "layerwise.stack", "version": 2, "layers": Hostile(marker)}, path)


def hostile_raw(path, marker):
    path.write_bytes(pickle.dumps(Hostile(marker), protocol=2))


def test_the_hostile_pickle_would_run_if_unpickled(tmp_path):
    """The control: the payload is live, so the tests below can fail."""
    hostile_zip(tmp_path / "x.pt", tmp_path / "marker")
    torch.load(tmp_path / "x.pt", weights_only=False)
    assert (tmp_path / "marker").exists()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("write", [hostile_zip, hostile_raw])
def test_a_hostile_pickle_never_runs_and_gives_one_line(kind, write, tmp_path):
    path, marker = tmp_path / f"{kind}.pt", tmp_path / "marker"
    write(path, marker)
    with pytest.raises(LayerwiseError) as error:
        load_kind(kind, path)
    assert not marker.exists()
    assert_one_line(error, path)


# --- checksum ---------------------------------------------------------------------------------------

def test_checksum_sees_every_value_type_and_shape_but_not_key_order():
    base = {"a": torch.zeros(2, 3), "b": [1, 2.0, "x", None, True], "c": {1: "one"}}
    assert checksum(base) == checksum(dict(reversed(list(base.items()))))
    assert checksum(base) == checksum({**base, "checksum": "anything"})
    changed = [{**base, "a": torch.zeros(3, 2)}, {**base, "a": torch.zeros(2, 3, dtype=torch.int32)},
               {**base, "a": torch.zeros(2, 3).index_put_((torch.tensor(0), torch.tensor(0)), torch.tensor(1e-30))},
               {**base, "b": [1.0, 2.0, "x", None, True]}, {**base, "b": [1, 2.0, "x", None, 1]},
               {**base, "b": (1, 2.0, "x", None, True)}, {**base, "c": {"1": "one"}}, {**base, "d": None}]
    assert len({checksum(c) for c in changed} | {checksum(base)}) == len(changed) + 1


def test_what_weights_only_could_not_read_is_refused_when_saving(tmp_path):
    import numpy as np
    with pytest.raises(TypeError, match="only tensors, numbers"):
        save_artifact({"loss": np.float64(0.5)}, tmp_path / "x.pt", "checkpoint")
    assert list(tmp_path.iterdir()) == []


# --- old files ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["stack", "classifier"])
def test_version_1_files_load_with_a_warning(kind, tmp_path):
    path = tmp_path / f"{kind}.pt"
    torch.save({"format": f"layerwise.{kind}", "version": 1, **content_of(kind)}, path)
    with pytest.warns(LegacyArtifactWarning, match="no checksum"):
        load_kind(kind, path)


def test_a_folder_given_as_the_artifact_is_one_line(tmp_path):
    (tmp_path / "stack.pt").mkdir()
    with pytest.raises(LayerwiseError) as error:
        load_artifact(tmp_path / "stack.pt", "stack", "run pretrain again")
    assert "cannot be read" in str(error.value)
    assert_one_line(error, tmp_path / "stack.pt")
