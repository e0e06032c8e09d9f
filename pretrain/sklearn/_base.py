"""What the layer estimators share: parameters derived from the layer declarations, fit, transform.

A subclass names its layer ``kind``; its constructor parameters and their
``_parameter_constraints`` are derived when the class is made
(:meth:`_LayerTransformer.__init_subclass__`) from :data:`FIT_OPTIONS`, the
kind's declared options (:attr:`pretrain.layers.Layer.options`) and
:data:`RUN_PARAMETERS`, so an option declared once on a layer is a parameter of
its estimator with the same default and the same valid range.
"""
import inspect
import time
from contextlib import contextmanager, nullcontext
from dataclasses import replace

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ..core.errors import LayerwiseError
from ..core.batches import map_batches
from ..core.device import deterministic_convolutions, resolve_device, torch_threads
from ..training.epoch import layer_optimizer, run_epoch
from ..training.footprint import trains_on_inputs
from ..layers import LayerSpec, Option, get_layer_class

#: rows the data-dependent initialisation looks at (as the greedy trainer).
INIT_ROWS = 10000
#: rows on which ``verbose`` reports the reconstruction error after each iteration.
MONITOR_ROWS = 1000
#: multiply-adds of one ``batch x n_visible x n_hidden`` product below which a dense layer's fit runs on one thread
#: (a step of a few small products pays each operation's fixed cost; a second thread adds its own)
SMALL_PRODUCT = 1_000_000

#: The training parameters of every layer estimator, before the layer's options. The
#: ``learning_rate`` default is the kind's ``default_lr``, ``batch_size``'s the class's.
FIT_OPTIONS = (
    Option("n_components", 256, "number of hidden units (the layer's width)", low=1),
    Option("learning_rate", 0.1, "learning rate of the layer's optimizer", low=0, closed="neither"),
    Option("batch_size", 100, "examples per minibatch", low=1),
    Option("n_iter", 10, "passes over the training data", low=0),
)
#: name -> (default, scikit-learn constraints): the parameters after the layer's options.
RUN_PARAMETERS = {
    "verbose": (0, ["verbose"]),
    "random_state": (None, ["random_state"]),
    "device": ("cpu", [str]),
}


def draw_seed(random_state) -> int:
    """A torch seed drawn from a scikit-learn ``random_state`` (None, an int or a RandomState)."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


@contextmanager
def torch_seeded(seed: int, device: torch.device):
    """Run under ``torch.manual_seed(seed)``, cuDNN deterministic on CUDA (:func:`deterministic_convolutions`),
    and give the caller's torch random state and cuDNN setting back afterwards."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), deterministic_convolutions(device):
        torch.manual_seed(seed)
        yield


def dense_input(estimator, X, reset: bool) -> torch.Tensor:
    """Validated ``X`` (dense or sparse, float32 kept, anything else float64) as a dense CPU tensor."""
    X = validate_data(estimator, X, accept_sparse="csr", dtype=(np.float64, np.float32), reset=reset)
    return as_tensor(X)


def observed_range(x: torch.Tensor) -> str:
    """``unit`` where every input lies in [0, 1], ``real`` otherwise: the range a data-driven layer is built for."""
    return "unit" if bool(x.min() >= 0 and x.max() <= 1) else "real"


def as_tensor(X) -> torch.Tensor:
    """A dense 2-D float array or sparse matrix as a CPU tensor, copied only when torch needs it."""
    dense = X.toarray() if sp.issparse(X) else X
    # torch.from_numpy needs a writable, C-ordered array; copy only when X is not one already.
    return torch.from_numpy(np.require(dense, requirements=["C", "W"]))


def _make_init(signature: inspect.Signature):
    """An ``__init__`` with ``signature`` that only stores its arguments, as scikit-learn requires."""
    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)
    __init__.__signature__ = signature
    return __init__


class _LayerTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """One layer of the registered kind ``kind``; ``transform`` gives its deterministic code.

    ``fit`` builds the layer, initialises it from the data and runs ``n_iter``
    passes of :func:`pretrain.training.epoch.run_epoch` (shuffled minibatches of
    ``batch_size``); ``partial_fit`` takes one update with ``X`` as a single
    minibatch, as scikit-learn's ``BernoulliRBM.partial_fit`` does. The trained
    torch layer is ``layer_``, its optimizer ``optimizer_``.
    """

    kind = ""
    default_components = 256
    default_batch_size = 100
    #: layer options the estimator sets itself, whatever its parameters.
    fixed_options: dict = {}
    #: whether the kind's other options are constructor parameters (else they keep the layer's defaults).
    option_parameters = True
    #: what to try when a fit diverges, appended to the error message.
    divergence_hint = "lower learning_rate"
    #: name -> (default, scikit-learn constraints): parameters of this class alone, before ``verbose``.
    extra_parameters: dict = {}

    def __init_subclass__(cls, **kwargs):
        """Derive ``__init__`` and ``_parameter_constraints`` from the declarations (see the module docstring)."""
        super().__init_subclass__(**kwargs)
        if not cls.kind:  # a shared base such as _ImageTransformer: no layer of its own
            return
        layer_cls = get_layer_class(cls.kind)
        defaults = {"n_components": cls.default_components, "learning_rate": layer_cls.default_lr,
                    "batch_size": cls.default_batch_size}
        options = [replace(o, default=defaults.get(o.name, o.default)) for o in FIT_OPTIONS]
        options += cls._option_parameters(layer_cls)
        keyword = inspect.Parameter.KEYWORD_ONLY
        parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                      inspect.Parameter(options[0].name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                        default=options[0].default)]
        parameters += [inspect.Parameter(o.name, keyword, default=o.default) for o in options[1:]]
        run_parameters = {**cls.extra_parameters, **RUN_PARAMETERS}
        parameters += [inspect.Parameter(name, keyword, default=default)
                       for name, (default, _) in run_parameters.items()]
        cls.__init__ = _make_init(inspect.Signature(parameters))
        cls._parameter_constraints = {**{o.name: o.constraints() for o in options},
                                      **{name: rule for name, (_, rule) in run_parameters.items()}}

    @classmethod
    def _option_parameters(cls, layer_cls) -> list:
        """The declared layer options that are constructor parameters."""
        if not cls.option_parameters:
            return []
        return [o for name, o in layer_cls.options.items() if name not in cls.fixed_options]

    def _layer_options(self) -> dict:
        """The options the layer is built with: the fixed ones and the parameters of the same names."""
        layer_cls = get_layer_class(self.kind)
        return {**{o.name: getattr(self, o.name) for o in self._option_parameters(layer_cls)},
                **self.fixed_options}

    def _input_range(self, x: torch.Tensor) -> str:
        """``unit`` or ``real``: which inputs the layer is built for."""
        return get_layer_class(self.kind).input_range

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the layer to ``X`` [n_samples, n_features]; ``y`` is ignored."""
        x = self._layer_input(dense_input(self, X, reset=True), reset=True)
        self.random_state_ = check_random_state(self.random_state)
        with self._seeded(self.random_state_):
            rows = self._build(x)
            for iteration in range(1, (self.n_iter if self.layer_.learns else 0) + 1):
                started = time.perf_counter()
                self._update(rows, self.batch_size, f"iteration {iteration}")
                if self.verbose:
                    label, value = self._monitor(rows)
                    print(f"[{type(self).__name__}] Iteration {iteration}, {label} = {value}, "
                          f"time = {time.perf_counter() - started:.2f}s")
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """One update with ``X`` as one minibatch; the first call builds the layer."""
        first_call = not hasattr(self, "layer_")
        x = self._layer_input(dense_input(self, X, reset=first_call), reset=first_call)
        if first_call:
            self.random_state_ = check_random_state(self.random_state)
        with self._seeded(self.random_state_):
            rows = self._build(x) if first_call else self._training_rows(x, fit=False)
            self._update(rows.to(self._home().dtype), len(rows), "partial_fit")
        return self

    def transform(self, X):
        """The layer's code of ``X``: ``p(h=1|v)`` for RBMs, the encoder output for autoencoders."""
        check_is_fitted(self)
        codes = self._map_rows(self.layer_, self._layer_input(dense_input(self, X, reset=False), reset=False))
        return codes.reshape(len(codes), -1)

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

    def _build(self, x: torch.Tensor) -> torch.Tensor:
        """The layer in ``x``'s float type, initialised from the data, and its optimizer; returns the rows it
        trains on (:meth:`_training_rows`)."""
        device = resolve_device(self.device)
        spec = LayerSpec(self.kind, self.n_components, self._layer_options())
        self.layer_ = spec.build(x.shape[1:], self._input_range(x)).to(device=device, dtype=x.dtype)
        rows = self._training_rows(x, fit=True)
        self.layer_.init_from_data(rows[:INIT_ROWS].to(device))
        self.optimizer_ = layer_optimizer(self.layer_, self.learning_rate)
        self._n_features_out = int(np.prod(self.layer_.output_shape))
        return rows

    def _training_rows(self, x: torch.Tensor, fit: bool) -> torch.Tensor:
        """What the learning rule sees of ``x`` (:meth:`pretrain.layers.Layer.training_rows`): ``x`` itself, or a
        patch layer's whitened patches, sampled on the layer's device (``fit``: its whitening fitted on them)."""
        if trains_on_inputs(self.layer_):
            return x
        return self.layer_.training_rows(x.to(resolve_device(self.device)), fit=fit)

    def _layer_input(self, x: torch.Tensor, reset: bool) -> torch.Tensor:
        """Rows as the layer takes them (``reset``: for a new fit): as they are for a dense kind (images:
        :mod:`pretrain.sklearn._image`)."""
        return x

    def _update(self, x: torch.Tensor, batch_size: int, stage: str) -> None:
        """One :func:`run_epoch` over ``x``; stop with a hint when a weight is no longer finite.

        No loss is asked for (scikit-learn reports none either): for an RBM it is a sizeable part of a
        minibatch of 10, and a diverged step shows in the weights all the same.
        """
        name = type(self).__name__
        with self._threads(batch_size):
            run_epoch(self.layer_, self.optimizer_, x, batch_size,
                      progress=f"{name} {stage}" if self.verbose > 1 else None, with_loss=False)
        broken = [n for n, p in self.layer_.named_parameters() if not bool(torch.isfinite(p).all())]
        if broken:
            raise LayerwiseError(f"{name} diverged in {stage} ({', '.join(broken)} not finite): "
                                 f"{self.divergence_hint} (learning_rate={self.learning_rate})")

    def _threads(self, batch_size: int):
        """One torch thread where a step's products are small (:data:`SMALL_PRODUCT`) on the CPU; else as set.

        A second thread pays off only on large products: at 64,000 multiply-adds a product (digits,
        100 components, batch 10) a fit took longer at two threads than at one, in float32 and float64,
        while at 3.2 million (batch 100, 500 components) two threads were faster than one (measured:
        ``examples/benchmarks/design_notes.md``).
        """
        layer = self.layer_  # a dense layer's products; the convolutional kinds keep the caller's threads
        small = (not layer.convolutional and layer.weight.device.type == "cpu"
                 and batch_size * layer.n_visible * layer.n_hidden < SMALL_PRODUCT)
        return torch_threads(1) if small else nullcontext()

    @torch.no_grad()
    def _monitor(self, x: torch.Tensor):
        """What ``verbose`` reports after each iteration: (label, formatted value)."""
        error = self.layer_.reconstruction_error(x[:MONITOR_ROWS].to(self._home().device))
        return "reconstruction error", f"{float(error):.4f}"

    @torch.no_grad()
    def _map_rows(self, function, x: torch.Tensor) -> np.ndarray:
        """``function`` applied to ``x`` chunk by chunk on the layer's device and float type."""
        weight = self._home()
        x = x.to(weight.dtype)
        return map_batches(lambda chunk: function(chunk).cpu(), x, device=weight.device).numpy()

    def _home(self) -> torch.Tensor:
        """A floating tensor of the layer's state: where it lives and in which float type (patch layers have no
        ``weight``)."""
        return next(t for t in (*self.layer_.parameters(), *self.layer_.buffers()) if t.is_floating_point())

    @staticmethod
    def _numpy(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().cpu().numpy()
