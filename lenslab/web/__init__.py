"""Web pages over trained models (the photobook rater's compare-and-album page)."""
