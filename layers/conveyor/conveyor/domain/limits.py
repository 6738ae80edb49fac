"""Bounds on what Conveyor reads from people and carries through its state machine.

Step Functions fails an execution whose state exceeds 256 KiB with ``States.DataLimitExceeded``,
an error no ``Catch`` (not even ``States.ALL``) sees: the failure branch never runs. So nothing a
pipeline spec, a manifest or a health check produces may grow the state without bound. The limits
here keep every state a stage receives under ``MAX_STAGE_STATE_BYTES`` (a quarter of the service
limit), which ``tests/unit/test_state_size.py`` checks against the largest spec and manifest the
models accept:

- a pipeline spec file is at most ``MAX_PIPELINE_SPEC_BYTES`` (checked before parsing), has no YAML
  anchors or aliases (a 600-byte "billion laughs" expands to gigabytes), and once parsed serializes
  to at most ``MAX_PIPELINE_STATE_BYTES``;
- a manifest is at most ``MAX_MANIFEST_BYTES`` (checked before parsing and on the model);
- a health verdict serializes to at most ``MAX_VERDICT_BYTES`` (evidence is shed first, then reasons
  are clipped: the ledger keeps the full evidence of each check).

Sizes are measured as Step Functions measures the state: UTF-8 bytes of its JSON.
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml

MAX_PIPELINE_SPEC_BYTES = 64 * 1024
"""Bytes of a pipeline spec file (``pipelines/<app>.yaml``); a real one is 1-3 KiB."""
MAX_PIPELINE_STATE_BYTES = 16 * 1024
"""Bytes of a parsed pipeline spec as JSON: the part of every state that carries the environments."""
MAX_BUNDLE_BYTES = 100 * 1024 * 1024
"""Bytes of a pushed bundle, by default; ``MAX_BUNDLE_BYTES`` in the ValidateArtifact function's environment
(template parameter ``MaxBundleBytes``) may lower it, never raise it: the function holds the bundle and the
package in memory at once."""
MAX_MANIFEST_BYTES = 8 * 1024
"""Bytes of ``manifest.json``, and of the manifest as JSON: a real one is under 1 KiB, and its largest part,
the function's environment, is held to Lambda's own 4 KiB limit."""
MAX_VERDICT_BYTES = 6 * 1024
"""Bytes of one health verdict as JSON; every environment's last verdict stays in the state."""
MAX_CHECK_REASON_BYTES = 512
"""Bytes of one check's reason once a verdict had to be shrunk."""
MAX_EXECUTION_INPUT_BYTES = 16 * 1024
"""Bytes of the execution input (an S3 event is about 1 KiB; every state keeps it beside the deployment)."""
MAX_STAGE_STATE_BYTES = 64 * 1024
"""The bound every stage's state stays under: a quarter of Step Functions' 256 KiB."""
MAX_EXECUTION_STATE_BYTES = 160 * 1024
"""The bound on the execution's top-level state once every environment has its result (release, traffic
plan, verdict): ten environments at their fullest measure about 135 KiB."""
STEP_FUNCTIONS_STATE_BYTES = 256 * 1024


def json_bytes(value: Any) -> int:
    """UTF-8 bytes of ``value`` as JSON, as Step Functions counts a state."""
    return len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8"))


def clip(text: str, max_bytes: int) -> str:
    """``text`` cut so its UTF-8 encoding fits ``max_bytes`` (with an ellipsis when cut)."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    if max_bytes < len("..."):
        return encoded[:max_bytes].decode("utf-8", errors="ignore")
    return encoded[: max_bytes - 3].decode("utf-8", errors="ignore") + "..."


class YamlInvalidError(ValueError):
    """A document is not valid YAML (the message is PyYAML's, with its line and column)."""


class YamlAliasError(YamlInvalidError):
    """A YAML document uses an anchor (``&name``) or an alias (``*name``): refused, never expanded."""


class YamlDuplicateKeyError(YamlInvalidError):
    """A YAML mapping names one key twice: PyYAML would keep the last silently (a second ``health:`` would drop the
    first's checks), so the document is refused naming both lines."""


@cache
def _no_alias_safe_loader() -> type[yaml.SafeLoader]:
    """``yaml.SafeLoader`` that refuses anchors and aliases before composing the node that uses them, and a
    mapping that names a key twice.

    Safe loading stops code execution, not expansion: each alias is a reference the composer shares,
    and turning the document into JSON (as the state machine does) copies it, so nine levels of ten
    aliases in 600 bytes become a billion strings. A pipeline spec has no use for either.

    Built on first use, so PyYAML is imported only by the stage that parses a spec, not on every
    handler's cold start.
    """
    import yaml

    class NoAliasSafeLoader(yaml.SafeLoader):
        def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                kind = "alias *" if isinstance(event, yaml.AliasEvent) else "anchor &"
                mark = event.start_mark
                raise YamlAliasError(
                    f"YAML anchors and aliases are not allowed ({kind}{event.anchor} at line {mark.line + 1}, "
                    f"column {mark.column + 1})"
                )
            return super().compose_node(parent, index)

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            first: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, str | int | float | bool) and key in first:
                    line, again = first[key].start_mark.line + 1, key_node.start_mark.line + 1
                    raise YamlDuplicateKeyError(f"duplicate key {key!r} at lines {line} and {again}: each key once")
                first.setdefault(key, key_node)
            return super().construct_mapping(node, deep)

    return NoAliasSafeLoader


def load_yaml(raw: bytes | str) -> Any:
    """Parse one YAML document with the safe loader; ``YamlInvalidError`` if it is not valid YAML,
    ``YamlAliasError`` (a subclass) if it uses anchors or aliases, ``YamlDuplicateKeyError`` if a mapping names a
    key twice."""
    import yaml

    loader = _no_alias_safe_loader()(raw)  # what yaml.load does, with our SafeLoader subclass
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise YamlInvalidError(str(exc)) from exc
    finally:
        loader.dispose()
