"""The ``patch-kmeans`` layer as a scikit-learn transformer of flattened images: Coates, Lee & Ng's pipeline."""
import numpy as np

from ._image import _ImageTransformer


class PatchKMeans(_ImageTransformer):
    """Coates, Lee & Ng 2011's single layer (``pretrain -l patch-kmeans``) over flattened images.

    ``fit`` samples ``patches`` random ``patch x patch`` patches of the images,
    normalises each one's brightness and contrast, ZCA-whitens the set
    (``whiten``, ``zca_eps``) and runs ``n_iter`` passes of mini-batch k-means
    on them; ``transform`` encodes every position ``stride`` apart by the
    triangle code ``max(0, mean_k(z_k) - z_k)`` with ``z_k`` the distance to
    centroid ``k`` (``encode``: or a soft threshold), the normalisation and
    whitening folded in, and pools each feature over a ``grid x grid`` split of
    the positions (``pool``): ``n_components * grid * grid`` features a row.
    Put ``StandardScaler`` and a linear classifier after it, as the paper does.

    Parameters: ``n_components`` (the number of centroids, 400; the paper's
    table uses 1,600), ``learning_rate`` (1, the kind's default: k-means'
    count-based steps), ``batch_size`` (100), ``n_iter`` (10), then every option
    of the ``patch-kmeans`` kind with its default and valid range (``pretrain
    --list-layers``), then ``image_shape``, ``verbose``, ``random_state`` and
    ``device`` (``cpu``, ``cuda`` or ``auto``).
    """

    kind = "patch-kmeans"
    default_components = 400

    @property
    def components_(self) -> np.ndarray:
        """The centroids in whitened patch space, one per row: [n_components, channels * patch * patch]."""
        return self._numpy(self.layer_.picture_weights()).reshape(self.n_components, -1)
