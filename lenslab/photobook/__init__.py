"""Photobook rater, plain logic: photo splits, preference pairs, master vectors, calibration, album
choice, report and figures.
"""
