"""Landmark pose similarity, plain logic: the pose schema and backends, masks, pairs and splits,
role models, report figures.
"""
