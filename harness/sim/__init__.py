"""Built-in reference charger: sans-I/O models used by the simulated charge point."""
