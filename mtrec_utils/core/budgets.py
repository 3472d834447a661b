"""Time budgets: how long each notebook may take at each profile, written down once.

The limits come from DESIGN.md section 7 (time is a design constraint, section 11):

- ``smoke``: the whole workbook in <= 5 min on 2 CPU cores (the CI pass);
- ``cpu``: the whole workbook in <= 30 min on 2 CPU cores, no notebook over 8 min;
- ``gpu``: every notebook in <= 15 min on one T4-class GPU (16 GB).

:data:`BUDGETS_S` splits the whole-workbook limits into one budget per notebook; the cost model
(:mod:`mtrec_utils.workbook.costmodel`) predicts each notebook's time against them, the runner
prints both, and ``python -m mtrec_utils.bench budgets`` tabulates predicted, budget and measured.
Timings are reported, never asserted in tests: the tests check only that this table is complete
and within the limits.
"""

from __future__ import annotations

from mtrec_utils.core.config import check_choice

# The notebooks of the workbook, by stem (their file names without ``.ipynb``).
NOTEBOOKS: tuple[str, ...] = (
    "00_setup_and_tour",
    "01_joint_loss_and_gradients",
    "02_building_datasets",
    "03_single_task_baselines",
    "04_joint_training",
    "05_joint_embedding_and_fusion",
    "06_case_study_ads",
    "07_case_study_personalization",
    "08_efficient_finetuning_and_scaling",
    "09_results_report",
)

# DESIGN.md section 7, in seconds: the whole workbook and any one notebook, per profile (None: no limit).
LIMITS_S: dict[str, dict[str, float | None]] = {
    "smoke": {"workbook": 5 * 60, "notebook": None},  # on 2 CPU cores
    "cpu": {"workbook": 30 * 60, "notebook": 8 * 60},  # on 2 CPU cores
    "gpu": {"workbook": None, "notebook": 15 * 60},  # on one T4-class GPU (16 GB)
}

# Seconds per notebook and profile.
# - smoke: 300 s split by each notebook's share of the measured smoke run of 2026-11-30 (393 s in all:
#   00 9.3, 01 8.5, 02 18.3, 03 30.5, 04 77.4, 05 38.3, 06 69.4, 07 23.1, 08 109.9, 09 8.7 s on 2 cores),
#   so the workbook as it stands is about 30% over its smoke budget.
# - cpu: 1,800 s split by each notebook's share of the measured cpu times (README "Profiles"), with a
#   floor of 30 s (kernel start, imports, data) and the 480 s cap; 04 and 08 take most of it.
# - gpu: DESIGN.md sets only the per-notebook limit, so every notebook gets it.
BUDGETS_S: dict[str, dict[str, float]] = {
    "smoke": {
        "00_setup_and_tour": 7,
        "01_joint_loss_and_gradients": 6,
        "02_building_datasets": 14,
        "03_single_task_baselines": 23,
        "04_joint_training": 59,
        "05_joint_embedding_and_fusion": 29,
        "06_case_study_ads": 53,
        "07_case_study_personalization": 18,
        "08_efficient_finetuning_and_scaling": 84,
        "09_results_report": 7,
    },
    "cpu": {
        "00_setup_and_tour": 30,
        "01_joint_loss_and_gradients": 40,
        "02_building_datasets": 50,
        "03_single_task_baselines": 150,
        "04_joint_training": 480,
        "05_joint_embedding_and_fusion": 160,
        "06_case_study_ads": 290,
        "07_case_study_personalization": 125,
        "08_efficient_finetuning_and_scaling": 445,
        "09_results_report": 30,
    },
    "gpu": {name: 15 * 60 for name in NOTEBOOKS},
}


def notebook_stem(name: str) -> str:
    """The stem of a notebook given as a stem, a file name or its two-digit number (``"04"``).

    Raises:
        ValueError: for a name that matches no notebook, listing the valid ones.
    """
    stem = name.rsplit("/", 1)[-1].removesuffix(".ipynb")
    matches = [n for n in NOTEBOOKS if n == stem or (len(stem) == 2 and n.startswith(stem + "_"))]
    if not matches:
        check_choice("notebook", stem, NOTEBOOKS)
    return matches[0]


def budget_s(notebook: str, profile: str) -> float:
    """The budget in seconds of ``notebook`` (stem, file name or number) at ``profile``.

    Raises:
        ValueError: for an unknown notebook or profile (``auto`` has no budget of its own).
    """
    check_choice("profile", profile, tuple(BUDGETS_S))
    return float(BUDGETS_S[profile][notebook_stem(notebook)])


def workbook_budget_s(profile: str) -> float:
    """The sum of the notebooks' budgets at ``profile``."""
    check_choice("profile", profile, tuple(BUDGETS_S))
    return float(sum(BUDGETS_S[profile].values()))
