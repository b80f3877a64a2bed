"""The run's metered charging session: one transaction whose frames MV-1, MV-2, MV-3, CFG-2 and NF-2 judge.

Certification mode samples every 60 s, so evidence about sampling costs minutes. The requirements
about what a charger samples (MV-1/2/3), how often (CFG-2) and whether it loses it offline (NF-2)
are judged on the *same* transaction instead of one each (docs/rules-timing.md):

1. MeterValuesSampledData = the platform's list (Energy + Power; a Current+Voltage charger may
   reject it: then Energy + Current + Voltage). MeterValueSampleInterval = the mode's interval.
2. The EV is plugged in and the driver's card presented: a transaction, the EV charging.
3. Without NF-2: periodic samples while charging, then the EV pauses (the rig's ev_suspend) and
   the charger samples while suspended (the first sample after the pause may straddle it and is not
   judged), then RemoteStopTransaction.
4. With NF-2 selected: the first periodic sample is answered, the next one is left unanswered and
   the network is cut while it is in flight; the EV pauses; the charger samples offline (the
   straddling sample, then one while suspended); the driver's card ends the session at the
   charger; the network comes back. What the charger delivers is NF-2's evidence
   (suites/test_offline.py), and its offline samples, with their timestamps, are MV's and CFG-2's
   evidence too (§3.7: queued transaction messages keep the time they were produced).

Every sample is placed by when it was *taken* (its timestamp on the harness's clock), not when it
arrived, so a reading delivered late belongs to the stretch it was measured in. MV-3's evidence for
"≈ 0 while suspended" is a periodic sample, as the platform sees them: an instantaneous reading asked
for with TriggerMessage stands in only for a charger that sends no periodic sample.

The first test to need the session records it; the others judge the same recording (its frames are in
the evidence of the test that recorded it). When NF-2 is selected its test records (the suite order
puts it first, harness/ordering.py): the offline window's watches then file their findings in NF-2's
own test. A failure half-way (the charger never comes back) keeps what was recorded: each test judges
what it can from it and says what is missing.

Rooms: `model.py` (the records), `sampler.py` (collecting samples, placing each in its stretch),
`connection_loss.py` (NF-2's part), `recorder.py` (which test records it; the others' view).
"""

from harness.metered_session.connection_loss import periodic_times, reconnect_bound
from harness.metered_session.model import (
    CHARGING,
    SUSPENDED,
    Offline,
    Point,
    Recording,
    Stretch,
    offline_window,
)
from harness.metered_session.recorder import nf2_selected, recorded_session

__all__ = [
    "CHARGING", "SUSPENDED", "Offline", "Point", "Recording", "Stretch", "nf2_selected", "offline_window",
    "periodic_times", "reconnect_bound", "recorded_session",
]
