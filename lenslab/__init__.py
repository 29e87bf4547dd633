"""lenslab: plain-Python building blocks of the photo-ML pipeline (no Dagster imports here)."""
