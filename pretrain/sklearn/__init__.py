"""scikit-learn estimators over layerwise's layers: a drop-in ``BernoulliRBM`` and friends.

* :class:`BernoulliRBM` takes the constructor parameters, fitted attributes and
  methods of :class:`sklearn.neural_network.BernoulliRBM` and its algorithm
  (PCD, no momentum, visible biases from 0, sampled negative visibles, inputs
  in [0, 1] used as they are), so code written for scikit-learn's RBM runs
  unchanged; scikit-learn's own test module passes against it
  (``tests/test_sklearn_upstream.py``);
* :class:`GaussianRBM` (the ``grbm`` options) and :class:`Autoencoder` (the
  ``ae`` options) are single layers of the other dense kinds;
* :class:`ConvAutoencoder` (``cae``) and :class:`ConvRBM` (``crbm``) are
  convolutional layers over rows that are flattened images (``image_shape``, channels last);
* :class:`PatchKMeans` (``patch-kmeans``) is Coates, Lee & Ng's single layer: k-means on whitened
  image patches, the triangle code at every position, sum-pooled over the image's quadrants;
* :class:`StackedPretrainer` pretrains a whole stack greedily with
  :func:`pretrain.pretrain_stack` (each layer's codes computed once and cached)
  and ``transform`` gives the top layer's codes.

One estimator per file; the layer estimators' parameters and constraints are
derived from the layers' option declarations (see :mod:`pretrain.sklearn._base`).
All seven are transformers for ``Pipeline`` and ``GridSearchCV``. The layers are
those ``pretrain -l KIND:UNITS`` builds and :func:`pretrain.training.epoch.run_epoch`
trains them: there is no second training loop here. Float32 input is fitted
and transformed in float32, float64 in float64, as scikit-learn does. Sparse
input is made dense up front: the weights are dense and torch trains on dense
batches. Fitting leaves torch's global random state as it found it.

Example::

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from pretrain.sklearn import BernoulliRBM

    model = make_pipeline(BernoulliRBM(n_components=100, learning_rate=0.06, random_state=0),
                          LogisticRegression(C=6000, max_iter=1000)).fit(X_train, y_train)
"""
from .autoencoder import Autoencoder
from .bernoulli_rbm import BernoulliRBM
from .conv_autoencoder import ConvAutoencoder
from .conv_rbm import ConvRBM
from .gaussian_rbm import GaussianRBM
from .patch_kmeans import PatchKMeans
from .stacked import StackedPretrainer

__all__ = ["Autoencoder", "BernoulliRBM", "ConvAutoencoder", "ConvRBM", "GaussianRBM", "PatchKMeans", "StackedPretrainer"]
