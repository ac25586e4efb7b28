"""The paper table as a study the dashboard starts with one click ("Reproduce the paper table" on /studies).

``bench/studies/paper_table.yaml`` is the one definition of the paper's headline table (``bench/paper_table.py``
and ``fedheads study run`` read it too). The button posts a *quick* version of it to ``POST /api/v1/studies``:
the file's variants, baseline and targets, with the base made small enough to finish in minutes on a CPU
(:data:`QUICK_OVERRIDES` over the file's base overrides, seeds :data:`QUICK_SEEDS`). Its figures show what the
study page does with the real thing; they say nothing about the method (3 short rounds, one seed): the
measured table is bench/results/paper_table.md, and the whole study is ``fedheads study run
bench/studies/paper_table.yaml``.

Without the file (a container built without ``bench/studies``) or with one that is not a valid study, the
page shows no button; one log line says why.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fedcore.spec import SpecError
from fedcore.study import StudySpec, read_study_file

log = logging.getLogger(__name__)

PAPER_TABLE = Path(__file__).resolve().parents[2] / "bench" / "studies" / "paper_table.yaml"
# The quick sizing, over the file's base: 3 rounds of 2 of 10 clients x 5 local steps, 100 test pairs
# (the file: 15 rounds of 4 of 20 clients x 15 steps, 500 test pairs), one seed (the file: four).
QUICK_OVERRIDES: dict[str, Any] = {"rounds": 3, "num_clients": 10, "clients_per_round": 2, "local_steps": 5,
                                   "eval_size": 100}
QUICK_SEEDS = [0]


def paper_table(path: Path = PAPER_TABLE) -> StudySpec | None:
    """The study file, or None (logged) when it is missing or invalid."""
    try:
        return StudySpec.model_validate(read_study_file(path))
    except (OSError, SpecError, yaml.YAMLError, ValidationError) as err:
        log.info("no paper-table study (%s): the studies page offers no 'Reproduce the paper table': %s", path, err)
        return None


def quick_paper_table(path: Path = PAPER_TABLE) -> StudySpec | None:
    """The quick version of the study file (see the module's doc), or None without a valid file."""
    full = paper_table(path)
    if full is None:
        return None
    data = full.model_dump(mode="json", exclude_none=True)
    return StudySpec.model_validate({
        **data, "name": f"{full.name} (quick)", "seeds": QUICK_SEEDS,
        "base": {**data["base"], "overrides": {**full.base.overrides, **QUICK_OVERRIDES}},
    })
