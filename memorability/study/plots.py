"""The study's plots: the change per ablation (violins with the mean and its CI), Spearman ρ bars, and the example
grid with Grad-CAM before and after. Drawn on figures of their own, not through pyplot's process-wide state, so
that a notebook's open figures stay open and two studies in one process never draw on each other's."""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..gradcam import overlay
from .report import FONT_SIZE, GROUP_TITLES, Example, reported_groups, rho_text, signed
from .scoring import ORIGINAL, StudyTable

CAM_OPACITY = 0.45


def plot_changes(path: Path, results: dict, table: StudyTable) -> None:
    """Violin + jittered points of the change per ablation, mean and bootstrap CI on top; one panel per group."""
    groups = [key for key in reported_groups(results) if results["groups"][key]["ablations"]]
    names = list(table.ablated)
    masks = table.group_masks()
    figure = Figure(figsize=(1.6 * len(names) + 3, 4.2 * len(groups)), dpi=110)
    panels = figure.subplots(len(groups), 1, squeeze=False)
    rng = np.random.default_rng(0)
    for axes, key in zip(panels[:, 0], groups):
        changes = [table.ablated[name][masks[key]] - table.original[masks[key]] for name in names]
        positions = np.arange(1, len(names) + 1)
        violins = axes.violinplot(changes, positions, widths=0.8, showextrema=False)
        for body in violins["bodies"]:
            body.set(facecolor="#9ecae1", edgecolor="#3182bd", alpha=0.6)
        for position, values in zip(positions, changes):
            axes.scatter(position + rng.uniform(-0.18, 0.18, values.size), values, s=6, color="#08519c", alpha=0.35)
        stats = [results["groups"][key]["ablations"][name] for name in names]
        means = np.array([result["mean_change"] for result in stats])
        errors = np.array([[m - r["ci_low"], r["ci_high"] - m] for m, r in zip(means, stats)]).T
        axes.errorbar(positions, means, yerr=errors, fmt="D", color="#d62728", markersize=6, capsize=5,
                      label="mean and 95% bootstrap CI")  # fmt: skip
        axes.axhline(0, color="grey", linewidth=1, linestyle="--")
        stars = ["*" if result["significant"] else "n.s." for result in stats]
        axes.set_xticks(positions, [f"{name}\n({star})" for name, star in zip(names, stars)], fontsize=FONT_SIZE)
        axes.set_ylabel("change in predicted score\n(ablated − original, 0–1 scale)", fontsize=FONT_SIZE)
        axes.set_title(f"{GROUP_TITLES[key]} (n = {results['groups'][key]['n']}): "
                       "* = Holm-adjusted Wilcoxon p < 0.05", fontsize=FONT_SIZE + 1)  # fmt: skip
        axes.tick_params(axis="y", labelsize=FONT_SIZE - 1)
        axes.legend(fontsize=FONT_SIZE - 1, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)


def plot_spearman(path: Path, results: dict) -> None:
    """Bars of ρ(original, ablated) and, with human scores, ρ(ablated, human) next to the unablated ρ with humans."""
    group = results["groups"]["all"]["ablations"]
    names = list(group)
    positions = np.arange(len(names))
    with_human = results["has_human_scores"]
    width = 0.38 if with_human else 0.6
    figure = Figure(figsize=(1.4 * len(names) + 3, 4.8), dpi=110)
    axes = figure.subplots()
    series = [("original vs ablated prediction", "spearman_original_ablated", "#3182bd")]
    if with_human:
        series.append(("ablated prediction vs human score", "spearman_human_ablated", "#e6550d"))
    offsets = [-width / 2, width / 2] if with_human else [0.0]
    for offset, (label, key, colour) in zip(offsets, series):
        values = [group[name][key] for name in names]
        bars = axes.bar(positions + offset, values, width, label=label, color=colour)
        axes.bar_label(bars, labels=[rho_text(value) for value in values], fontsize=FONT_SIZE - 2, padding=2,
                       bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})  # fmt: skip
    if with_human:
        original = group[names[0]]["spearman_human_original"]
        axes.axhline(original, color="black", linestyle="--", linewidth=1.2,
                     label=f"original prediction vs human score (ρ = {rho_text(original)})")  # fmt: skip
    axes.set_xticks(positions, names, fontsize=FONT_SIZE)
    axes.set_ylabel("Spearman ρ", fontsize=FONT_SIZE)
    axes.set_ylim(min(0.0, np.nanmin([group[name]["spearman_original_ablated"] for name in names]) - 0.05), 1.12)
    axes.set_title(f"Does the ranking survive each ablation? (n = {results['groups']['all']['n']})",
                   fontsize=FONT_SIZE + 1)  # fmt: skip
    axes.legend(fontsize=FONT_SIZE - 1, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(series) + 1)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)


def plot_examples(path: Path, examples: list[Example], cam_method: str) -> None:
    """For each example: the picture under every variant (score and change in the title), and below it the
    Grad-CAM map of that picture, so what the model looked at before and after the ablation sits side by side."""
    names = list(examples[0].views)
    figure = Figure(figsize=(2.3 * len(names), 5.2 * len(examples) + 0.6), dpi=110, layout="constrained")
    grid = figure.subplots(2 * len(examples), len(names), squeeze=False)
    for row, example in enumerate(examples):
        original = example.scores[ORIGINAL]
        for column, name in enumerate(names):
            score = example.scores[name]
            title = f"{name}\n{score:.3f}" + ("" if name == ORIGINAL else f" ({signed(score - original)})")
            picture, heat = grid[2 * row, column], grid[2 * row + 1, column]
            picture.imshow(example.views[name])
            picture.set_title(title, fontsize=FONT_SIZE)
            heat.imshow(overlay(example.views[name], example.maps[name], CAM_OPACITY))
            for axes in (picture, heat):
                axes.set_xticks([])
                axes.set_yticks([])
        grid[2 * row, 0].set_ylabel(f"image {example.image_id}", fontsize=FONT_SIZE)
        grid[2 * row + 1, 0].set_ylabel(f"{cam_method} map", fontsize=FONT_SIZE)
    figure.suptitle("Predicted score (change from the original) of each picture, and below it the Grad-CAM map of "
                    "that score\n(red: the regions that raise it most; every map scaled to its own maximum)",
                    fontsize=FONT_SIZE + 1)  # fmt: skip
    figure.savefig(path)
