"""mtrec_utils: the tested helper package behind the mtrec workbook.

Modules (one concept each):
    config    profiles, parameter checks, device and seed helpers
    io        atomic file writes
    record    record() a metric from a notebook, read metrics back
    run       ``python -m mtrec_utils.run``: execute the notebooks with papermill
    data      MovieLens-100K and clothing reviews: fetch, verify, split, texts
    encoders  pretrained text encoders, pooling, embedding cache
"""

__version__ = "0.1.0"
