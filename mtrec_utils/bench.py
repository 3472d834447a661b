"""``python -m mtrec_utils.bench``: the benchmarks (:mod:`mtrec_utils.workbook.bench`)."""

import sys

from mtrec_utils.workbook.bench import main

if __name__ == "__main__":
    sys.exit(main())
