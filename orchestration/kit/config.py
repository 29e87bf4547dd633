"""Each parameter declared once: a run-config field names its params.yaml key, and everything else
follows from that field: its default (the params.yaml value), the asset's `Stage.params` (so DVC
and the code version track the key), the training settings a model takes, and the values a model
card records (those the run used, launchpad overrides included).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

import dagster as dg
from pydantic import Field

from lenslab.params import param

PARAM_KEY = "params_yaml_key"
Settings = TypeVar("Settings")


def param_field(key: str, description: str | None = None) -> Any:
    """A `dg.Config` field whose default is params.yaml's ``key``."""
    return Field(default=param(key), description=description or f"params.yaml `{key}`",
                 json_schema_extra={PARAM_KEY: key})


def config_params(*configs: type[dg.Config]) -> tuple[str, ...]:
    """The params.yaml keys the fields of ``configs`` declare, in field order, once each."""
    keys = []
    for config in configs:
        for field in config.model_fields.values():
            extra = field.json_schema_extra
            if isinstance(extra, Mapping) and PARAM_KEY in extra:
                keys.append(extra[PARAM_KEY])
    return tuple(dict.fromkeys(keys))


def settings_from(config: dg.Config, settings: type[Settings], **overrides: Any) -> Settings:
    """The ``settings`` dataclass filled from the same-named fields of ``config`` (overrides win).

    A settings field that neither the config nor ``overrides`` provides is an error here, not a
    silent default: the run config is where a training setting is chosen.
    """
    values = config.model_dump()
    chosen = {}
    for field in dataclasses.fields(settings):
        if field.name in overrides:
            chosen[field.name] = overrides[field.name]
        elif field.name in values:
            chosen[field.name] = values[field.name]
        elif (field.default is dataclasses.MISSING
              and field.default_factory is dataclasses.MISSING):
            raise TypeError(f"{settings.__name__}.{field.name} has no value: add it to "
                            f"{type(config).__name__} or pass it explicitly")
    return settings(**chosen)


def used_values(*configs: dg.Config) -> dict[str, Any]:
    """What a run actually used, by params.yaml key where the field has one (else by name)."""
    used: dict[str, Any] = {}
    for config in configs:
        for name, field in type(config).model_fields.items():
            extra = field.json_schema_extra
            key = extra[PARAM_KEY] if isinstance(extra, Mapping) and PARAM_KEY in extra else name
            used[key] = getattr(config, name)
    return used
