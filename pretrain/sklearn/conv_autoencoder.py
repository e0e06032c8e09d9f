"""The ``cae`` layer as a scikit-learn transformer of flattened images."""
from ._image import _ImageTransformer


class ConvAutoencoder(_ImageTransformer):
    """One convolutional autoencoder layer (``pretrain -l cae``, Masci et al. 2011) over flattened images.

    Conv -> activation -> ``pool x pool`` max-pool up; unpool -> transposed
    conv down; denoising by default (``noise="mask:0.3"``), trained by Adam on
    the reconstruction of the clean image (cross-entropy for inputs in [0, 1]
    with ``loss="auto"``, squared error otherwise). Rows are flattened images
    (below); ``transform`` gives the pooled maps flattened, ``n_components * h * w``
    features, for a ``Pipeline`` to hand to a classifier.

    Parameters: ``n_components`` (the number of filters, 32), ``learning_rate``
    (0.001, the kind's default), ``batch_size`` (100), ``n_iter`` (10), then
    every option of the ``cae`` kind with its default and valid range
    (``pretrain --list-layers``), then ``image_shape``, ``verbose``,
    ``random_state`` and ``device`` (``cpu``, ``cuda`` or ``auto``).
    """

    kind = "cae"
