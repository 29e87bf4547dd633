"""Selfie classifiers: transfer head, fine-tuned trunk, small CNN from scratch, and their views."""
