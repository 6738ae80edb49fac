"""Conveyor's embedded local cloud: moto in server mode plus a thin adapter of ours.

The adapter runs each Lambda function version's real code in its own worker process,
applies alias routing weights, emits AWS/Lambda metrics, delivers EventBridge targets
moto leaves undelivered, and provisions the stack from the repository's ``template.yaml``.
See ``conveyor_local.moto_patches`` for every place we touch moto's internals.

This package deliberately imports nothing at import time: ``conveyor_local.worker`` runs
inside every Lambda worker process and must not drag moto into it. Import the public API
from ``conveyor_local.server`` (``LocalCloud``, ``start_background``, ``stop``,
``read_state``, ``client_env``).
"""
