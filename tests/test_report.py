"""The certification report: verdict aggregation, redaction, digest, schema, HTML, and the pytest side.

Unit tests use synthetic run info and tests (no charger). The plugin tests run pytest inside pytest
(``pytester``) with a conftest that registers the ReportCollector the way the harness plugin does;
the harness plugin itself is kept out (``-p no:ev_energy_harness``) so only the collector is tested.
The browser test (headless chromium) is skipped when ``/usr/bin/chromium`` is missing.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import jsonschema
import pytest

from harness import requirements as catalogue
from harness.report import (
    REDACTED,
    build_report,
    check,
    load_report,
    render_html,
    schema,
    verify,
    write_report,
)
from harness.report.model import Redactor

pytest_plugins = ["pytester"]

SECRET = "5ecretKey0123456789abcdef5ecretKey012345"  # 40 characters, as an AuthorizationKey
# The project's own copy of ev.energy's requirements (users have it; the report and README cite it), and the
# workplace's original beside the repository when there is one (the copy must not drift from it).
SPEC = Path(__file__).resolve().parents[1] / "docs" / "reference" / "ev-energy-requirements.md"
ORIGINAL_SPEC_DIR = Path(__file__).resolve().parents[2] / "shared" / "spec"
CHROMIUM = Path("/usr/bin/chromium")

VALIDATOR = jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker())

# --------------------------------------------------------------------------------------------
# Synthetic runs
# --------------------------------------------------------------------------------------------


def run_info(**overrides):
    info = {
        "charger": {"id": "CP-0042", "vendor": "Acme", "model": "Wallbox 22", "serial": "AC-1", "firmware": "4.2.1"},
        "endpoint": "wss://127.0.0.1:9443/ocpp/CP-0042",
        "mode": "certification",
        "security_profile": 2,
        "backend": "sim",
        "tls": {"version": "TLSv1.2", "cipher": "ECDHE-RSA-AES128-GCM-SHA256", "offered_policy_suites": ["AES128-SHA"]},
        "connection_attempts": [
            {"time": "2026-01-01T00:00:00Z", "peer": "127.0.0.1:5000", "path": "/ocpp/CP-0042", "outcome": "connected", "detail": None}
        ],
        "declarations": {"firmware_managed_by_ev_energy": False, "nf1_statement": "SSH over the vendor VPN"},
        "secrets": [SECRET],
    }
    info.update(overrides)
    return info


def frame(seq, text, direction="charger→csms", note=None):
    return {"seq": seq, "direction": direction, "time": f"2026-01-01T00:00:{seq % 60:02d}.000Z", "mono": seq / 10, "text": text, "note": note}


def boot_frames():
    return [
        frame(0, json.dumps([2, "1", "BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "Wallbox 22"}])),
        frame(1, json.dumps([3, "1", {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z", "interval": 60}]), "csms→charger"),
    ]


def passing_tests(**per_id):
    """One passing test per requirement on ev.energy's list (NF-1 has none: it is declared)."""
    tests = []
    for rid in catalogue.EV_ENERGY_IDS:
        if rid == "NF-1":
            continue
        test = {
            "nodeid": f"suites/test_x.py::test_{rid.lower().replace('-', '_')}",
            "requirements": [rid],
            "outcome": "passed",
            "duration": 1.5,
            "frames": boot_frames(),
            "details": {},
        }
        if rid == "MV-1":
            test["details"] = {"alternative": "Power.Active.Import"}
        if rid == "SC-1":
            test["details"] = {"alternative": "TxProfile"}
        if rid == "AUTH-2":
            test.update(outcome="skipped", message="not applicable: this run uses security profile 2")
        if rid == "FW-1":
            test.update(outcome="skipped", message="not applicable: the manufacturer manages firmware")
        test.update(per_id.get(rid, {}))
        tests.append(test)
    return tests


def verdicts(report):
    return {r["id"]: r["verdict"] for r in report["requirements"]}


def valid(report):
    VALIDATOR.validate(report)
    return report


# --------------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------------


def test_catalogue_has_every_id_with_its_kind():
    ids = [r.id for r in catalogue.REQUIREMENTS]
    assert ids[:22] == [
        "TLS-1", "TLS-2", "TLS-3", "AUTH-1", "AUTH-2", "CORE-1", "MV-1", "FW-1", "SC-1", "SC-2", "RT-1", "RT-2",
        "CFG-1", "CFG-2", "MV-2", "MV-3", "ST-1", "ST-2", "ST-3", "ST-4", "NF-1", "NF-2",
    ]  # fmt: skip
    assert catalogue.EV_ENERGY_IDS == tuple(ids[:22])
    assert catalogue.by_id("FW-1").kind == catalogue.CONDITIONAL
    assert catalogue.by_id("NF-1").kind == catalogue.DECLARED
    assert catalogue.by_id("NF-2").kind == catalogue.RECOMMENDED
    assert catalogue.by_id("ADV-1").kind == catalogue.ADVISORY
    assert {catalogue.by_id(i).or_group for i in ("AUTH-1", "AUTH-2")} == {"AUTH"}
    assert catalogue.by_id("MV-1").alternatives == ("Power.Active.Import", "Current.Import+Voltage")
    assert catalogue.by_id("SC-1").alternatives == ("TxProfile", "ChargePointMaxProfile")
    assert catalogue.is_known("ST-4") and not catalogue.is_known("ST-5")
    with pytest.raises(KeyError):
        catalogue.by_id("XX-1")


@pytest.mark.skipif(not ORIGINAL_SPEC_DIR.is_dir(), reason="not tested: the original spec is not beside the repository")
def test_the_projects_reference_copies_match_the_originals():
    for name in ("ev-energy-requirements.md", "ocpp16-notes.md", "charger-control-api.md"):
        original = ORIGINAL_SPEC_DIR / name
        if original.exists():
            assert (SPEC.parent / name).read_text(encoding="utf-8") == original.read_text(encoding="utf-8"), name


def test_catalogue_texts_are_the_spec_texts():
    rows = dict(re.findall(r"^\| ([A-Z]+-\d+) \| (.*) \|$", SPEC.read_text(encoding="utf-8"), re.M))
    assert list(rows) == list(catalogue.EV_ENERGY_IDS)
    for rid, text in rows.items():
        assert catalogue.by_id(rid).text == text, rid


# --------------------------------------------------------------------------------------------
# Aggregation and the overall verdict
# --------------------------------------------------------------------------------------------


def test_passing_run_is_certified_with_every_requirement_pass():
    report = valid(build_report(run_info(), passing_tests()))
    v = verdicts(report)
    assert report["overall"] == "certified", report["overall_reason"]
    assert v.pop("AUTH-2") == "not applicable"
    assert v.pop("FW-1") == "not applicable"
    assert v.pop("NF-1") == "not tested"  # declared, not testable: the statement is shown
    assert set(v.values()) == {"pass"}
    by = {r["id"]: r for r in report["requirements"]}
    assert by["MV-1"]["alternative"] == "Power.Active.Import"
    assert by["SC-1"]["alternative"] == "TxProfile"
    assert by["NF-1"]["declaration"] == {"name": "nf1_statement", "value": "SSH over the vendor VPN"}
    assert "not required: AUTH-1 passed" in by["AUTH-2"]["reason"]
    assert report["groups"] == [
        {"id": "AUTH", "title": "Basic Auth OR Certificates", "members": ["AUTH-1", "AUTH-2"], "verdict": "pass", "held": ["AUTH-1"]}
    ]
    assert report["charger"]["vendor"] == "Acme" and report["tls"]["version"] == "TLSv1.2"


def test_a_defect_fails_its_requirement_only():
    failing = {
        "outcome": "failed",
        "message": "AssertionError: MeterValues every 30 s: expected an interval of 60 s, actual 30 s",
    }
    report = valid(build_report(run_info(), passing_tests(**{"CFG-2": failing})))
    v = verdicts(report)
    assert v.pop("CFG-2") == "fail"
    assert {k: x for k, x in v.items() if x != "pass"} == {"AUTH-2": "not applicable", "FW-1": "not applicable", "NF-1": "not tested"}
    assert report["overall"] == "not certified"
    assert "CFG-2" in report["overall_reason"]
    cfg2 = next(r for r in report["requirements"] if r["id"] == "CFG-2")
    assert "expected an interval of 60 s, actual 30 s" in cfg2["reason"]
    assert cfg2["tests"][0]["message"].startswith("AssertionError: MeterValues")


@pytest.mark.parametrize(
    ("auth1", "auth2", "overall"),
    [
        ({"outcome": "passed"}, {"outcome": "skipped", "message": "not tested: profile 3 not offered"}, "certified"),
        ({"outcome": "skipped", "message": "not applicable: profile 3 run"}, {"outcome": "passed"}, "certified"),
        ({"outcome": "failed", "message": "401"}, {"outcome": "passed"}, "certified"),
        ({"outcome": "failed", "message": "401"}, {"outcome": "skipped", "message": "not tested"}, "not certified"),
        ({"outcome": "skipped", "message": "not tested"}, {"outcome": "skipped", "message": "not tested"}, "incomplete"),
    ],
)
def test_auth_is_an_or_group(auth1, auth2, overall):
    report = valid(build_report(run_info(), passing_tests(**{"AUTH-1": auth1, "AUTH-2": auth2})))
    assert report["overall"] == overall, report["overall_reason"]


def test_alternatives_excuse_the_other_alternative_but_not_a_plain_failure():
    mv1 = [
        {"nodeid": "s.py::test_power", "requirements": ["MV-1"], "outcome": "passed", "details": {"alternative": "Power.Active.Import"}},
        {
            "nodeid": "s.py::test_current_voltage",
            "requirements": ["MV-1"],
            "outcome": "failed",
            "message": "no Voltage",
            "details": {"alternative": "Current.Import+Voltage"},
        },
    ]
    tests = [t for t in passing_tests() if t["requirements"] != ["MV-1"]]
    report = valid(build_report(run_info(), tests + mv1))
    mv = next(r for r in report["requirements"] if r["id"] == "MV-1")
    assert mv["verdict"] == "pass" and mv["alternative"] == "Power.Active.Import"
    assert [t["superseded"] for t in mv["tests"]] == [False, True]
    assert report["overall"] == "certified"

    mv1[1]["details"] = {}  # a failure no alternative excuses
    report = valid(build_report(run_info(), tests + mv1))
    assert verdicts(report)["MV-1"] == "fail" and report["overall"] == "not certified"


def test_partly_tested_requirement_is_not_tested():
    extra = {"nodeid": "s.py::test_st3_more", "requirements": ["ST-3"], "outcome": "skipped", "message": "not tested: the rig cannot fault"}
    report = valid(build_report(run_info(), passing_tests() + [extra]))
    st3 = next(r for r in report["requirements"] if r["id"] == "ST-3")
    assert st3["verdict"] == "not tested" and st3["reason"].startswith("partly tested: 1 of 2 passed")
    assert report["overall"] == "incomplete" and "ST-3" in report["overall_reason"]


def test_firmware_follows_the_declaration():
    fw_fail = {"FW-1": {"outcome": "failed", "message": "no FirmwareStatusNotification"}}
    declared = lambda value: run_info(declarations={"firmware_managed_by_ev_energy": value})  # noqa: E731

    report = valid(build_report(declared(True), passing_tests(**fw_fail)))
    assert verdicts(report)["FW-1"] == "fail" and report["overall"] == "not certified"

    report = valid(build_report(declared(False), passing_tests(**fw_fail)))
    assert verdicts(report)["FW-1"] == "not applicable" and report["overall"] == "certified"

    report = valid(build_report(declared(None), passing_tests(**fw_fail)))
    fw = next(r for r in report["requirements"] if r["id"] == "FW-1")
    assert fw["verdict"] == "not applicable" and "no declaration" in fw["reason"]
    assert report["overall"] == "certified" and any("FW-1" in w for w in report["warnings"])


def test_recommended_and_advisory_never_block():
    advisory = {"nodeid": "s.py::test_garbage", "requirements": ["ADV-1"], "outcome": "failed", "message": "closed the socket"}
    flagged = {"nodeid": "s.py::test_flagged", "requirements": ["CORE-1"], "outcome": "failed", "details": {"advisory": True}}
    tests = passing_tests(**{"NF-2": {"outcome": "failed", "message": "lost a StopTransaction"}}) + [advisory, flagged]
    report = valid(build_report(run_info(), tests))
    assert verdicts(report)["NF-2"] == "fail" and verdicts(report)["CORE-1"] == "pass"
    assert report["overall"] == "certified"
    assert [a["nodeid"] for a in report["advisory"]] == ["s.py::test_garbage", "s.py::test_flagged"]


def test_quick_mode_is_never_certified():
    """A quick-mode run where everything passed is a rehearsal that passed: its own verdict, never `certified`."""
    report = valid(build_report(run_info(mode="quick"), passing_tests()))
    assert report["overall"] == "rehearsal passed" and report["overall_reason"].startswith("quick mode")
    assert "Run in certification mode to certify" in report["overall_reason"]


def test_interrupted_and_never_connected_runs_are_incomplete():
    report = valid(build_report(run_info(), passing_tests(), interrupted=True))
    assert report["overall"] == "incomplete" and report["run"]["interrupted"] is True
    reason = "charger never connected: no connected and booted charger 'CP-0042' within 30 s"
    report = valid(build_report(run_info(), [], reason=reason))
    assert report["overall"] == "incomplete" and report["overall_reason"] == reason
    assert set(verdicts(report).values()) <= {"not tested", "not applicable"}


def test_missing_run_info_keys_still_make_a_report():
    report = valid(build_report({}, [{"nodeid": "t.py::test_a", "requirements": ["CORE-1"], "outcome": "passed"}]))
    # no mode: not a certification; the one requirement selected passed
    assert report["charger"]["id"] is None and report["overall"] == "rehearsal passed"


# --------------------------------------------------------------------------------------------
# Redaction, digest, schema, HTML
# --------------------------------------------------------------------------------------------


def leaky_tests():
    escaped = "".join(f"\\u{ord(c):04x}" for c in SECRET)  # the secret hidden in JSON escapes
    frames = [
        frame(0, json.dumps([2, "9", "ChangeConfiguration", {"key": "AuthorizationKey", "value": SECRET}]), "csms→charger"),
        frame(1, json.dumps([2, "10", "ChangeConfiguration", {"key": "AuthorizationKey", "value": "another-key-not-listed"}]), "csms→charger"),
        frame(2, '[2,"11","DataTransfer",{"vendorId":"x","data":"' + escaped + '"}]'),
        frame(3, "connection closed", "event", note=f"Authorization: Basic Q1AtMDA0Mjp{SECRET}"),
    ]
    return passing_tests(
        **{
            "AUTH-1": {
                "outcome": "failed",
                "message": f"AssertionError: expected 401 for key {SECRET}",
                "traceback": f"E   AssertionError: headers={{'Authorization': 'Basic abc'}} key={SECRET}",
                "frames": frames,
                "details": {"notes": [f"used {SECRET}"]},
            }
        }
    )


def test_secrets_appear_nowhere(tmp_path):
    info = run_info(
        connection_attempts=[{"time": "t", "peer": "p", "path": "/ocpp/CP-0042", "outcome": "refused", "detail": "Authorization: Basic Zm9vOmJhcg=="}],
        declarations={"firmware_managed_by_ev_energy": False, "nf1_statement": f"password is {SECRET}"},
        command=f"pytest --authorization-key={SECRET}",
    )
    report = valid(build_report(info, leaky_tests()))
    json_path, html_path = write_report(report, tmp_path)
    for path in (json_path, html_path):
        text = path.read_text(encoding="utf-8")
        assert SECRET not in text
        assert SECRET.encode().hex() not in text
        assert "another-key-not-listed" not in text  # AuthorizationKey values, listed or not
        assert "Zm9vOmJhcg==" not in text  # Authorization header values
        assert REDACTED in text
    auth1 = next(r for r in report["requirements"] if r["id"] == "AUTH-1")["tests"][0]
    assert json.loads(auth1["frames"][0]["text"])[3] == {"key": "AuthorizationKey", "value": REDACTED}
    assert REDACTED in json.loads(auth1["frames"][2]["text"])[3]["data"]


def test_redactor_knows_the_basic_auth_forms():
    import base64

    red = Redactor(["00112233445566778899aabbccddeeff00112233"], charger_id="CP-1")
    basic = base64.b64encode(b"CP-1:00112233445566778899aabbccddeeff00112233").decode()
    assert red.text(f"x {basic} y") == f"x {REDACTED} y"
    assert red.text("Authorization: Basic whatever") == f"Authorization: {REDACTED}"
    assert red.text("AuthorizationKey=abc123;") == f"AuthorizationKey={REDACTED};"
    assert red.text("AuthorizationCacheEnabled: true") == "AuthorizationCacheEnabled: true"
    assert red.text("the Authorization header was missing") == "the Authorization header was missing"


def test_digest_verifies_and_catches_an_edit(tmp_path, capsys):
    from harness.report.__main__ import main

    json_path, html_path = write_report(build_report(run_info(), passing_tests()), tmp_path)
    assert verify(json_path) and verify(html_path)
    assert main(["verify", str(json_path), str(html_path)]) == 0

    edited = json_path.read_text(encoding="utf-8").replace('"verdict": "fail"', '"verdict": "pass"', 1)
    edited = edited.replace('"overall": "certified"', '"overall": "not certified"')
    json_path.write_text(edited, encoding="utf-8")
    assert not verify(json_path)
    assert main(["verify", str(json_path)]) == 1
    assert "MISMATCH" in capsys.readouterr().err

    html = html_path.read_text(encoding="utf-8")
    visible = html.replace("<h1 class=\"big\">certified</h1>", "<h1 class=\"big\">certified!</h1>")
    assert visible != html
    html_path.write_text(visible, encoding="utf-8")
    assert not verify(html_path)  # the embedded data is intact, the visible page is not
    data = html.replace('"overall":"certified"', '"overall":"incomplete"')
    assert data != html
    html_path.write_text(data, encoding="utf-8")
    assert not verify(html_path)
    assert check(tmp_path / "missing.json")[0] is False


def test_report_json_is_the_html_data(tmp_path):
    report = build_report(run_info(), leaky_tests())
    json_path, html_path = write_report(report, tmp_path)
    assert load_report(html_path) == load_report(json_path) == json.loads(json.dumps(report))
    VALIDATOR.validate(load_report(json_path))


def test_html_escapes_frame_text_and_names():
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    tests = passing_tests(
        **{
            "CORE-1": {
                "nodeid": "suites/t.py::test_core[<b>]",
                "outcome": "failed",
                "message": f"AssertionError: {evil}",
                "frames": [frame(0, json.dumps([2, "1", evil, {"x": evil}]), note=evil), frame(1, evil)],
            }
        }
    )
    html = render_html(build_report(run_info(), tests))
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(" in html
    assert "test_core[&lt;b&gt;]" in html
    # the embedded data cannot close its <script> element either
    data = html.split('<script type="application/json" id="report-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data
    assert html.count("<script") == 2  # the data block and the print helper
    assert "http://" not in html.replace('http-equiv', '') and "https://" not in html  # no fetch


def test_frames_are_capped_and_ten_thousand_render_quickly(tmp_path):
    many = [frame(i, json.dumps([2, str(i), "Heartbeat", {}]) if i % 2 == 0 else json.dumps([3, str(i - 1), {"currentTime": "2026-01-01T00:00:00Z"}]), "charger→csms" if i % 2 == 0 else "csms→charger") for i in range(5000)]
    tests = passing_tests(**{"CORE-1": {"frames": many}, "ST-1": {"frames": many[:1999]}, "ST-2": {"frames": many[:3000]}})
    started = time.monotonic()
    report = valid(build_report(run_info(), tests))
    json_path, html_path = write_report(report, tmp_path)
    elapsed = time.monotonic() - started
    core = next(r for r in report["requirements"] if r["id"] == "CORE-1")["tests"][0]
    assert core["frames_total"] == 5000 and len(core["frames"]) == 2000
    assert core["frames_omitted"] == {"count": 3000, "index": 1000}
    assert core["frames"][0]["seq"] == 0 and core["frames"][999]["seq"] == 999 and core["frames"][1000]["seq"] == 4000
    assert report["summary"]["frames"] >= 10_000
    html = html_path.read_text(encoding="utf-8")
    assert "3000 more frames omitted" in html
    assert "Heartbeat result" in html  # CALLRESULTs are labelled with their CALL's action
    assert elapsed < 20, f"building and writing took {elapsed:.1f} s"


# --------------------------------------------------------------------------------------------
# Through pytest: the collector as the harness plugin registers it
# --------------------------------------------------------------------------------------------

CONFTEST = f'''
import pytest
from harness.report.collector import CERTIFICATION_RUN, EVIDENCE, RUN_INFO, ReportCollector

SECRET = {SECRET!r}


def pytest_addoption(parser):
    try:
        parser.addoption("--report-dir", dest="report_dir", default=None)
    except ValueError:  # the harness plugin registered it already
        pass


def pytest_configure(config):
    config.addinivalue_line("markers", "requirement(*ids): ev.energy requirement IDs")
    config.stash[RUN_INFO] = {{
        "charger": {{"id": "CP-T"}},
        "mode": "certification",
        "security_profile": 2,
        "backend": "fake",
        "endpoint": "wss://127.0.0.1:1/ocpp/CP-T",
        "declarations": {{"firmware_managed_by_ev_energy": False}},
        "secrets": [SECRET],
        "connection_attempts": [],
    }}
    config.stash[CERTIFICATION_RUN] = True  # as suites/conftest.py does
    if not config.pluginmanager.has_plugin("ev-energy-report"):
        config.pluginmanager.register(ReportCollector(config), "ev-energy-report")


@pytest.fixture
def charger(request):
    """What the harness's charger fixture leaves behind: evidence, and what BootNotification said."""
    info = request.config.stash[RUN_INFO]
    info["charger"].update({{"vendor": "Acme", "model": "Sim", "serial": "S-1", "firmware": "1.0"}})
    info["tls"] = {{"version": "TLSv1.2", "cipher": "AES128-SHA", "offered_policy_suites": ["AES128-SHA"]}}
    evidence = {{"frames": [], "details": {{"notes": []}}}}
    request.node.stash[EVIDENCE] = evidence
    def send(text, direction="charger→csms"):
        evidence["frames"].append({{"seq": len(evidence["frames"]), "direction": direction,
                                   "time": "2026-01-01T00:00:00.000+00:00", "mono": 1.0, "text": text, "note": None}})
    return send, evidence
'''

TESTS = '''
import pytest

pytestmark = []

@pytest.mark.requirement("CORE-1")
def test_boot(charger):
    send, evidence = charger
    send('[2,"1","BootNotification",{"chargePointVendor":"Acme","chargePointModel":"Sim"}]')
    send('[3,"1",{"status":"Accepted","currentTime":"2026-01-01T00:00:00Z","interval":60}]', "csms→charger")

@pytest.mark.requirement("MV-1")
def test_power(charger):
    send, evidence = charger
    evidence["details"]["alternative"] = "Power.Active.Import"

@pytest.mark.requirement("SC-2", "ST-4")
def test_limit_zero(charger):
    send, evidence = charger
    send('[2,"2","StatusNotification",{"connectorId":1,"status":"SuspendedEVSE","errorCode":"NoError"}]')
    assert MEASURED == 0, "after a 0 A limit: expected 0 W, actual MEASURED W"

@pytest.mark.requirement("FW-1")
def test_firmware(charger):
    pytest.skip("not applicable: the manufacturer manages firmware")

@pytest.mark.requirement("ST-3")
def test_fault(charger):
    pytest.skip("not tested: the rig cannot raise a fault")
'''


def run_collector(pytester, tests_source, *args, **kwargs):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=tests_source)
    report_dir = pytester.path / "out"
    plugins = ("-p", "no:ev_energy_harness", "-p", "no:asyncio", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning")
    result = pytester.runpytest(*plugins, "--report-dir", str(report_dir), *args, **kwargs)
    json_path = report_dir / "certification.json"
    assert json_path.exists(), result.stdout.str()
    report = json.loads(json_path.read_text(encoding="utf-8"))
    valid(report)
    return result, report, report_dir


def test_plugin_passing_run(pytester):
    result, report, out = run_collector(pytester, TESTS.replace("MEASURED", "0"))
    result.assert_outcomes(passed=3, skipped=2)
    v = verdicts(report)
    assert {k: v[k] for k in ("CORE-1", "MV-1", "SC-2", "ST-4")} == dict.fromkeys(("CORE-1", "MV-1", "SC-2", "ST-4"), "pass")
    assert v["FW-1"] == "not applicable" and v["ST-3"] == "not tested"
    mv1 = next(r for r in report["requirements"] if r["id"] == "MV-1")
    assert mv1["alternative"] == "Power.Active.Import"
    core = next(r for r in report["requirements"] if r["id"] == "CORE-1")["tests"][0]
    assert core["frames_total"] == 2 and core["frames"][0]["direction"] == "charger→csms"
    assert report["charger"] == {"id": "CP-T", "vendor": "Acme", "model": "Sim", "serial": "S-1", "firmware": "1.0"}
    assert report["tls"]["cipher"] == "AES128-SHA"
    assert report["overall"] == "incomplete"  # most requirements have no test in this small suite
    assert verify(out / "certification.json") and verify(out / "certification.html")
    result.stdout.fnmatch_lines(["*ev.energy certification report*", "overall: INCOMPLETE*", f"JSON: {out}*certification.json"])


def test_plugin_complete_passing_run_is_certified(pytester):
    lines = ["import pytest", ""]
    for rid in catalogue.EV_ENERGY_IDS:
        name = rid.lower().replace("-", "_")
        if rid == "NF-1":
            continue
        lines += [f"@pytest.mark.requirement({rid!r})", f"def test_{name}(charger):"]
        if rid in ("AUTH-2", "FW-1"):
            lines.append(f"    pytest.skip('not applicable: {rid} does not apply to this charger')")
        elif rid == "SC-1":
            lines.append("    charger[1]['details']['alternative'] = 'ChargePointMaxProfile'")
        else:
            lines.append("    charger[0]('[2,\"1\",\"Heartbeat\",{}]')")
        lines.append("")
    result, report, out = run_collector(pytester, "\n".join(lines))
    result.assert_outcomes(passed=19, skipped=2)
    assert report["overall"] == "certified", report["overall_reason"]
    v = verdicts(report)
    assert [k for k, x in v.items() if x != "pass"] == ["AUTH-2", "FW-1", "NF-1"]
    assert next(r for r in report["requirements"] if r["id"] == "SC-1")["alternative"] == "ChargePointMaxProfile"
    assert verify(out / "certification.json")


def test_plugin_run_with_a_defect(pytester):
    result, report, _ = run_collector(pytester, TESTS.replace("MEASURED", "3680"))
    result.assert_outcomes(passed=2, failed=1, skipped=2)
    v = verdicts(report)
    assert v["SC-2"] == "fail" and v["ST-4"] == "fail"  # one test, two requirements
    assert v["CORE-1"] == "pass" and v["MV-1"] == "pass"
    sc2 = next(r for r in report["requirements"] if r["id"] == "SC-2")["tests"][0]
    assert "expected 0 W, actual 3680 W" in sc2["message"] and "assert 3680 == 0" in sc2["message"]
    assert "test_limit_zero" in sc2["traceback"]
    assert report["overall"] == "not certified" and "SC-2" in report["overall_reason"]


def test_plugin_interrupted_run(pytester):
    source = TESTS.replace("MEASURED", "0") + textwrap.dedent(
        '''
        @pytest.mark.requirement("RT-1")
        def test_zz_interrupt(charger):
            send, evidence = charger
            send('[2,"9","TriggerMessage",{"requestedMessage":"BootNotification"}]', "csms→charger")
            raise KeyboardInterrupt

        @pytest.mark.requirement("RT-2")
        def test_zzz_never_runs(charger):
            pass
        '''
    )
    result, report, out = run_collector(pytester, source, no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert report["overall"] == "incomplete" and report["run"]["interrupted"] is True
    assert "interrupted" in report["overall_reason"]
    v = verdicts(report)
    assert v["RT-1"] == "incomplete" and v["RT-2"] == "incomplete" and v["CORE-1"] == "pass"
    rt1 = next(r for r in report["requirements"] if r["id"] == "RT-1")["tests"][0]
    assert rt1["frames_total"] == 1  # the evidence of the test that was running is kept
    assert verify(out / "certification.html")


def test_plugin_charger_never_connected(pytester):
    source = '''
import pytest

@pytest.fixture
def charger():
    raise RuntimeError("charger never connected: no connected and booted charger 'CP-T' within 30 s.\\n  attempts: 0")

@pytest.mark.requirement("CORE-1")
def test_boot(charger):
    pass

@pytest.mark.requirement("ST-1")
def test_available(charger):
    pass
'''
    result, report, _ = run_collector(pytester, source)
    result.assert_outcomes(errors=2)
    assert report["overall"] == "incomplete"
    assert report["overall_reason"] == "charger never connected: no connected and booted charger 'CP-T' within 30 s."
    assert verdicts(report)["CORE-1"] == "incomplete" and verdicts(report)["ST-1"] == "incomplete"


def test_plugin_harness_error_in_setup_is_not_blamed_on_the_charger(pytester):
    source = '''
import pytest

@pytest.fixture
def broken():
    raise ModuleNotFoundError("No module named 'harness.drivers.sim'")

@pytest.fixture
def idle():
    raise AssertionError("the charger did not become idle within 15 s: connector 1 stays Charging")

@pytest.mark.requirement("CORE-1")
def test_a(broken):
    pass

@pytest.mark.requirement("ST-1")
def test_b(idle):
    pass
'''
    _, report, _ = run_collector(pytester, source)
    v = verdicts(report)
    assert v["CORE-1"] == "incomplete" and v["ST-1"] == "fail"
    core = next(r for r in report["requirements"] if r["id"] == "CORE-1")["tests"][0]
    assert core["message"].startswith("harness error in setup (the charger was not tested)")


def test_plugin_collection_error_makes_the_run_incomplete(pytester):
    pytester.makepyfile(test_broken="import no_such_module_for_the_report\n")
    result, report, _ = run_collector(pytester, TESTS.replace("MEASURED", "0"))
    assert report["overall"] == "incomplete"
    assert "collection error" in report["overall_reason"] and "test_broken.py" in report["overall_reason"]


def test_plugin_secret_in_run_info_and_frames_appears_nowhere(pytester):
    source = TESTS.replace("MEASURED", "3680") + textwrap.dedent(
        '''
        from conftest import SECRET

        @pytest.mark.requirement("AUTH-1")
        def test_key(charger):
            send, evidence = charger
            send('[2,"5","ChangeConfiguration",{"key":"AuthorizationKey","value":"%s"}]' % SECRET, "csms→charger")
            send("GET /ocpp/CP-T Authorization: Basic Q1AtVDpzZWNyZXQ=", "event")
            evidence["details"]["notes"].append("the key was " + SECRET)
            assert SECRET == "", "charger answered Rejected for key " + SECRET
        '''
    )
    result, report, out = run_collector(pytester, source, "--junitxml", str(pytester.path / "junit.xml"))
    assert verdicts(report)["AUTH-1"] == "fail"
    assert SECRET in result.stdout.str()  # pytest's own output is not the report's business
    for path in (out / "certification.json", out / "certification.html"):
        text = path.read_text(encoding="utf-8")
        assert SECRET not in text and "Q1AtVDpzZWNyZXQ=" not in text, path
    junit = (pytester.path / "junit.xml").read_text(encoding="utf-8")
    assert 'name="requirement" value="AUTH-1"' in junit and 'name="verdict" value="fail"' in junit
    # only short facts go into JUnit properties, never the evidence
    assert set(re.findall(r'<property name="([^"]+)"', junit)) == {"requirement", "verdict", "alternative"}


def test_plugin_with_xdist_writes_one_report(pytester):
    pytest.importorskip("xdist")
    source = TESTS.replace("MEASURED", "0")
    result, report, out = run_collector(pytester, source, "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=3, skipped=2)
    assert sorted(p.name for p in out.iterdir()) == ["certification.html", "certification.json"]
    tests = {t["nodeid"] for r in report["requirements"] for t in r["tests"]}
    assert len(tests) == 5
    assert {t["worker"] for r in report["requirements"] for t in r["tests"]} <= {"gw0", "gw1"}
    assert report["charger"]["vendor"] == "Acme"  # set on a worker, merged on the controller
    assert report["tls"]["version"] == "TLSv1.2"
    assert verdicts(report)["SC-2"] == "pass" and verdicts(report)["FW-1"] == "not applicable"
    assert report["run"]["workers"] == 2


# --------------------------------------------------------------------------------------------
# A real browser
# --------------------------------------------------------------------------------------------


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB(A) rows of an 8-bit PNG (enough for chromium's screenshots)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line) if bpp == 3 else bytes(v for j, v in enumerate(line) if j % 4 != 3))
        prev = line
    return width, height, rows


@pytest.mark.skipif(not CHROMIUM.exists(), reason="not tested: /usr/bin/chromium is not installed")
def test_report_renders_in_headless_chromium(tmp_path):
    many = [frame(i, json.dumps([2, str(i), "MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": str(i), "measurand": "Power.Active.Import", "unit": "W"}]}]}])) for i in range(500)]
    tests = passing_tests(
        **{
            "CFG-2": {"outcome": "failed", "message": "AssertionError: expected samples every 60 s, actual every 30 s"},
            "ST-3": {"outcome": "skipped", "message": "not tested: the rig cannot raise a fault"},
        }
    )
    for t in tests:
        t["frames"] = many
    report = build_report(run_info(), tests)
    assert report["summary"]["frames"] >= 10_000
    _, html_path = write_report(report, tmp_path / "report")
    shot = tmp_path / "certification.png"
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ]  # fmt: skip
    cmd = [str(CHROMIUM), *flags, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000"]
    subprocess.run([*cmd, html_path.as_uri()], capture_output=True, timeout=120, check=False)
    assert shot.exists() and shot.stat().st_size > 30_000
    width, height, rows = _png_pixels(shot)
    assert (width, height) == (1280, 2000)
    # The verdict badge (red: "not certified") at the top, and the matrix's pass chips below it.
    red = sum(1 for row in rows[60:300] for i in range(0, len(row), 3) if row[i] > 150 and row[i + 1] < 60 and row[i + 2] < 80)
    green = sum(1 for row in rows[400:1900] for i in range(0, len(row), 3) if row[i] < 60 and row[i + 1] > 100 and row[i + 2] < 90)
    assert red > 20_000, f"no overall verdict badge visible ({red} red pixels)"
    assert green > 500, f"no pass chips visible in the matrix ({green} green pixels)"
    # The browser parsed the whole page: the matrix links every requirement.
    dom = subprocess.run(
        [str(CHROMIUM), *flags, f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", html_path.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    ).stdout
    assert "Requirement matrix" in dom and all(f'href="#r-{rid}"' in dom for rid in catalogue.EV_ENERGY_IDS)
    assert dom.count('class="f ') >= 10_000  # every frame made it into the DOM
    print(f"screenshot: {shot}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Verdict rules of docs/rules-verdicts.md: partial runs, rehearsals, findings, run-level frames
# --------------------------------------------------------------------------------------------


def _only(rids, **per_id):
    return [t for t in passing_tests(**per_id) if t["requirements"][0] in rids]


def test_partial_quick_run_is_judged_over_the_selected_requirements():
    report = valid(build_report(run_info(mode="quick"), _only({"CORE-1", "ST-1"})))
    assert report["overall"] == "rehearsal passed", report["overall_reason"]
    assert "all 2 selected mandatory requirements passed" in report["overall_reason"]
    assert "not selected in this run: TLS-1" in report["overall_reason"]
    tls1 = next(r for r in report["requirements"] if r["id"] == "TLS-1")
    assert tls1["verdict"] == "not tested" and tls1["reason"].startswith("not selected in this run")
    failed = valid(build_report(run_info(mode="quick"), _only({"CORE-1", "ST-1"}, **{"ST-1": {"outcome": "failed"}})))
    assert failed["overall"] == "not certified" and "ST-1" in failed["overall_reason"]


def test_partial_certification_run_is_incomplete():
    report = valid(build_report(run_info(), _only({"CORE-1"})))
    assert report["overall"] == "incomplete" and report["overall_reason"].startswith("partial run:")


def test_selected_but_untested_requirement_makes_a_rehearsal_incomplete():
    """A requirement the run selected but could not test (the rig cannot do an act) is incomplete, also in quick mode."""
    skipped = {"outcome": "skipped", "message": "not tested: not tested: the rig cannot perform the act 'ev' (EV pauses)"}
    report = valid(build_report(run_info(mode="quick"), passing_tests(**{"ST-4": skipped})))
    assert report["overall"] == "incomplete", report["overall_reason"]
    assert report["overall_reason"].startswith("mandatory requirements not tested: ST-4 (")
    st4 = next(r for r in report["requirements"] if r["id"] == "ST-4")["tests"][0]
    assert st4["message"] == "not tested: the rig cannot perform the act 'ev' (EV pauses)"  # said once


def test_selected_requirements_come_from_the_markers_not_the_refiled_ids():
    tests = _only({"CORE-1", "ST-1"})
    report = valid(build_report(run_info(mode="quick"), tests, selected={"CORE-1", "ST-1", "SC-2"}))
    assert report["overall"] == "incomplete"  # SC-2 was selected and has no verdict: not tested
    assert "SC-2" in report["overall_reason"]


def test_no_selected_mandatory_requirement_is_incomplete():
    adv = {"nodeid": "s.py::test_garbage", "requirements": ["ADV-1"], "outcome": "passed"}
    report = valid(build_report(run_info(mode="quick"), [adv]))
    assert report["overall"] == "incomplete" and "no mandatory requirement was selected" in report["overall_reason"]


def test_advisory_findings_are_listed_with_their_requirement_and_test():
    finding = {"requirement": "ADV-3", "message": "GetCompositeSchedule answered Rejected", "seq": 7}
    tests = passing_tests(**{"SC-1": {"findings": [finding]}})
    tests.append({"nodeid": "s.py::test_garbage", "requirements": ["ADV-1"], "outcome": "failed",
                  "message": "closed the socket"})
    report = valid(build_report(run_info(), tests))
    assert report["overall"] == "certified"
    adv = {a["id"]: a for a in report["advisory_requirements"]}
    assert adv["ADV-3"]["findings"] == [{**finding, "nodeid": "suites/test_x.py::test_sc_1", "name": "test_sc_1"}]
    assert [f["message"] for f in adv["ADV-1"]["findings"]] == ["closed the socket"]
    assert report["summary"]["advisory_findings"] == 2
    html = render_html(report)
    assert "GetCompositeSchedule answered Rejected" in html and "closed the socket" in html


def test_run_level_frames_are_kept_redacted_and_rendered():
    sections = [
        {"title": "before the first test", "phase": "before", "nodeid": None,
         "frames": [frame(1, json.dumps([2, "1", "BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "X"}]))]},
        {"title": "teardown of test_a", "phase": "teardown", "nodeid": "t.py::test_a",
         "frames": [frame(9, "rig: network on", "event", note=f"Authorization: Basic {SECRET}")]},
        {"title": "empty", "phase": "between", "nodeid": None, "frames": []},
    ]
    report = valid(build_report(run_info(), passing_tests(), run_frames=sections))
    assert [s["title"] for s in report["run_frames"]] == ["before the first test", "teardown of test_a"]
    assert SECRET not in json.dumps(report)
    assert report["summary"]["frames"] == sum(len(t["frames"]) for t in passing_tests()) + 2
    assert "Frames between tests" in render_html(report)
