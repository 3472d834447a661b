"""Notebooks 06 and 07: the ad case study (position bias) and the personalization case study."""
