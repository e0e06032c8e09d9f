"""The ``grbm`` layer as a scikit-learn transformer."""
from ._base import _LayerTransformer


class GaussianRBM(_LayerTransformer):
    """Gaussian-Bernoulli RBM (``pretrain -l grbm``) for real-valued inputs.

    ``p(h_j=1|v) = sigmoid(c_j + W_j (v / s))``, ``p(v_i|h) = N(b_i + s_i (W^T h)_i, s_i^2)``
    with ``s = 1`` unless ``learn_std`` (Cho, Ilin & Raiko 2011). It expects
    standardised inputs: put a ``StandardScaler`` before it. Trained by CD-k
    (``pcd=True``: persistent chains) with SGD and momentum. A fit whose loss
    stops being finite raises :class:`pretrain.core.errors.LayerwiseError` naming the remedy.

    Parameters: ``n_components`` (256), ``learning_rate`` (0.01, the kind's
    default), ``batch_size`` (100), ``n_iter`` (10), then every option of the
    ``grbm`` kind with its default and valid range (``pretrain --list-layers``),
    then ``verbose``, ``random_state`` and ``device`` (``cpu``, ``cuda`` or ``auto``).
    """

    kind = "grbm"
    divergence_hint = ("standardise the input (make_pipeline(StandardScaler(), GaussianRBM(...))) "
                       "and lower learning_rate")
