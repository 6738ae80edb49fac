"""Conveyor's runtime library, in three wings: ``domain`` (models, rules, errors, ports), ``adapters``
(one module per AWS service implementing a port) and ``stages`` (one module per state of the pipeline),
wired for a Lambda environment by ``runtime``."""
