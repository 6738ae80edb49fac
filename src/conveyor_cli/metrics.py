"""``conveyor metrics``: DORA's four keys as a table, one row for all apps, each app and each of its environments.

The numbers and their tiers are the library's (``conveyor.domain.dora``); this only lays them out, with each
value next to the DORA report's tier for it.
"""

from __future__ import annotations

from conveyor.domain.dora import DoraKeys, DoraMetrics
from rich.console import Console
from rich.table import Table

from conveyor_cli.output import console as output_console
from conveyor_cli.output import human_duration

_TIER_STYLE = {"elite": "bold green", "high": "green", "medium": "yellow", "low": "red"}


def _graded(text: str, tier: str | None) -> str:
    if tier is None:
        return text
    return f"{text} [{_TIER_STYLE[tier]}]{tier}[/]"


def _cells(keys: DoraKeys) -> list[str]:
    tiers = keys.tiers
    lead, restore, rate = keys.lead_time_seconds_median, keys.time_to_restore_seconds_median, keys.change_failure_rate
    return [
        str(keys.deployments),
        _graded(f"{keys.deployment_frequency_per_day:g}/day", tiers.get("deployment_frequency")),
        _graded(human_duration(lead), tiers.get("lead_time")) if lead is not None else "-",
        _graded(f"{rate:.0%} ({keys.failed_changes})", tiers.get("change_failure_rate")) if rate is not None else "-",
        _graded(human_duration(restore), tiers.get("time_to_restore")) if restore is not None else "-",
    ]


def metrics_table(metrics: DoraMetrics) -> Table:
    """The four keys, graded, for all apps, each app and each environment."""
    # Laid out as every other read command's table (``output.print_table``): no box drawing, plain when piped.
    table = Table(
        title=f"DORA metrics over {metrics.window_days:g} days",
        caption=f"tiers: {metrics.source}",
        title_justify="left",
        caption_justify="left",
        box=None,
        header_style="bold",
        pad_edge=False,
    )
    for column in ("scope", "deployments", "frequency", "lead time", "change failure rate", "time to restore"):
        table.add_column(column, justify="left" if column == "scope" else "right")
    table.add_row("all apps", *_cells(metrics))
    for app, keys in metrics.apps.items():
        table.add_row(app, *_cells(keys))
        for environment, env_keys in keys.environments.items():
            table.add_row(f"  {app}/{environment}", *_cells(env_keys))
    return table


def print_metrics(metrics: DoraMetrics, console: Console | None = None) -> None:
    """The table on ``console``, or on stdout as wide as the terminal (``PIPED_WIDTH`` when piped: never cut)."""
    (console or output_console()).print(metrics_table(metrics))


__all__ = ["metrics_table", "print_metrics"]
