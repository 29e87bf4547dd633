"""Pose-similarity networks: siamese image (+ pose) models and their training loop."""
