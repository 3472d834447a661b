"""The article's claims, each tested as one recorded metric against another, with an honest verdict.

Used by the report (notebook 09, :mod:`mtrec_utils.workbook.report`) and by the bands of notebook 09's own
counts (:func:`mtrec_utils.workbook.expected.report_bands`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

ONE_SEED = "one seed: no verdict"


def has_spread(metrics: Mapping[str, object], *names: str) -> bool:
    """Whether every one of ``names`` was measured over several seeds (its ``_std`` is recorded).

    A difference between two single draws is no finding: seed-to-seed spread alone can make it.
    """
    return all(f"{n}_std" in metrics and metrics[f"{n}_std"] is not None for n in names)


@dataclass(frozen=True)
class Claim:
    """A claim of the article, tested as ``method`` against ``baseline`` (both recorded metric names).

    ``matches=True``: the claim is that ``method`` is as good as ``baseline`` (not clearly worse).
    """

    section: str
    text: str
    method: str
    baseline: str
    higher_is_better: bool = True
    matches: bool = False


CLAIMS = [
    Claim("3.1", "joint optimisation improves every task (模型在多个任务上的性能都会得到提升): u1 rating",
          "ml_u1_rmse_joint", "ml_u1_rmse_single", False),
    Claim("3.1", "... like", "ml_u1_like_auc_joint", "ml_u1_like_auc_single"),
    Claim("3.1", "... user interest", "ml_u1_ndcg10_joint", "ml_u1_ndcg10_single"),
    Claim("3.1", "... clothing recommended", "clothing_recommended_auc_joint", "clothing_recommended_auc_single"),
    Claim("2.1", "joint embedding improves the feature representation (genre purity of neighbours)",
          "ml_genre_purity_joint", "ml_genre_purity_raw"),
    Claim("2.1", "data augmentation improves generalisation (clothing, 10% of the data)",
          "clothing_lowdata_auc_text_aug", "clothing_lowdata_auc_none"),
    Claim("2.1", "cross-domain learning improves generalisation (MovieLens rating, with clothing)",
          "ml_crossdomain_rmse_together", "ml_crossdomain_rmse_alone", False),
    Claim("2.1", "cross-domain learning improves generalisation (clothing, with MovieLens)",
          "clothing_crossdomain_auc_together", "clothing_crossdomain_auc_alone"),
    Claim("6.1", "joint training predicts ad clicks better (CTR AUC vs a position-naive model)",
          "ads_ctr_auc_joint", "ads_ctr_auc_naive"),
    Claim("6.2", "joint training personalises better (u1 NDCG@10, cold users)",
          "ml_u1_ndcg10_cold_users_joint", "ml_u1_ndcg10_cold_users_single"),
    Claim("7.3", "parameter-efficient fine-tuning (LoRA) matches full fine-tuning (clothing AUC, full test split)",
          "clothing_recommended_auc_full_test_lora", "clothing_recommended_auc_full_test_full", matches=True),
    Claim("8.2", "continual learning keeps old knowledge (持续学习): replay forgets less than naive fine-tuning "
          "(RMSE, time-ordered MovieLens)", "ml_continual_forgetting_replay", "ml_continual_forgetting_naive", False),
    Claim("8.2", "... and learns each new period as well as retraining from scratch (new-period RMSE, replay)",
          "ml_continual_new_period_rmse_replay", "ml_continual_new_period_rmse_scratch", False, matches=True),
    Claim("8.2", "a task description needs fewer labels (提示学习): prompt vs plain head, clothing recommended, k=8",
          "clothing_fewshot_recommended_prompt_k8", "clothing_fewshot_recommended_head_k8"),
    Claim("8.3", "augmentation makes the model robust to perturbed reviews (鲁棒性): AUC area vs frozen head",
          "clothing_perturb_area_augmented", "clothing_perturb_area_frozen"),
]  # fmt: skip


def check_claims(metrics: Mapping[str, object], claims: Sequence[Claim] = CLAIMS) -> pd.DataFrame:
    """Each claim with both numbers and a verdict (``supported``, ``not supported``, ``no clear difference``).

    Noise is twice the combined recorded ``_std`` of both numbers; a claim whose numbers come from one
    seed (no recorded std) gets :data:`ONE_SEED`: a single draw is no evidence either way.
    """
    rows = []
    unmeasured = {"ours": None, "baseline": None, "verdict": "not measured in this run"}
    for c in claims:
        if c.method not in metrics or c.baseline not in metrics:
            rows.append({"section": c.section, "claim": c.text, **unmeasured})
            continue
        m, b = float(metrics[c.method]), float(metrics[c.baseline])
        gain = (m - b) if c.higher_is_better else (b - m)
        noise = 2 * math.hypot(
            float(metrics.get(c.method + "_std", 0)), float(metrics.get(c.baseline + "_std", 0))
        )
        if not has_spread(metrics, c.method, c.baseline):
            verdict = ONE_SEED
        elif c.matches:
            verdict = "not supported" if gain < -noise else "supported"
        else:
            verdict = (
                "supported" if gain > noise else "not supported" if gain < -noise else "no clear difference"
            )
        rows.append({"section": c.section, "claim": c.text, "ours": m, "baseline": b, "verdict": verdict})
    return pd.DataFrame(rows)
