"""The pytest plugin as a user meets it: options, ini twins, header, marker, bounded waits."""

from __future__ import annotations

import time

import pytest

pytestmark = []


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--charger", "bogus"], ["'bogus'", "sim", "http"]),
        (["--security-profile", "5"], ["'5'", "2", "3"]),
        (["--mode", "fast"], ["'fast'", "quick", "certification"]),
        (["--timeout-factor", "-1"], ["'-1'", "(0, 100]"]),
        (["--timeout-factor", "slow"], ["'slow'"]),
        (["--csms-port", "70000"], ["'70000'", "0-65535"]),
        (["--sim-defect", "no-such-defect"], ["'no-such-defect'", "tls13-only"]),
        (["--charger", "http"], ["--charger-control-url"]),
    ],
)
def test_invalid_options_are_usage_errors_naming_value_and_valid_ones(
    pytester: pytest.Pytester, args: list[str], named: list[str]
) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stderr.str()
    for fragment in named:
        assert fragment in text, text


def test_ini_twins_are_read_and_validated(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmode = certification\ncharger_id = CP-INI-7\ntimeout_factor = 2.5\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "ev.energy endpoint: wss://127.0.0.1:<free port>/ocpp/CP-INI-7 (TLS 1.2, ELBSecurityPolicy-TLS-1-2-Ext-2018-06, security profile 2)",
            "charger: sim; mode: certification; timeout factor: 2.5",
        ]
    )
    pytester.makeini("[pytest]\nsecurity_profile = 4\n")
    assert pytester.runpytest().ret == pytest.ExitCode.USAGE_ERROR


def test_cli_overrides_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmode = certification\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--mode", "quick")
    result.stdout.fnmatch_lines(["*mode: quick*"])


def test_requirement_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.requirement(*ids)*"])
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.requirement("MV-1")
        def test_marked(): pass
        """
    )
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


def test_a_charger_that_never_connects_fails_fast_and_clearly(pytester: pytest.Pytester) -> None:
    """No charger: the first test fails within the connect timeout naming what was expected; the next at once."""
    pytester.makeconftest(
        """
        import pytest_asyncio
        from harness.drivers.base import ChargerBackend

        class Absent(ChargerBackend):
            name = "absent"
            async def plugin(self, connector=1): pass
            async def plugout(self, connector=1): pass
            async def authorize(self, id_tag, connector=1): pass
            async def ev_suspend(self, suspended, connector=1): pass
            async def fault(self, faulted, connector=1): pass
            async def reboot(self): pass
            async def network(self, online): pass

        @pytest_asyncio.fixture(scope="session", loop_scope="session")
        async def charger_backend(csms):
            yield Absent()
        """
    )
    pytester.makepyfile(
        """
        import pytest
        pytestmark = pytest.mark.asyncio(loop_scope="session")

        async def test_one(charger):
            pass

        async def test_two(charger):
            pass
        """
    )
    started = time.monotonic()
    result = pytester.runpytest("--connect-timeout", "1", "--certs-dir", str(pytester.path / "certs"),
                                "--report-dir", str(pytester.path / "reports"))
    assert time.monotonic() - started < 15
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*charger never connected*", "*expected URL: wss://*/ocpp/EVENERGY-SIM-1*"])


SLOW_HANDS = """
import asyncio
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_an_act_that_takes_a_person_longer_than_the_bound(charger):
    backend = charger.rig.backend
    backend.act_allowance = {allowance}
    original = backend.plugin

    async def slowly(connector=1):
        await asyncio.sleep(4)  # the operator walks to the charger: longer than the 3 s bound
        await original(connector)

    backend.plugin = slowly
    try:
        await charger.rig.plugin(1)
    finally:
        backend.plugin = original
    await charger.rig.plugout(1)
"""


@pytest.mark.parametrize(("allowance", "passes"), [(10, True), (0, False)], ids=["person", "machine"])
def test_the_time_a_person_takes_for_an_act_does_not_count_against_the_bound(
    pytester: pytest.Pytester, allowance: float, passes: bool
) -> None:
    """A rig act with an allowance (the manual backend's prompt timeout) pushes the test's bound back by
    the time it took; without one (negative control) the same 4 s act overruns the 3 s bound."""
    pytester.makepyfile(SLOW_HANDS.format(allowance=allowance))
    result = pytester.runpytest("--timeout-factor", "0.05", "--certs-dir", str(pytester.path / "certs"),
                                "--report-dir", str(pytester.path / "reports"))
    if passes:
        result.assert_outcomes(passed=1)
    else:
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*the test did not finish within its bound of 3 s (timeout factor 0.05)*"])


def test_a_parameter_named_charger_is_not_the_harness_fixture(pytester: pytest.Pytester) -> None:
    """Only the harness's `charger` fixture makes a run a certification run (a report, the verdict's exit status):
    a test's own parameter of that name does not (a control parametrised by `charger` once made the harness's own
    test run exit 6, "incomplete")."""
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.parametrize("charger", ["a", "b"])
        def test_own_parameter(charger): assert charger in "ab"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--report-dir", str(pytester.path / "report"))
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=2)
    assert "ev.energy certification report" not in result.stdout.str()
    assert not (pytester.path / "report" / "certification.json").exists()


LOOKING_CONFTEST = """
from harness.report.collector import CERTIFICATION_RUN


def pytest_configure(config):
    config.stash[CERTIFICATION_RUN] = True
"""


@pytest.mark.parametrize("option", ["--collect-only", "--fixtures", "--fixtures-per-test", "--markers"])
def test_options_that_only_look_write_no_report(pytester: pytest.Pytester, option: str) -> None:
    # Nothing is run, so nothing is judged: an earlier run's report must not be replaced by an empty one.
    pytester.makeconftest(LOOKING_CONFTEST)
    pytester.makepyfile("import pytest\n\n@pytest.mark.requirement('RT-1')\ndef test_nothing():\n    pass\n")
    result = pytester.runpytest(option, "--report-dir", str(pytester.path / "r"), "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    assert not (pytester.path / "r").exists()


def test_negative_control_a_run_writes_its_report(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(LOOKING_CONFTEST)
    pytester.makepyfile("import pytest\n\n@pytest.mark.requirement('RT-1')\ndef test_nothing():\n    pass\n")
    pytester.runpytest("--report-dir", str(pytester.path / "r"), "-p", "no:cacheprovider")
    assert (pytester.path / "r" / "certification.json").exists()
