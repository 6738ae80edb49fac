"""Conveyor's runtime library: contracts, domain logic and AWS adapters shared by every stage function."""
