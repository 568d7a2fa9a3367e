r"""Tick and tock acquisition functions, and their optimization.

The surrogate is a two-output ``ModelListGP``: output :data:`LOSS` is the
full-run GP on the transformed loss :math:`g(\ell)`, output :data:`COST` the
partial-run GP on :math:`\log c`. Both acquisitions are BoTorch's
``qLogExpectedImprovement`` with outcome constraints, i.e. the MC form of
constrained EI (Gardner et al., 2014; Gelbart et al., 2014) in the numerically
robust log form of Ament et al., "Unexpected Improvements to Expected
Improvement for Bayesian Optimization" (NeurIPS 2023):

* **tock** (lower the loss within budget):

  .. math:: \alpha_{tock}(x) = \log E\big[(g^* - g(\ell(x)))_+ \cdot
            \mathbb{1}[\log c(x) \le \log c_{max}]\big]

  with :math:`g^*` the transformed loss of the best feasible completed run.
* **tick** (lower the cost without hurting the loss):

  .. math:: \alpha_{tick}(x) = \log E\big[(\log c^* - \log c(x))_+ \cdot
            \mathbb{1}[g(\ell(x)) \le g(\ell^* + \tau)]\big]

  with :math:`c^*` the cost of the cheapest feasible run whose loss is within
  the tolerance :math:`\tau` of the best loss :math:`\ell^*`.
* **feasibility** (no completed run yet, so no loss model, but costs are
  known): expected log-cost margin under the budget,
  :math:`\log E[(\log c_{max} - \log c(x))_+]`, which, unlike a probability of
  feasibility, still spreads consecutive asks apart given pending points.

The indicator is smoothed by a sigmoid (BoTorch's ``eta``); the expectation is
a quasi-MC average over the joint posterior of the candidate and the pending
(asked, not yet told) points, so a pending point's expected improvement is
already "spent" and consecutive asks move apart.

Shapes follow BoTorch: candidates ``X`` are ```b x q x d```, posterior samples
```s x b x q x m``` with ``m = 2`` outputs, constraints map samples to
```s x b x q``` (negative means satisfied).

Example:
    >>> LOSS, COST
    (0, 1)
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import torch
from botorch.acquisition.logei import qLogExpectedImprovement
from botorch.acquisition.objective import GenericMCObjective
from botorch.models.model import Model
from botorch.optim import optimize_acqf
from botorch.sampling.normal import SobolQMCNormalSampler

__all__ = [
    "LOSS",
    "COST",
    "tock_acquisition",
    "tick_acquisition",
    "feasibility_acquisition",
    "optimize_candidates",
]

#: Output index of the full-run (loss) GP in the model list.
LOSS = 0
#: Output index of the partial-run (cost) GP in the model list.
COST = 1

# NOTE: 128 quasi-MC samples keep the MC error of log-EI well below the
# differences the optimizer acts on, at a cost linear in the sample count.
_MC_SAMPLES = 128
# NOTE: a sharp constraint sigmoid (BoTorch's default temperature is 1e-3);
# our constraint values are in log-cost / transformed-loss units of order 0.1-1.
_ETA = 1e-3


def _sampler(seed: int) -> SobolQMCNormalSampler:
    return SobolQMCNormalSampler(sample_shape=torch.Size([_MC_SAMPLES]), seed=seed)


def tock_acquisition(
    model: Model,
    best_loss_y: float,
    log_max_cost: float,
    X_pending: torch.Tensor | None,
    seed: int,
) -> qLogExpectedImprovement:
    """Constrained log-EI on the loss: improve on ``best_loss_y`` with ``log c <= log_max_cost``.

    Args:
        model: Two-output model, outputs ``[LOSS, COST]``.
        best_loss_y: Transformed loss to improve on (lower is better).
        log_max_cost: Log of the budget.
        X_pending: ```p x d``` points asked and not yet told, or None.
        seed: Seed of the quasi-MC base samples.
    """
    return qLogExpectedImprovement(
        model=model,
        best_f=-best_loss_y,
        sampler=_sampler(seed),
        objective=GenericMCObjective(lambda Z, X=None: -Z[..., LOSS]),
        constraints=[lambda Z: Z[..., COST] - log_max_cost],
        X_pending=X_pending,
        eta=_ETA,
    )


def tick_acquisition(
    model: Model,
    best_log_cost: float,
    loss_threshold_y: float,
    X_pending: torch.Tensor | None,
    seed: int,
) -> qLogExpectedImprovement:
    """Constrained log-EI on log cost: be cheaper than ``best_log_cost`` keeping the loss.

    Args:
        model: Two-output model, outputs ``[LOSS, COST]``.
        best_log_cost: Log cost of the incumbent to undercut.
        loss_threshold_y: Transformed loss a candidate must stay under
            (``g(best_loss + tolerance)``).
        X_pending: ```p x d``` points asked and not yet told, or None.
        seed: Seed of the quasi-MC base samples.
    """
    return qLogExpectedImprovement(
        model=model,
        best_f=-best_log_cost,
        sampler=_sampler(seed),
        objective=GenericMCObjective(lambda Z, X=None: -Z[..., COST]),
        constraints=[lambda Z: Z[..., LOSS] - loss_threshold_y],
        X_pending=X_pending,
        eta=_ETA,
    )


def feasibility_acquisition(
    cost_model: Model,
    log_max_cost: float,
    X_pending: torch.Tensor | None,
    seed: int,
) -> qLogExpectedImprovement:
    """Log-EI of the log-cost margin under the budget (single-output cost model)."""
    return qLogExpectedImprovement(
        model=cost_model,
        best_f=-log_max_cost,
        sampler=_sampler(seed),
        objective=GenericMCObjective(lambda Z, X=None: -Z[..., 0]),
        X_pending=X_pending,
        eta=_ETA,
    )


def _category_combos(
    cat_sizes: Sequence[int], preferred: Sequence[tuple[int, ...]], max_combos: int, seed: int
) -> list[tuple[int, ...]]:
    """All category combinations, or a seeded subset that keeps ``preferred`` ones first."""
    total = 1
    for k in cat_sizes:
        total *= k
    if total <= max_combos:
        return list(itertools.product(*[range(k) for k in cat_sizes]))
    rng = random.Random(seed)
    out: list[tuple[int, ...]] = []
    for c in preferred:
        if c not in out and len(out) < max_combos:
            out.append(tuple(c))
    while len(out) < max_combos:
        c = tuple(rng.randrange(k) for k in cat_sizes)
        if c not in out:
            out.append(c)
    return out


def optimize_candidates(
    acqf: torch.nn.Module,
    bounds: torch.Tensor,
    cat_groups: Sequence[Sequence[int]] = (),
    num_restarts: int = 4,
    raw_samples: int = 256,
    max_combos: int = 8,
    preferred_combos: Sequence[tuple[int, ...]] = (),
    only_combos: Sequence[tuple[int, ...]] | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximize ``acqf`` over the GP feature space; return every local optimum found, best first.

    Numeric columns are optimized by ``optimize_acqf`` (L-BFGS-B from the best of
    ``raw_samples`` random points); each categorical one-hot group is enumerated
    as fixed features (as ``optimize_acqf_mixed`` does), over at most
    ``max_combos`` combinations, the search effort split between them. Returning
    all restarts, not only the best, lets the caller skip a candidate that rounds
    onto an already-run point.

    Args:
        acqf: The acquisition function.
        bounds: ```2 x f``` lower and upper bounds of the features.
        cat_groups: Feature columns of each choice's one-hot group.
        num_restarts, raw_samples: As in ``optimize_acqf``, in total.
        max_combos: Most category combinations to optimize over.
        preferred_combos: Combinations tried first when not all fit (the incumbent's).
        only_combos: Restrict the search to these combinations.
        seed: Seeds the raw samples and the combination subset.

    Returns:
        ``(X, values)``: ```k x f``` candidates and their ```k``` acquisition values,
        sorted by decreasing value.
    """
    groups = [list(g) for g in cat_groups]
    sizes = [len(g) for g in groups]
    if only_combos is not None:
        combos = [tuple(c) for c in only_combos]
    elif groups:
        combos = _category_combos(sizes, preferred_combos, max_combos, seed)
    else:
        combos = [()]

    def fixed_for(combo: tuple[int, ...]) -> dict[int, float]:
        return {c: (1.0 if j == idx else 0.0)
                for g, idx in zip(groups, combo) for j, c in enumerate(g)}

    n_features = bounds.shape[1]
    n_fixed = sum(sizes)
    if groups and n_fixed == n_features:
        # Only categories: evaluate every combination directly.
        X = torch.zeros(len(combos), 1, n_features, dtype=bounds.dtype)
        for i, combo in enumerate(combos):
            for c, v in fixed_for(combo).items():
                X[i, 0, c] = v
        with torch.no_grad():
            vals = acqf(X)
        order = torch.argsort(vals, descending=True)
        return X.squeeze(1)[order], vals[order]
    # Split the search effort over the combinations instead of multiplying it:
    # with k combinations each gets 1/k of the raw samples and restarts (with floors).
    per_raw = max(32, raw_samples // len(combos))
    per_restarts = max(2, -(-num_restarts // len(combos)))
    cands, vals = [], []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for combo in combos:
            X, v = optimize_acqf(
                acqf,
                bounds=bounds,
                q=1,
                num_restarts=per_restarts,
                raw_samples=per_raw,
                fixed_features=fixed_for(combo) or None,
                return_best_only=False,
                options={"maxiter": 50, "batch_limit": 64},
                retry_on_optimization_warning=False,
            )
            cands.append(X.reshape(-1, n_features))
            vals.append(v.reshape(-1))
    X = torch.cat(cands)
    v = torch.cat(vals)
    order = torch.argsort(v, descending=True)
    return X[order].detach(), v[order].detach()
