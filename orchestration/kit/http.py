"""The HTTP resource of the ingestion assets, apart so no other asset runs the downloader."""

import dagster as dg
from pydantic import Field

from lenslab.params import param


class HttpClient(dg.ConfigurableResource):
    """How downloads behave: identity, timeouts, retries, caps and per-host politeness."""

    user_agent: str = Field(default=param("http.user_agent"), description="Sent with requests.")
    connect_timeout_s: float = Field(default=param("http.connect_timeout_s"))
    read_timeout_s: float = Field(default=param("http.read_timeout_s"))
    deadline_s: float = Field(default=param("http.deadline_s"), description="Total time per file.")
    max_bytes: int = Field(default=param("http.max_bytes"), description="Cap per archive.")
    max_image_bytes: int = Field(default=param("http.max_image_bytes"), description="Per image.")
    retries: int = Field(default=param("http.retries"))
    backoff_s: float = Field(default=param("http.backoff_s"))
    per_host_concurrency: int = Field(default=param("http.per_host_concurrency"))
    per_host_rate_per_s: float = Field(default=param("http.per_host_rate_per_s"))

    def settings(self):
        from lenslab.ingest.http import HttpSettings

        return HttpSettings.from_params(self.model_dump())
