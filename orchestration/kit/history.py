"""What Dagster recorded of an asset's latest materialisation (its code and data versions)."""

import dagster as dg

INPUT_VERSION_TAG = "dagster/input_data_version/"


def latest_tags(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, str]:
    """The tags of ``key``'s latest materialisation (code version, data version, input data
    versions); empty when it was never materialised."""
    event = instance.get_latest_materialization_event(key)
    return dict(event.asset_materialization.tags or {}) if event else {}
