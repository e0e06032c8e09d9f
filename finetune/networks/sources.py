"""Where a body comes from: one :class:`Source` per kind of ``--from`` value.

* ``STACK_DIR``: a stack written by ``pretrain -o STACK_DIR``, its pretrained weights;
* ``random:STACK_DIR``: the same architecture and preprocessing with fresh
  Glorot weights drawn from the cell's seed: the control every comparison needs;
* ``torchvision:SPEC``: an ImageNet backbone (:mod:`finetune.networks.backbones`);
* ``pixels``: no layers at all, the input scaled to [0, 1] as the features:
  with ``--schedule linear`` it is logistic regression on the pixels, the
  baseline a user tries first.

A source is parsed once (:func:`parse_source`), bound to the data once
(:meth:`Source.bind`: the stack file read, the weights loaded, the
provenance checked), and then hands out a fresh body per cell with
:meth:`Source.body`. What rebuilds a body's modules for a saved classifier
is the source's recipe (:meth:`Source.recipe`, :func:`body_from_recipe`).
"""
import copy
from abc import ABC, abstractmethod
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from pretrain.core.errors import LayerwiseError
from pretrain.layers.base import Layer

from .body import Body, body_from_stack, glorot_reset, pixels_body, torchvision_body

SOURCE_FORMS = ("STACK_DIR (a folder written by `pretrain -o`), random:STACK_DIR (same architecture, "
                "fresh weights), torchvision:NAME (an ImageNet backbone) or pixels (the input itself)")


class Source(ABC):
    """One ``--from`` value. Subclasses say how to bind it to data and how to make a body."""

    def __init__(self, text: str):
        self.text = text
        self._prototype: Optional[Body] = None

    def bind(self, dataset, input_size: Optional[int] = None, adapt_first_conv: bool = False) -> "Source":
        """Build the body once for ``dataset`` (weights read, provenance checked); returns ``self``."""
        self._prototype = self.build(dataset, input_size, adapt_first_conv)
        return self

    @abstractmethod
    def build(self, dataset, input_size: Optional[int], adapt_first_conv: bool) -> Body:
        """The body of this source for ``dataset``, weights loaded (called once, by :meth:`bind`)."""

    def body(self, seed: int = 0) -> Body:
        """A fresh copy of the body for one cell (``seed`` matters only where weights are drawn)."""
        if self._prototype is None:
            raise LayerwiseError(f"source={self.text}: bind the source to data first (Source.bind)")
        return copy.deepcopy(self._prototype)

    @property
    def control(self) -> Optional[str]:
        """The ``--from`` value of the same architecture from random weights, when there is one."""
        return None

    def decoders(self, seed: int = 0) -> List[nn.Module]:
        """Fresh decoders of the body's groups, bottom first (:meth:`pretrain.layers.base.Layer.decoder`); only
        stacks have them, and they are built only when ``semi=reconstruction`` asks for them."""
        raise LayerwiseError(f"semi=reconstruction needs a stack's decoders: source={self.text} has none; "
                             f"use a pretrained stack or its random: control, or semi=pseudo-label")

    def provenance(self) -> Dict[str, Any]:
        """What results.json records of this source: where its weights came from."""
        return {"source": self.text, **{k: v for k, v in self._prototype.info.items() if k != "recipe"}}


class StackSource(Source):
    """A pretrained stack's weights."""

    def __init__(self, text: str, folder: str):
        super().__init__(text)
        self.folder = folder
        self._layers: List[Layer] = []

    def build(self, dataset, input_size, adapt_first_conv) -> Body:
        from pretrain.training.stack import load_stack
        if not self.folder or not Path(self.folder, "stack.pt").is_file():
            raise LayerwiseError(f"source={self.text}: no pretrained stack there; use {SOURCE_FORMS}")
        stack = load_stack(self.folder)
        body = body_from_stack(stack, name=self.text)
        check_provenance(body, self.text, dataset)
        self._layers = stack.layers  # what their decoders are built from, if asked for
        return body

    def decoders(self, seed: int = 0) -> List[nn.Module]:
        """The pretrained layers' decoders (:meth:`pretrain.layers.base.Layer.decoder`), fresh ones per cell."""
        if self._prototype is None:
            raise LayerwiseError(f"source={self.text}: bind the source to data first (Source.bind)")
        try:
            return [layer.decoder() for layer in self._layers]
        except LayerwiseError as error:
            raise LayerwiseError(f"semi=reconstruction needs each layer's decoder: in source={self.text}, {error}; "
                                 "use semi=pseudo-label") from None

    @property
    def control(self) -> str:
        return f"random:{self.folder}"


class RandomSource(StackSource):
    """A stack's architecture and preprocessing with Glorot weights drawn from the cell's seed."""

    def body(self, seed: int = 0) -> Body:
        body = super().body(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for group in body.groups:
                glorot_reset(group)
        return body

    def decoders(self, seed: int = 0) -> List[nn.Module]:
        """The decoders with fresh weights (see :meth:`pretrain.layers.plain.Decoder.reset`), drawn from ``seed``."""
        decoders = super().decoders(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for decoder in decoders:
                decoder.reset()
        return decoders

    @property
    def control(self) -> None:
        return None


class TorchvisionSource(Source):
    """An ImageNet backbone from torchvision (or its architecture alone with ``@none``)."""

    def __init__(self, text: str, spec: str):
        super().__init__(text)
        from .backbones import BackboneSpec
        self.spec = spec
        self.parsed = BackboneSpec.parse(spec)

    def build(self, dataset, input_size, adapt_first_conv) -> Body:
        from .backbones import image_value_range
        value_range = image_value_range(dataset.x_train) if dataset.is_image else None
        return torchvision_body(self.spec, image_shape=dataset.image_shape, input_size=input_size,
                                adapt_first_conv=adapt_first_conv, value_range=value_range)

    @property
    def control(self) -> Optional[str]:
        if self.parsed.weights == "none":
            return None
        node = f":{self.parsed.node}" if self.parsed.node else ""
        return f"torchvision:{self.parsed.name}@none{node}"


class PixelsSource(Source):
    """No layers: the input, scaled to [0, 1] as a stack's first layer would see it, is the feature vector."""

    def build(self, dataset, input_size, adapt_first_conv) -> Body:
        from pretrain.data.preprocess import Preprocessing
        return pixels_body(Preprocessing.fit(dataset.pretraining_images(), "unit"), self.text)


def parse_source(text: str) -> Source:
    """The :class:`Source` of one ``--from`` value (nothing is read yet)."""
    kind, sep, rest = text.partition(":")
    if text == "pixels":
        return PixelsSource(text)
    if sep and kind == "torchvision":
        return TorchvisionSource(text, rest)
    if sep and kind == "random":
        return RandomSource(text, rest)
    return StackSource(text, text)


def load_source(text: str, dataset, input_size: Optional[int] = None, adapt_first_conv: bool = False) -> Source:
    """Parse ``text`` and bind it to ``dataset``: ``load_source("runs/dbn", data).body()`` is its body."""
    return parse_source(text).bind(dataset, input_size, adapt_first_conv)


def check_provenance(body: Body, source: str, dataset) -> None:
    """Refuse a body pretrained on this data with another held-out split; warn when the data differ.

    Where the test split is drawn with a seed (data without one of its own), a
    stack pretrained with another seed saw some of this run's test images, and
    its test accuracy would be optimistic. Data with their own test split
    (``split_seed`` None on either side) cannot leak this way.
    """
    pretrained_on = body.info.get("data")
    if pretrained_on is None:
        return
    if str(pretrained_on).strip().lower() != dataset.spec.strip().lower():
        warnings.warn(f"{source} was pretrained on '{pretrained_on}', not on '{dataset.spec}'", stacklevel=2)
        return
    stack_seed = body.info.get("split_seed")
    if stack_seed is not None and dataset.split_seed is not None and stack_seed != dataset.split_seed:
        raise LayerwiseError(
            f"source={source}: pretrained with split_seed={stack_seed}, not {dataset.split_seed}; a test split "
            f"drawn with another seed holds images pretraining saw: pass split_seed={stack_seed}")


def body_from_recipe(recipe: Dict[str, Any], name: str) -> Body:
    """Rebuild a body's modules (weights not loaded) from ``body.info["recipe"]``, e.g. for a saved classifier."""
    from pretrain.data.preprocess import Preprocessing
    if recipe.get("kind") == "stack":
        from pretrain.layers import build_layer
        from pretrain.training.stack import Stack
        layers = [build_layer(config) for config in recipe["layers"]]
        return body_from_stack(Stack(layers, Preprocessing.from_dict(recipe["preprocessing"]), {}), name)
    if recipe.get("kind") == "pixels":
        return pixels_body(Preprocessing.from_dict(recipe["preprocessing"]), name)
    if recipe.get("kind") == "torchvision":
        image_shape = tuple(recipe["image_shape"]) if recipe["image_shape"] is not None else None
        return torchvision_body(recipe["spec"], image_shape, recipe["input_size"], recipe["adapt_first_conv"],
                                load_weights=False, value_range=recipe.get("value_range"))
    raise LayerwiseError(f"unknown body recipe {recipe.get('kind')!r}: this classifier was saved by a newer layerwise")
