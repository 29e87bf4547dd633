"""Aesthetic networks: the generic scorer, personal heads and adapters, enhancement by gradient
ascent.
"""
