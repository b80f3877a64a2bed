"""No fixed sleeps in harness/ and suites/: every wait is for an event, bounded by a timeout.

A fixed sleep is either too short (a flake on a slow machine or a slow charger) or too long (a
slow certification run), usually both. The harness waits for what it is waiting for (a frame, a
state change, a connection attempt) with `expect`, `wait_until`, `wait_attempt`, each bounded.

This test reads every module of harness/ and suites/ (ast, no import) and finds each sleep:
`asyncio.sleep(...)`, `time.sleep(...)` (whatever the import spelling), and the disguised one,
waiting on a brand-new `asyncio.Event()` under a timeout. Then:

1. a sleep whose duration is a constant (a literal, arithmetic on literals, a module-level
   constant, or a constant branch of `x if c else 0.5`) is a fixed sleep: not allowed, except at
   the places listed in ALLOWED that are in harness/sim (the reference charger's own timers);
2. every other sleep must be a place listed in ALLOWED, with the reason it is not a synchronisation
   (a protocol timer of the reference charger, a deliberate observation window of a length the
   protocol sets, …); a new sleep anywhere else fails here: replace it with an event-driven wait,
   or add it to ALLOWED with its reason;
3. every ALLOWED place still has its sleep (the list stays true).

`asyncio.sleep(0)` (a yield to the event loop, no wait) is not a sleep.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("harness", "suites")

# (path, function qualname) -> why this sleep is not a fixed synchronisation wait.
ALLOWED: dict[tuple[str, str], str] = {
    # --- the reference charger's own timers: it is a charger, and these are its clocks ---------
    ("harness/sim/charger.py", "ReferenceCharger._power_cycle"):
        "the charger's boot time: from power-on to its first connection attempt (SimConfig.power_on_delay)",
    ("harness/sim/link.py", "LinkMixin._sleep_unless_network_returns"):
        "the charger's reconnection backoff (bounded exponential, with jitter) between connection attempts; "
        "it ends early when the network comes back",
    ("harness/sim/charger.py", "ReferenceCharger._handle_call"):
        "the 'slow-responses' defect (a negative control): a charger that answers every request late",
    ("harness/sim/transfers.py", "TransfersMixin._update_firmware"):
        "UpdateFirmware timers (OCPP 1.6 §5.19): wait until retrieveDate, retryInterval between download "
        "attempts, and the charger's installation time (SimConfig.install_time); the 'installs-after-failed-download' "
        "defect's delay (SimConfig.late_defect_delay)",
    ("harness/sim/transfers.py", "TransfersMixin._upload_diagnostics"):
        "GetDiagnostics retryInterval between upload attempts (OCPP 1.6 §5.9)",
    # --- outside the reference charger ---------------------------------------------------------
    ("harness/drivers/manual.py", "_LineReader.line"):
        "manual backend, operator prompt: when stdin is at its end or a regular file (it cannot be waited "
        "on), the prompt loop ticks (evidence check, countdown) every POLL seconds until the operator's "
        "deadline; human-paced, never used with the reference charger",
    ("harness/metered_session/connection_loss.py", "with_connection_loss"):
        "NF-2's offline window: the charger must produce transaction data while offline, which the platform "
        "cannot observe; 2.1 of the charger's sampling periods (at most 150 s) give the sample that straddles the "
        "EV's pause and one while suspended, and let a loss show (a window the charger's sampling sets, not a synchronisation; docs/rules-offline.md)",
}


@dataclass(frozen=True)
class Sleep:
    path: str
    line: int
    function: str
    call: str  # the source of the call
    constant: str | None  # why its duration is constant, else None

    def __str__(self) -> str:
        what = f"fixed sleep ({self.constant})" if self.constant else "sleep"
        return f"{self.path}:{self.line} in {self.function}: {what}: {self.call}"


class _Scanner(ast.NodeVisitor):
    def __init__(self, path: str, source: str, tree: ast.Module) -> None:
        self.path = path
        self.source = source
        self.found: list[Sleep] = []
        self.stack: list[str] = []
        self.parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
        # How the module spells asyncio/time and their sleep functions.
        self.modules: dict[str, str] = {}  # local name -> "asyncio" / "time"
        self.sleeps: set[str] = set()  # local names bound to asyncio.sleep / time.sleep
        self.events: set[str] = set()  # local names bound to asyncio.Event
        self.constants: dict[str, ast.expr] = {}  # module-level NAME = <constant expression>
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                self.constants[node.targets[0].id] = node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                self.constants[node.target.id] = node.value
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in ("asyncio", "time"):
                        self.modules[alias.asname or alias.name] = alias.name
            elif isinstance(node, ast.ImportFrom) and node.module in ("asyncio", "time"):
                for alias in node.names:
                    if alias.name == "sleep":
                        self.sleeps.add(alias.asname or alias.name)
                    elif alias.name == "Event" and node.module == "asyncio":
                        self.events.add(alias.asname or alias.name)

    # --- where we are ----------------------------------------------------------------------------

    def _scope(self, node: ast.AST) -> None:
        self.stack.append(node.name)  # type: ignore[attr-defined]
        self.generic_visit(node)
        self.stack.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scope  # noqa: N815

    @property
    def function(self) -> str:
        return ".".join(self.stack) or "<module>"

    # --- what is a sleep -------------------------------------------------------------------------

    def _is_sleep(self, func: ast.expr) -> bool:
        if isinstance(func, ast.Name):
            return func.id in self.sleeps
        return (
            isinstance(func, ast.Attribute)
            and func.attr == "sleep"
            and isinstance(func.value, ast.Name)
            and func.value.id in self.modules
        )

    def _is_new_event_wait(self, node: ast.Call) -> bool:
        """`asyncio.Event().wait()`: an event nobody else holds, so nobody can set it."""
        func = node.func
        if not (isinstance(func, ast.Attribute) and func.attr == "wait" and isinstance(func.value, ast.Call)):
            return False
        maker = func.value.func
        if isinstance(maker, ast.Name):
            return maker.id in self.events
        return (
            isinstance(maker, ast.Attribute) and maker.attr == "Event"
            and isinstance(maker.value, ast.Name) and self.modules.get(maker.value.id) == "asyncio"
        )

    def _bounded(self, node: ast.AST) -> ast.expr | None:
        """The timeout bounding `node` (wait_for(..., t) or `async with asyncio.timeout(t)`), if any."""
        child, parent = node, self.parents.get(node)
        while parent is not None and not isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Attribute) and parent.func.attr == "wait_for":
                args = list(parent.args) + [k.value for k in parent.keywords if k.arg == "timeout"]
                if len(args) >= 2 and child is args[0]:
                    return args[1]
            if isinstance(parent, ast.AsyncWith) and child in parent.body:
                for item in parent.items:
                    ctx = item.context_expr
                    if (isinstance(ctx, ast.Call) and isinstance(ctx.func, ast.Attribute)
                            and ctx.func.attr in ("timeout", "timeout_at") and ctx.args):
                        return ctx.args[0]
            child, parent = parent, self.parents.get(parent)
        return None

    def _constant(self, expr: ast.expr, seen: frozenset[str] = frozenset()) -> str | None:
        """Why `expr` is a constant duration, or None when it depends on something at run time."""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, (int, float)) and not isinstance(expr.value, bool):
            return f"{expr.value!r} s"
        if isinstance(expr, ast.UnaryOp):
            return self._constant(expr.operand, seen)
        if isinstance(expr, ast.BinOp):
            left, right = self._constant(expr.left, seen), self._constant(expr.right, seen)
            return f"{ast.unparse(expr)}" if left and right else None
        if isinstance(expr, ast.Name) and expr.id in self.constants and expr.id not in seen:
            inner = self._constant(self.constants[expr.id], seen | {expr.id})
            return f"module constant {expr.id} = {ast.unparse(self.constants[expr.id])}" if inner else None
        if isinstance(expr, ast.IfExp):
            for branch in (expr.body, expr.orelse):
                why = self._constant(branch, seen)
                if why:
                    return f"branch {ast.unparse(branch)} of {ast.unparse(expr)}"
            return None
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id in ("min", "max", "float", "int"):
            whys = [self._constant(a, seen) for a in expr.args]
            # min(CONST, x) sleeps at most CONST: still a poll with a fixed period
            return ast.unparse(expr) if whys and (all(whys) or expr.func.id == "min" and any(whys)) else None
        return None

    def visit_Call(self, node: ast.Call) -> None:  # noqa: N802
        duration: ast.expr | None = None
        is_sleep = False
        if self._is_sleep(node.func):
            is_sleep = True
            args = list(node.args) + [k.value for k in node.keywords if k.arg in ("delay", "secs", "seconds")]
            duration = args[0] if args else None
            if isinstance(duration, ast.Constant) and duration.value == 0:
                is_sleep = False  # sleep(0): a yield to the loop, not a wait
        elif self._is_new_event_wait(node):
            duration = self._bounded(node)
            is_sleep = duration is not None  # unbounded: waits forever (a deliberate hang), not a sleep
        if is_sleep:
            self.found.append(
                Sleep(
                    self.path,
                    node.lineno,
                    self.function,
                    ast.get_source_segment(self.source, node) or ast.unparse(node),
                    self._constant(duration) if duration is not None else None,
                )
            )
        self.generic_visit(node)


def scan(root: Path = ROOT) -> list[Sleep]:
    found: list[Sleep] = []
    for top in SCANNED:
        for file in sorted((root / top).rglob("*.py")):
            if any(part.startswith(".") or part == "__pycache__" for part in file.parts):
                continue
            source = file.read_text(encoding="utf-8")
            relative = file.relative_to(root).as_posix()
            tree = ast.parse(source, filename=relative)
            scanner = _Scanner(relative, source, tree)
            scanner.visit(tree)
            found.extend(scanner.found)
    return found


@pytest.fixture(scope="module")
def sleeps() -> list[Sleep]:
    return scan()


def test_no_fixed_sleeps(sleeps: list[Sleep]) -> None:
    """Rule 1: no constant-duration sleep outside the reference charger's own timers."""
    fixed = [
        s for s in sleeps
        if s.constant and not ((s.path, s.function) in ALLOWED and s.path.startswith("harness/sim/"))
    ]
    assert not fixed, (
        "fixed sleeps in harness/ or suites/ (wait for the event instead, bounded by a timeout):\n  "
        + "\n  ".join(map(str, fixed))
    )


def test_every_sleep_is_an_allowed_timer(sleeps: list[Sleep]) -> None:
    """Rule 2: every other sleep is at a place listed in ALLOWED, with its reason."""
    unlisted = [s for s in sleeps if (s.path, s.function) not in ALLOWED]
    assert not unlisted, (
        "sleeps at places not listed in tests/test_no_sleeps.py ALLOWED: replace them with an event-driven, "
        "bounded wait, or (a charger timer, a protocol-length window) add the place with its reason:\n  "
        + "\n  ".join(map(str, unlisted))
    )


def test_allowed_list_is_current(sleeps: list[Sleep]) -> None:
    """Rule 3: each ALLOWED place still sleeps (remove entries whose sleep is gone)."""
    places = {(s.path, s.function) for s in sleeps}
    stale = sorted(f"{path} {function}" for path, function in ALLOWED if (path, function) not in places)
    assert not stale, "ALLOWED lists places without a sleep any more: " + "; ".join(stale)


def test_scanner_finds_every_spelling(tmp_path: Path) -> None:
    """The scanner itself: each spelling of a sleep is found, constants are told from run-time values."""
    (tmp_path / "harness").mkdir()
    (tmp_path / "suites").mkdir()
    (tmp_path / "harness" / "m.py").write_text(
        "import asyncio, time\n"
        "import asyncio as aio\n"
        "from asyncio import sleep as nap, Event\n"
        "from time import sleep\n"
        "TICK = 0.25\n"
        "async def a(x):\n"
        "    await asyncio.sleep(0.5)\n"
        "    await aio.sleep(TICK * 2)\n"
        "    await nap(x)\n"
        "    time.sleep(1)\n"
        "    sleep(x)\n"
        "    await asyncio.sleep(0)\n"
        "    await asyncio.sleep(2 * x if x else 1.0)\n"
        "    await asyncio.wait_for(asyncio.Event().wait(), 3)\n"
        "    async with asyncio.timeout(x):\n"
        "        await Event().wait()\n"
        "    await asyncio.Event().wait()\n"
        "class C:\n"
        "    async def b(self):\n"
        "        await asyncio.sleep(self.delay)\n",
        encoding="utf-8",
    )
    found = scan(tmp_path)
    got = [(s.line, s.function, s.constant is not None) for s in found]
    assert got == [
        (7, "a", True),
        (8, "a", True),
        (9, "a", False),
        (10, "a", True),
        (11, "a", False),
        (13, "a", True),
        (14, "a", True),
        (16, "a", False),
        (20, "C.b", False),
    ], got
