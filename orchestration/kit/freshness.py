"""How old a report may get before the UI warns (and then fails) on it: params.yaml automation.*."""

from datetime import timedelta

import dagster as dg

from lenslab.params import param

REPORT_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(days=param("automation.report_fail_after_days")),
    warn_window=timedelta(days=param("automation.report_warn_after_days")),
)
