"""Training: the loop (``fit``, ``train_one_epoch``), resumable state, evaluation, joint schedules,
task bundles (data + towers for one dataset) and the experiments that repeat runs over seeds.
"""
