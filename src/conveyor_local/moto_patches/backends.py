"""moto's server dispatch, its model tracking, and the names persistence and the server rely on without patching.

``moto.backends.list_of_moto_modules()``
    moto's WSGI dispatcher (``DomainDispatcherApplication.get_backend_for_host``) lists moto's
    package directory and stats each of its ~150 entries on every request, to ask whether the host
    names a service. The directory does not change while the server runs: we list it once.

``moto.core.responses.method_names_from_class(clazz)``
    every request asks ``inspect.getmembers`` for the method names of its response class, to tell
    whether the action is one the class serves. A class's method names do not change while the
    server runs (our patches replace methods under their own names): we ask once per class.

``moto.core.common_models.BaseModel.__new__(cls)``
    moto appends every model instance it ever creates (each DynamoDB ``Item`` a write copies, each stream
    record, metric datum, log event, S3 key) to its class's ``instances_tracked`` list, for its server's
    dashboard, and never removes one: a local cloud that ran the e2e suite held 5 million DynamoDB values
    and 600,000 stream records nothing else referred to, grew by 20 MB a second to 8 GB, and every
    garbage collection walked them all. We create the instance without keeping it; what moto reads from
    those lists (the dashboard's ``/moto-api/data.json``, S3's reset closing keys no bucket holds any
    more, which Python closes when it frees them) is not used here.

``conveyor_local.persistence`` snapshots every service's ``BackendDict`` (``iter_backends``, and
extra attributes such as S3's ``bucket_accounts``), S3's ``_VersionedKeyStore`` (its ``items()``
hides older versions from pickle) and the Step Functions ``Execution`` record (its fields,
``exec_worker.env`` and ``ExecutionStatus``); ``conveyor_local.server`` serves moto's WSGI app and
request handler (``moto.moto_server.werkzeug_app``) with change tracking and the request log in front.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from conveyor_local.moto_patches.registry import original, patches, relies_on, resolve_class, resolve_dotted

BASE_MODEL = "moto.core.common_models.BaseModel"
RESET_MODEL_DATA = "moto.core.model_instances.reset_model_data"
LIST_OF_MOTO_MODULES = "moto.backends.list_of_moto_modules"
METHOD_NAMES_FROM_CLASS = "moto.core.responses.method_names_from_class"


@functools.cache
def _moto_modules() -> tuple[str, ...]:
    return tuple(original(LIST_OF_MOTO_MODULES)())


@functools.cache
def _method_names(clazz: type) -> tuple[str, ...]:
    return tuple(original(METHOD_NAMES_FROM_CLASS)(clazz))


def method_names_from_class(clazz: object) -> list[str]:
    """Replacement for ``moto.core.responses.method_names_from_class``: computed once per class."""
    return list(_method_names(clazz if isinstance(clazz, type) else type(clazz)))


def list_of_moto_modules() -> Iterable[str]:
    """Replacement for ``moto.backends.list_of_moto_modules``: moto's service modules, listed once."""
    return _moto_modules()


def new_model(cls: type, *args: Any, **kwargs: Any) -> Any:
    """Replacement for ``BaseModel.__new__``: the instance, not added to ``cls.instances_tracked``."""
    return super(resolve_class(BASE_MODEL), cls).__new__(cls)


def forget_tracked_models() -> None:
    """Empty every ``instances_tracked`` list (what moto kept before ``new_model`` was installed)."""
    resolve_dotted(RESET_MODEL_DATA)()


patches(f"{BASE_MODEL}.__new__", ("cls",), new_model)
relies_on(RESET_MODEL_DATA, ())
patches(LIST_OF_MOTO_MODULES, (), list_of_moto_modules)
patches(METHOD_NAMES_FROM_CLASS, ("clazz",), method_names_from_class)

for _name in (
    "moto.s3.models.s3_backends",
    "moto.dynamodb.models.dynamodb_backends",
    "moto.iam.models.iam_backends",
    "moto.stepfunctions.parser.models.stepfunctions_parser_backends",
    "moto.sns.models.sns_backends",
    "moto.sqs.models.sqs_backends",
    "moto.events.models.events_backends",
    "moto.kms.models.kms_backends",
    "moto.s3.utils._VersionedKeyStore",
    "moto.dynamodb.models.table.StreamShard",
    "moto.stepfunctions.parser.api.ExecutionStatus",
    "moto.moto_server.werkzeug_app.MotoRequestHandler",
):
    relies_on(_name)
relies_on("moto.core.base_backend.BackendDict.iter_backends", ("self",))
relies_on("moto.stepfunctions.parser.backend.execution.Execution", ("name", "sm_type", "role_arn", "exec_arn"))
relies_on("moto.moto_server.werkzeug_app.DomainDispatcherApplication", ("create_app",))
relies_on("moto.moto_server.werkzeug_app.create_backend_app", ("service",))
