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

# The notebooks of the workbook, by stem (their file names without ``.ipynb``), in the order the runner
# executes them: the report (09) reads every other notebook's metrics, so it runs last, after 10.
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
    "10_continual_fewshot_robustness",
    "09_results_report",
)

# DESIGN.md section 7, in seconds: the whole workbook and any one notebook, per profile (None: no limit).
LIMITS_S: dict[str, dict[str, float | None]] = {
    "smoke": {"workbook": 5 * 60, "notebook": None},  # on 2 CPU cores
    "cpu": {"workbook": 30 * 60, "notebook": 8 * 60},  # on 2 CPU cores
    "gpu": {"workbook": None, "notebook": 15 * 60},  # on one T4-class GPU (16 GB)
}

# Seconds per notebook and profile.
# - smoke: 300 s split by each notebook's share of the whole-workbook smoke run of 2026-11-30 on the idle
#   2-core machine (`python -m mtrec_utils.run --profile smoke`, 290 s in all: 00 9.1, 01 11.9, 02 21.7,
#   03 20.9, 04 67.2, 05 30.1, 06 29.1, 07 15.1, 08 57.8, 10 21.1, 09 5.8 s), scaled by 300/290 and rounded
#   so that they add up to 300: each notebook has about 3% of headroom over that run.
# - cpu: 1,800 s split by each notebook's share of the measured cpu times (README "Profiles"), with a
#   floor of 30 s (kernel start, imports, data) and the 480 s cap; 04 and 08 take most of it. Notebook
#   10 (added later) gets the cap, 480 s, for its three sections at one thread (continual learning on
#   all 100,000 ratings, the few-shot curves, robustness): they took 229 + 476 + 432 s with other jobs
#   keeping both cores busy, and the cost model predicts about 13 minutes on the calibration machine,
#   most of it encoding texts (11,612 for the few-shot curves, cached afterwards). The other budgets
#   above the floor were scaled by 1260/1740 to make room (01 then stays at the 30 s floor; rounded).
# - gpu: DESIGN.md sets only the per-notebook limit, so every notebook gets it.
BUDGETS_S: dict[str, dict[str, float]] = {
    "smoke": {
        "00_setup_and_tour": 9,
        "01_joint_loss_and_gradients": 12,
        "02_building_datasets": 22,
        "03_single_task_baselines": 22,
        "04_joint_training": 70,
        "05_joint_embedding_and_fusion": 31,
        "06_case_study_ads": 30,
        "07_case_study_personalization": 16,
        "08_efficient_finetuning_and_scaling": 60,
        "09_results_report": 6,
        "10_continual_fewshot_robustness": 22,
    },
    "cpu": {
        "00_setup_and_tour": 30,
        "01_joint_loss_and_gradients": 30,
        "02_building_datasets": 36,
        "03_single_task_baselines": 109,
        "04_joint_training": 347,
        "05_joint_embedding_and_fusion": 116,
        "06_case_study_ads": 210,
        "07_case_study_personalization": 90,
        "08_efficient_finetuning_and_scaling": 322,
        "09_results_report": 30,
        "10_continual_fewshot_robustness": 480,
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
