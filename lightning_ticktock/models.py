"""The two surrogate models of tick-tock BO, built and fitted with BoTorch.

* **partial-run GP** (cost model): ``log(cost)`` of every run that reported a
  cost the optimizer can trust as a full-run cost (completed runs, and
  early-stopped runs whose cost is the callback's projection).
* **full-run GP** (loss model): the transformed loss of completed runs only.

Both follow BoTorch's ``SingleTaskGP`` conventions: float64, inputs in the
unit cube (the search space's encoding is the input normalization), outcomes
standardized by ``Standardize``. A :class:`FeatureMap` turns each categorical
column into a one-hot group, so a category is never an ordered number: with an
ARD kernel, two different options are at the same distance whatever their
indices. (BoTorch's ``MixedSingleTaskGP`` with its categorical kernel does the
same job; measured here, its sum-and-product kernel made each acquisition
evaluation 3x slower, for no better proposals on our problems.)

Example:
    >>> import torch
    >>> X = torch.rand(8, 2, dtype=torch.float64)
    >>> Y = (X.sum(-1, keepdim=True) * 3).exp()
    >>> fitted = fit_gp(X, Y.log())
    >>> fitted.model.num_outputs
    1
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence

import torch
from botorch.exceptions.warnings import OptimizationWarning
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from gpytorch.mlls import ExactMarginalLogLikelihood

__all__ = ["FittedGP", "FeatureMap", "fit_gp", "LossTransform", "COST_FLOOR"]

#: NOTE: costs are modelled in log space; a cost of exactly 0 (a user cost
#: function may return it) would be -inf, so costs are floored at this value.
COST_FLOOR = 1e-9

# NOTE: L-BFGS-B iterations for the marginal likelihood. A cold fit gets 200;
# a warm-started one starts next to the optimum (one more point changes the
# hyperparameters little), so 40 iterations suffice and bound ask() latency.
_MAXITER_COLD = 200
_MAXITER_WARM = 40
# NOTE: stop when an iteration improves the MLL by less than this (relative);
# scipy's default (2e-9) spends most iterations on digits that do not change
# the acquisition's argmax.
_FTOL = 1e-6


@dataclasses.dataclass
class FittedGP:
    """A fitted single-output GP and what is needed to read it.

    Attributes:
        model: The fitted BoTorch model (eval mode).
        train_X: ```n x d``` training inputs.
        train_Y: ```n x 1``` training targets (already transformed: log cost,
            or the loss transform).
        hyperparameters: The hyperparameter part of the state dict, used to
            warm-start the next fit.
    """

    model: SingleTaskGP
    train_X: torch.Tensor
    train_Y: torch.Tensor
    hyperparameters: dict[str, torch.Tensor]

    def noise_sd(self) -> float:
        """Observation noise standard deviation in units of ``train_Y``."""
        noise = float(self.model.likelihood.noise.detach().mean())
        scale = 1.0
        tf = getattr(self.model, "outcome_transform", None)
        if tf is not None and hasattr(tf, "stdvs"):
            scale = float(tf.stdvs.detach().mean())
        return math.sqrt(max(noise, 0.0)) * scale


def _hyperparameter_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # The outcome transform's buffers (means, stdvs) belong to the data, not to
    # the kernel: loading stale ones would mis-scale the new posterior.
    return {
        k: v.detach().clone()
        for k, v in model.state_dict().items()
        if not k.startswith("outcome_transform")
    }


class FeatureMap:
    """Encoded configurations (one column per parameter) <-> GP features.

    Numeric columns pass through; the column of a choice with ``k`` options becomes
    ``k`` one-hot columns.

    Args:
        sizes: Per parameter, ``0`` for a numeric one, ``k`` for a choice of ``k``.

    Example:
        >>> fm = FeatureMap([0, 3])
        >>> fm.features([0.25, 2.0]), fm.n_features, fm.groups
        ([0.25, 0.0, 0.0, 1.0], 4, [[1, 2, 3]])
        >>> fm.encoded([0.25, 0.1, 0.7, 0.2])
        [0.25, 1.0]
        >>> fm.fixed_features((0,))
        {1: 1.0, 2: 0.0, 3: 0.0}
    """

    def __init__(self, sizes: Sequence[int]) -> None:
        self.sizes = [int(k) for k in sizes]
        self.columns: list[list[int]] = []
        n = 0
        for k in self.sizes:
            width = k if k > 0 else 1
            self.columns.append(list(range(n, n + width)))
            n += width
        self.n_features = n

    @property
    def groups(self) -> list[list[int]]:
        """Feature columns of each choice, in parameter order."""
        return [c for c, k in zip(self.columns, self.sizes) if k > 0]

    @property
    def cat_sizes(self) -> list[int]:
        return [k for k in self.sizes if k > 0]

    @property
    def numeric_features(self) -> list[int]:
        return [c[0] for c, k in zip(self.columns, self.sizes) if k == 0]

    def features(self, x: Sequence[float]) -> list[float]:
        out: list[float] = []
        for v, k in zip(x, self.sizes):
            if k > 0:
                out += [1.0 if j == int(round(v)) else 0.0 for j in range(k)]
            else:
                out.append(float(v))
        return out

    def encoded(self, f: Sequence[float]) -> list[float]:
        out = []
        for cols, k in zip(self.columns, self.sizes):
            vals = [float(f[c]) for c in cols]
            out.append(float(max(range(k), key=lambda j: vals[j])) if k > 0 else vals[0])
        return out

    def combo(self, x: Sequence[float]) -> tuple[int, ...]:
        """The option indices of an encoded configuration's choices."""
        return tuple(int(round(v)) for v, k in zip(x, self.sizes) if k > 0)

    def fixed_features(self, combo: Sequence[int]) -> dict[int, float]:
        """One-hot values fixing each choice to the option of ``combo``."""
        fixed = {}
        for cols, idx in zip(self.groups, combo):
            for j, c in enumerate(cols):
                fixed[c] = 1.0 if j == idx else 0.0
        return fixed


def fit_gp(
    train_X: torch.Tensor,
    train_Y: torch.Tensor,
    warm_start: dict[str, torch.Tensor] | None = None,
    seed: int = 0,
) -> FittedGP:
    """Build and fit a GP on ``(train_X, train_Y)`` by maximizing the marginal likelihood.

    Args:
        train_X: ```n x d``` float64 GP features in the unit cube (see :class:`FeatureMap`).
        train_Y: ```n x 1``` float64 targets.
        warm_start: Hyperparameters of a previous fit (same architecture) to start from;
            ignored when they do not fit the new model.
        seed: Seeds the random restarts BoTorch makes when a fit fails.

    Returns:
        The fitted model, with its hyperparameters for the next warm start.
    """
    train_X = train_X.to(torch.float64)
    train_Y = train_Y.to(torch.float64)
    model = SingleTaskGP(train_X, train_Y, outcome_transform=Standardize(m=1))
    maxiter = _MAXITER_COLD
    if warm_start:
        try:
            model.load_state_dict(warm_start, strict=False)
            maxiter = _MAXITER_WARM
        except (RuntimeError, KeyError):
            pass  # a different shape of model: fit from scratch
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    with torch.random.fork_rng(), warnings.catch_warnings():
        torch.manual_seed(seed)
        # BoTorch warns when L-BFGS stops at maxiter; the fit is still usable.
        warnings.simplefilter("ignore", OptimizationWarning)
        try:
            fit_gpytorch_mll(
                mll, optimizer_kwargs={"options": {"maxiter": maxiter, "ftol": _FTOL}}
            )
        except Exception:  # noqa: BLE001 - a failed fit must not kill a study
            # NOTE: fall back to the (warm-started or default) hyperparameters;
            # the model is still a valid GP, only less well tuned.
            warnings.warn("GP marginal-likelihood fit failed; using unfitted hyperparameters",
                          RuntimeWarning, stacklevel=2)
    model.eval()
    return FittedGP(model, train_X, train_Y, _hyperparameter_state(model))


@dataclasses.dataclass(frozen=True)
class LossTransform:
    """The monotone transform the full-run GP models the loss through.

    ``log`` when every modelled loss is positive (cross-entropy, MSE: their
    useful differences near the optimum are relative, and log makes the GP's
    stationary kernel fit both the bad and the good region); the identity
    otherwise (a user loss that can be negative, e.g. a negative score).

    Example:
        >>> t = LossTransform.for_losses([0.5, 0.1])
        >>> t.kind, round(t.inverse(t.forward(0.1)), 6)
        ('log', 0.1)
    """

    kind: str  # "log" or "identity"

    @classmethod
    def for_losses(cls, losses: Sequence[float]) -> LossTransform:
        return cls("log" if losses and min(losses) > 0 else "identity")

    def forward(self, loss: float) -> float:
        return math.log(loss) if self.kind == "log" else float(loss)

    def inverse(self, y: float) -> float:
        return math.exp(y) if self.kind == "log" else float(y)
