"""LogME: how well a linear model on frozen features can explain the labels, without training one.

You, Liu, Wang & Long, *LogME: Practical Assessment of Pre-trained Models for
Transfer Learning*, ICML 2021 (their Algorithm 1, with the SVD speed-up).

For features ``F`` (n x d) and one class's one-vs-rest target ``y`` in {0, 1}^n,
a Bayesian linear model ``y = F w + noise`` with prior ``w ~ N(0, I/alpha)``
and noise ``N(0, 1/beta)`` has the log marginal evidence::

    L(alpha, beta) = n/2 log beta + d/2 log alpha - n/2 log 2pi
                     - beta/2 ||F m - y||^2 - alpha/2 ||m||^2 - 1/2 log |A|

with ``A = alpha I + beta F^T F`` and the posterior mean ``m = beta A^-1 F^T y``.
MacKay's fixed point maximises it over alpha and beta::

    gamma = sum_i beta s_i^2 / (alpha + beta s_i^2)
    alpha <- gamma / ||m||^2,    beta <- (n - gamma) / ||F m - y||^2

On the thin SVD ``F = U S V^T`` (rank r) every term is a sum over the r
singular values: with ``z = U^T y``, ``m`` in the basis ``V`` is
``beta s_i z_i / (alpha + beta s_i^2)``; the residual is
``sum_i (z_i - s_i m_i)^2 + ||y||^2 - ||z||^2``; and
``log |A| = sum_i log(alpha + beta s_i^2) + (d - r) log alpha``.
LogME is ``L / n`` at the fixed point, averaged over the classes: higher
means the labels are more linearly evident in the features. The SVD is
computed once and shared by every class, so the whole score costs one SVD.
"""
import math

import torch

MAX_ITERATIONS = 100
TOLERANCE = 1e-5
RANK_TOLERANCE = 1e-10
#: alpha and beta stay within these: where no feature helps, gamma underflows to 0 and alpha would run off to infinity
BOUNDS = (1e-10, 1e10)


def logme(features: torch.Tensor, labels: torch.Tensor, n_classes: int) -> float:
    """The LogME score of ``features`` [n, d] for integer ``labels`` [n]: mean over classes of the evidence per row."""
    f = features.detach().double().cpu()
    u, s, _ = torch.linalg.svd(f, full_matrices=False)
    keep = s > RANK_TOLERANCE * max(float(s.max()), 1.0)
    u, s = u[:, keep], s[keep]
    y = labels.cpu()
    return sum(class_evidence(u, s, (y == c).double(), f.shape[1]) for c in range(n_classes)) / n_classes


def class_evidence(u: torch.Tensor, s: torch.Tensor, y: torch.Tensor, d: int) -> float:
    """``L / n`` of one binary target ``y`` at the fixed point over alpha and beta (the module docstring)."""
    n = len(y)
    z = u.T @ y
    outside = float(y @ y - z @ z)  # the part of y no feature direction reaches
    sigma = s * s
    alpha, beta = 1.0, 1.0
    for _ in range(MAX_ITERATIONS):
        m = beta * s * z / (alpha + beta * sigma)
        gamma = float((beta * sigma / (alpha + beta * sigma)).sum())
        residual = float(((z - s * m) ** 2).sum()) + outside
        new_alpha = min(max(gamma / max(float(m @ m), 1e-300), BOUNDS[0]), BOUNDS[1])
        new_beta = min(max((n - gamma) / max(residual, 1e-300), BOUNDS[0]), BOUNDS[1])
        converged = abs(new_alpha - alpha) / alpha < TOLERANCE and abs(new_beta - beta) / beta < TOLERANCE
        alpha, beta = new_alpha, new_beta
        if converged:
            break
    m = beta * s * z / (alpha + beta * sigma)
    residual = float(((z - s * m) ** 2).sum()) + outside
    log_det = float(torch.log(alpha + beta * sigma).sum()) + (d - len(s)) * math.log(alpha)
    evidence = (n * math.log(beta) + d * math.log(alpha) - n * math.log(2 * math.pi)
                - beta * residual - alpha * float(m @ m) - log_det) / 2
    return evidence / n
