"""The charger profile: checked field by field, overridden by the command line and ini, carried in the settings."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness import profile as profile_mod

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "charger.example.toml"


def write(tmp_path: Path, text: str, name: str = "charger.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_the_documented_example_is_valid() -> None:
    profile = profile_mod.load(EXAMPLE)
    assert profile.values["charger_id"] == "ACME-WB-0001"
    assert profile.values["authorization_key_env"] == "CHARGER_AUTHORIZATION_KEY"
    assert profile.values["measurand_family"] == "power"
    assert profile.values["firmware_managed"] is False
    assert profile.values["charger"] == "manual"
    assert set(profile.commands) == set(profile_mod.ACT_PLACEHOLDERS)
    assert profile.where["phases"] == "charger.example.toml [charger] phases"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[charger]\nphases = 4\n", ["[charger] phases = 4", "1, 2, 3"]),
        ("[charger]\nphases = \"3\"\n", ["[charger] phases", "1, 2, 3"]),
        ("[charger]\nsecurity_profile = 1\n", ["[charger] security_profile = 1", "2, 3"]),
        ("[charger]\nmeasurand_family = \"energy\"\n", ["[charger] measurand_family", '"power", "current-voltage"']),
        ("[charger]\nconnectors = 0\n", ["[charger] connectors = 0", "a whole number from 1 to 32"]),
        ("[charger]\nnominal_voltage = 12\n", ["[charger] nominal_voltage = 12", "100 to 1000"]),
        ("[charger]\nmax_current = 0\n", ["[charger] max_current = 0", "greater than 0"]),
        ("[charger]\nid = \"a/b\"\n", ["[charger] id", "without '/'"]),
        ("[charger]\nid_tags = \"04A1B2\"\n", ["[charger] id_tags", "a list of 1 or more idTags"]),
        ("[charger]\nid_tags = [\"123456789012345678901\"]\n", ["[charger] id_tags", "1 to 20 characters"]),
        ("[charger]\nid_tags = []\n", ["[charger] id_tags", "a list of 1 or more idTags"]),
        ("[charger]\nauthorization_key_env = \"1BAD\"\n", ["[charger] authorization_key_env", "environment variable"]),
        ("[charger]\nphase = 3\n", ["unknown key 'phase' in [charger]", "phases", "measurand_family"]),
        ("[chargers]\nid = \"x\"\n", ["unknown table 'chargers'", "charger, declarations, endpoint, rig"]),
        ("[declarations]\nfirmware_managed_by_ev_energy = \"yes\"\n",
         ["[declarations] firmware_managed_by_ev_energy = \"yes\"", "true or false"]),
        ("[declarations]\ndiagnostics_upload = \"sftp\"\n", ["[declarations] diagnostics_upload", '"ftp", "http"']),
        ("[declarations]\nnf1_statement = \"\"\n", ["[declarations] nf1_statement", "a non-empty string"]),
        ("[endpoint]\nport = 70000\n", ["[endpoint] port = 70000", "0 to 65535"]),
        ("[rig]\nbackend = \"ftp\"\n", ["[rig] backend", '"sim", "http", "command", "manual"']),
        ("[rig]\ntimeout_factor = 0\n", ["[rig] timeout_factor = 0", "greater than 0 up to 100"]),
        ("[rig]\nhttp = 5\n", ["[rig] http must be a table"]),
        ("[rig.http]\ncontrol_url = \"192.168.1.3:8701\"\n", ["[rig.http] control_url", "http:// or https:// URL"]),
        ("[rig.command]\nplugin = \"./rig plug {conector}\"\n", ["[rig.command] plugin", "{connector}", "{conector} is not one of them"]),
        ("[rig.command]\nnetwork = \"./rig net {connector}\"\n", ["[rig.command] network", "{online}", "{connector} is not one of them"]),
        ("[rig.command]\nplugin = \"./rig {\"\n", ["[rig.command] plugin", "literal braces"]),
        ("[rig.command]\nunplug = \"./rig unplug\"\n", ["unknown key 'unplug' in [rig.command]", "plugout"]),
        ("[rig.command]\ntimeout = -1\n", ["[rig.command] timeout = -1"]),
        ("[rig.manual]\nprompt_timeout = \"long\"\n", ["[rig.manual] prompt_timeout"]),
        ("[charger]\nauthorization_key = \"k\"\nauthorization_key_env = \"K\"\n", ["authorization_key OR authorization_key_env"]),
        ("[charger\nid = 1\n", ["not valid TOML"]),
    ],
)
def test_invalid_profiles_name_the_field_and_the_valid_values(tmp_path: Path, text: str, named: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(pytest.UsageError) as caught:
        profile_mod.load(path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in named:
        assert fragment in message, message


def test_a_missing_profile_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(pytest.UsageError, match="does not exist"):
        profile_mod.load(tmp_path / "nope.toml")


# --- through pytest: precedence, settings, declarations ------------------------------------------

SHOW_SETTINGS = """
    import json
    from harness.report.collector import RUN_INFO

    def test_show(harness_settings, pytestconfig):
        s = harness_settings
        data = {k: getattr(s, k) for k in (
            "charger", "charger_id", "charger_control_url", "csms_host", "csms_port", "security_profile",
            "timeout_factor", "connect_timeout", "mode", "connectors", "phases", "nominal_voltage",
            "max_current", "measurand_family", "firmware_managed", "diagnostics_upload", "nf1_statement",
            "command_timeout", "prompt_timeout", "authorization_key_source", "id_tags")}
        data["commands"] = sorted(s.rig_commands)
        data["command_cwd"] = str(s.command_cwd)
        data["key_is"] = s.authorization_key
        data["declarations"] = pytestconfig.stash[RUN_INFO]["declarations"]
        print("SETTINGS=" + json.dumps(data))
"""

FULL = """
    [charger]
    id = "CP-PROFILE"
    security_profile = 2
    authorization_key_env = "TEST_CHARGER_KEY"
    connectors = 2
    phases = 1
    nominal_voltage = 240
    max_current = 16
    measurand_family = "current-voltage"
    id_tags = ["04A1B2C3D4E5F6", "04FFEEDDCCBBAA"]

    [declarations]
    firmware_managed_by_ev_energy = true
    diagnostics_upload = "http"
    nf1_statement = "SSH through the vendor VPN"

    [endpoint]
    host = "127.0.0.1"
    port = 8443

    [rig]
    backend = "command"
    timeout_factor = 2.0
    connect_timeout = 45

    [rig.command]
    timeout = 12
    plugin = "./rig plug {connector}"
    network = "./rig net {online}"

    [rig.manual]
    prompt_timeout = 99
"""


def _settings(result: pytest.RunResult) -> dict:
    import json

    for line in result.stdout.lines:
        if "SETTINGS=" in line:
            return json.loads(line.split("SETTINGS=", 1)[1])
    raise AssertionError("no SETTINGS line:\n" + result.stdout.str() + result.stderr.str())


def test_the_profile_fills_the_settings_and_the_declarations(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_CHARGER_KEY", "00112233445566778899aabbccddeeff00112233")
    write(pytester.path, FULL)
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest("-s", "--charger-profile", "charger.toml")
    result.assert_outcomes(passed=1)
    s = _settings(result)
    assert s["charger"] == "command" and s["charger_id"] == "CP-PROFILE"
    assert (s["csms_host"], s["csms_port"]) == ("127.0.0.1", 8443)
    assert s["timeout_factor"] == 2.0 and s["connect_timeout"] == 45
    assert s["mode"] == "certification", "certification mode is the default for every backend but sim"
    assert (s["connectors"], s["phases"], s["nominal_voltage"], s["max_current"]) == (2, 1, 240.0, 16.0)
    assert s["measurand_family"] == "current-voltage"
    assert s["id_tags"] == ["04A1B2C3D4E5F6", "04FFEEDDCCBBAA"]
    assert s["firmware_managed"] is True and s["diagnostics_upload"] == "http"
    assert s["commands"] == ["network", "plugin"] and s["command_timeout"] == 12 and s["prompt_timeout"] == 99
    assert s["command_cwd"] == str(pytester.path.resolve())
    assert s["key_is"] == "00112233445566778899aabbccddeeff00112233"
    assert "TEST_CHARGER_KEY" in s["authorization_key_source"]
    assert s["declarations"] == {
        "firmware_managed_by_ev_energy": True,
        "nf1_statement": "SSH through the vendor VPN",
        "measurand_family": "current-voltage",
        "diagnostics_upload": "http",
    }
    result.stdout.fnmatch_lines(["*wss://127.0.0.1:8443/ocpp/CP-PROFILE*", "charger: command; mode: certification; timeout factor: 2",
                                 "*RFID card(s) the platform accepts: 04A1B2C3D4E5F6, 04FFEEDDCCBBAA (the rig presents the first)"])


def test_cli_and_ini_override_the_profile(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_CHARGER_KEY", raising=False)
    write(pytester.path, FULL)
    pytester.makeini("[pytest]\ncharger_id = CP-INI\ntimeout_factor = 3\n")
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest(
        "-s", "--charger-profile", "charger.toml", "--charger-id", "CP-CLI", "--charger", "sim",
        "--authorization-key", "cafe" * 10, "--csms-port", "0", "--mode", "quick",
    )
    result.assert_outcomes(passed=1)
    s = _settings(result)
    assert s["charger_id"] == "CP-CLI", "the command line beats ini and profile"
    assert s["timeout_factor"] == 3.0, "ini beats the profile"
    assert s["charger"] == "sim" and s["mode"] == "quick" and s["csms_port"] == 0
    assert s["connect_timeout"] == 45, "what neither CLI nor ini gives comes from the profile"
    assert s["id_tags"] == ["04A1B2C3D4E5F6", "04FFEEDDCCBBAA"]
    assert s["key_is"] == "cafe" * 10 and s["authorization_key_source"] == "--authorization-key on the command line"
    # the reference charger is built with the profile's hardware
    assert (s["connectors"], s["phases"], s["nominal_voltage"], s["max_current"]) == (2, 1, 240.0, 16.0)


def test_ini_names_the_profile_relative_to_the_ini_file(pytester: pytest.Pytester) -> None:
    (pytester.path / "bench").mkdir()
    write(pytester.path / "bench", '[charger]\nid = "CP-BENCH"\nphases = 3\n')
    pytester.makeini("[pytest]\ncharger_profile = bench/charger.toml\n")
    pytester.makepyfile(SHOW_SETTINGS)
    sub = pytester.path / "elsewhere"
    sub.mkdir()
    result = pytester.runpytest("-s", "--rootdir", str(pytester.path), "-c", str(pytester.path / "tox.ini"), str(pytester.path))
    result.assert_outcomes(passed=1)
    assert _settings(result)["charger_id"] == "CP-BENCH"


def test_an_invalid_profile_stops_the_run_naming_field_and_valid_values(pytester: pytest.Pytester) -> None:
    write(pytester.path, '[charger]\nmeasurand_family = "amps"\n')
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--charger-profile", "charger.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stderr.str()
    assert '[charger] measurand_family = "amps" is not valid: use one of "power", "current-voltage"' in text, text


def test_a_missing_key_variable_is_named_and_no_key_is_printed(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_CHARGER_KEY", raising=False)
    write(pytester.path, FULL)
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--charger-profile", "charger.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "the environment variable TEST_CHARGER_KEY is not set" in result.stderr.str()


def test_command_backend_without_commands_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--charger", "command", "--authorization-key", "k" * 20)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "[rig.command]" in result.stderr.str()


def test_the_new_backends_are_valid_choices(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--charger", "bogus")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "use one of sim, http, command, manual" in result.stderr.str()
    result = pytester.runpytest("--charger", "manual")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "AuthorizationKey" in result.stderr.str() and "charger profile" in result.stderr.str()


def test_id_tags_from_the_command_line_are_checked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest("-s", "--id-tags", "CARD-1, CARD-2")
    result.assert_outcomes(passed=1)
    assert _settings(result)["id_tags"] == ["CARD-1", "CARD-2"]
    bad = pytester.runpytest("--id-tags", "X" * 21)
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "--id-tags='" + "X" * 21 + "' is not valid: one or more idTags of 1 to 20 characters" in bad.stderr.str()


def test_the_platform_accepts_the_profile_cards_and_the_sessions_use_them(pytester: pytest.Pytester) -> None:
    """End to end against the reference charger: the rig presents the first card, RemoteStart names it,
    the platform accepts it; a card the platform does not know is Invalid (negative control)."""
    pytester.makeconftest(
        "from harness.report.collector import CERTIFICATION_RUN\n"
        "def pytest_configure(config):\n    config.stash[CERTIFICATION_RUN] = True\n"
    )
    pytester.makepyfile(test_cards="""
        import pytest
        from harness.flows import start_charging, stop_charging
        from harness.platform import default_answer

        pytestmark = pytest.mark.asyncio(loop_scope="session")

        async def test_local_and_remote(charger):
            local = await start_charging(charger)
            assert local.start.get("idTag") == "BENCH-CARD-7"
            await stop_charging(charger, local, remote=False)
            remote = await start_charging(charger, remote=True)
            assert remote.start.get("idTag") == "BENCH-CARD-7"
            await stop_charging(charger, remote)
            answer = [c for c in charger.received("Authorize", since=0) if c.get("idTag") == "BENCH-CARD-7"]
            assert answer, "the card was presented at the charger"

        async def test_unknown_card_is_invalid(charger):
            since = charger.trace.next_seq
            await charger.rig.authorize("SOMEONE-ELSES", 1)
            call = await charger.expect("Authorize", since=since, within=10)
            assert call.get("idTag") == "SOMEONE-ELSES"
            assert default_answer(charger, call) == {"idTagInfo": {"status": "Invalid"}}
    """)
    result = pytester.runpytest("--id-tags", "BENCH-CARD-7", "--certs-dir", str(pytester.path / "certs"),
                                "--report-dir", str(pytester.path / "r"), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_bench_charger_may_have_more_connectors_than_the_reference_charger(pytester: pytest.Pytester) -> None:
    """The reference charger's 1-8 connectors bound a sim run only: a bench charger's profile may declare up to 32."""
    write(pytester.path, '[charger]\nid = "CP-BIG"\nconnectors = 12\n\n[rig]\nbackend = "manual"\n')
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest("-s", "--charger-profile", "charger.toml", "--authorization-key", "k" * 20)
    result.assert_outcomes(passed=1)
    assert _settings(result)["connectors"] == 12
    sim = pytester.runpytest("--charger-profile", "charger.toml", "--charger", "sim")
    assert sim.ret == pytest.ExitCode.USAGE_ERROR
    assert "[charger] connectors = 12 is not valid: a whole number from 1 to 8" in sim.stderr.str()


def test_one_key_resolver_for_pytest_and_serve(tmp_path: Path) -> None:
    """profile.authorization_key: the command line (or ini), then the profile's key, then the variable it names,
    then (serve only) CHARGER_AUTHORIZATION_KEY; the source is named, the key never is."""
    key, other = "ab" * 20, "cd" * 20
    by_env = profile_mod.load(write(tmp_path, '[charger]\nauthorization_key_env = "BENCH_KEY"\n'))
    in_file = profile_mod.load(write(tmp_path, f'[charger]\nauthorization_key = "{key}"\n', "inline.toml"))
    resolve = profile_mod.authorization_key
    env = {"BENCH_KEY": key, profile_mod.KEY_ENV: other}
    assert resolve(other, "--authorization-key on the command line", by_env, environ=env) == (
        other, "--authorization-key on the command line")
    assert resolve(None, "", in_file, environ=env) == (key, "inline.toml [charger] authorization_key")
    assert resolve(None, "", by_env, environ=env) == (
        key, "the environment variable BENCH_KEY (named by charger.toml [charger] authorization_key_env)")
    assert resolve(None, "", None, environ=env) == (None, ""), "pytest: no fallback variable"
    assert resolve(None, "", None, fallback_env=profile_mod.KEY_ENV, environ=env) == (
        other, f"the environment variable {profile_mod.KEY_ENV}")
    with pytest.raises(ValueError, match="BENCH_KEY is not set") as missing:
        resolve(None, "", by_env, fallback_env=profile_mod.KEY_ENV, environ={profile_mod.KEY_ENV: other})
    assert other not in str(missing.value)
