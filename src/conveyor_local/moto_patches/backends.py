"""moto names the local cloud relies on without patching them: persistence and the server.

``conveyor_local.persistence`` snapshots every service's ``BackendDict`` (``iter_backends``, and
extra attributes such as S3's ``bucket_accounts``), S3's ``_VersionedKeyStore`` (its ``items()``
hides older versions from pickle) and the Step Functions ``Execution`` record (its fields,
``exec_worker.env`` and ``ExecutionStatus``); ``conveyor_local.server`` serves moto's WSGI app and
request handler (``moto.moto_server.werkzeug_app``) with change tracking and the request log in front.
"""

from __future__ import annotations

from conveyor_local.moto_patches.registry import relies_on

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
    "moto.stepfunctions.parser.api.ExecutionStatus",
    "moto.moto_server.werkzeug_app.MotoRequestHandler",
):
    relies_on(_name)
relies_on("moto.core.base_backend.BackendDict.iter_backends", ("self",))
relies_on("moto.stepfunctions.parser.backend.execution.Execution", ("name", "sm_type", "role_arn", "exec_arn"))
relies_on("moto.moto_server.werkzeug_app.DomainDispatcherApplication", ("create_app",))
relies_on("moto.moto_server.werkzeug_app.create_backend_app", ("service",))
