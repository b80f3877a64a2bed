"""`--charger command`: each physical act is a shell command taken from the charger profile.

    [rig.command]
    timeout = 30
    plugin  = "./rig plug {connector}"
    network = "./rig network {online}"

Placeholders: {connector}, {id_tag}, {online}, {suspended}, {faulted} (booleans as `true` /
`false`), {charger_id}; the hooks `start` (run once before the first test: {url}, {ca_file},
{security_profile}) and `stop` (after the last). Substituted values are shell-quoted. Commands
run with /bin/sh in the profile's folder, stdin closed, with the values also in the environment
(HARNESS_ACT, HARNESS_CONNECTOR, HARNESS_ID_TAG, …; HARNESS_AUTHORIZATION_KEY for `start` only,
so that a key never appears on a command line).

- exit status 0: the act is done (the harness then waits for the charger's OCPP messages);
- non-zero exit, or no exit within the timeout: RigError, with the command's output;
- no command for an act: ActNotSupported, and the test that needs it is "not tested".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from harness.drivers.base import ActNotSupported, ChargerBackend, EndpointInfo, RigError, refuse_if_interrupted
from harness.timing import DEFAULT_COMMAND_TIMEOUT

MAX_OUTPUT = 16 * 1024  # bytes of a command's output kept for the error message


def _word(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class CommandBackend(ChargerBackend):
    name = "command"

    def __init__(
        self,
        commands: Mapping[str, str],
        *,
        timeout: float = DEFAULT_COMMAND_TIMEOUT,  # seconds; the plugin gives Timing.command (scaled)
        cwd: str | Path | None = None,
        charger_id: str = "",
    ) -> None:
        self.commands = dict(commands)
        self.timeout = timeout
        self.cwd = Path(cwd) if cwd is not None else None
        self.charger_id = charger_id
        self._endpoint: EndpointInfo | None = None
        self.history: list[tuple[str, str, int]] = []  # (act, command, exit status), for the harness's tests

    # --- life cycle ----------------------------------------------------------------------------

    async def start(self, endpoint: EndpointInfo) -> None:
        self._endpoint = endpoint
        self.charger_id = self.charger_id or endpoint.charger_id
        if "start" in self.commands:
            env = {"HARNESS_AUTHORIZATION_KEY": endpoint.authorization_key or ""}
            await self._run(
                "start",
                # Absolute: the command runs in the profile's folder, not where the harness was started
                # (`--certs-dir certs` is relative to the latter).
                {"url": endpoint.url, "ca_file": os.path.abspath(endpoint.ca_file), "security_profile": endpoint.security_profile},
                extra_env=env,
                secret=endpoint.authorization_key,
            )

    async def stop(self) -> None:
        if "stop" in self.commands:
            await self._run("stop", {})

    # --- the acts ------------------------------------------------------------------------------

    async def plugin(self, connector: int = 1) -> None:
        await self._run("plugin", {"connector": connector})

    async def plugout(self, connector: int = 1) -> None:
        await self._run("plugout", {"connector": connector})

    async def authorize(self, id_tag: str, connector: int = 1) -> None:
        await self._run("authorize", {"id_tag": id_tag, "connector": connector})

    async def ev_suspend(self, suspended: bool, connector: int = 1) -> None:
        await self._run("ev_suspend", {"suspended": suspended, "connector": connector})

    async def fault(self, faulted: bool, connector: int = 1) -> None:
        await self._run("fault", {"faulted": faulted, "connector": connector})

    async def reboot(self) -> None:
        await self._run("reboot", {})

    async def network(self, online: bool) -> None:
        await self._run("network", {"online": online})

    # --- running one command -------------------------------------------------------------------

    def command_for(self, act: str, values: Mapping[str, object]) -> str:
        template = self.commands.get(act)
        if not template:
            raise ActNotSupported(act, f"the charger profile has no [rig.command] {act} command")
        words = {key: shlex.quote(_word(value)) for key, value in values.items()}
        words["charger_id"] = shlex.quote(self.charger_id)
        try:
            return template.format(**words)
        except (KeyError, IndexError, ValueError) as exc:  # the profile checks placeholders; belt and braces
            raise RigError(f"[rig.command] {act} = {template!r}: bad placeholder {exc}", act=act) from None

    async def _run(
        self, act: str, values: Mapping[str, object], *, extra_env: Mapping[str, str] | None = None, secret: str | None = None
    ) -> None:
        if act not in ("start", "stop"):  # the hooks still run (bounded): `stop` may shut an emulator down
            refuse_if_interrupted(act)
        command = self.command_for(act, values)
        env = dict(os.environ)
        env["HARNESS_ACT"] = act
        env["HARNESS_CHARGER_ID"] = self.charger_id
        for key, value in values.items():
            env[f"HARNESS_{key.upper()}"] = _word(value)
        env.update(extra_env or {})
        # Output goes to a file, not a pipe: a command may leave a background child holding its
        # output open (a `start` hook launching an emulator), and the harness must not wait for it.
        with tempfile.TemporaryFile() as output:
            try:
                process = await asyncio.create_subprocess_shell(
                    command,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=output,
                    stderr=asyncio.subprocess.STDOUT,
                    cwd=self.cwd,
                    env=env,
                    start_new_session=True,  # its own process group: a timeout kills the whole rig command
                )
            except OSError as exc:
                raise RigError(f"rig command for '{act}' could not start: {command}\n  {exc}", act=act) from None
            try:
                async with asyncio.timeout(self.timeout):
                    await process.wait()
            except TimeoutError:
                _kill_group(process)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(process.wait(), 5)
                self.history.append((act, command, -1))
                raise RigError(
                    f"rig command for '{act}' did not finish within {self.timeout:g} s (killed): {command}"
                    + _shown(_read(output), secret),
                    act=act,
                ) from None
            except BaseException:
                _kill_group(process)
                raise
            code = process.returncode if process.returncode is not None else -1
            self.history.append((act, command, code))
            if code != 0:
                raise RigError(
                    f"rig command for '{act}' failed with exit status {code}: {command}" + _shown(_read(output), secret),
                    act=act,
                )


def _read(output: IO[bytes]) -> bytes:
    output.seek(0)
    return output.read(MAX_OUTPUT + 1)


def _kill_group(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()


def _shown(output: bytes | bytearray, secret: str | None) -> str:
    text = bytes(output[:MAX_OUTPUT]).decode("utf-8", "replace").rstrip()
    if secret:
        text = text.replace(secret, "<redacted>")
    if not text:
        return "\n  (no output)"
    truncated = len(output) > MAX_OUTPUT
    lines = text.splitlines()
    return "\n  output:\n" + "\n".join("    " + line for line in lines) + ("\n    … (truncated)" if truncated else "")
