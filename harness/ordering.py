"""The order the certification suites run in: by the run's critical path (docs/rules-timing.md).

Certification mode waits on the platform's real intervals (60 s samples and heartbeats), so what
the run waits for should overlap instead of adding up:

1. Registration first, then the tests that make the charger boot again (the Pending answer, a
   triggered BootNotification, a firmware update's reboot): a boot starts a new registration, and
   the Heartbeat checks judged at the end read the record of the current one, so it should be long.
   Then the tests that make it reconnect (AUTH-1's 401, the key rotation, TLS-3's refused
   certificates): CORE-1's check of the Heartbeats after each reconnect needs a HeartbeatInterval
   to decide, which then passes while the long part of the run goes on.
2. Configuration: the intervals the rest of the run relies on are set early.
3. NF-2 next: its test records the run's metered session (harness/metered_session/), whose
   samples MV-1/2/3 and CFG-2 judge too; recording it in NF-2's own test files the offline window's
   findings there.
4. MV-1/2/3 and CFG-2 right after it, on the same recording.
5. Everything else, in file order.
6. Last, the requirements judged from the run-long record (the Heartbeats at the given interval, the
   Heartbeats after a reconnect): the longer the record, the less they have to wait for.

The order is a stable sort of whatever was selected, so it holds for a subset (`-k`, one file) and
does not depend on which tests pass: a test that fails half-way leaves the others' order as it was,
and each test takes its evidence from the record or, when the record lacks it, waits for it itself.
"""

from __future__ import annotations

import enum
from typing import Final

import pytest


class Stage(enum.IntEnum):
    REGISTRATION = 0
    REBOOTS = 1  # the charger boots again: a new registration, which the record-judged checks read from
    RECONNECTS = 2  # the charger reconnects: each reconnect's Heartbeat check decides during the long part
    CONFIGURATION = 3
    METERED_SESSION = 4  # records the session (NF-2)
    ON_THE_METERED_SESSION = 5  # judges it
    OTHER = 6
    FROM_THE_RECORD = 7


#: (suite file, test function) → stage; a test not listed is OTHER. Parametrised tests share their function's stage.
STAGES: Final[dict[tuple[str, str], Stage]] = {
    ("test_core.py", "test_charger_registers"): Stage.REGISTRATION,
    ("test_boot.py", "test_boot_notification_is_schema_valid"): Stage.REGISTRATION,
    ("test_boot.py", "test_status_for_every_connector_after_boot"): Stage.REGISTRATION,
    # The Core profile's own tests right after registration, the Pending test's boot first: a Heartbeat asked for with
    # TriggerMessage says nothing about the charger's own timer, so it comes before the reconnects whose Heartbeat
    # checks are judged; and a charger that falls silent after a boot is found silent by CORE-1's tests until the
    # silence bound has passed, and by every later test with that one cause (docs/rules-silence.md).
    ("test_core.py", "*"): Stage.REBOOTS,
    ("test_remote_trigger.py", "test_trigger_boot_notification"): Stage.REBOOTS,
    ("test_firmware.py", "test_update_firmware"): Stage.REBOOTS,
    ("test_authorization.py", "test_reconnects_after_401_once_the_key_is_accepted"): Stage.RECONNECTS,
    ("test_authorization.py", "test_authorization_key_rotation"): Stage.RECONNECTS,
    ("test_server_certificate.py", "test_refuses_bad_server_certificates"): Stage.RECONNECTS,
    ("test_configuration.py", "*"): Stage.CONFIGURATION,
    ("test_offline.py", "test_offline_transaction_messages_are_delivered"): Stage.METERED_SESSION,
    ("test_meter_values.py", "*"): Stage.ON_THE_METERED_SESSION,
    ("test_boot.py", "test_heartbeat_at_the_given_interval"): Stage.FROM_THE_RECORD,
    ("test_offline.py", "test_heartbeats_continue_after_reconnect"): Stage.FROM_THE_RECORD,
}


def stage(item: pytest.Item) -> Stage:
    file = item.path.name
    function = getattr(item, "originalname", None) or item.name.split("[", 1)[0]
    found = STAGES.get((file, function))
    if found is None:  # (Stage.REGISTRATION is 0: not `or`)
        found = STAGES.get((file, "*"), Stage.OTHER)
    return found


def by_critical_path(items: list[pytest.Item]) -> None:
    """Sort the certification suites' tests in place by stage (stable: file order within a stage).

    Only tests under a `suites` directory are moved: a user's own tests, and the harness's tests, keep pytest's
    order."""
    positions = [i for i, item in enumerate(items) if item.path.parent.name == "suites"]
    if len(positions) < 2:
        return
    ordered = sorted((items[i] for i in positions), key=stage)
    for i, item in zip(positions, ordered):
        items[i] = item
