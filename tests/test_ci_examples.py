"""The CI examples (examples/ci/) run as written, in both directions.

Each example pipeline (GitHub Actions: examples/ci/github-actions.yml; GitLab CI: examples/ci/gitlab-ci.yml)
is read (tests/yaml_subset.py: the YAML subset the examples keep to) and its quick gate's shell steps are run
in order, in a clean copy of the project, with the stand-in emulator (the reference charger as a separate
process, started by the `command` backend through examples/ci/emulator.sh): conformant, the job passes;
with a defect, the job's command exits non-zero and the summary names the failed requirement. The
certification gate is run as written too, but with pytest told to only collect (PYTEST_ADDOPTS=--collect-only):
its options and profile are checked without its minutes, and its command line must be the quick gate's
with `--mode certification` and nothing else (no extra waits of its own).

How the test plays the CI runner. Only what a runner provides is substituted:

- the checkout (actions/checkout; GitLab's clone): a clean copy of the project, the files git tracks or would
  track (`git ls-files --cached --others --exclude-standard`), so nothing of this checkout's certs/ or reports/;
- Python (actions/setup-python; GitLab's `image:`) and the step that installs the harness
  (`python -m pip install -e ".[test]"`, recognised by that text and skipped): the virtualenv running these
  tests, its bin/ first on PATH and the copy first on PYTHONPATH, which is what an editable install of the copy
  gives (no network in a test);
- artifact upload and JUnit publishing (`uses:` steps; GitLab's `artifacts:`): nothing is uploaded; the test
  checks they run even after a failed step (`if: always()`, `when: always`) and that every path they name exists;
- the runner's environment: CI=true, GITHUB_ACTIONS / GITLAB_CI, GITHUB_STEP_SUMMARY (a file), GITHUB_ENV
  (a file, applied to later steps as the runner does), RUNNER_TEMP, CI_PROJECT_DIR; the `${{ matrix.* }}`
  and `${{ secrets.* }}` expressions (any other expression fails the test); one value of the matrix; secrets
  (GitHub: values) and File variables (GitLab: paths to files) for the long-lived CA;
- the shells: a GitHub `run:` step with `bash --noprofile --norc -eo pipefail` (the runner's default on
  Linux), a GitLab job's before_script and script in one bash with `set -eo pipefail` (as the GitLab runner).

Two changes to the job's environment, stated: EMULATOR_CONTROL_PORT (the stand-in's control API, 8701 in the
examples) is a free port, because this machine runs other tests at the same time; and for the defect,
EMULATOR_ARGS="--defect never-faulted" (a variable the examples document for exactly this).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness import tls
from harness.requirements import MANDATORY, REQUIREMENTS
from tests import yaml_subset

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "ci"
GITHUB = EXAMPLES / "github-actions.yml"
GITLAB = EXAMPLES / "gitlab-ci.yml"
STEP_TIMEOUT = 600  # seconds: a quick certification takes 20-40 s on a loaded machine
DEFECT = "never-faulted"  # the reference charger's defect: a fault never shows Faulted (ST-3)
DEFECT_REQUIREMENT = "ST-3"
INSTALL = re.compile(r"""^python -m pip install (-e )?["']?\.\[test\]["']?$""")
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


# --- playing the runner -----------------------------------------------------------------------------


@dataclass
class JobRun:
    project: Path
    output: str = ""
    steps: list[tuple[str, int]] = field(default_factory=list)  # (step, exit status) of each shell step run
    skipped: list[str] = field(default_factory=list)  # steps not run because an earlier one failed
    artifacts: list[str] = field(default_factory=list)  # the paths the upload names (globs)
    junit: list[str] = field(default_factory=list)  # the JUnit files published
    step_summary: Path | None = None

    @property
    def failed(self) -> bool:
        return any(code != 0 for _, code in self.steps)


def _copy_project(destination: Path) -> Path:
    """The checkout: the files git tracks or would track, nothing ignored (certs/, reports/, .venv/)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _runner_env(project: Path, tmp: Path) -> dict[str, str]:
    """What every CI runner gives a job, plus the venv standing in for the install step."""
    (tmp / "tmp").mkdir(exist_ok=True)
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "PYTHONPATH": str(project),  # = an editable install of the copy
        "HOME": os.environ.get("HOME", str(tmp)),
        "LANG": "C.UTF-8",
        "TMPDIR": str(tmp / "tmp"),
        "CI": "true",
        "EMULATOR_CONTROL_PORT": str(_free_port()),  # stated above: this machine runs other tests at once
    }


def _expand(text: Any, context: dict[str, dict[str, str]]) -> str:
    def one(match: re.Match[str]) -> str:
        scope, _, name = match.group(1).partition(".")
        if scope not in context or not name:
            raise AssertionError(f"the test does not provide the expression ${{{{ {match.group(1)} }}}}")
        return context[scope].get(name, "")

    return EXPRESSION.sub(one, str(text))


def _is_install(script: str) -> bool:
    lines = [ln.strip() for ln in script.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return bool(lines) and all(INSTALL.match(ln) for ln in lines)


def _run_shell(args: list[str], project: Path, env: dict[str, str]) -> tuple[int, str]:
    proc = subprocess.run(
        args, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=STEP_TIMEOUT
    )
    return proc.returncode, proc.stdout


def run_github_job(
    workflow: dict[str, Any], job_name: str, tmp: Path, *, matrix: dict[str, str],
    secrets: dict[str, str] | None = None, job_env: dict[str, str] | None = None,
) -> JobRun:
    job = workflow["jobs"][job_name]
    project = tmp / "workspace"
    run = JobRun(project)
    context = {"matrix": matrix, "secrets": secrets or {}}
    base = _runner_env(project, tmp)
    runner_temp = tmp / "runner-temp"
    runner_temp.mkdir()
    github_env = tmp / "github-env"
    github_env.touch()
    run.step_summary = tmp / "step-summary.md"
    base.update(
        GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(project), RUNNER_TEMP=str(runner_temp),
        GITHUB_ENV=str(github_env), GITHUB_STEP_SUMMARY=str(run.step_summary),
    )
    env = dict(base)
    for scope in (workflow.get("env") or {}, job.get("env") or {}):
        env.update({k: _expand(v, context) for k, v in scope.items() if k != "EMULATOR_CONTROL_PORT"})
    env.update(job_env or {})
    for n, step in enumerate(job["steps"]):
        name = step.get("name") or step.get("uses") or f"step {n}"
        condition = step.get("if")
        assert condition in (None, "always()"), f"{name}: the test plays only `if: always()`, not {condition!r}"
        if run.failed and condition != "always()":
            run.skipped.append(name)
            continue
        if "uses" in step:
            action = str(step["uses"]).split("@")[0]
            inputs = {k: _expand(v, context) for k, v in (step.get("with") or {}).items()}
            if action == "actions/checkout":
                _copy_project(project)
            elif action == "actions/setup-python":
                pass  # the venv running these tests
            elif action == "actions/upload-artifact":
                assert condition == "always()", f"{name}: the report must be uploaded even when the job fails"
                run.artifacts += [p.strip() for p in inputs["path"].splitlines() if p.strip()]
            elif action == "mikepenz/action-junit-report":
                assert condition == "always()", f"{name}: the JUnit must be published even when the job fails"
                run.junit.append(inputs["report_paths"])
            else:
                raise AssertionError(f"{name}: the test does not know how to play the action {action}")
            continue
        script = str(step["run"])
        if _is_install(script):
            continue  # the venv, see the module's docstring
        step_env = dict(env)
        for line in github_env.read_text().splitlines():  # what earlier steps put in $GITHUB_ENV
            key, sep, value = line.partition("=")
            if sep:
                step_env[key] = value
        step_env.update({k: _expand(v, context) for k, v in (step.get("env") or {}).items()})
        path = tmp / f"step-{n}.sh"
        path.write_text(script)
        code, output = _run_shell(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)], project, step_env)
        run.steps.append((name, code))
        run.output += f"\n##[step] {name}: exit {code}\n{output}"
    return run


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """GitLab's `extends`: hashes merge deeply, anything else is replaced."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def gitlab_job(config: dict[str, Any], job_name: str) -> dict[str, Any]:
    job = dict(config[job_name])
    parent = job.pop("extends", None)
    return _merged(gitlab_job(config, parent), job) if parent else job


def run_gitlab_job(
    config: dict[str, Any], job_name: str, tmp: Path, *, matrix: dict[str, str],
    variables: dict[str, str] | None = None,
) -> JobRun:
    job = gitlab_job(config, job_name)
    project = tmp / "builds" / "project"
    _copy_project(project)  # GitLab's clone
    run = JobRun(project)
    env = _runner_env(project, tmp)
    env.update(GITLAB_CI="true", CI_PROJECT_DIR=str(project), CI_JOB_NAME=job_name)
    choices = [entry for entry in (job.get("parallel") or {}).get("matrix") or []]
    allowed = {k: v if isinstance(v, list) else [v] for entry in choices for k, v in entry.items()}
    for key, value in matrix.items():
        assert value in allowed.get(key, []), f"{key}={value} is not in the job's parallel matrix {allowed}"
    env.update({k: str(v) for k, v in (config.get("variables") or {}).items()})
    env.update({k: str(v) for k, v in (job.get("variables") or {}).items() if k != "EMULATOR_CONTROL_PORT"})
    env.update(matrix)
    env.update(variables or {})
    lines = [str(line) for line in (job.get("before_script") or []) + (job.get("script") or [])]
    lines = [line for line in lines if not _is_install(line)]  # the venv, see the module's docstring
    path = tmp / "job.sh"
    path.write_text("set -eo pipefail\n" + "\n".join(lines) + "\n")
    code, output = _run_shell(["bash", "--noprofile", "--norc", str(path)], project, env)
    run.steps.append((job_name, code))
    run.output = output
    artifacts = job.get("artifacts") or {}
    assert artifacts.get("when") == "always", f"{job_name}: artifacts must be kept even when the job fails"
    run.artifacts = list(artifacts.get("paths") or [])
    junit = (artifacts.get("reports") or {}).get("junit")
    run.junit = [junit] if isinstance(junit, str) else list(junit or [])
    return run


# --- what a run must show ----------------------------------------------------------------------------


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _testcases(junit: Path) -> list[ET.Element]:
    return list(ET.parse(junit).getroot().iter("testcase"))


def _requirements_of(case: ET.Element) -> list[str]:
    return [p.get("value", "") for p in case.iter("property") if p.get("name") == "requirement"]


def check_artifacts(run: JobRun) -> dict[str, Any]:
    """The report folder exists whatever the verdict; JUnit testcases carry their requirements."""
    for pattern in run.artifacts:
        assert list(run.project.glob(pattern.rstrip("/"))), f"artifact path {pattern!r} matched nothing"
    reports = run.project / "reports"
    for name in ("certification.json", "certification.html", "junit.xml", "summary.md"):
        assert (reports / name).is_file(), f"reports/{name} missing"
    assert run.junit == ["reports/junit.xml"]
    report = __import__("json").loads((reports / "certification.json").read_text())
    cases = _testcases(reports / "junit.xml")
    covered: dict[str, list[ET.Element]] = {}
    for case in cases:
        ids = _requirements_of(case)
        assert ids, f"testcase {case.get('name')} has no requirement property"
        for rid in ids:
            covered.setdefault(rid, []).append(case)
        # The requirement IDs lead the testcase's name (the CI's test view sorts and groups by it).
        assert re.match(r"^[A-Z]+-\d+(, [A-Z]+-\d+)*: test_", case.get("name", "")), case.get("name")
    tested = {r["id"] for r in report["requirements"] + report.get("advisory_requirements", []) if r.get("tests")}
    mandatory = {r.id for r in REQUIREMENTS if r.kind == MANDATORY}
    assert mandatory <= tested, f"mandatory requirements without a test: {mandatory - tested}"
    for rid in tested:
        named = [c for c in covered.get(rid, []) if rid in c.get("name", "").split(": ")[0].split(", ")]
        assert named, f"no JUnit testcase named for and tagged with {rid}"
    for case in cases:
        # Advisory findings are never failures: a testcase about advisory requirements only passes.
        ids = _requirements_of(case)
        advisory = any(p.get("name") == "advisory" for p in case.iter("property"))
        if advisory or all(i.startswith("ADV-") for i in ids):
            assert case.find("failure") is None, f"advisory testcase {case.get('name')} is a failure"
    return report


def _summary(run: JobRun) -> str:
    text = (run.project / "reports" / "summary.md").read_text()
    if run.step_summary is not None:
        assert run.step_summary.is_file(), "nothing was appended to $GITHUB_STEP_SUMMARY"
        assert text.strip() in run.step_summary.read_text()
    return text


def check_passed(run: JobRun) -> None:
    assert not run.failed, f"the job failed: {run.steps}\n{run.output[-6000:]}"
    report = check_artifacts(run)
    assert report["overall"] == "rehearsal passed", report["overall_reason"]
    summary = _summary(run)
    assert "REHEARSAL PASSED" in summary and "reports/certification.html" in summary
    assert _last_line(run.output).startswith("ev.energy verdict: REHEARSAL PASSED (exit status 0"), _last_line(run.output)
    # CI output (CI=true): nothing rewritten in place; colour, as GitHub's and GitLab's logs render it.
    assert "\r" not in run.output and "\x1b[" in run.output


def check_failed_on_defect(run: JobRun) -> None:
    assert run.failed, f"the job passed with the defect {DEFECT}:\n{run.output[-6000:]}"
    harness_step = [code for name, code in run.steps if code != 0]
    assert harness_step == [1], f"only the harness's step fails, with exit status 1 (not certified): {run.steps}"
    report = check_artifacts(run)
    assert report["overall"] == "not certified"
    failed = [r["id"] for r in report["requirements"] if r["verdict"] == "fail"]
    assert failed == [DEFECT_REQUIREMENT], failed
    summary = _summary(run)
    assert "NOT CERTIFIED" in summary
    assert re.search(rf"\*\*{DEFECT_REQUIREMENT}\*\* .*\| fail \|", summary), summary
    cases = _testcases(run.project / "reports" / "junit.xml")
    failures = [c.get("name", "") for c in cases if c.find("failure") is not None]
    assert failures and all(n.startswith(f"{DEFECT_REQUIREMENT}: ") for n in failures), failures
    last = _last_line(run.output)
    assert last.startswith("ev.energy verdict: NOT CERTIFIED (exit status 1") and f"fail: {DEFECT_REQUIREMENT}" in last, last


def _long_lived_ca(tmp: Path) -> tuple[str, str]:
    """A CA made once, as the examples tell a manufacturer (python -m harness certs), as CI secrets hold it."""
    directory = tmp / "long-lived-ca"
    tls.CertStore(directory).ensure()
    return (directory / "ca.pem").read_text(), (directory / "ca.key").read_text()


def check_secret_ca_used(run: JobRun, certs: Path, key: str) -> None:
    assert stat.S_IMODE((certs / "ca.key").stat().st_mode) == 0o600
    assert list(certs.glob("server-*.pem")), "the harness did not use the long-lived CA's folder"
    assert not (run.project / "certs" / "ca.pem").exists(), "the harness made a CA of its own instead"
    body = "".join(key.strip().splitlines()[1:-1])[:64]  # a stretch of the key's base64
    assert body not in run.output, "the CA key was printed"
    for path in run.project.rglob("*"):
        if path.is_file() and path.parent != run.project / "certs":
            assert body not in path.read_text(errors="replace"), f"the CA key is in {path}"


# --- the tests -----------------------------------------------------------------------------------------


# The stand-in emulator's acts are curl calls to its control API (examples/ci/emulator.sh), as on a CI image
# (GitHub's ubuntu runners and the python Docker images have curl).
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="examples/ci/emulator.sh needs curl")


@pytest.fixture(scope="module")
def github() -> dict[str, Any]:
    return yaml_subset.load(GITHUB.read_text())


@pytest.fixture(scope="module")
def gitlab() -> dict[str, Any]:
    return yaml_subset.load(GITLAB.read_text())


@needs_curl
def test_github_quick_gate_passes_a_conformant_emulator(github: dict[str, Any], tmp_path: Path) -> None:
    run = run_github_job(github, "quick", tmp_path, matrix={"model": "3-phase"})
    check_passed(run)
    assert "harness CA: made for this run" in run.output
    assert (run.project / "certs" / "ca.pem").is_file()  # the per-run CA, handed to the emulator as {ca_file}


@needs_curl
def test_github_quick_gate_fails_on_a_defect_with_the_ca_from_secrets(github: dict[str, Any], tmp_path: Path) -> None:
    pem, key = _long_lived_ca(tmp_path)
    run = run_github_job(
        github, "quick", tmp_path, matrix={"model": "1-phase"},
        secrets={"HARNESS_CA_PEM": pem, "HARNESS_CA_KEY": key}, job_env={"EMULATOR_ARGS": f"--defect {DEFECT}"},
    )
    check_failed_on_defect(run)
    assert [name for name, _ in run.steps][-1] == "Rehearsal (quick mode)"
    assert run.skipped == [], "the upload and the JUnit run after the failure (if: always())"
    check_secret_ca_used(run, tmp_path / "runner-temp" / "harness-certs", key)


@needs_curl
def test_gitlab_quick_gate_passes_a_conformant_emulator(gitlab: dict[str, Any], tmp_path: Path) -> None:
    run = run_gitlab_job(gitlab, "ocpp-quick", tmp_path, matrix={"CHARGER_MODEL": "1-phase"})
    check_passed(run)
    assert "harness CA: made for this run" in run.output


@needs_curl
def test_gitlab_quick_gate_fails_on_a_defect_with_the_ca_from_file_variables(gitlab: dict[str, Any], tmp_path: Path) -> None:
    pem, key = _long_lived_ca(tmp_path)
    files = tmp_path / "variables"
    files.mkdir()
    (files / "HARNESS_CA_PEM").write_text(pem)
    (files / "HARNESS_CA_KEY").write_text(key)
    run = run_gitlab_job(
        gitlab, "ocpp-quick", tmp_path, matrix={"CHARGER_MODEL": "3-phase"},
        variables={
            "HARNESS_CA_PEM": str(files / "HARNESS_CA_PEM"), "HARNESS_CA_KEY": str(files / "HARNESS_CA_KEY"),
            "EMULATOR_ARGS": f"--defect {DEFECT}",
        },
    )
    check_failed_on_defect(run)
    (certs,) = [p.parent for p in (tmp_path / "tmp").glob("*/ca.key")]  # mktemp -d under the runner's TMPDIR
    check_secret_ca_used(run, certs, key)


def _pytest_command(script: str) -> str:
    """The harness's command line in a step (continuation lines joined)."""
    joined = script.replace("\\\n", " ")
    (line,) = [ln.strip() for ln in joined.splitlines() if ln.strip().startswith("python -m pytest ")]
    return " ".join(line.split())


def test_github_certification_gate(github: dict[str, Any], tmp_path: Path) -> None:
    """Release branches and tags; the quick gate's command with --mode certification and nothing else; it runs
    as written (collection only: its minutes are the certification-speed issue's, tested there)."""
    job = github["jobs"]["certification"]
    assert "refs/tags/" in job["if"] and "refs/heads/release/" in job["if"]
    assert job["needs"] == "quick"
    assert int(job["timeout-minutes"]) >= 30  # ~5 min a model, with room for a slow runner
    quick = [_pytest_command(s["run"]) for s in github["jobs"]["quick"]["steps"] if "pytest" in str(s.get("run"))]
    cert = [_pytest_command(s["run"]) for s in job["steps"] if "pytest" in str(s.get("run"))]
    assert cert == [q.replace("--mode quick", "--mode certification") for q in quick] and "--mode certification" in cert[0]
    assert job["strategy"] == github["jobs"]["quick"]["strategy"]
    assert [s.get("if") for s in job["steps"] if "uses" in s][-2:] == ["always()", "always()"]
    run = run_github_job(
        github, "certification", tmp_path, matrix={"model": "3-phase"}, job_env={"PYTEST_ADDOPTS": "--collect-only -q"}
    )
    assert not run.failed, run.output[-4000:]
    assert re.search(r"\b65 tests collected|\d+ tests collected", run.output), run.output[-2000:]


def test_gitlab_certification_gate(gitlab: dict[str, Any], tmp_path: Path) -> None:
    job = gitlab_job(gitlab, "ocpp-certification")
    rules = [r["if"] for r in job["rules"]]
    assert "$CI_COMMIT_TAG" in rules and any("release" in r for r in rules)
    assert int(job["timeout"].rstrip("m")) >= 30
    quick = gitlab_job(gitlab, "ocpp-quick")
    assert [_pytest_command(s) for s in job["script"]] == [
        _pytest_command(s).replace("--mode quick", "--mode certification") for s in quick["script"]
    ]
    assert "--mode certification" in job["script"][0]
    assert job["stage"] == "certification" and gitlab["stages"].index("certification") > gitlab["stages"].index("quick")
    run = run_gitlab_job(
        gitlab, "ocpp-certification", tmp_path, matrix={"CHARGER_MODEL": "1-phase"},
        variables={"PYTEST_ADDOPTS": "--collect-only -q"},
    )
    assert not run.failed, run.output[-4000:]
    assert re.search(r"\d+ tests collected", run.output), run.output[-2000:]


def test_the_matrix_names_a_profile_for_every_model(github: dict[str, Any], gitlab: dict[str, Any]) -> None:
    """One job per charger model; each model's profile exists and is a `command`-backend profile."""
    from harness import profile

    models = github["jobs"]["quick"]["strategy"]["matrix"]["model"]
    assert models == gitlab_job(gitlab, "ocpp-quick")["parallel"]["matrix"][0]["CHARGER_MODEL"]
    assert len(models) >= 2
    for model in models:
        loaded = profile.load(EXAMPLES / f"charger-{model}.toml")
        assert loaded.values["charger"] == "command"
        assert {"start", "stop", "plugin", "plugout", "authorize", "fault", "network", "reboot"} <= set(loaded.commands)


def test_the_examples_wait_for_nothing_of_their_own() -> None:
    """Certification mode takes the time the protocol imposes: no sleeps, no extra timeout factor in the recipe."""
    for path in EXAMPLES.iterdir():
        text = path.read_text()
        assert not re.search(r"\bsleep\b", text), f"{path.name} sleeps"
        assert "--timeout-factor" not in text and "timeout_factor" not in text, path.name


def test_the_yaml_subset_reads_the_examples_as_pyyaml_does() -> None:
    yaml = pytest.importorskip("yaml")
    for path in (GITHUB, GITLAB):
        assert yaml_subset.load(path.read_text()) == yaml_subset.normalised(yaml.safe_load(path.read_text()))
