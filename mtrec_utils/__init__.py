"""mtrec_utils: the tested helper package behind the mtrec workbook.

The folders are the layers, bottom to top; a layer imports only the layers below it
(``lint-imports`` checks this, see ``[tool.importlinter]`` in pyproject.toml):

    workbook    runner, expected bands, results report, Colab cell, benchmarks, sweeps
    viz         plots, widgets, the live training view
    analyses    one folder per topic a notebook teaches (joint_loss, embedding, cases, finetuning)
    training    fit / evaluate / resume / schedules / bundles / experiments
    models | weighting
                towers, heads, sharing, fusion, baselines, encoders, PEFT modes | weighting strategies
    data        MovieLens-100K and clothing reviews: fetch, verify, split, texts, tasks, simulators
    core        config, io, record, env, metrics, similarity

``run`` and ``bench`` at the top are the command-line entry points
(``python -m mtrec_utils.run``, ``python -m mtrec_utils.bench``).
"""

__version__ = "0.1.0"
