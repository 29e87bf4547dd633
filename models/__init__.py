"""PyTorch networks, losses, training and evaluation loops. No Dagster imports: runs on its own."""
