"""Settings of a stage function, read once from its environment and checked at handler entry.

There are no silent defaults for resource names: a missing variable is a ``ConfigurationError``
that names it.
"""

import os
from functools import cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conveyor.domain.errors import ConfigurationError
from conveyor.domain.limits import MAX_BUNDLE_BYTES
from conveyor.domain.time_scale import TIME_SCALE_ENV, TimeScale

#: The tag (value "true") a target function must carry before Conveyor may change it; the
#: template's IAM conditions name the same key.
MANAGED_TAG_KEY = "conveyor:managed"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, defer_build=True)

    ledger_table: str = Field(alias="LEDGER_TABLE", min_length=1)
    artifact_bucket: str = Field(alias="ARTIFACT_BUCKET", min_length=1)
    notification_topic_arn: str = Field(alias="NOTIFICATION_TOPIC_ARN", min_length=1)
    state_machine_arn: str | None = Field(
        alias="STATE_MACHINE_ARN", default=None, description="Reconcile only: the state machine it closes executions of"
    )
    event_bus_name: str | None = Field(
        alias="EVENT_BUS_NAME", default=None, description="Publish only: the bus lifecycle events are put on"
    )
    managed_tag_key: str = Field(alias="MANAGED_TAG_KEY", default=MANAGED_TAG_KEY, min_length=1)
    # A limit, not a resource name: the default is the safe ceiling, configuration may only lower it.
    max_bundle_bytes: int = Field(alias="MAX_BUNDLE_BYTES", default=MAX_BUNDLE_BYTES, ge=1, le=MAX_BUNDLE_BYTES)
    # Set only by the local cloud (``--time-scale``): on AWS waits last what they say.
    time_scale_factor: float = Field(alias=TIME_SCALE_ENV, default=1.0, ge=0)

    @property
    def time_scale(self) -> TimeScale:
        """How fast the spec's waits pass here (see ``conveyor.domain.time_scale``)."""
        return TimeScale(factor=self.time_scale_factor)


@cache
def settings() -> Settings:
    """The settings of this process; raises ``ConfigurationError`` naming each missing variable."""
    try:
        return Settings.model_validate(dict(os.environ))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"invalid stage function environment: {problems}") from exc
