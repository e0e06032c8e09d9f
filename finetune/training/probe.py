"""A linear head fitted to convergence on frozen features: multinomial logistic regression as scikit-learn fits it.

On cached features ``x`` (the output of a frozen body) the head
``Linear(BatchNorm1d(affine=False)(x))`` is a logistic regression on
standardised features. Instead of Adam on mini-batches, :func:`fit_linear_head`

1. sets the BatchNorm's running mean and variance to the mean and (biased)
   variance of the fit rows, so the head standardises every input it will
   see as ``z = (x - mean) / sqrt(var + eps)`` (the saved classifier keeps
   its structure: only buffers change);
2. minimises scikit-learn's objective for ``LogisticRegression(C)`` over the
   linear layer, divided by ``C * n``::

       L(W, b) = 1/n sum_i -log softmax(W z_i + b)[y_i] + ||W||^2 / (2 C n)

   (the bias is not penalised), full batch, in float64, by SciPy's L-BFGS-B (Byrd, Lu, Nocedal &
   Zhu 1995; the solver and settings of scikit-learn's ``lbfgs``, gradients from torch's autograd)
   until the largest gradient entry is below ``GRADIENT_TOLERANCE`` (scikit-learn's ``tol=1e-4``
   on the same scaled gradient) or after ``MAX_ITERATIONS``; SciPy's rather than
   ``torch.optim.LBFGS``, whose first use imports ``torch._dynamo``, which costs seconds;
3. chooses ``C`` from ``C_GRID`` by stratified k-fold cross-validation on the
   fit rows, ``k = min(5, fewest labels of a class)``: the lowest mean
   held-out log-loss (cross-entropy), ties broken by the smaller ``C``; as
   scikit-learn's ``GridSearchCV(..., scoring="neg_log_loss")`` would. The
   folds are standardised with the statistics of all fit rows (no labels
   are involved in them). Where some class has fewer than 2 labels there is
   nothing to cross-validate and ``C = FIXED_C``.

Why log-loss and not accuracy (scikit-learn's default score): with a few
held-out rows per fold, accuracy ties across most of the grid and its picks
are noise, while the log-loss, a proper scoring rule, still ranks them. On
Fashion-MNIST and digits with few labels per class, choosing by log-loss gave
a higher mean test accuracy in most cells, and a lower one in few and by less
(measured: ``examples/benchmarks/design_notes.md``).

``FIXED_C``: the median (and the geometric mean) of the ``C`` this
cross-validation picks at 5 labels per class on digits and Fashion-MNIST, on
pixels and on pretrained stacks, which is also scikit-learn's default
(``examples/benchmarks/probe_strength.py``; its picks are in
``examples/benchmarks/design_notes.md``). Within a data set the picks agree;
across these two they differ by one to two decades, and 1 lies between.
"""
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: L2 strengths tried by cross-validation (scikit-learn's ``C``: larger is weaker), a decade apart.
C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2)
#: ``C`` where some class has a single label (see the module docstring for how it was chosen).
FIXED_C = 1.0
MAX_FOLDS = 5
GRADIENT_TOLERANCE = 1e-4
MAX_ITERATIONS = 1000


@dataclass
class ProbeFit:
    """What fitting the head found: its ``C``, how (``cv``, ``fixed`` or ``given``), the CV accuracy, L-BFGS steps."""

    C: float
    chosen_by: str
    cv_accuracy: Optional[float]
    iterations: int


def standardize(norm: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """Set ``norm``'s running statistics to those of ``x`` and return ``norm(x)`` in eval mode."""
    with torch.no_grad():
        norm.running_mean.copy_(x.mean(0))
        norm.running_var.copy_(x.var(0, unbiased=False))
        norm.num_batches_tracked.zero_()
        return norm.eval()(x)


def fit_logistic(z: torch.Tensor, y: torch.Tensor, n_classes: int, C: float,
                 start: Optional[Tuple[torch.Tensor, torch.Tensor]] = None):
    """``(W, b, iterations)`` minimising the regularised cross-entropy ``L`` above on float64 ``z``.

    ``start``: initial ``(W, b)`` (a warm start along a path of ``C``); zeros otherwise.
    """
    from scipy.optimize import minimize  # scikit-learn's model selection imports it already
    from threadpoolctl import threadpool_limits
    shape = (n_classes, z.shape[1])
    first = torch.cat([start[0].reshape(-1), start[1]]) if start else z.new_zeros(shape[0] * shape[1] + n_classes)
    penalty = 1.0 / (2 * C * len(z))

    def loss_and_gradient(theta: np.ndarray):
        parameters = torch.from_numpy(theta).to(z).requires_grad_()
        weight, bias = parameters[:-n_classes].view(shape), parameters[-n_classes:]
        loss = F.cross_entropy(z @ weight.T + bias, y) + penalty * weight.pow(2).sum()
        loss.backward()
        return float(loss.detach()), parameters.grad.cpu().numpy()

    # SciPy's OpenBLAS threads spin beside torch's OpenMP ones: with a full pool of each a fit took far longer
    with threadpool_limits(1, user_api="blas"):
        found = minimize(loss_and_gradient, first.cpu().numpy(), jac=True, method="L-BFGS-B",
                         options={"maxiter": MAX_ITERATIONS, "maxcor": 20, "maxls": 50, "gtol": GRADIENT_TOLERANCE,
                                  "ftol": 64 * np.finfo(float).eps})
    theta = torch.from_numpy(found.x).to(z)
    return theta[:-n_classes].view(shape), theta[-n_classes:], int(found.nit)


def cross_validate(z: torch.Tensor, y: torch.Tensor, n_classes: int, grid: Sequence[float],
                   seed: int = 0) -> Tuple[float, float]:
    """``(C, its mean fold accuracy)`` of the ``C`` in ``grid`` with the lowest mean held-out log-loss."""
    from sklearn.model_selection import StratifiedKFold
    labels = y.cpu().numpy()
    folds = min(MAX_FOLDS, int(np.bincount(labels)[np.unique(labels)].min()))
    grid = sorted(grid)
    scores = np.zeros((len(grid), 2))  # (log-loss, accuracy) summed over folds
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, labels):
        start = None
        for index, C in enumerate(grid):  # ascending C: each fit starts from the more regular one
            weight, bias, _ = fit_logistic(z[train], y[train], n_classes, C, start)
            start = weight, bias
            logits = z[test] @ weight.T + bias
            scores[index] += [float(F.cross_entropy(logits, y[test])),
                              float((logits.argmax(1) == y[test]).double().mean())]
    best = int(np.argmin(scores[:, 0]))  # the first, i.e. the smallest C, among equals
    return grid[best], float(scores[best, 1] / folds)


def fit_linear_head(head: nn.Sequential, x: torch.Tensor, y: torch.Tensor, n_classes: int,
                    C: Optional[float] = None, grid: Sequence[float] = C_GRID, seed: int = 0,
                    precision: torch.dtype = torch.float64) -> ProbeFit:
    """Fit ``head`` = ``Sequential(BatchNorm1d(affine=False), Linear)`` on features ``x`` and labels ``y``.

    ``C``: a fixed strength; without it, chosen by cross-validation where every
    class present has 2 labels or more, ``FIXED_C`` otherwise. The head ends in
    eval mode, on the device and in the dtype it had. ``precision``: the dtype
    of the fit; float32 halves the memory of a large one and speeds it, at the test accuracy of
    float64 on CIFAR-10 codes (measured: ``examples/benchmarks/design_notes.md``).
    """
    norm, linear = head
    counts = np.bincount(y.cpu().numpy())
    z = standardize(norm, x).to(precision)
    y = y.to(z.device)
    chosen_by, cv_accuracy = "given", None
    if C is None and counts[counts > 0].min() >= 2:
        (C, cv_accuracy), chosen_by = cross_validate(z, y, n_classes, grid, seed), "cv"
    elif C is None:
        C, chosen_by = FIXED_C, "fixed"
    weight, bias, iterations = fit_logistic(z, y, n_classes, C)
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    head.eval()
    return ProbeFit(C, chosen_by, cv_accuracy, iterations)
