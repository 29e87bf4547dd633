"""Photographer editing style, plain logic: the 28 global features, extraction and clusters,
splits, evaluation and report.
"""
