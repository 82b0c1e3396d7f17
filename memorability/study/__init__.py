"""The ablation study: which human-interpretable features does the model rely on?

`run_study(StudyConfig(...))` scores every image as it is and under each ablation, tests the changes and writes a
report (train/ablation_study.py is its command line). Its parts: `run` (configuration, images, the run itself),
`scoring` (the resumable per-image cache, through the one batch engine), `stats` (paired tests, effect sizes,
bootstrap), `report` (results.json, report.md, per_image.csv) and `plots`.
"""

from .run import StudyConfig, run_study
from .scoring import StudyError

__all__ = ["StudyConfig", "StudyError", "run_study"]
