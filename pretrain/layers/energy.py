"""What every restricted Boltzmann machine shares: Gibbs chains, PCD, the closed-form CD gradient, monitors.

Not registered itself; ``rbm`` and ``grbm`` subclass it and say how their
visible units behave. References: Hinton, *Training products of experts by
minimizing contrastive divergence* (2002); Tieleman, *Training restricted
Boltzmann machines using approximations to the likelihood gradient* (2008);
Hinton, *A practical guide to training RBMs* (2010).
"""
from abc import abstractmethod
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..core.nograd import without_grad
from .base import Layer
from .gradients import add_gradient, add_product_gradient, sparsity_penalty, sparsity_slope
from .options import Option
from .plain import DenseDecoder, holding

#: The options every RBM kind declares (each kind lists them in its ``options``). The upper ends are far past
#: any setting that trains (a penalty weighted 100 swamps the likelihood): values past them are typos, refused
#: as the spec is parsed rather than found out as a divergence.
ENERGY_OPTIONS = (
    Option("k", 1, "Gibbs steps of CD-k", low=1, high=1000),
    Option("pcd", False, "persistent contrastive divergence (chains kept across batches)"),
    Option("momentum", 0.5, "SGD momentum", low=0, high=1, closed="left"),
    Option("weight_decay", 0.0, "L2 penalty on the weights", low=0, high=1),
    Option("sparsity", 0.0, "target mean hidden activation", low=0, high=1, closed="neither", zero_means="off"),
    Option("sparsity_cost", 0.1, "weight of the sparsity penalty", low=0, high=100),
)


#: rows of each phase over which a minibatch's loss is estimated (:func:`softplus_mean`).
LOSS_ROWS = 16


def bernoulli_sample(p: torch.Tensor) -> torch.Tensor:
    """Binary sample of probabilities ``p``: ``uniform < p`` is faster than ``torch.bernoulli`` on CPU.

    The uniforms are float32 whatever ``p``'s type, so a float64 model draws
    the same samples as its float32 twin from the same seed (2^-24 is ample
    resolution for a Bernoulli draw).
    """
    # rand_like with an explicit layout draws what torch.rand(p.shape) draws, at less fixed cost
    sample = torch.rand_like(p, dtype=torch.float32, memory_format=torch.contiguous_format).lt_(p)
    return sample if p.dtype == torch.float32 else sample.to(p.dtype)


class EnergyLayer(Layer):
    """An RBM with binary hidden units; subclasses define the visible units.

    The free energy is ``F(v) = U(v) - sum_j softplus(c_j + W_j v')`` with
    ``U`` the visible term and ``v' = v / s`` the (possibly rescaled) visible
    vector; ``forward`` returns ``p(h=1|v) = sigmoid(W v' + c)``, the
    mean-field code that is cached for the layer above.

    The learning rule minimises ``mean F(v_data) - mean F(v_model)`` with the
    model sample ``v_model`` (the end of a Gibbs chain) held fixed: its
    gradient is the CD-k / PCD estimate of the negative log-likelihood
    gradient. :meth:`loss` is that gap for autograd; :meth:`accumulate_gradients`,
    which the trainer calls, writes the same gradient in closed form.
    """

    #: whether the last visible state of the negative phase is sampled (else its mean is used).
    sample_negative_visible = False

    def __init__(self, n_visible: int, n_hidden: int, **options):
        super().__init__(n_visible, n_hidden, **options)
        self.weight = nn.Parameter(torch.randn(n_hidden, n_visible) * 0.01)
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden))
        self.visible_bias = nn.Parameter(torch.zeros(n_visible))
        # Persistent chains (hidden states); sized on first use, saved for exact resumes.
        self.register_buffer("chain", torch.empty(0, n_hidden))

    # What subclasses define ----------------------------------------------------
    def visible_scale(self) -> torch.Tensor:
        """``s``: the per-visible-unit divisor applied before the weights (1 for binary units)."""
        return torch.ones(())

    def scaled(self, v: torch.Tensor) -> torch.Tensor:
        """``v' = v / s``, the visible vector the weights see."""
        return v / self.visible_scale()

    @abstractmethod
    def visible_mean(self, h: torch.Tensor) -> torch.Tensor:
        """``E[v | h]``."""

    @abstractmethod
    def sample_visible(self, mean: torch.Tensor) -> torch.Tensor:
        """A sample of ``p(v | h)`` given its mean."""

    @abstractmethod
    def visible_energy(self, v: torch.Tensor) -> torch.Tensor:
        """``U(v)`` per row: the free energy's term that does not involve the hidden units."""

    @abstractmethod
    def add_visible_gradients(self, v_data: torch.Tensor, v_model: torch.Tensor, weight_grad: Optional[torch.Tensor],
                              into: Dict, with_gap: bool) -> Optional[torch.Tensor]:
        """Add the gradients of ``mean U(v_data) - mean U(v_model)`` (and what depends on ``s``) to ``.grad``,
        or to the optimizer's buffer for the foldable ones in ``into`` (:func:`add_gradient`).

        ``weight_grad`` is the weight gradient of the whole gap, which the
        gradient of learned scales needs (None where the weight was folded).
        Returns the visible part of the gap (None unless ``with_gap``), taken
        before a folded update moves the biases.
        """

    # Shared -----------------------------------------------------------------------
    def hidden_preactivation(self, v: torch.Tensor) -> torch.Tensor:
        """``W v' + c``."""
        return F.linear(self.scaled(v), self.weight, self.hidden_bias)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.hidden_preactivation(v))

    def hidden_probabilities(self, pre: torch.Tensor) -> torch.Tensor:
        """``p(h = 1 | v) = sigmoid(pre)``, the hidden units being independent given ``v``."""
        return torch.sigmoid(pre)

    def sample_hidden(self, h: torch.Tensor) -> torch.Tensor:
        """Binary hidden units drawn from their probabilities ``h``."""
        return bernoulli_sample(h)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        return self.visible_mean(h)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """``F(v) = U(v) - sum_j softplus(c_j + W_j v')`` per row, ``-log sum_h exp(-E(v, h))`` up to a constant."""
        return self.visible_energy(v) - F.softplus(self.hidden_preactivation(v)).sum(1)

    def negative_phase(self, h_data: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Run the Gibbs chain k steps (:func:`gibbs_chain`)."""
        return gibbs_chain(self, h_data)

    def loss(self, v: torch.Tensor) -> torch.Tensor:
        """``mean F(v_data) - mean F(v_model)`` plus the sparsity penalty, for autograd."""
        with torch.no_grad():
            v_model, _ = self.negative_phase(self.forward(v))
        return self.free_energy(v).mean() - self.free_energy(v_model).mean() + self.sparsity_term(v)

    def foldable_parameters(self) -> List[nn.Parameter]:
        """The weight and the hidden biases: their gradients are two matrix products and two column sums,
        which add into the optimizer's buffers at once."""
        return [self.weight, self.hidden_bias]

    @without_grad
    def accumulate_gradients(self, v: torch.Tensor, into: Optional[Dict] = None,
                             with_loss: bool = True) -> Optional[torch.Tensor]:
        """The gradient of :meth:`loss` in closed form, added to ``.grad`` without an autograd graph.

        With ``h = sigmoid(W v' + c)`` the hidden probabilities of each phase
        (``n`` data rows, ``m`` chains), ``dW = mean_model[h v'^T] - mean_data[h v'^T]``
        and ``dc = mean(h_model) - mean(h_data)``; the visible terms come from
        :meth:`add_visible_gradients`, the sparsity penalty from
        :meth:`sparsity_factor`. It reuses the pre-activations and
        probabilities of the Gibbs chain, so a CD-1 step costs five
        ``batch x n_visible x n_hidden`` matrix products and a few dozen small
        operations (few enough for minibatches of 10 to stay cheap); a test
        checks it equals autograd of :meth:`loss`. The loss it returns (what
        the epoch reports) takes the hidden part of the gap from the first
        :data:`LOSS_ROWS` rows of each phase (:func:`softplus_mean`); with
        ``with_loss=False`` none is computed, which saves a sizeable part of a small step.
        """
        pre_data = self.hidden_preactivation(v)
        h_data = torch.sigmoid(pre_data)
        v_model, pre_model = self.negative_phase(h_data)
        h_model = torch.sigmoid(pre_model)
        n, m = v.shape[0], v_model.shape[0]  # not len(): Tensor.__len__ costs microseconds
        factor, penalty = self.sparsity_factor(h_data)
        into = into or {}
        weight_grad = add_product_gradient(self.weight, (h_model.t(), self.scaled(v_model), 1 / m),
                                           (factor.t(), self.scaled(v), -1 / n), into)
        add_gradient(self.hidden_bias, h_model.sum(0).div_(m).sub_(factor.sum(0), alpha=1 / n), into)
        visible_gap = self.add_visible_gradients(v, v_model, weight_grad, into, with_loss)
        if not with_loss:
            return None
        loss = visible_gap.sub_(softplus_mean(pre_data, h_data)).add_(softplus_mean(pre_model, h_model))
        return loss if penalty is None else loss.add_(penalty)

    def sparsity_factor(self, h: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The data phase's hidden factor in the gradient, and the penalty's value (None without a target).

        Without a sparsity target the factor is ``h``. With one, the penalty
        ``cost * sum_j KL(rho || q_j)``, ``q_j = mean_n h_nj``, adds
        ``dP/dpre_nj = h_nj (1 - h_nj) g_j / n`` with ``g_j = cost ((1 - rho)/(1 - q_j) - rho/q_j)``
        (0 where ``q`` is clamped, as in :func:`sparsity_penalty`); it enters
        every gradient as the data term does with the sign flipped, so the
        factor becomes ``h - h (1 - h) g``.
        """
        target = self.hparams["sparsity"]
        if not target:
            return h, None
        cost, q = self.hparams["sparsity_cost"], h.mean(0)
        return h - h * (1 - h) * sparsity_slope(q, target, cost), cost * sparsity_penalty(q, target)

    def sparsity_term(self, v: torch.Tensor) -> torch.Tensor:
        """Sparsity penalty on the mean hidden activation (0 when no target is set), for autograd."""
        target = self.hparams["sparsity"]
        if not target:
            return torch.zeros((), device=v.device)
        return self.hparams["sparsity_cost"] * sparsity_penalty(self.forward(v).mean(0), target)

    @torch.no_grad()
    def sample(self, n: int, steps: int = 1000) -> torch.Tensor:
        """Visible means after ``steps`` of block Gibbs sampling from random binary hidden states."""
        h = bernoulli_sample(torch.full((n, self.n_hidden), 0.5, device=self.weight.device))
        for _ in range(steps):
            mean = self.visible_mean(h)
            h = bernoulli_sample(self.forward(self.sample_visible(mean)))
        return self.visible_mean(h)

    @torch.no_grad()
    def monitors(self, train: torch.Tensor, val: torch.Tensor) -> Dict[str, float]:
        """Free-energy gap ``mean F(held-out) - mean F(train)``: it grows when the RBM overfits (Hinton 2010, s. 6)."""
        gap = self.free_energy(val).mean() - self.free_energy(train).mean()
        return {"free_energy_gap": float(gap)}

    def to_modules(self) -> nn.Sequential:
        weights = {"weight": self.weight / self.visible_scale(), "bias": self.hidden_bias}
        return nn.Sequential(holding(nn.Linear, weights, self.n_visible, self.n_hidden), nn.Sigmoid())

    def decoder(self) -> DenseDecoder:
        """``E[v | h]`` around the fine-tuned ``Linear``: ``sigmoid(h W + b)`` for binary visible units (``rbm``),
        ``b + s^2 (h W')`` for Gaussian ones (``grbm``: fine-tuning holds ``W' = W / s``, ``s`` fixed)."""
        return DenseDecoder(self.visible_bias, self.input_range == "unit", gain=self.visible_scale().detach().pow(2))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        size_chain_from(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def softplus_mean(pre: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``sum_j softplus(x_nj)`` averaged over the first :data:`LOSS_ROWS` rows ``n`` (:func:`softplus_sum`).

    Only the reported loss uses it, never the gradient. The rows of a minibatch
    come in a random order (and the chains of PCD are exchangeable from one step to the next), so the mean over
    the first 16 estimates the batch's mean without bias; the logarithms over
    all of a large batch are a measurable part of a CD-1 step, the gap between
    the trainer and a hand-written loop that reports nothing (measured:
    ``examples/benchmarks/design_notes.md``).
    """
    rows = min(pre.shape[0], LOSS_ROWS)
    return softplus_sum(pre[:rows], h[:rows]).div_(rows)


def softplus_sum(pre: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``sum softplus(x)`` over all entries, as ``sum x - sum log h`` with ``h = sigmoid(x)`` already computed.

    One logarithm per entry where ``F.softplus`` takes an exponential and a
    logarithm: faster on large batches, and no slower on small ones. Below ``x = -87`` (float32)
    ``h`` is clamped at the smallest normal float, which understates those
    entries' softplus (about ``e^x``) by ``-87 - x``: an error in the reported
    loss only, not seen in practice (the pre-activations of a trained
    Fashion-MNIST RBM stay well above ``-87``).
    """
    return pre.sum() - h.clamp(min=torch.finfo(h.dtype).tiny).log_().sum()


@without_grad
def gibbs_chain(layer, h_data: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Run ``layer``'s Gibbs chain k steps; return the model's visible state and its hidden pre-activation.

    CD-k starts from a sample of ``p(h|v_data)``; PCD continues the persistent
    chains (``layer.chain``) and stores their new hidden samples. The last
    visible state is its mean unless ``layer.sample_negative_visible``. Every
    RBM, dense or convolutional, runs this chain through its own
    ``visible_mean``, ``sample_visible`` and ``hidden_preactivation``.
    """
    k, pcd = layer.hparams["k"], layer.hparams["pcd"]
    if pcd and layer.chain.shape[0] == 0:
        layer.chain = layer.sample_hidden(h_data)
    h = layer.chain if pcd else layer.sample_hidden(h_data)
    for step in range(k):
        mean = layer.visible_mean(h)
        last = step == k - 1
        v = layer.sample_visible(mean) if (not last or layer.sample_negative_visible) else mean
        pre = layer.hidden_preactivation(v)
        if not last or pcd:
            h = layer.sample_hidden(layer.hidden_probabilities(pre))
    if pcd:
        layer.chain.copy_(h)  # in place: cheaper than re-registering the buffer every step
    return v, pre


def size_chain_from(layer, state_dict, prefix: str) -> None:
    """Resize ``layer.chain`` to the saved one: a persistent chain's size is only known once trained."""
    saved = state_dict.get(prefix + "chain")
    if saved is not None:
        layer.chain = torch.empty_like(saved, device=layer.weight.device)
