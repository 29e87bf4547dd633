"""What every asset module needs from Dagster, and nothing that imports an asset: Stage (outputs,
derived code version), resources, GPU tags, report freshness and materialisation tags.
"""
