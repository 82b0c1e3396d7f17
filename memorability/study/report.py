"""What an ablation study leaves behind: results.json, a per-image CSV, report.md with findings written from the
numbers, and three plots (changes per ablation, Spearman ρ bars, example images with Grad-CAM before and after).

Nothing here states a conclusion of its own: every sentence of the findings is chosen and filled in from the
statistics, so the same code reports "blur matters most" on one model and "nothing matters" on another.
"""

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..run_output import spreadsheet_safe
from .scoring import GROUPS, ORIGINAL, StudyTable

RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
PER_IMAGE_FILE = "per_image.csv"
CHANGES_PLOT = "changes.png"
RHO_PLOT = "spearman.png"
EXAMPLES_PLOT = "examples.png"
GROUP_TITLES = {
    "all": "All images",
    "with_face": "Images with a face found by the face detector",
    "without_face": "Images without a face",
}
FONT_SIZE = 11


@dataclass
class Example:
    """One row of the example grid: the picture under each variant as the model saw it, its score and heat map."""

    image_id: str
    views: dict[str, Image.Image]
    scores: dict[str, float]
    maps: dict[str, np.ndarray]


def finite_or_none(value: object) -> object:
    """JSON has no NaN: undefined numbers (ρ of a constant, d_z of a constant change) are written as null."""
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_per_image_csv(path: Path, table: StudyTable) -> None:
    """One row per image: id, human score, original and ablated predictions, faces found, and any read error."""
    names = list(table.ablated)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "human_score", ORIGINAL, *names, "faces", "error"])
        for row, image_id in enumerate(table.image_ids):
            scores = [table.original[row], *(table.ablated[name][row] for name in names)]
            writer.writerow(
                [spreadsheet_safe(image_id), number(table.human[row]), *(number(score) for score in scores),
                 table.faces[row] if table.errors[row] is None else "", spreadsheet_safe(table.errors[row] or "")]
            )  # fmt: skip


def number(value: float, digits: int = 6) -> str:
    return "" if not math.isfinite(value) else f"{value:.{digits}f}"


def signed(value: float, digits: int = 3) -> str:
    """A change with its sign and a true minus sign: −0.123, +0.004."""
    return f"{value:+.{digits}f}".replace("-", "−") if math.isfinite(value) else "n/a"


def p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def rho_text(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "n/a"


def interval(result: dict) -> str:
    return f"[95% CI {signed(result['ci_low'])}, {signed(result['ci_high'])}]"


def params_text(params: dict[str, float]) -> str:
    return ", ".join(f"{key}={value:g}" for key, value in params.items()) or "—"


def results_table(group: dict, ablations: dict[str, dict]) -> list[str]:
    """The Markdown table of one group: one row per ablation."""
    with_human = any("spearman_human_ablated" in result for result in group["ablations"].values())
    header = ["ablation", "parameters", "mean Δ [95% CI]", "median Δ", "p (Holm)", "rank-biserial r", "d_z",
              "ρ original vs ablated"] + (["ρ vs human: original → ablated"] if with_human else [])  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, result in group["ablations"].items():
        cells = [
            f"`{name}`",
            params_text(ablations[name]["params"]),
            f"{signed(result['mean_change'])} [{signed(result['ci_low'])}, {signed(result['ci_high'])}]",
            signed(result["median_change"]),
            p_text(result["p_holm"]) + ("" if result["significant"] else " (n.s.)"),
            signed(result["rank_biserial"], 2),
            signed(result["cohens_dz"], 2),
            rho_text(result["spearman_original_ablated"]),
        ]
        if with_human:
            before, after = result["spearman_human_original"], result["spearman_human_ablated"]
            cells.append(f"{rho_text(before)} → {rho_text(after)}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def change_sentence(name: str, result: dict, lead: str, margin: float) -> str:
    """One finding about one ablation, its words chosen by the numbers."""
    text = (
        f"`{name}` {lead}: mean {signed(result['mean_change'])} {interval(result)}, median "
        f"{signed(result['median_change'])}, {p_text(result['p_holm'])} (Holm), rank-biserial r = "
        f"{signed(result['rank_biserial'], 2)}."
    )
    if result["n_changed"] == 0:
        return text + " It changed no prediction at all: it found nothing to remove in these images."
    if result["n_changed"] < result["n"]:
        text += f" It changed {result['n_changed']} of {result['n']} predictions."
    if result["within_margin"]:
        text += f" Its CI lies inside ±{margin:g}: practically no change."
    return text


def findings(group: dict, margin: float) -> list[str]:
    """The findings of one group as sentences: effects from largest drop to largest rise, then rankings."""
    results = group["ablations"]
    ordered = sorted(results, key=lambda name: results[name]["mean_change"])
    drops = [name for name in ordered if results[name]["significant"] and results[name]["mean_change"] < 0]
    rises = [name for name in reversed(ordered) if results[name]["significant"] and results[name]["mean_change"] > 0]
    sentences = []
    for verb, names in (("lowers", drops), ("raises", rises)):
        for rank, name in enumerate(names):
            lead = f"{verb} the score most" if rank == 0 else f"also {verb} it"
            sentences.append(change_sentence(name, results[name], lead, margin))
    for name in ordered:
        if not results[name]["significant"]:
            sentences.append(change_sentence(name, results[name], "shows no significant change", margin))
    by_rho = sorted(
        (name for name in ordered if math.isfinite(results[name]["spearman_original_ablated"])),
        key=lambda name: results[name]["spearman_original_ablated"],
    )
    if len(by_rho) > 1:
        best, worst = results[by_rho[-1]], results[by_rho[0]]
        sentences.append(
            f"The ranking of the images survives `{by_rho[-1]}` best "
            f"(ρ = {rho_text(best['spearman_original_ablated'])} between original and ablated predictions) and "
            f"`{by_rho[0]}` worst "
            f"(ρ = {rho_text(worst['spearman_original_ablated'])})."
        )
    with_human = [name for name in ordered if math.isfinite(results[name].get("spearman_human_ablated", math.nan))]
    if with_human:
        original = results[with_human[0]]["spearman_human_original"]
        loss = {name: original - results[name]["spearman_human_ablated"] for name in with_human}
        worst = max(loss, key=loss.get)
        if loss[worst] > 0:
            sentences.append(
                f"Against human scores (ρ = {rho_text(original)} unablated), `{worst}` costs the most: ρ = "
                f"{rho_text(results[worst]['spearman_human_ablated'])} ({signed(-loss[worst])})."
            )
        else:
            sentences.append(f"No ablation lowers ρ against human scores (ρ = {rho_text(original)} unablated).")
    return sentences


def reported_groups(results: dict) -> list[str]:
    """All images, then the face subgroups, unless one is empty: the other is then all images again."""
    groups = results["groups"]
    if min(groups["with_face"]["n"], groups["without_face"]["n"]) == 0:
        return ["all"]
    return list(GROUPS)


def group_section(key: str, group: dict, ablations: dict[str, dict], margin: float) -> list[str]:
    lines = [f"## {GROUP_TITLES[key]} (n = {group['n']})", ""]
    if not group["ablations"]:
        return lines + [f"No statistics: {group['note']}.", ""]
    lines += results_table(group, ablations) + ["", "Findings:", ""]
    return lines + [f"- {sentence}" for sentence in findings(group, margin)] + [""]


def write_report(path: Path, results: dict) -> None:
    """report.md: what was studied, one table and findings per group, the methods, the plots."""
    settings = results["statistics"]
    data, model = results["data"], results["model"]
    with_face, without_face = (results["groups"][key]["n"] for key in ("with_face", "without_face"))
    lines = [
        "# Ablation study: which features does the model rely on?",
        "",
        f"- Model: `{model['source']}` (fingerprint {model['fingerprint']}, {model['precision']})",
        f"- Data: {data['name']}" + (f", split {data['split']}, {data['subset']}" if "split" in data else ""),
        f"- Images: {results['n_images']} ({results['n_unreadable']} unreadable); human scores: "
        f"{'yes' if results['has_human_scores'] else 'no'}",
        f"- Faces: found by {results['face_detector']}; {with_face} of {with_face + without_face} readable images "
        f"had one, {without_face} none",
        "- Pictures each ablation changed (any pixel): "
        + ", ".join(f"`{name}` {count} of {with_face + without_face}" for name, count in results["n_changed"].items())
        + " (`faces_removed` changes only pictures with a face, `salient_removed` only those with a region that "
        "stands out)",
        f"- Processes: {results['num_processes']}; scores computed in this run: "
        f"{results['cache']['scores_computed']}; images found complete in the cache: "
        f"{results['cache']['images_complete']}",
        "",
        "Δ is the ablated minus the original prediction on the 0–1 score scale; negative means the ablation makes "
        "the model find the image less memorable.",
        "",
    ]
    for key in reported_groups(results):
        lines += group_section(key, results["groups"][key], results["ablations"], settings["equivalence_margin"])
    if reported_groups(results) == ["all"]:
        lines += ["## Face subgroups", "", f"No subgroup statistics: {with_face} images with a face found and "
                  f"{without_face} without, so one subgroup is empty and the other is all images (above).", ""]
    lines += [
        "## Methods",
        "",
        f"- Test: {settings['test']}.",
        f"- Correction: {settings['correction']} ({settings['comparisons_per_group']} comparisons; significant at "
        f"adjusted p < {settings['alpha']:g}).",
        f"- Effect sizes: {settings['effect_sizes']}.",
        f"- CI: {settings['confidence_interval']} ({settings['bootstrap_resamples']:,} resamples, seed "
        f"{settings['seed']}, {settings['confidence_level']:.0%}).",
        f"- A group of fewer than {settings['min_group_size']} images gets no statistics; a CI inside "
        f"±{settings['equivalence_margin']:g} is called practically no change.",
        "- Ablations:",
        *(f"  - `{name}`: {item['description']}" for name, item in results["ablations"].items()),
        "",
        "## Plots",
        "",
        *(f"![{name}]({name})" for name in results["files"]["plots"]),
        "",
    ]
    path.write_text("\n".join(lines))
