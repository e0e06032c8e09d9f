"""The ``crbm`` layer as a scikit-learn transformer of flattened images."""
from ._image import _ImageTransformer


class ConvRBM(_ImageTransformer):
    """A convolutional RBM (``pretrain -l crbm``, Lee et al. 2009) over flattened images.

    Binary hidden maps sharing each filter over every position; binary visible
    units for inputs in [0, 1], Gaussian ones otherwise (``visible="auto"``:
    standardise real-valued input first); CD-k or PCD with the gradient in
    closed form, SGD with momentum. ``transform`` gives the ``pool x pool``
    max-pool of the hidden probabilities (or ``p(block on)`` with
    ``pooling="probabilistic"``), flattened.

    Parameters: ``n_components`` (the number of filters, 32), ``learning_rate``
    (0.05, the kind's default), ``batch_size`` (100), ``n_iter`` (10), then
    every option of the ``crbm`` kind with its default and valid range
    (``pretrain --list-layers``), then ``image_shape``, ``verbose``,
    ``random_state`` and ``device`` (``cpu``, ``cuda`` or ``auto``).
    """

    kind = "crbm"
