"""One module per AWS service, each implementing a port of ``conveyor.domain.ports``."""
