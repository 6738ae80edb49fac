"""The operator CLI, ``conveyor``: package, push, register pipelines, watch deployments, run the local cloud."""
