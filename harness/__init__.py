"""Conformance harness certifying OCPP 1.6J chargers for the ev.energy platform."""

__version__ = "0.1.0"
