"""HTTP settings for tests: params.yaml's, with waits shrunk so faults resolve in well under 1 s."""

import dataclasses

from lenslab.ingest.http import HttpSettings
from lenslab.params import load_params


def fast_http_settings(**overrides: object) -> HttpSettings:
    base = dict(connect_timeout_s=2, read_timeout_s=2, deadline_s=10, retries=3, backoff_s=0.01,
                retry_after_cap_s=3, per_host_rate_per_s=0, per_host_concurrency=4)
    return dataclasses.replace(HttpSettings.from_params(load_params()), **{**base, **overrides})
