"""scikit-learn estimators over layerwise's layers: a drop-in ``BernoulliRBM`` and friends.

* :class:`BernoulliRBM` takes the constructor parameters, fitted attributes and
  methods of :class:`sklearn.neural_network.BernoulliRBM` (PCD, no momentum,
  inputs in [0, 1] used as they are), so code written for scikit-learn's RBM
  runs unchanged;
* :class:`GaussianRBM` (the ``grbm`` options) and :class:`Autoencoder` (the
  ``ae`` options) are single layers of the other kinds;
* :class:`StackedPretrainer` pretrains a whole stack greedily with
  :func:`pretrain.pretrain_stack` (each layer's codes computed once and cached)
  and ``transform`` gives the top layer's codes.

All four are transformers for ``Pipeline`` and ``GridSearchCV``. The layers are
those ``pretrain -l KIND:UNITS`` builds and :func:`pretrain.greedy.run_epoch`
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
import math
import time
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .errors import LayerwiseError
from .device import resolve_device
from .greedy import layer_optimizer as build_optimizer, pretrain_stack, run_epoch
from .layers import LayerSpec, get_layer_class
from .layers.base import bernoulli_sample

#: rows per chunk when a fitted layer is applied (bounds memory, never changes results).
CHUNK_ROWS = 4096
#: rows the data-dependent initialisation looks at (as the greedy trainer).
INIT_ROWS = 10000
#: rows on which ``verbose`` reports the reconstruction error after each iteration.
MONITOR_ROWS = 1000

_COMMON_CONSTRAINTS = {
    "n_components": [Interval(Integral, 1, None, closed="left")],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "n_iter": [Interval(Integral, 0, None, closed="left")],
    "verbose": ["verbose"],
    "random_state": ["random_state"],
    "device": [str],
}
_ENERGY_CONSTRAINTS = {
    "k": [Interval(Integral, 1, None, closed="left")],
    "pcd": ["boolean"],
    "momentum": [Interval(Real, 0, 1, closed="left")],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
    "sparsity": [Interval(Real, 0, 1, closed="left")],
    "sparsity_cost": [Interval(Real, 0, None, closed="left")],
}


def draw_seed(random_state) -> int:
    """A torch seed drawn from a scikit-learn ``random_state`` (None, an int or a RandomState)."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


@contextmanager
def torch_seeded(seed: int, device: torch.device):
    """Run under ``torch.manual_seed(seed)`` and give the caller's torch random state back afterwards."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def dense_input(estimator, X, reset: bool) -> torch.Tensor:
    """Validated ``X`` (dense or sparse, float32 kept, anything else float64) as a dense CPU tensor."""
    X = validate_data(estimator, X, accept_sparse="csr", dtype=(np.float64, np.float32), reset=reset)
    dense = X.toarray() if sp.issparse(X) else X
    # torch.from_numpy needs a writable, C-ordered array; copy only when X is not one already.
    return torch.from_numpy(np.require(dense, requirements=["C", "W"]))


class _LayerTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """One layer of the registered kind ``kind``; ``transform`` gives its deterministic code.

    ``fit`` builds the layer, initialises it from the data and runs ``n_iter``
    passes of :func:`pretrain.greedy.run_epoch` (shuffled minibatches of
    ``batch_size``); ``partial_fit`` takes one update with ``X`` as a single
    minibatch, as scikit-learn's ``BernoulliRBM.partial_fit`` does. The trained
    torch layer is ``layer_``, its optimizer ``optimizer_``.
    """

    kind = ""
    #: what to try when a fit diverges, appended to the error message.
    divergence_hint = "lower learning_rate"

    def _layer_options(self) -> dict:
        """The layer kind's options, taken from the constructor parameters of the same names."""
        return {name: getattr(self, name) for name in get_layer_class(self.kind).options}

    def _input_range(self, x: torch.Tensor) -> str:
        """``unit`` or ``real``: which inputs the layer is built for."""
        return get_layer_class(self.kind).input_range

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the layer to ``X`` [n_samples, n_features]; ``y`` is ignored."""
        x = dense_input(self, X, reset=True)
        self.random_state_ = check_random_state(self.random_state)
        with self._seeded(self.random_state_):
            self._build(x)
            for iteration in range(1, self.n_iter + 1):
                self._update(x, self.batch_size, f"iteration {iteration}")
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """One update with ``X`` as one minibatch; the first call builds the layer."""
        first_call = not hasattr(self, "layer_")
        x = dense_input(self, X, reset=first_call)
        if first_call:
            self.random_state_ = check_random_state(self.random_state)
        with self._seeded(self.random_state_):
            if first_call:
                self._build(x)
            self._update(x.to(self.layer_.weight.dtype), len(x), "partial_fit")
        return self

    def transform(self, X):
        """The layer's code of ``X``: ``p(h=1|v)`` for RBMs, the encoder output for autoencoders."""
        check_is_fitted(self)
        return self._map_rows(self.layer_, dense_input(self, X, reset=False))

    @property
    def components_(self) -> np.ndarray:
        """Weights [n_components, n_features] (a view for a model on the CPU)."""
        return self._numpy(self.layer_.weight)

    @property
    def intercept_hidden_(self) -> np.ndarray:
        """Hidden (code) biases [n_components]."""
        return self._numpy(self.layer_.hidden_bias)

    @property
    def intercept_visible_(self) -> np.ndarray:
        """Visible (reconstruction) biases [n_features]."""
        return self._numpy(self.layer_.visible_bias)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # Machinery ---------------------------------------------------------------------
    def _seeded(self, rng: np.random.RandomState):
        return torch_seeded(draw_seed(rng), resolve_device(self.device))

    def _build(self, x: torch.Tensor) -> None:
        """The layer in ``x``'s float type, initialised from the data, and its optimizer."""
        device = resolve_device(self.device)
        spec = LayerSpec(self.kind, self.n_components, self._layer_options())
        self.layer_ = spec.build(x.shape[1], self._input_range(x)).to(device=device, dtype=x.dtype)
        self.layer_.init_from_data(x[:INIT_ROWS].to(device))
        self.optimizer_ = build_optimizer(self.layer_, self.learning_rate)
        self._n_features_out = self.n_components

    def _update(self, x: torch.Tensor, batch_size: int, stage: str) -> None:
        """One :func:`run_epoch` over ``x``; stop with a hint when the loss is no longer finite."""
        name = type(self).__name__
        started = time.perf_counter()
        loss = run_epoch(self.layer_, self.optimizer_, x, batch_size,
                         progress=f"{name} {stage}" if self.verbose > 1 else None)
        if not math.isfinite(loss):
            raise LayerwiseError(f"{name} diverged in {stage} (loss {loss}): {self.divergence_hint} "
                                 f"(learning_rate={self.learning_rate})")
        if self.verbose:
            with torch.no_grad():
                error = float(self.layer_.reconstruction_error(x[:MONITOR_ROWS].to(self.layer_.weight.device)))
            print(f"[{name}] {stage}, reconstruction error = {error:.4f}, "
                  f"time = {time.perf_counter() - started:.2f}s")

    @torch.no_grad()
    def _map_rows(self, function, x: torch.Tensor) -> np.ndarray:
        """``function`` applied to ``x`` chunk by chunk on the layer's device and float type."""
        weight = self.layer_.weight
        x = x.to(weight.dtype)
        return torch.cat([function(chunk.to(weight.device)).cpu() for chunk in x.split(CHUNK_ROWS)]).numpy()

    @staticmethod
    def _numpy(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().cpu().numpy()


class BernoulliRBM(_LayerTransformer):
    """Drop-in for :class:`sklearn.neural_network.BernoulliRBM`, trained by torch.

    Binary visible and hidden units, energy ``E(v, h) = -b.v - c.h - h.W v``;
    ``transform`` gives ``p(h=1|v) = sigmoid(W v + c)``. Trained by persistent
    contrastive divergence (Tieleman 2008; Hinton, Osindero & Teh 2006 for
    RBMs in deep belief nets): ``W += learning_rate * (<h v^T>_data - <h v^T>_chains)``
    per minibatch, the chains' hidden states kept in ``h_samples_``. The same
    parameters, defaults, fitted attributes and methods as scikit-learn's; the
    differences: the visible biases start at the log-odds of the mean input
    (Hinton 2010, s. 8) rather than 0, each iteration visits the minibatches in
    a fresh random order, the negative phase ends at the visible means, and
    ``device`` (``cpu``, ``cuda`` or ``auto``) is added. Inputs are expected in
    [0, 1] and are not rescaled.

    Speed: each minibatch costs torch a fixed ~0.2-0.3 ms besides its
    arithmetic, so on tiny inputs (8x8 digits, batch_size=10) scikit-learn's
    numpy RBM is about 4x faster, while on 28x28 images with 256 components
    this one is about 1.6-1.9x faster (one CPU thread, float32 or float64).

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
        1: reconstruction error per iteration; 2: also a progress bar.
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
        The torch layer (``pretrain -l rbm:N,pcd=true,momentum=0``).
    """

    kind = "rbm"
    _parameter_constraints = dict(_COMMON_CONSTRAINTS)

    def __init__(self, n_components=256, *, learning_rate=0.1, batch_size=10, n_iter=10, verbose=0,
                 random_state=None, device="cpu"):
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.verbose = verbose
        self.random_state = random_state
        self.device = device

    def _layer_options(self):
        return {"pcd": True, "momentum": 0.0}

    def _build(self, x):
        super()._build(x)
        # scikit-learn starts batch_size persistent chains at h = 0.
        self.layer_.chain = self.layer_.weight.new_zeros(self.batch_size, self.n_components)

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


class GaussianRBM(_LayerTransformer):
    """Gaussian-Bernoulli RBM (``pretrain -l grbm``) for real-valued inputs.

    ``p(h_j=1|v) = sigmoid(c_j + W_j (v / s))``, ``p(v_i|h) = N(b_i + s_i (W^T h)_i, s_i^2)``
    with ``s = 1`` unless ``learn_std`` (Cho, Ilin & Raiko 2011). It expects
    standardised inputs: put a ``StandardScaler`` before it. Trained by CD-k
    (``pcd=True``: persistent chains) with SGD and momentum; the options are
    those of the ``grbm`` kind (``pretrain --list-layers``). A fit whose loss
    stops being finite raises :class:`pretrain.errors.LayerwiseError` naming the remedy.
    """

    kind = "grbm"
    divergence_hint = ("standardise the input (make_pipeline(StandardScaler(), GaussianRBM(...))) "
                       "and lower learning_rate")
    _parameter_constraints = {**_COMMON_CONSTRAINTS, **_ENERGY_CONSTRAINTS,
                              "learn_std": ["boolean"], "min_std": [Interval(Real, 0, None, closed="neither")]}

    def __init__(self, n_components=256, *, learning_rate=0.01, batch_size=100, n_iter=10, k=1, pcd=False,
                 momentum=0.5, weight_decay=0.0, sparsity=0.0, sparsity_cost=0.1, learn_std=False, min_std=0.1,
                 verbose=0, random_state=None, device="cpu"):
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.k = k
        self.pcd = pcd
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.sparsity = sparsity
        self.sparsity_cost = sparsity_cost
        self.learn_std = learn_std
        self.min_std = min_std
        self.verbose = verbose
        self.random_state = random_state
        self.device = device


class Autoencoder(_LayerTransformer):
    """One autoencoder layer (``pretrain -l ae``): plain, denoising, sparse or contractive.

    Code ``h = act(W x + c)``, reconstruction ``W' h + b`` (``W' = W^T`` when
    ``tied``), trained with Adam on the reconstruction of the clean input from
    the code of the corrupted one (Vincent et al. 2008) plus the optional
    sparsity (Ng 2011) and contractive (Rifai et al. 2011) penalties. With
    ``loss="auto"`` inputs in [0, 1] get cross-entropy and others squared error;
    ``loss="ce"`` requires inputs in [0, 1].
    """

    kind = "ae"
    _parameter_constraints = {
        **_COMMON_CONSTRAINTS,
        "tied": ["boolean"],
        "act": [StrOptions({"sigmoid", "relu"})],
        "noise": [str],
        "sparsity": [Interval(Real, 0, 1, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "contractive": [Interval(Real, 0, None, closed="left")],
        "loss": [StrOptions({"auto", "ce", "mse"})],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, n_components=256, *, learning_rate=1e-3, batch_size=100, n_iter=10, tied=True,
                 act="sigmoid", noise="none", sparsity=0.0, beta=3.0, contractive=0.0, loss="auto",
                 weight_decay=0.0, verbose=0, random_state=None, device="cpu"):
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.tied = tied
        self.act = act
        self.noise = noise
        self.sparsity = sparsity
        self.beta = beta
        self.contractive = contractive
        self.loss = loss
        self.weight_decay = weight_decay
        self.verbose = verbose
        self.random_state = random_state
        self.device = device

    def _input_range(self, x):
        in_unit_range = bool(x.min() >= 0 and x.max() <= 1)
        if self.loss == "ce" and not in_unit_range:
            raise LayerwiseError("Autoencoder(loss='ce') needs inputs in [0, 1]: scale them first "
                                 "(e.g. MinMaxScaler) or use loss='mse'")
        return "unit" if in_unit_range else "real"


class StackedPretrainer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """A stack pretrained greedily by :func:`pretrain.pretrain_stack`; ``transform`` gives the top codes.

    ``layers`` are specs as for ``pretrain -l``, bottom first (``"rbm:256"``,
    ``"ae:64,noise=mask:0.3"``, per-layer ``epochs=``/``lr=``). Layer k trains
    on the codes of layers below it, computed once and cached, never by
    re-running the frozen layers (Hinton, Osindero & Teh 2006; Bengio et al.
    2007). The inputs go through the stack's own preprocessing (scaled to
    [0, 1] for rbm/ae, standardised for grbm), saved in ``stack_``.
    ``stack_.save(folder)`` writes the artifact that
    ``finetune`` reads.

    Parameters
    ----------
    layers : list of str, default=("rbm:256",)
    n_iter : int, default=10
        Epochs per layer (a spec's ``epochs=`` overrides it).
    batch_size : int, default=100
    learning_rate : float or None, default=None
        None: each kind's default rate (a spec's ``lr=`` overrides it).
    val_fraction : float, default=0.05
        Held-out slice whose reconstruction error is recorded in ``stack_.info["history"]``.
    verbose : int, default=0
        Progress bars and per-epoch figures when not 0.
    random_state : int, RandomState instance or None, default=None
    device : str, default="cpu"

    Attributes
    ----------
    stack_ : pretrain.stack.Stack
    """

    _parameter_constraints = {
        "layers": [list, tuple],
        "n_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither"), None],
        "val_fraction": [Interval(Real, 0, 1, closed="left")],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "device": [str],
    }

    def __init__(self, layers=("rbm:256",), *, n_iter=10, batch_size=100, learning_rate=None, val_fraction=0.05,
                 verbose=0, random_state=None, device="cpu"):
        self.layers = layers
        self.n_iter = n_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.val_fraction = val_fraction
        self.verbose = verbose
        self.random_state = random_state
        self.device = device

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Pretrain the stack on ``X`` [n_samples, n_features]; ``y`` is ignored."""
        x = dense_input(self, X, reset=True)
        seed = draw_seed(self.random_state)
        with torch_seeded(seed, resolve_device(self.device)):
            self.stack_ = pretrain_stack(x.numpy(), list(self.layers), epochs=self.n_iter,
                                         batch_size=self.batch_size, lr=self.learning_rate or 0.0, seed=seed,
                                         device=self.device, val_fraction=self.val_fraction,
                                         progress=bool(self.verbose))
        self._n_features_out = self.stack_.n_outputs
        return self

    @torch.no_grad()
    def transform(self, X):
        """Top-layer codes of ``X`` [n_samples, top layer's units], in ``X``'s float type.

        Float64 input is encoded in float64 (with the stack's float32 weights
        widened), so a row's code agrees to float64 rounding whatever rows
        are encoded with it.
        """
        check_is_fitted(self)
        x = dense_input(self, X, reset=False)
        encoder = self.stack_.encoder().to(x.dtype).eval()
        inputs = self.stack_.preprocess(x.numpy()).to(x.dtype)
        return torch.cat([encoder(chunk) for chunk in inputs.split(CHUNK_ROWS)]).numpy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
