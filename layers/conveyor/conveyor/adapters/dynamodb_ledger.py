"""The deployment ledger: every deployment, every stage it went through, and how it ended.

One DynamoDB table. A deployment is an item ``pk=DEPLOYMENT#<id>, sk=META`` (indexed by app
and creation time for history); each stage transition is an item ``sk=EVENT#<time>#...`` beside
it, with its timing and evidence. DORA metrics and ``conveyor status`` read from here.

Exactly-once: the META item is also the deployment's claim. ``claim`` takes it with a conditional
write (only one execution of an object can own its deployment at a time); the executions that lose
end as skipped duplicates, counted and listed on the META item (``skipped``). Notifications are
claimed too (``sk=NOTICE#<execution>#<kind>``) so a retried or redriven stage never notifies twice.

A version is immutable: ``pk=RELEASE#<app>#<version>, sk=META`` (``ReleaseRecord``) binds an app version
to the sha256 of the package its first deployment carried, taken with one conditional write; and
``pk=SERVED#<function>#<alias>, sk=CURRENT`` (``ServedRelease``) records which release an alias serves,
written whenever Conveyor moves the alias to a release (Lambda version descriptions are immutable and a
version is reused for byte-identical code, so they cannot say it).

Locks and target owners share the table: ``conveyor.adapters.dynamodb_locks``.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection
from typing import Any

from boto3.session import Session
from botocore.exceptions import ClientError

from conveyor.adapters import aws
from conveyor.adapters.dynamodb import condition_failed, from_item, ledger_errors, query, scan, to_item, update_if
from conveyor.domain.contracts import ServedRelease
from conveyor.domain.environment import EnvironmentStatus, may_precede
from conveyor.domain.errors import DeploymentNotOwnedError, EntryChangedError, LedgerError, StatusMoveRefusedError
from conveyor.domain.outcome import UNFINISHED, Outcome
from conveyor.domain.ports import NOTICE_IN_FLIGHT, StageWrites
from conveyor.domain.records import DeploymentRecord, ReleaseRecord, StageEvent
from conveyor.domain.timing import utcnow

_META = "META"
_DEPLOYMENT_PREFIX = "DEPLOYMENT#"
_EVENT_PREFIX = "EVENT#"
_NOTICE_PREFIX = "NOTICE#"
_RECORD_FIELDS = frozenset(DeploymentRecord.model_fields) - {"events"}
_SERVED_SK = "CURRENT"
#: Items one page of an app's history reads (``history``): the newest few hold what a stage asks for.
HISTORY_PAGE_ITEMS = 25


def _cancelled_by_conditions(exc: ClientError) -> bool:
    """Whether a transaction was cancelled only by its conditions (an environment entry that is not there yet or may
    not move as written, a deployment not in the expected status): each write is then made as it would be alone."""
    if aws.error_code(exc) != "TransactionCanceledException":
        return False
    reasons = [reason.get("Code", "None") for reason in exc.response.get("CancellationReasons", [])]
    return "ConditionalCheckFailed" in reasons and set(reasons) <= {"None", "ConditionalCheckFailed"}


def served_key(function_name: str, alias: str) -> str:
    """The partition key of what ``function_name:alias`` serves (one item per target alias)."""
    return f"SERVED#{function_name}#{alias}"


class DynamoLedger:
    """The ledger on DynamoDB (``LEDGER_TABLE``)."""

    def __init__(self, session: Session, table_name: str) -> None:
        self._table = aws.resource(session, "dynamodb").Table(table_name)
        # The resource's own client: it converts Python values to DynamoDB's typed ones like the table does.
        self._client = self._table.meta.client

    @staticmethod
    def _pk(deployment_id: str) -> str:
        return f"DEPLOYMENT#{deployment_id}"

    def start(
        self, record: DeploymentRecord, *, environments: dict[str, dict[str, Any]] | None = None
    ) -> DeploymentRecord | None:
        """Create the deployment, or start this execution's attempt of it, in one write; None if the deployment is
        no longer ``record.execution_arn``'s running one (another execution took it over, or it was closed: after a
        stop, by the reconciler, so a redrive of that execution does not reopen it). A retried validation that had
        found the push a duplicate judges again (``SKIPPED_DUPLICATE`` of this execution is reopened).

        Attempts are counted as the set of executions that started the deployment, so a retried stage of the same
        execution is not a new attempt. ``environments``: the entry each environment starts with (replacing what an
        earlier attempt left), as given.
        """
        # Kept from the claim and from skipped executions, never reset by a (re)start; built_at until it is known.
        kept = {"events", "attempts", "created_at", "deployment_id", "skipped", "skipped_count"}
        fields = record.model_dump(mode="json", exclude=kept | ({"built_at"} if record.built_at is None else set()))
        if environments is not None:
            fields["environments"] = environments
        names = {f"#{k}": k for k in fields}
        values = {f":{k}": to_item(v) for k, v in fields.items()}
        values |= {
            ":me": {record.execution_arn or "-"},
            ":created": record.created_at.isoformat(),
            ":id": record.deployment_id,
            ":running": Outcome.IN_PROGRESS.value,
            ":duplicate": Outcome.SKIPPED_DUPLICATE.value,
        }
        assignments = ", ".join(f"#{k} = :{k}" for k in fields)
        with ledger_errors("ledger start"):
            response = update_if(
                self._table,
                Key={"pk": self._pk(record.deployment_id), "sk": _META},
                UpdateExpression=f"SET {assignments}, created_at = if_not_exists(created_at, :created), "
                "deployment_id = :id ADD attempt_executions :me",
                # A late start (its execution stopped, its record closed or claimed anew) writes nothing.
                ConditionExpression="attribute_not_exists(pk) OR "
                "(#execution_arn = :execution_arn AND #status IN (:running, :duplicate))",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        return None if response is None else self._record(response["Attributes"], events=[])

    def record_event(self, event: StageEvent, writes: StageWrites | None = None) -> None:
        """Write a stage event and, in the same ``TransactWriteItems``, what the stage records beside it
        (its environment's entry, what the aliases serve, how the deployment ended).

        One write per stage instead of two or three, all or nothing. The environment's entry is updated in
        place when it exists (validation creates every entry, ``start``); an entry not there yet (a
        record from before) is created by the one fallback round, without the transaction.
        """
        item = self._event_item(event)
        with ledger_errors("ledger record_event"):
            if not writes:
                self._table.put_item(Item=item)
                return
            actions: list[dict[str, Any]] = [{"Put": {"Item": item}}]
            if writes.environment:
                if event.environment is None:
                    raise LedgerError(f"ledger record_event: stage {event.stage} names no environment to update")
                actions.append(
                    {"Update": self._environment_update(event.deployment_id, event.environment, writes.environment)}
                )
            actions += [{"Put": {"Item": self._served_item(served)}} for served in writes.served]
            if writes.outcome is not None:
                actions.append({"Update": self._finish_update(event.deployment_id, writes.outcome, None)})
            if self._transact(actions):
                return
        # The entry is not there yet (a record from before validation created them), or its status may not move
        # as written: the event is recorded, then update_environment creates the entry or names the refusal.
        self.record_event(event)
        if writes.environment:
            self.update_environment(event.deployment_id, str(event.environment), writes.environment)
        for served in writes.served:
            self.record_served(served)
        if writes.outcome is not None:
            self.finish(event.deployment_id, writes.outcome)

    def _event_item(self, event: StageEvent) -> dict[str, Any]:
        item: dict[str, Any] = to_item(event.model_dump(mode="json"))
        return item | {
            "pk": self._pk(event.deployment_id),
            "sk": f"EVENT#{event.finished_at.isoformat()}#{event.stage}#{event.environment or '-'}",
        }

    def _transact(self, actions: list[dict[str, Any]]) -> bool:
        """Write ``actions`` (``{"Put"|"Update": request}`` on this table) in one ``TransactWriteItems``; False, with
        nothing written, when it was cancelled only by their conditions."""
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {kind: {"TableName": self._table.name, **body}} for a in actions for kind, body in a.items()
                ]
            )
        except ClientError as exc:
            if _cancelled_by_conditions(exc):
                return False
            raise
        return True

    def _environment_update(
        self,
        deployment_id: str,
        environment: str,
        fields: dict[str, Any],
        expected: dict[str, Any] | None = None,
        owner: str | None = None,
    ) -> dict[str, Any]:
        """The update of an existing environment entry's ``fields``, conditioned on the entry existing, on each
        ``expected`` field holding its value, on the deployment being ``owner``'s attempt, and, when ``fields`` set
        a status, on the recorded one being allowed to move to it (``may_move``)."""
        field_names = {f"#f{i}": name for i, name in enumerate(fields)}
        names = {"#envs": "environments", "#env": environment} | field_names
        values = {":now": utcnow().isoformat()} | {f":v{i}": to_item(v) for i, v in enumerate(fields.values())}
        condition = "attribute_exists(#envs.#env)"
        if owner is not None:
            values[":owner"] = owner
            condition += " AND execution_arn = :owner"
        for i, (name, value) in enumerate((expected or {}).items()):
            names[f"#e{i}"] = name
            values[f":e{i}"] = to_item(value)
            condition += f" AND #envs.#env.#e{i} = :e{i}"
        if "status" in fields:
            allowed = sorted(may_precede(EnvironmentStatus(fields["status"])))
            values |= {f":from{i}": status.value for i, status in enumerate(allowed)}
            names["#st"] = "status"
            condition += (
                " AND (attribute_not_exists(#envs.#env.#st) OR #envs.#env.#st IN "
                f"({', '.join(f':from{i}' for i in range(len(allowed)))}))"
            )
        return {
            "Key": {"pk": self._pk(deployment_id), "sk": _META},
            "UpdateExpression": "SET updated_at = :now, "
            + ", ".join(f"#envs.#env.{name} = :v{i}" for i, name in enumerate(field_names)),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def update_environment(
        self,
        deployment_id: str,
        environment: str,
        fields: dict[str, Any],
        *,
        expected: dict[str, Any] | None = None,
        owner: str | None = None,
    ) -> None:
        """Set ``fields`` on the environment's entry: one write when the entry exists (validation creates
        every environment's entry), and the entry created whole on its first write otherwise.

        ``DeploymentNotOwnedError`` when the deployment is no longer ``owner``'s attempt;
        ``StatusMoveRefusedError`` when the entry's status may not move to the one in ``fields``;
        ``EntryChangedError`` when an ``expected`` field no longer holds its value (then the entry must exist).
        """
        key = {"pk": self._pk(deployment_id), "sk": _META}
        update = self._environment_update(deployment_id, environment, fields, expected, owner)
        with ledger_errors("ledger update_environment"):
            for _ in range(2):  # the second round only if the entry was created between the two writes
                if update_if(self._table, **update):
                    return
                if expected is not None or owner is not None:
                    break  # a compare-and-set needs the entry it read, an owner's write its attempt's: never created
                if update_if(
                    self._table,
                    Key=key,
                    UpdateExpression="SET #envs.#env = :entry, updated_at = :now",
                    ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#envs.#env)",
                    ExpressionAttributeNames={"#envs": "environments", "#env": environment},
                    ExpressionAttributeValues={":entry": to_item(fields), ":now": utcnow().isoformat()},
                ):
                    return
            item = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
        if item is None:
            raise LedgerError(f"ledger update_environment failed: deployment {deployment_id} is not in the ledger")
        if owner is not None and item.get("execution_arn") != owner:
            raise DeploymentNotOwnedError(
                f"ledger: deployment {deployment_id} is no longer the attempt of {owner} (now "
                f"{item.get('execution_arn')}): {environment} was not written"
            )
        entry = from_item(item.get("environments", {}).get(environment, {}))
        changed = sorted(name for name, value in (expected or {}).items() if entry.get(name) != value)
        if changed or (expected is not None and not entry):
            raise EntryChangedError(
                f"ledger: deployment {deployment_id} in {environment} changed since it was read "
                f"({', '.join(changed) or 'no entry'}); nothing was written"
            )
        current = entry.get("status")
        raise StatusMoveRefusedError(
            f"ledger: deployment {deployment_id} in {environment} is recorded {current}, which may not move to "
            f"{EnvironmentStatus(fields['status'])}; nothing was written"
        )

    def _finish_update(self, deployment_id: str, outcome: Outcome, failure: dict[str, Any] | None) -> dict[str, Any]:
        """The update that ends the deployment with ``outcome`` (alone, or in a stage's transaction)."""
        return {
            "Key": {"pk": self._pk(deployment_id), "sk": _META},
            "UpdateExpression": "SET #status = :status, finished_at = :now, updated_at = :now, failure = :failure",
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":status": outcome.value,
                ":now": utcnow().isoformat(),
                ":failure": to_item(failure),
            },
        }

    def finish(self, deployment_id: str, outcome: Outcome, failure: dict[str, Any] | None = None) -> None:
        with ledger_errors("ledger finish"):
            self._table.update_item(**self._finish_update(deployment_id, outcome, failure))

    def get(self, deployment_id: str) -> DeploymentRecord | None:
        with ledger_errors("ledger get"):
            items = list(
                query(
                    self._table,
                    KeyConditionExpression="pk = :pk",
                    ExpressionAttributeValues={":pk": self._pk(deployment_id)},
                )
            )
        meta = next((item for item in items if item["sk"] == _META), None)
        if meta is None or "status" not in meta or "app" not in meta:
            # Absent, or caught mid-creation (the local cloud applies an update expression non-atomically).
            return None
        events = [StageEvent.model_validate(from_item(item)) for item in items if item["sk"].startswith(_EVENT_PREFIX)]
        return self._record(meta, events=events)

    def history(self, app: str | None = None, limit: int = 50, status: Outcome | None = None) -> list[DeploymentRecord]:
        """The newest ``limit`` deployments (of ``app``, with ``status``), newest first.

        A status filter pages through the index until enough match: DynamoDB applies ``Limit``
        before ``FilterExpression``, so one page could hold none of the wanted records. A page reads at most
        ``HISTORY_PAGE_ITEMS`` (or ``limit``) items, so finding the newest success reads the newest few
        deployments, not the app's whole history (a query without ``Limit`` reads up to 1 MB a page).
        """
        with ledger_errors("ledger history"):
            if app is not None:
                request: dict[str, Any] = {
                    "IndexName": "by-app",
                    "KeyConditionExpression": "app = :app",
                    "ExpressionAttributeValues": {":app": app},
                    "ScanIndexForward": False,
                    "Limit": max(limit, HISTORY_PAGE_ITEMS),
                }
                if status is not None:
                    request["FilterExpression"] = "#status = :status"
                    request["ExpressionAttributeNames"] = {"#status": "status"}
                    request["ExpressionAttributeValues"] |= {":status": status.value}
                items = list(itertools.islice(query(self._table, **request), limit))
            else:
                items = [
                    item
                    for item in scan(self._table)
                    if item["sk"] == _META
                    and str(item["pk"]).startswith(_DEPLOYMENT_PREFIX)
                    and (status is None or item.get("status") == status.value)
                ]
        records = [self._record(item, events=[]) for item in items]
        return sorted(records, key=lambda r: r.created_at, reverse=True)[:limit]

    def claim(self, seed: DeploymentRecord, *, replaceable: Collection[Outcome], stale_owner: str | None) -> bool:
        """Make ``seed.execution_arn`` the deployment's owner; False if another execution owns it.

        Taken when the deployment is new, ended in one of ``replaceable`` (a new attempt: its
        environments and failure are cleared), is already owned by this execution (a retry), or is
        owned by ``stale_owner`` (an execution known to have stopped without ending it) and still unfinished: the
        owner may have ended it between the caller's read and this write (a success is never taken over). The
        execution that takes it is counted as an attempt (``start`` counts it too: a set, so once).
        """
        owner = seed.execution_arn or ""
        names = {"#status": "status", "#owner": "execution_arn"}
        values: dict[str, Any] = {
            ":me": owner,
            ":stale": stale_owner or owner,
            ":running": Outcome.IN_PROGRESS.value,
            ":now": utcnow().isoformat(),
            ":created": seed.created_at.isoformat(),
            ":id": seed.deployment_id,
            ":app": seed.app,
            ":version": seed.version,
            ":artifact": to_item(seed.artifact),
            ":pushed_by": seed.pushed_by,
            ":empty": {},
            ":me_set": {owner or "-"},
        }
        unfinished = {f":u{i}": outcome.value for i, outcome in enumerate(sorted(UNFINISHED))}
        values |= unfinished
        statuses = []
        for i, outcome in enumerate(replaceable):
            values[f":r{i}"] = outcome.value
            statuses.append(f":r{i}")
        replace = f" OR #status IN ({', '.join(statuses)})" if statuses else ""
        with ledger_errors("ledger claim"):
            updated = update_if(
                self._table,
                Key={"pk": self._pk(seed.deployment_id), "sk": _META},
                UpdateExpression="SET #status = :running, #owner = :me, updated_at = :now, deployment_id = :id, "
                "app = :app, version = :version, artifact = :artifact, pushed_by = :pushed_by, "
                "created_at = if_not_exists(created_at, :created), "
                "environments = :empty REMOVE finished_at, failure ADD attempt_executions :me_set",
                ConditionExpression="attribute_not_exists(pk) OR #owner = :me "
                f"OR (#owner = :stale AND #status IN ({', '.join(unfinished)})){replace}",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        return updated is not None

    def record_skip(self, deployment_id: str, entry: dict[str, Any]) -> None:
        """List a skipped execution on the deployment, once per execution (a retried stage adds nothing)."""
        execution = str(entry.get("execution_arn") or "-")
        with ledger_errors("ledger record_skip"):
            update_if(
                self._table,
                Key={"pk": self._pk(deployment_id), "sk": _META},
                UpdateExpression="SET skipped = list_append(if_not_exists(skipped, :none), :entry), updated_at = :now "
                "ADD skipped_count :one, skipped_executions :me_set",
                ConditionExpression="attribute_exists(pk) AND NOT contains(skipped_executions, :me)",
                ExpressionAttributeValues={
                    ":none": [],
                    ":entry": [to_item(entry)],
                    ":now": utcnow().isoformat(),
                    ":one": 1,
                    ":me": execution,
                    ":me_set": {execution},
                },
            )

    def set_status_with_entry(
        self,
        deployment_id: str,
        status: Outcome,
        *,
        owner: str,
        expected: Collection[Outcome],
        environment: str,
        entry: dict[str, Any],
        event: StageEvent | None = None,
    ) -> bool:
        """``set_status`` and then ``update_environment(environment, entry)`` (and ``record_event(event)``): one write
        when all apply (the owner's deployment in one of ``expected``, an entry that may move); otherwise each as it
        does alone, so what is written, what is answered and what is raised are theirs."""
        both = self._environment_update(deployment_id, environment, entry)
        owned = self._status_condition(expected)
        both |= {
            "UpdateExpression": f"{both['UpdateExpression']}, #status = :status",
            "ConditionExpression": f"({owned[0]}) AND ({both['ConditionExpression']})",
            "ExpressionAttributeNames": both["ExpressionAttributeNames"] | {"#status": "status"},
            "ExpressionAttributeValues": both["ExpressionAttributeValues"]
            | owned[1]
            | {":status": status.value, ":owner": owner},
        }
        with ledger_errors("ledger set_status_with_entry"):
            if event is None:
                written = update_if(self._table, **both) is not None
            else:
                written = self._transact([{"Update": both}, {"Put": {"Item": self._event_item(event)}}])
            if written:
                return True
        moved = self.set_status(deployment_id, status, owner=owner, expected=expected)
        self.update_environment(deployment_id, environment, entry)
        if event is not None:
            self.record_event(event)
        return moved

    @staticmethod
    def _status_condition(expected: Collection[Outcome]) -> tuple[str, dict[str, Any]]:
        """The condition that the deployment is ``:owner``'s and in one of ``expected``, with its values."""
        values = {f":e{i}": outcome.value for i, outcome in enumerate(expected)}
        return f"execution_arn = :owner AND #status IN ({', '.join(values)})", values

    def set_status(
        self,
        deployment_id: str,
        status: Outcome,
        *,
        owner: str,
        expected: Collection[Outcome],
        fields: dict[str, Any] | None = None,
    ) -> bool:
        """Move the deployment to ``status`` (with ``fields``, in the same write) if ``owner`` still owns it
        and it is in one of ``expected``."""
        condition, expected_values = self._status_condition(expected)
        values: dict[str, Any] = {":status": status.value, ":owner": owner, ":now": utcnow().isoformat()}
        values |= expected_values
        extra = fields or {}
        values |= {f":f{i}": to_item(value) for i, value in enumerate(extra.values())}
        with ledger_errors("ledger set_status"):
            updated = update_if(
                self._table,
                Key={"pk": self._pk(deployment_id), "sk": _META},
                UpdateExpression="SET #status = :status, updated_at = :now"
                + "".join(f", #f{i} = :f{i}" for i in range(len(extra))),
                ConditionExpression=condition,
                ExpressionAttributeNames={"#status": "status"} | {f"#f{i}": name for i, name in enumerate(extra)},
                ExpressionAttributeValues=values,
            )
        return updated is not None

    def claim_notice(self, deployment_id: str, key: str, *, now: float, lease_seconds: float) -> str | None:
        """Claim the right to publish notice ``key`` for ``lease_seconds``.

        None if claimed now; the earlier message id if it was published; ``NOTICE_IN_FLIGHT`` while
        another try holds an unexpired claim. A claim whose lease ran out without a publication was
        left by a try that crashed (before or after publishing): it is taken over, the one duplicate
        that can only follow a crash in that narrow window.
        """
        key_item = {"pk": self._pk(deployment_id), "sk": f"{_NOTICE_PREFIX}{key}"}
        with ledger_errors("ledger claim_notice"):
            try:
                self._table.put_item(
                    Item=key_item | {"claimed_at": utcnow().isoformat(), "lease_until": to_item(now + lease_seconds)},
                    ConditionExpression=(
                        "attribute_not_exists(message_id) AND (attribute_not_exists(lease_until) OR lease_until < :now)"
                    ),
                    ExpressionAttributeValues={":now": to_item(now)},
                )
            except ClientError as exc:
                if not condition_failed(exc):
                    raise
                item = self._table.get_item(Key=key_item, ConsistentRead=True).get("Item", {})
                return str(item.get("message_id", NOTICE_IN_FLIGHT))
        return None

    def record_notice(self, deployment_id: str, key: str, message_id: str) -> None:
        with ledger_errors("ledger record_notice"):
            self._table.update_item(
                Key={"pk": self._pk(deployment_id), "sk": f"{_NOTICE_PREFIX}{key}"},
                UpdateExpression="SET message_id = :id, published_at = :now",
                ExpressionAttributeValues={":id": message_id, ":now": utcnow().isoformat()},
            )

    def release_notice(self, deployment_id: str, key: str, *, lease_until: float) -> None:
        """Give back a claim whose publication failed, so the next try publishes at once; only the claim
        taken with ``lease_until`` and never published (a later try's claim is not ours to give back)."""
        with ledger_errors("ledger release_notice"):
            try:
                self._table.delete_item(
                    Key={"pk": self._pk(deployment_id), "sk": f"{_NOTICE_PREFIX}{key}"},
                    ConditionExpression="attribute_not_exists(message_id) AND lease_until = :mine",
                    ExpressionAttributeValues={":mine": to_item(lease_until)},
                )
            except ClientError as exc:
                if not condition_failed(exc):
                    raise

    # --- a version's content, and what each alias serves ---------------------------------------
    @staticmethod
    def _release_key(app: str, version: str) -> dict[str, str]:
        return {"pk": f"RELEASE#{app}#{version}", "sk": _META}

    def claim_release(self, release: ReleaseRecord) -> ReleaseRecord:
        """Bind ``release.version`` to ``release.sha256`` if no deployment did yet; the binding that holds."""
        item = to_item(release.model_dump(mode="json")) | self._release_key(release.app, release.version)
        with ledger_errors("ledger claim_release"):
            try:
                self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
            except ClientError as exc:
                if not condition_failed(exc):
                    raise
                stored = self._table.get_item(Key=self._release_key(release.app, release.version), ConsistentRead=True)[
                    "Item"
                ]
                return ReleaseRecord.model_validate(
                    {k: v for k, v in from_item(stored).items() if k in ReleaseRecord.model_fields}
                )
        return release

    def move_release(self, app: str, version: str, *, carrier: str, to: str) -> bool:
        """Make ``to`` the release's carrier if ``carrier`` still is (one new attempt wins a race)."""
        with ledger_errors("ledger move_release"):
            updated = update_if(
                self._table,
                Key=self._release_key(app, version),
                UpdateExpression="SET deployment_id = :to, moved_at = :now",
                ConditionExpression="deployment_id = :carrier",
                ExpressionAttributeValues={":to": to, ":carrier": carrier, ":now": utcnow().isoformat()},
            )
        return updated is not None

    @staticmethod
    def _served_key(function_name: str, alias: str) -> dict[str, str]:
        return {"pk": served_key(function_name, alias), "sk": _SERVED_SK}

    def _served_item(self, served: ServedRelease) -> dict[str, Any]:
        item: dict[str, Any] = to_item(served.model_dump(mode="json"))
        return item | self._served_key(served.function_name, served.alias)

    def record_served(self, served: ServedRelease) -> None:
        with ledger_errors("ledger record_served"):
            self._table.put_item(Item=self._served_item(served))

    def forget_served(self, function_name: str, alias: str) -> None:
        with ledger_errors("ledger forget_served"):
            self._table.delete_item(Key=self._served_key(function_name, alias))

    def served(self, function_name: str, alias: str) -> ServedRelease | None:
        with ledger_errors("ledger served"):
            item = self._table.get_item(Key=self._served_key(function_name, alias), ConsistentRead=True).get("Item")
        if item is None:
            return None
        return ServedRelease.model_validate(
            {k: v for k, v in from_item(item).items() if k in ServedRelease.model_fields}
        )

    @staticmethod
    def _record(item: dict[str, Any], events: list[StageEvent]) -> DeploymentRecord:
        fields = {k: v for k, v in from_item(item).items() if k in _RECORD_FIELDS}
        fields["attempts"] = max(1, len(item.get("attempt_executions", ())))
        return DeploymentRecord.model_validate({**fields, "events": sorted(events, key=lambda e: e.finished_at)})
