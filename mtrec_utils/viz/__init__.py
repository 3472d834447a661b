"""Presentation: plots, interactive widgets and the live training view (nothing below imports it)."""
