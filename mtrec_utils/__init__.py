"""mtrec_utils: the tested helper package behind the mtrec workbook.

Modules (one concept each):
    config    profiles, parameter checks, device and seed helpers
    io        atomic file writes
    record    record() a metric from a notebook, read metrics back
    run       ``python -m mtrec_utils.run``: execute the notebooks with papermill
    data      MovieLens-100K and clothing reviews: fetch, verify, split, texts
    encoders  pretrained text encoders, pooling, embedding cache
    similarity, env        nearest neighbours; the environment report of notebook 00
    metrics, evaluation    rmse, auc, ranking metrics; evaluating a model on its tasks
    models    towers (ID + text + features), multi-task model, heads, MMoE, baselines
    training  fit / train_one_epoch / early stopping / checkpoints (Accelerate)
    weighting task-weighting strategies (EW, static, UW, GradNorm, DWA, PCGrad) and a registry
    gradients, toy, exercises, widgets     the material of notebook 01
    joint, joint_data, experiments, joint_viz   joint-training experiments of notebook 04
    ads, personalization   the case studies of notebooks 06 and 07
    pipeline_bench, bench  the article's pipeline against ours; ``python -m mtrec_utils.bench``
"""

__version__ = "0.1.0"
