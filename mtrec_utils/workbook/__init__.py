"""The workbook's own machinery: the notebook runner, expected bands, the results report,
the Colab first cell, benchmarks and sweeps over notebook parameters.
"""
