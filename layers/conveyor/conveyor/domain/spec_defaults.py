"""The effective pipeline spec: every value that judges a release, and whether the spec wrote it.

A value the spec does not write is a default, and a default can fail a release (an error limit, an
inconclusive policy, an approval timeout). ``pipeline apply`` announces the defaults that judge (the
health rules), ``pipeline show`` prints every value with its defaults marked, and the JSON Schema
(``pipeline_schema``) carries each default for editor completion. ``null`` turns a limit off.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from conveyor.domain.pipeline import DEFAULT_METRIC_RULES, MetricsCheck, PipelineSpec

#: The part of an environment whose values decide a verdict: the defaults ``pipeline apply`` announces.
JUDGING_PREFIXES = (".health.", ".strategy.")


@dataclass(frozen=True)
class EffectiveValue:
    path: str
    value: Any
    default: bool

    def describe(self) -> str:
        """``path = value`` as YAML would write it (``null (off)`` for a limit or check that is off)."""
        shown = (
            "null (off)"
            if self.value is None
            else self.value
            if isinstance(self.value, str)
            else json.dumps(self.value)
        )
        return f"{self.path} = {shown}{'  (default)' if self.default else ''}"


def _written(model: BaseModel, name: str) -> bool:
    if isinstance(model, MetricsCheck) and name in model.defaulted_rules:
        return False
    return name in model.model_fields_set


def effective_values(model: BaseModel, path: str = "", *, inherited: bool = False) -> Iterator[EffectiveValue]:
    """Every leaf value of ``model`` (a spec or part of one), depth first, with its path as a spec writes it
    (``environments[0].health.metrics.max_error_rate_percent``); ``default`` when the spec did not write it
    or anything above it."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        where = f"{path}.{name}" if path else name
        default = inherited or not _written(model, name)
        if isinstance(value, BaseModel):
            yield from effective_values(value, where, inherited=default)
        elif isinstance(value, list) and value and all(isinstance(item, BaseModel) for item in value):
            for index, item in enumerate(value):
                yield from effective_values(item, f"{where}[{index}]", inherited=default)
        else:
            document = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
            yield EffectiveValue(where, document, default)


def judging_defaults(spec: PipelineSpec) -> list[EffectiveValue]:
    """The defaults that can decide a verdict in some environment: each health and strategy value the spec
    does not write and that is on (a default that is off, or empty, judges nothing)."""
    retrying = {
        f"environments[{i}]" for i, env in enumerate(spec.environments) if env.health.on_inconclusive == "retry"
    }
    return [
        value
        for value in effective_values(spec)
        if value.default
        and value.value not in (None, [], {})
        and any(prefix in value.path for prefix in JUDGING_PREFIXES)
        # the retry budget judges only where inconclusive verdicts are retried
        and not (value.path.endswith(".max_inconclusive_retries") and value.path.split(".")[0] not in retrying)
    ]


def metric_rule_note() -> str:
    rules = ", ".join(f"{name} {value:g}" for name, value in DEFAULT_METRIC_RULES.items())
    return f"a metrics check that writes no rule gets {rules}; writing any rule turns the unwritten ones off"


__all__ = ["EffectiveValue", "effective_values", "judging_defaults", "metric_rule_note"]
