"""A whole stack pretrained greedily, as a scikit-learn transformer."""
from numbers import Integral, Real

import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ..core.device import resolve_device
from ..training.greedy import pretrain_stack
from ..core.batches import map_batches
from ._base import dense_input, draw_seed, torch_seeded


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
    stack_ : pretrain.training.stack.Stack
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
        return map_batches(encoder, inputs).numpy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
