"""Light heads on frozen embeddings, fitted in seconds to minutes on a CPU: ridge regression or a small MLP.

Each fit takes one split's training embeddings and human scores, and chooses on that split's validation set what
training cannot choose for itself: ridge's penalty, the MLP's number of epochs (early stopping). Both select by
Spearman ρ on validation (LaMem's headline metric), ties broken by the lower MSE. Both standardise the embeddings
while fitting and fold that back into the first layer, so a fitted head is a plain `build_head` module that reads
raw embeddings: the model needs no preprocessing layer of its own.
"""

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .metrics import regression_metrics

# Ridge penalties, as multiples of the training-set size (the mean eigenvalue of the standardised Gram matrix): from
# almost no penalty to a head that barely moves from the mean.
RIDGE_PENALTIES = np.logspace(-6, 1, 29)
# One hidden layer, heavily regularised: on generated embeddings whose score is mostly linear (tests/
# test_head_fitting.py) dropout 0.5 and weight decay 1e-2 reached 0.95 of the ceiling ρ where 0.2 and 1e-4 reached 0.92.
MLP_HIDDEN = 256
MLP_DROPOUT = 0.5
MLP_LEARNING_RATE = 1e-3
MLP_WEIGHT_DECAY = 1e-2
MLP_BATCH_SIZE = 256
MLP_MAX_EPOCHS = 60
MLP_PATIENCE = 6  # epochs without a better validation ρ before stopping
STD_FLOOR = 1e-6  # a constant embedding dimension is left unscaled instead of divided by zero
HEAD_KINDS = ("ridge", "mlp")


@dataclass(frozen=True)
class FittedHead:
    """One head's weights (a `build_head` state dict, reading raw embeddings), what validation chose, and the
    validation metrics at that choice."""

    state_dict: dict[str, torch.Tensor]
    hidden_sizes: list[int]
    chosen: dict[str, float]
    validation: dict[str, float] = field(default_factory=dict)


def better(candidate: dict[str, float], best: dict[str, float] | None) -> bool:
    """Higher validation ρ wins; an undefined ρ never does; equal ρ goes to the lower MSE."""
    if math.isnan(candidate["spearman"]):
        return False
    if best is None or math.isnan(best["spearman"]):
        return True
    return (candidate["spearman"], -candidate["mse"]) > (best["spearman"], -best["mse"])


def standardiser(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation (floored) of the training embeddings, float64."""
    mean = embeddings.mean(axis=0, dtype=np.float64)
    std = embeddings.std(axis=0, dtype=np.float64)
    return mean, np.maximum(std, STD_FLOOR)


def fit_ridge(
    train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray, penalties=RIDGE_PENALTIES
) -> FittedHead:
    """Ridge regression on standardised embeddings, every penalty from one eigendecomposition of the Gram matrix
    (D × D: for 45,000 × 1024 embeddings that is most of a second, and the penalties cost nothing more)."""
    mean, std = standardiser(train_x)
    # The Gram matrix in float32 (45,000 × 1024: about 4x faster than in float64 on our CPU, and half the memory),
    # its eigendecomposition in float64.
    scaled = ((train_x - mean) / std).astype(np.float32)
    target_mean = float(train_y.mean())
    eigenvalues, eigenvectors = np.linalg.eigh((scaled.T @ scaled).astype(np.float64))
    projected = eigenvectors.T @ (scaled.T @ (train_y - target_mean).astype(np.float32)).astype(np.float64)
    val_scaled = (val_x - mean) / std
    best, best_coefficients, best_penalty = None, None, None
    for multiple in penalties:
        penalty = float(multiple * len(train_x))
        coefficients = eigenvectors @ (projected / (eigenvalues + penalty))
        metrics = regression_metrics(val_scaled @ coefficients + target_mean, val_y)
        if better(metrics, best):
            best, best_coefficients, best_penalty = metrics, coefficients, penalty
    if best_coefficients is None:  # a constant validation target: no penalty can be told apart, take the strongest
        best_penalty = float(penalties[-1] * len(train_x))
        best_coefficients = eigenvectors @ (projected / (eigenvalues + best_penalty))
        best = regression_metrics(val_scaled @ best_coefficients + target_mean, val_y)
    weight = best_coefficients / std
    bias = target_mean - float(mean @ weight)
    state = {"0.weight": torch.tensor(weight[None, :], dtype=torch.float32), "0.bias": torch.tensor([bias], dtype=torch.float32)}
    return FittedHead(state, [], {"alpha": best_penalty}, best)


def fit_mlp(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    seed: int = 0,
    hidden: int = MLP_HIDDEN,
    max_epochs: int = MLP_MAX_EPOCHS,
    patience: int = MLP_PATIENCE,
) -> FittedHead:
    """A one-hidden-layer MLP (ReLU, dropout) on standardised embeddings, AdamW on MSE, stopped early at the epoch
    of the best validation ρ."""
    generator = torch.Generator().manual_seed(seed)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # dropout draws from the global generator; restored below
    try:
        mean, std = standardiser(train_x)
        inputs = torch.as_tensor((train_x - mean) / std, dtype=torch.float32)
        target_mean, target_std = float(train_y.mean()), max(float(train_y.std()), STD_FLOOR)
        targets = torch.as_tensor((train_y - target_mean) / target_std, dtype=torch.float32)
        val_inputs = torch.as_tensor((val_x - mean) / std, dtype=torch.float32)
        head = nn.Sequential(nn.Linear(inputs.shape[1], hidden), nn.ReLU(), nn.Dropout(MLP_DROPOUT), nn.Linear(hidden, 1))
        optimiser = torch.optim.AdamW(head.parameters(), lr=MLP_LEARNING_RATE, weight_decay=MLP_WEIGHT_DECAY)
        best, best_state, best_epoch, waited = None, None, 0, 0
        for epoch in range(1, max_epochs + 1):
            head.train()
            for batch in torch.randperm(len(inputs), generator=generator).split(MLP_BATCH_SIZE):
                loss = nn.functional.mse_loss(head(inputs[batch]).squeeze(-1), targets[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            head.eval()
            with torch.no_grad():
                metrics = regression_metrics(head(val_inputs).squeeze(-1).numpy() * target_std + target_mean, val_y)
            if better(metrics, best) or best_state is None:
                best, best_state, best_epoch, waited = metrics, {k: v.clone() for k, v in head.state_dict().items()}, epoch, 0
            else:
                waited += 1
                if waited >= patience:
                    break
    finally:
        torch.random.set_rng_state(torch_state)
    state = fold_standardisation(best_state, mean, std, target_mean, target_std)
    return FittedHead(state, [hidden], {"epochs": best_epoch}, best)


def fold_standardisation(
    state: dict[str, torch.Tensor], mean: np.ndarray, std: np.ndarray, target_mean: float, target_std: float
) -> dict[str, torch.Tensor]:
    """The MLP rewritten to read raw embeddings and give raw scores: the first layer W' = W / std,
    b' = b − W' · mean; the last layer scaled by the target's std and shifted by its mean."""
    weight = state["0.weight"].double() / torch.from_numpy(std)
    bias = state["0.bias"].double() - weight @ torch.from_numpy(mean)
    last = f"{len(state) // 2 * 3 - 3}"  # Linear, ReLU, Dropout per hidden layer: the last Linear's index
    return {
        **state,
        "0.weight": weight.float(),
        "0.bias": bias.float(),
        f"{last}.weight": state[f"{last}.weight"] * target_std,
        f"{last}.bias": state[f"{last}.bias"] * target_std + target_mean,
    }


def fit_head(kind: str, train_x, train_y, val_x, val_y, seed: int = 0) -> FittedHead:
    """A head of `kind` ("ridge" or "mlp")."""
    if kind == "ridge":
        return fit_ridge(train_x, train_y, val_x, val_y)
    if kind == "mlp":
        return fit_mlp(train_x, train_y, val_x, val_y, seed=seed)
    raise ValueError(f"Unknown head '{kind}'; choose one of {', '.join(HEAD_KINDS)}.")


__all__ = ["HEAD_KINDS", "FittedHead", "fit_head", "fit_mlp", "fit_ridge"]
