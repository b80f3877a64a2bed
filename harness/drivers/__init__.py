"""Charger backends: how the harness asks a test rig for physical acts (plug in, fault, network off...)."""
