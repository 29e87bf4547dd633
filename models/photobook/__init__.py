"""Photobook networks: image encoders (CLIP, multi-level MobileNetV2) and the rater as a registry
entry.
"""
