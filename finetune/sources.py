"""Where a body comes from: ``--from STACK_DIR``, ``random:STACK_DIR`` or ``torchvision:SPEC``.

* ``STACK_DIR``: a stack written by ``pretrain -o STACK_DIR``, its pretrained weights;
* ``random:STACK_DIR``: the same architecture and preprocessing with fresh
  Glorot weights drawn from torch's global generator (seed it first, as
  :func:`finetune.experiment.fine_tune` does): the control every comparison needs;
* ``torchvision:SPEC``: an ImageNet backbone (:mod:`finetune.backbones`).

Whatever the source, the result is a :class:`~finetune.body.Body`.
"""
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

from pretrain.errors import LayerwiseError

from .body import Body, body_from_stack

SOURCE_FORMS = ("STACK_DIR (a folder written by `pretrain -o`), random:STACK_DIR (same architecture, "
                "fresh weights) or torchvision:NAME (an ImageNet backbone)")


def make_body(source: str, dataset, *, split_seed: int = 0, input_size: Optional[int] = None,
              adapt_first_conv: bool = False) -> Body:
    """The body named by ``source`` (one ``--from`` value), checked against ``dataset``."""
    from pretrain.stack import load_stack
    kind, sep, rest = source.partition(":")
    if sep and kind == "torchvision":
        from .backbones import image_value_range, torchvision_body
        value_range = image_value_range(dataset.x_train) if dataset.is_image else None
        return torchvision_body(rest, image_shape=dataset.image_shape, input_size=input_size,
                                adapt_first_conv=adapt_first_conv, value_range=value_range)
    random_init = bool(sep) and kind == "random"
    folder = rest if random_init else source
    if not folder or not Path(folder, "stack.pt").is_file():
        raise LayerwiseError(f"--from {source}: no pretrained stack there; use {SOURCE_FORMS}")
    stack = load_stack(folder)
    body = body_from_stack(stack, name=source, random_init=random_init)
    check_provenance(body, source, dataset.spec, split_seed)
    return body


def check_provenance(body: Body, source: str, data_spec: str, split_seed: int) -> None:
    """Refuse a body pretrained on this data with another held-out split; warn when the data differ.

    Where the test split is drawn with ``split_seed`` (data without one of its
    own), a stack pretrained with another seed saw some of this run's test
    images, and its test accuracy would be optimistic. Data with a fixed test
    split are refused too: the stack does not record which kind it saw.
    """
    pretrained_on = body.info.get("data")
    if pretrained_on is None:
        return
    if str(pretrained_on).strip().lower() != data_spec.strip().lower():
        warnings.warn(f"{source} was pretrained on '{pretrained_on}', not on '{data_spec}'", stacklevel=2)
        return
    stack_seed = body.info.get("split_seed")
    if stack_seed is not None and stack_seed != split_seed:
        raise LayerwiseError(
            f"--from {source}: pretrained with --split-seed {stack_seed}, not {split_seed}; a test split drawn "
            f"with another seed holds images pretraining saw: pass --split-seed {stack_seed}")


def body_from_recipe(recipe: Dict[str, Any], name: str) -> Body:
    """Rebuild a body's modules (weights not loaded) from ``body.info["recipe"]``, e.g. for a saved classifier."""
    if recipe.get("kind") == "stack":
        from pretrain.layers import build_layer
        from pretrain.preprocess import Preprocessing
        from pretrain.stack import Stack
        layers = [build_layer(config) for config in recipe["layers"]]
        return body_from_stack(Stack(layers, Preprocessing.from_dict(recipe["preprocessing"]), {}), name)
    if recipe.get("kind") == "torchvision":
        from .backbones import torchvision_body
        image_shape = tuple(recipe["image_shape"]) if recipe["image_shape"] is not None else None
        return torchvision_body(recipe["spec"], image_shape, recipe["input_size"], recipe["adapt_first_conv"],
                                load_weights=False, value_range=recipe.get("value_range"))
    raise LayerwiseError(f"unknown body recipe {recipe.get('kind')!r}: this classifier was saved by a newer layerwise")
