"""Rules over a whole layer list that the specs alone decide, checked when the list is parsed.

A rule here needs no data and no training: ``pretrain`` checks the ``-l``
list as click parses it (a usage mistake, exit 2, before the data is read or
``-o`` is made), instead of finding it out when the layer is built, after the
layers below it have trained.

* A convolutional layer needs images or the maps of another convolutional
  layer: one above a dense layer would get vectors (a dense layer's codes are
  flat), so convolutional layers come first.

Once the data's shape is known, :func:`check_geometry` follows the maps up the
convolutional layers from that shape alone, before the first layer trains, so
that a layer whose maps would be degenerate is refused before the ones below
it have trained (:meth:`pretrain.layers.convolution.ConvLayer.geometry`).
"""
from typing import Sequence, Tuple

from ..core.errors import LayerwiseError
from ..layers import LayerSpec, get_layer_class
from ..layers.convolution import ConvLayer


def check_layer_list(specs: Sequence[LayerSpec]) -> None:
    """Raise one line naming the fix when ``specs`` (bottom first) break a rule of the whole list."""
    convolutional = [get_layer_class(spec.kind).convolutional for spec in specs]
    for index in range(1, len(specs)):
        if convolutional[index] and not convolutional[index - 1]:
            reordered = sorted(specs, key=lambda spec: not get_layer_class(spec.kind).convolutional)
            raise LayerwiseError(
                f"layer {index + 1} ({specs[index]}) is convolutional and sits on a dense layer "
                f"({specs[index - 1]}), whose codes are vectors: put convolutional layers first, e.g. "
                + " ".join(f"-l {spec}" for spec in reordered))


def check_geometry(specs: Sequence[LayerSpec], input_shape: Tuple[int, ...]) -> None:
    """Raise one line naming the layer whose maps would be degenerate, following the shapes from ``input_shape``
    (one row of the preprocessed data) up the convolutional layers at the bottom of ``specs``."""
    shape = tuple(input_shape)
    for index, spec in enumerate(specs):
        kind = get_layer_class(spec.kind)
        if not issubclass(kind, ConvLayer) or len(shape) != 3:
            return
        where = f"layer {index + 1} ({spec}) on {'x'.join(map(str, shape))} inputs"
        _, code = kind.geometry(shape, spec.options, where)
        shape = (spec.units, *code)
