"""The multi-function sample on the local cloud: what a team's own IaC would have created for ``examples/orders``.

App ``orders`` is one package and two functions, ``orders-api`` (handler ``api.handler``) and ``orders-worker``
(``worker.handler``), both tagged ``conveyor:managed=true`` with alias ``live`` on version 1 of release 1.0.0;
its pipeline (``examples/pipelines/orders.yaml``) releases both together. ``conveyor local sample --orders`` runs
``set_up_orders`` (so do ``conveyor demo`` and the end-to-end tests): idempotent, it creates what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import ClientError
from conveyor.domain.manifest import FunctionConfig

from conveyor_cli.context import Cloud
from conveyor_cli.packaging import build_bundle, zip_directory
from conveyor_cli.sample import (
    EXAMPLES,
    EXECUTION_ROLE,
    create_target_function,
    execution_role_arn,
    register_unless_registered,
)

ORDERS_APP = "orders"
ORDERS_PIPELINE = EXAMPLES / "pipelines" / "orders.yaml"
ORDERS_BUNDLE_VERSION = "1.1.0"
FUNCTIONS = {"orders-api": "api.handler", "orders-worker": "worker.handler"}


@dataclass
class OrdersSetup:
    functions: list[str]
    created: list[str] = field(default_factory=list)
    existed: list[str] = field(default_factory=list)


def set_up_orders(cloud: Cloud, *, release: str = "1.0.0", pipeline: Path = ORDERS_PIPELINE) -> OrdersSetup:
    """The orders app's two functions serving ``release`` and its pipeline registered (idempotent)."""
    lam = cloud.client("lambda")
    setup = OrdersSetup(functions=list(FUNCTIONS))
    role = execution_role_arn(cloud.client("iam"), EXECUTION_ROLE)
    code = zip_directory(EXAMPLES / ORDERS_APP)
    for name, handler in FUNCTIONS.items():
        try:
            lam.get_function(FunctionName=name)
            setup.existed.append(f"function {name}")
        except ClientError:
            version = create_target_function(
                lam, name=name, app=ORDERS_APP, role=role, code=code, release=release, handler=handler
            )
            setup.created.append(f"function {name} ({handler}, tagged conveyor:managed=true, alias live on v{version})")
    if register_unless_registered(cloud, ORDERS_APP, pipeline):
        setup.created.append(f"pipeline {ORDERS_APP} ({pipeline.name}) registered")
    else:
        setup.existed.append(f"pipeline {ORDERS_APP} (the one registered; `conveyor pipeline apply` registers another)")
    return setup


def orders_bundle(source: Path, version: str, out_dir: Path) -> Path:
    """A bundle of the orders package at ``source`` as release ``version``, as a team's CI would build it."""
    data, _ = build_bundle(
        source, app=ORDERS_APP, version=version, function_config=FunctionConfig(environment={"RELEASE": version})
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{ORDERS_APP}-{version}.zip"
    path.write_bytes(data)
    return path
