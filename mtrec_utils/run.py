"""``python -m mtrec_utils.run``: the workbook runner (:mod:`mtrec_utils.workbook.run`)."""

import sys

from mtrec_utils.workbook.run import main

if __name__ == "__main__":
    sys.exit(main())
