"""A drop-in for scikit-learn's ``BernoulliRBM``, held to scikit-learn's own tests (``tests/test_sklearn_upstream.py``)."""
import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..layers.energy import bernoulli_sample
from ._base import _LayerTransformer, as_tensor, dense_input


class BernoulliRBM(_LayerTransformer):
    """Drop-in for :class:`sklearn.neural_network.BernoulliRBM`, trained by torch.

    Binary visible and hidden units, energy ``E(v, h) = -b.v - c.h - h.W v``;
    ``transform`` gives ``p(h=1|v) = sigmoid(W v + c)``. Trained by persistent
    contrastive divergence (Tieleman 2008; Hinton, Osindero & Teh 2006 for
    RBMs in deep belief nets): ``W += learning_rate * (<h v^T>_data - <h v^T>_chains)``
    per minibatch, the chains' hidden states kept in ``h_samples_``. It follows
    scikit-learn's algorithm: the ``rbm`` layer with ``pcd=true, momentum=0,
    visible_init=zero, negative_visible=sample`` (visible biases start at 0 and
    the chains' visible states are sampled; ``pretrain -l rbm`` defaults to the
    data's log-odds and mean-field visibles instead). The same parameters,
    defaults, fitted attributes and methods as scikit-learn's (and the private
    ``_mean_hiddens`` / ``_sample_hiddens`` its tests call); the differences:
    each iteration visits the minibatches in a fresh random order, the random
    numbers come from torch's generator (seeded from ``random_state``), and
    ``device`` (``cpu``, ``cuda`` or ``auto``) is added. Inputs are expected in
    [0, 1] and are not rescaled.

    Speed: it trains through the same loop as ``pretrain`` (the closed-form
    PCD update folded into the parameters, :mod:`pretrain.training.sgd`), so each
    minibatch pays the fixed cost of about 25 torch operations, more than
    scikit-learn's whole numpy step on a small batch: on the 8x8 digits at
    ``batch_size=10`` scikit-learn is faster, while on 28x28 images at
    batch 100 this one is faster
    (``examples/benchmarks/rbm_throughput.py`` measures both; the figures are in
    ``examples/benchmarks/design_notes.md``).

    Parameters
    ----------
    n_components : int, default=256
        Number of binary hidden units.
    learning_rate : float, default=0.1
        SGD learning rate of the PCD updates.
    batch_size : int, default=10
        Examples per minibatch, and the number of persistent chains.
    n_iter : int, default=10
        Passes over the training data.
    verbose : int, default=0
        1: pseudo-likelihood per iteration, in scikit-learn's format; 2: also a progress bar.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, minibatch order and Gibbs sampling.
    device : str, default="cpu"
        Where torch trains: ``cpu``, ``cuda`` or ``auto``.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
    intercept_hidden_ : ndarray of shape (n_components,)
    intercept_visible_ : ndarray of shape (n_features,)
    h_samples_ : ndarray of shape (batch_size, n_components)
        Hidden states of the persistent chains.
    layer_ : pretrain.layers.rbm.BernoulliRBM
        The torch layer (``pretrain -l rbm:N,pcd=true,momentum=0,visible_init=zero,negative_visible=sample``).
    """

    kind = "rbm"
    default_batch_size = 10
    fixed_options = {"pcd": True, "momentum": 0.0, "visible_init": "zero", "negative_visible": "sample"}
    option_parameters = False

    def _build(self, x):
        rows = super()._build(x)
        # scikit-learn starts batch_size persistent chains at h = 0.
        self.layer_.chain = self.layer_.weight.new_zeros(self.batch_size, self.n_components)
        return rows

    @property
    def h_samples_(self) -> np.ndarray:
        """Hidden states of the persistent chains [batch_size, n_components]."""
        return self._numpy(self.layer_.chain)

    def gibbs(self, v):
        """One block Gibbs step from ``v``: ``h ~ p(h|v)``, then ``v' ~ p(v|h)``; boolean [n_samples, n_features]."""
        check_is_fitted(self)
        x = dense_input(self, v, reset=False)
        with self._seeded(self.random_state_):
            return self._map_rows(self._gibbs_step, x).astype(bool)

    def _gibbs_step(self, v: torch.Tensor) -> torch.Tensor:
        hidden = bernoulli_sample(self.layer_(v))
        return self.layer_.sample_visible(self.layer_.decode(hidden))

    def score_samples(self, X):
        """Stochastic pseudo-log-likelihood per row, as scikit-learn's.

        ``n_features * log sigmoid(F(v~) - F(v))`` with ``v~`` = ``v`` with one
        random unit flipped and ``F`` the free energy; seeded by
        ``random_state``, so it is not invariant to the order of the rows.
        """
        check_is_fitted(self)
        x = dense_input(self, X, reset=False)
        with self._seeded(check_random_state(self.random_state)):
            return self._map_rows(self.layer_.pseudo_likelihood, x)

    def _monitor(self, x):
        """scikit-learn's verbose figure: the mean pseudo-likelihood of the training data."""
        with self._seeded(check_random_state(self.random_state)):
            return "pseudo-likelihood", f"{self._map_rows(self.layer_.pseudo_likelihood, x).mean():.2f}"

    # scikit-learn's private helpers, which its tests call --------------------------------
    def _mean_hiddens(self, v):
        """``p(h=1|v)`` of one row [n_features] or many [n_samples, n_features], unvalidated as scikit-learn's."""
        dense = v.toarray() if sp.issparse(v) else np.asarray(v)
        codes = self._map_rows(self.layer_, as_tensor(np.atleast_2d(dense)))
        return codes.reshape(dense.shape[:-1] + (self.n_components,))

    def _sample_hiddens(self, v, rng):
        """A binary sample of ``p(h|v)`` drawn with the numpy ``RandomState`` ``rng``."""
        p = self._mean_hiddens(v)
        return rng.uniform(size=p.shape) < p
