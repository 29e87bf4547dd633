"""Selfie quality, plain logic: labels from popularity, splits, the transfer-value cache, report
and figures.
"""
