"""The run's timing: the timeout factor and every timeout derived from it, in one object.

Every bound the harness puts on the charger, the rig or an operator is a base value in seconds times the run's
timeout factor (--timeout-factor, ini `timeout_factor`, the charger profile's [rig] timeout_factor; harness/settings.py
reads and checks it). `Timing` owns the factor: whatever waits takes its seconds from here, either
`timing.scaled(seconds)` for a number of its own (a suite's window) or a named property for the harness's own
bounds. The settings (`Settings.timing`), the charger session (`SessionSettings.timing`) and the endpoint
(`EndpointConfig.timing`) hold the same object; none of them multiplies by the factor itself.

Not scaled: the charger's own timers (the HeartbeatInterval and MeterValueSampleInterval the platform gives it)
are the charger's, not the harness's patience.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Seconds a single test may take (before the factor): quick mode, certification mode.
QUICK_TEST_BOUND = 60.0
CERTIFICATION_TEST_BOUND = 900.0
#: The silence bound (docs/rules-silence.md), before the factor; the session never makes it shorter than two
#: heartbeat intervals plus a CALL's timeout (quick: 12 s), so that a live charger is always heard within it.
QUICK_SILENCE_BOUND = 10.0
CERTIFICATION_SILENCE_BOUND = 150.0
#: Defaults of the settings a user can change (before the factor).
DEFAULT_CONNECT_TIMEOUT = 30.0  # the charger connecting and booting
DEFAULT_COMMAND_TIMEOUT = 30.0  # a rig command running
DEFAULT_PROMPT_TIMEOUT = 180.0  # an operator doing a physical act
#: The endpoint's WebSocket closing handshake (websockets' close_timeout), before the factor.
CLOSE_TIMEOUT = 2.0


@dataclass(frozen=True)
class Timing:
    """The timeout factor and the base timeouts of one run; every derived timeout, scaled."""

    factor: float = 1.0
    quick: bool = True  # quick mode (short intervals) or certification mode (the platform's real values)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT  # before the factor, as the user gave it
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    prompt_timeout: float = DEFAULT_PROMPT_TIMEOUT

    def scaled(self, seconds: float) -> float:
        """`seconds` (a base value) as the run waits it."""
        return seconds * self.factor

    def unscaled(self, seconds: float) -> float:
        """The base value that `scaled` turns into `seconds` (for a wait whose API scales it again)."""
        return seconds / self.factor

    @property
    def test_bound(self) -> float:
        """How long a single test may take (a `test_bound` marker may raise it: `test_bound_at_least`)."""
        return self.scaled(QUICK_TEST_BOUND if self.quick else CERTIFICATION_TEST_BOUND)

    def test_bound_at_least(self, seconds: float) -> float:
        """The test bound of a test that needs at least `seconds` (before the factor) in every mode."""
        return max(self.test_bound, self.scaled(seconds))

    @property
    def silence_after(self) -> float:
        """The silence bound before the factor (the session scales it with the rest of its waits)."""
        return QUICK_SILENCE_BOUND if self.quick else CERTIFICATION_SILENCE_BOUND

    @property
    def connect(self) -> float:
        """How long the harness waits for the charger to connect and boot."""
        return self.scaled(self.connect_timeout)

    @property
    def command(self) -> float:
        """How long a rig command may run."""
        return self.scaled(self.command_timeout)

    @property
    def prompt(self) -> float:
        """How long an operator has for a physical act."""
        return self.scaled(self.prompt_timeout)

    @property
    def close(self) -> float:
        """The endpoint's WebSocket closing handshake."""
        return self.scaled(CLOSE_TIMEOUT)
