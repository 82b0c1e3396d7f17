"""The Hub's dataset card: LaMem's research-use terms, sizes, the Parquet config, fields, split indices, ablations.

Rendered from the Jinja template `dataset_card.md` (at the project root) through `DatasetCard.from_template`, so its
YAML is written by huggingface_hub; generated data is never labelled LaMem (`data.describe_data` says which it is).
"""

import os

from huggingface_hub import DatasetCard, DatasetCardData

from .ablations import ABLATIONS
from .cards import LAMEM_BIBTEX
from .data import SPLIT_INDICES

SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))
LAMEM_LICENSE = {
    "license": "other",
    "license_name": "lamem-research-use",
    "license_link": "http://memorability.csail.mit.edu/",
}


def size_category(n: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if n < limit), "n>1M")


def render_dataset_card(
    repo_id: str, described: dict, num_rows: int, num_shards: int, template: str | os.PathLike
) -> DatasetCard:
    """The dataset card: research-use licence terms, sizes, the Parquet config, fields, split indices, ablations."""
    card_data = DatasetCardData(
        **LAMEM_LICENSE,
        pretty_name=described["name"],
        task_categories=["other"],
        tags=["image-regression", "memorability", *(["lamem"] if described["is_lamem"] else [])],
        size_categories=[size_category(num_rows)],
        source_datasets=["original"],
        annotations_creators=["crowdsourced"] if described["is_lamem"] else ["machine-generated"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}],
    )
    ablations = [(name, ablation.description) for name, ablation in ABLATIONS.items()]
    return DatasetCard.from_template(
        card_data,
        template_path=str(template),
        repo_id=repo_id,
        data_name=described["name"],
        is_lamem=described["is_lamem"],
        num_rows=f"{num_rows:,}",
        num_shards=num_shards,
        split_indices=list(SPLIT_INDICES),
        ablations=ablations,
        first_ablation=ablations[0][0],
        lamem_bibtex=LAMEM_BIBTEX,
    )


__all__ = ["render_dataset_card"]
