"""Judging readings after a limit changed (sans-I/O): SC-2 (the limit takes effect), ST-2/ST-4.

A judge (`judge_off`, `judge_on`, `judge_six_amps`) takes the settled readings (harness/readings.py) and says
YES, NO or UNKNOWN for the newest; `evaluate` applies the settling window: a reading counts against the charger
only if measured long enough after the charger answered the change. Unit-tested with synthetic readings
(tests/test_limits.py); the acts that collect the readings are in harness/limits.py. The rules (settling
window, which readings count, phases, the energy-rise threshold) are written down for users in
docs/rules-metering.md.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from harness.readings import CHARGING_W, Reading, clock_offset, energy_rate, measured_at

RULES = "docs/rules-metering.md"  # where users read these rules; evidence and failures cite it
NOMINAL_VOLTAGE = Decimal(230)  # V phase-to-neutral, when neither the readings nor the profile give one
MIN_PILOT_CURRENT = Decimal(6)  # A: IEC 61851-1, the lowest current a charger can offer
ZERO_FLOOR_W = Decimal(100)  # "≈ 0": at most this, or 2 % of the unlimited power if that is more
ZERO_SHARE = Decimal("0.02")
ZERO_CURRENT_A = Decimal("0.5")  # "≈ 0" on a line current (100 W / 230 V ≈ 0.43 A)
SIX_AMP_TOLERANCE = Decimal("0.15")  # ±15 % around phases × V × 6 A (EVs draw a little under the offer)
ENERGY_SPAN_MAX = 300.0  # s: the longest the harness waits for the register alone to settle "≈ 0"


class State(enum.Enum):
    YES = "yes"  # the readings show what was expected
    NO = "no"  # they show the opposite
    UNKNOWN = "unknown"  # they cannot tell (yet)


@dataclass(frozen=True)
class Outcome:
    state: State
    why: str
    more_time: float = 0.0  # UNKNOWN because the register needs this much longer a span to tell
    watts: Decimal | None = None  # the power the judgement saw (a reference for "≈ 0" later)


Judge = Callable[[Sequence[Reading], Reading], Outcome]
"""Judges reading `b` given the settled readings up to and including it (oldest first)."""

def _span_needed(reading: Reading, floor_w: Decimal) -> float:
    """How long a span of register readings must be for one register step to mean ≤ floor_w."""
    return float(reading.energy_step * 3600 / floor_w) if floor_w > 0 else ENERGY_SPAN_MAX


def zero_floor(unlimited: Reading | None, reference_w: Decimal | None = None) -> Decimal:
    """"≈ 0 W": at most ZERO_FLOOR_W, or 2 % of the power seen without the limit if that is more (the
    reading's power, else `reference_w`: e.g. the register's rate when the charger sends only energy)."""
    reference = unlimited.watts if unlimited is not None and unlimited.watts is not None else reference_w
    return max(ZERO_FLOOR_W, ZERO_SHARE * reference) if reference else ZERO_FLOOR_W


def _instant_off(b: Reading, floor_w: Decimal) -> Outcome | None:
    """Power and current of one instant: ≈ 0 (YES), flowing (NO), or None when it reports neither."""
    if b.watts is not None:
        if b.watts > floor_w:
            return Outcome(State.NO, f"{b.watts:.0f} W > {floor_w:.0f} W")
    if b.currents:
        flowing = {p: a for p, a in b.currents.items() if a > ZERO_CURRENT_A}
        if flowing:
            shown = ", ".join(f"{p or 'overall'} {a} A" for p, a in sorted(flowing.items()))
            return Outcome(State.NO, f"current {shown} > {ZERO_CURRENT_A} A")
    if b.watts is not None or b.currents:
        return Outcome(State.YES, "power and current ≈ 0")
    return None


def judge_off(floor_w: Decimal) -> Judge:
    """≈ 0 power under a 0 limit, from every measurand sent.

    NO when the power or a line current is above ≈ 0, or when the register rose faster than floor_w
    between the previous settled reading and this one (energy that keeps rising is power flowing,
    whatever the power reading says). YES when power/current are ≈ 0 and, if the charger sends the
    register, it did not rise faster than that since the previous settled reading. A charger that
    sends only the register: YES once it stayed flat (to its resolution) over a span long enough to
    tell ≈ 0 from one register step.
    """

    def judge(settled: Sequence[Reading], b: Reading) -> Outcome:
        previous = settled[-2] if len(settled) >= 2 else None
        rate = energy_rate(previous, b) if previous is not None else None
        if rate is not None and rate.low > floor_w:
            return Outcome(State.NO, f"the energy kept rising: {rate.describe()} > {floor_w:.0f} W")
        instant = _instant_off(b, floor_w)
        if instant is not None and instant.state is State.NO:
            return instant
        if instant is not None:
            if b.energy_wh is not None and rate is None:
                return Outcome(State.UNKNOWN, "power ≈ 0; a second settled register reading must show the energy stopped")
            return Outcome(State.YES, instant.why + (f"; {rate.describe()}" if rate else ""))
        if b.energy_wh is None:
            return Outcome(State.UNKNOWN, "no power, current or energy in this reading")
        # The register alone: the longest settled span ending here that is no longer than needed.
        needed = _span_needed(b, floor_w)
        base = settled[0]
        for a in settled[:-1]:
            r = energy_rate(a, b)
            if r is not None and r.seconds >= needed:
                base = a
        long_rate = energy_rate(base, b) if base is not b else None
        if long_rate is None:
            return Outcome(State.UNKNOWN, "one settled register reading: its rise cannot be seen yet", needed)
        if long_rate.low > floor_w:
            return Outcome(State.NO, f"the energy kept rising: {long_rate.describe()} > {floor_w:.0f} W")
        if long_rate.high <= floor_w:
            return Outcome(State.YES, f"the register stayed flat: {long_rate.describe()} ≤ {floor_w:.0f} W")
        return Outcome(State.UNKNOWN, f"{long_rate.describe()}: too short a span to tell ≤ {floor_w:.0f} W from "
                                      f"one register step", max(0.0, needed - long_rate.seconds))

    return judge


def judge_on() -> Judge:
    """The EV draws power: power > CHARGING_W or a line current > ZERO_CURRENT_A; a charger that sends
    only the register: it rose faster than CHARGING_W over the settled span (from the first settled reading)."""

    def judge(settled: Sequence[Reading], b: Reading) -> Outcome:
        if b.watts is not None and b.watts > CHARGING_W:
            return Outcome(State.YES, f"{b.watts:.0f} W > {CHARGING_W} W", watts=b.watts)
        flowing = {p: a for p, a in b.currents.items() if a > ZERO_CURRENT_A}
        if flowing:
            return Outcome(State.YES, "current " + ", ".join(f"{p or 'overall'} {a} A" for p, a in sorted(flowing.items())))
        if b.watts is not None or b.currents:
            return Outcome(State.NO, "power and current ≈ 0")
        # The register alone: its rise over the whole settled span (after the window the EV should draw
        # throughout, and a longer span resolves a slow rise that one register step would hide).
        rate = energy_rate(settled[0], b) if len(settled) >= 2 else None
        if rate is None:
            return Outcome(State.UNKNOWN, "one settled register reading: its rise cannot be seen yet")
        if rate.low > CHARGING_W:
            return Outcome(State.YES, f"the energy rises: {rate.describe()}", watts=rate.low)
        if rate.high <= CHARGING_W:
            return Outcome(State.NO, f"the register is flat: {rate.describe()}")
        return Outcome(State.UNKNOWN, f"{rate.describe()}: cannot tell yet")

    return judge


@dataclass(frozen=True)
class Expectation6A:
    """What a 6 A limit should show: current per phase, or this much power (phases × V × 6 A, or the
    W limit set); `phases` None when neither the readings nor the charger profile give them."""

    phases: int | None
    phases_from: str
    volts: Decimal
    target_w: Decimal | None

    def describe(self) -> str:
        if self.target_w is None:
            return f"6 A per phase (phase count unknown: {self.phases_from})"
        return f"{self.phases} phase(s) × {self.volts:.0f} V × 6 A = {self.target_w:.0f} W ({self.phases_from})"


def six_amp_expectation(unlimited: Reading | None, settings_phases: int | None, settings_volts: float | None,
                        limit_w: Decimal | None = None) -> Expectation6A:
    """Phases from the readings' phase fields (those drawing without the limit), else the charger
    profile's `phases`; never guessed from the power. Voltage from the readings, else the profile's
    nominal_voltage, else 230 V. A W limit is itself the target."""
    volts = (unlimited.voltage if unlimited is not None else None) or (
        Decimal(str(settings_volts)) if settings_volts else NOMINAL_VOLTAGE)
    phases = unlimited.phases_drawing if unlimited is not None else None
    source = "phases drawing current in the readings without the limit"
    if not phases:
        phases = settings_phases
        source = "phases declared in the charger profile"
    if not phases:
        return Expectation6A(None, "the readings have no phase fields and the charger profile declares no phases",
                             volts, limit_w)
    target = limit_w if limit_w is not None else phases * volts * MIN_PILOT_CURRENT
    return Expectation6A(phases, source, volts, target)


def judge_six_amps(expected: Expectation6A) -> Judge:
    """≈ 6 A: each line current drawing within 6 A ± tolerance; a current without a phase at 6 A (per
    phase) or phases × 6 A (their sum; §7.43 calls it an "overall value"); else the power (or the
    register's rate) within ± tolerance of the expected power."""
    six = MIN_PILOT_CURRENT
    tol = SIX_AMP_TOLERANCE

    def band(x: Decimal) -> tuple[Decimal, Decimal]:
        return x * (1 - tol), x * (1 + tol)

    def judge(settled: Sequence[Reading], b: Reading) -> Outcome:
        per_phase = b.per_phase
        low, high = band(six)
        if per_phase:
            drawing = {p: a for p, a in per_phase.items() if a >= 1}
            shown = ", ".join(f"{p} {a} A" for p, a in sorted(per_phase.items()))
            ok = bool(drawing) and all(low <= a <= high for a in drawing.values())
            return Outcome(State.YES if ok else State.NO,
                           f"current per phase {shown} (expected {low:.1f}..{high:.1f} A on each phase drawing)")
        if "" in b.currents:
            amps = b.currents[""]
            counts = [expected.phases] if expected.phases else [1, 2, 3]
            targets = sorted({six} | {six * n for n in counts})
            ok = any(band(t)[0] <= amps <= band(t)[1] for t in targets)
            return Outcome(State.YES if ok else State.NO,
                           f"overall current {amps} A (expected {' or '.join(f'{t} A' for t in targets)} ± {tol:.0%}: "
                           "per phase or summed)")
        target = expected.target_w
        if b.watts is not None:
            if target is None:
                return Outcome(State.UNKNOWN, f"{b.watts:.0f} W, but {expected.describe()}")
            lo, hi = band(target)
            return Outcome(State.YES if lo <= b.watts <= hi else State.NO,
                           f"{b.watts:.0f} W, expected {expected.describe()} ± {tol:.0%}")
        rate = energy_rate(settled[0], b) if len(settled) >= 2 else None
        if target is None or rate is None:
            return Outcome(State.UNKNOWN, "no power or current in this reading, and no register rate to judge")
        lo, hi = band(target)
        if lo <= rate.low and rate.high <= hi:
            return Outcome(State.YES, f"{rate.describe()}, expected {expected.describe()} ± {tol:.0%}")
        if rate.high < lo or rate.low > hi:
            return Outcome(State.NO, f"{rate.describe()}, expected {expected.describe()} ± {tol:.0%}")
        return Outcome(State.UNKNOWN, f"{rate.describe()}: too coarse to tell yet")

    return judge


@dataclass
class Observation:
    """What the readings after a change showed, and which readings were used and why (the evidence)."""

    what: str
    settle: float  # s after `answered` before a reading counts
    used: list[tuple[Reading, Outcome]]
    early: list[Reading]
    offset: float | None
    result: Reading | None = None  # the first settled reading that showed `what`

    @property
    def result_watts(self) -> Decimal | None:
        """The power the deciding judgement saw (the register's rate for a register-only charger)."""
        return self.used[-1][1].watts if self.result is not None and self.used else None

    @property
    def state(self) -> State:
        if self.result is not None:
            return State.YES
        if any(o.state is State.NO for _, o in self.used):
            return State.NO
        return State.UNKNOWN

    def evidence(self) -> dict[str, Any]:
        return {
            "expected": self.what,
            "rule": (f"a reading that does not show the change counts against the charger only if measured ≥ "
                     f"{self.settle:g} s after the charger answered it (settling window); one measured after the "
                     f"answer that already shows it decides at once ({RULES})" if self.settle > 0 else
                     f"every reading from the start of the observation counts (no limit change to settle; {RULES})"),
            "clock_offset_s": None if self.offset is None else round(self.offset, 3),
            "readings_used": [f"{r.describe()} -> {o.state.value}: {o.why}" for r, o in self.used],
            "readings_ignored_too_early": [r.describe() for r in self.early],
            "verdict": self.state.value,
        }

    def text(self) -> str:
        lines = [f"readings used (after the change; one not showing it only once ≥ {self.settle:g} s after):"]
        lines += [f"  {r.describe()} -> {o.state.value}: {o.why}" for r, o in self.used[-10:]] or ["  none"]
        if self.early:
            lines.append(f"readings ignored as too early: {', '.join(f'#{r.call.seq}' for r in self.early[-10:])}")
        return "\n".join(lines)


def evaluate(readings: Sequence[Reading], judge: Judge, *, answered: float, settle: float, what: str) -> Observation:
    """Judge the readings measured after the change was answered, in order (our monotonic clock); the first
    YES is the result.

    The settling window protects the charger, not the harness: a reading inside it that does not (yet) show
    `what` is set aside as too early and never held against the charger, while one that already shows it,
    measured after the answer, decides at once (the charger acted faster than it had to; judged only on
    readings measured after the answer, so a stale reading from before the change cannot count). Anything
    held against the charger (NO) comes from settled readings only, judged on settled readings only.
    """
    offset = clock_offset(readings)
    ordered = sorted(readings, key=lambda r: (measured_at(r, offset), r.call.seq))
    settled_from = answered + settle
    early = [r for r in ordered if measured_at(r, offset) <= answered]  # from before the change: never count
    after = [r for r in ordered if measured_at(r, offset) > answered]
    # An early reading may decide only when the readings before the change showed the opposite (NO): then a
    # YES after the answer is the change itself, not a state that merely held on from before.
    changed = bool(early) and judge(early, early[-1]).state is State.NO
    settled: list[Reading] = []
    used: list[tuple[Reading, Outcome]] = []
    result = None
    for i, b in enumerate(after):
        if measured_at(b, offset) < settled_from:
            outcome = judge(after[: i + 1], b) if changed else Outcome(State.UNKNOWN, "too early")
            if outcome.state is not State.YES:
                early.append(b)
                continue
        else:
            settled.append(b)
            outcome = judge(settled, b)
        used.append((b, outcome))
        if outcome.state is State.YES:
            result = b
            break
    return Observation(what, settle, used, early, offset, result)

