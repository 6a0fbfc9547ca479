"""SSH driver (paramiko): verified host keys, readiness probe with backoff, bastion hops.

Stage: driver (effects at the edge). Called by hardening (audit, readiness before ansible) and the
core's apply step. It must never trust a host key it has not seen in the server's console.

Host-key trust, in one place:
1. the console log (compute API, or a test host's console) carries cloud-init's block
   ``-----BEGIN SSH HOST KEY FINGERPRINTS-----`` and usually ``-----BEGIN SSH HOST KEY KEYS-----``;
   ``ConsoleHostKeys.parse`` reads the *last* such blocks (a rebuilt server prints new ones);
2. ``trust_console`` writes the keys whose SHA256 fingerprints appear in the fingerprint block
   to the tenant's known_hosts (replacing that host's old lines); a key in the KEYS block whose
   fingerprint is not listed is refused;
3. every connection uses that known_hosts with ``RejectPolicy`` (never AutoAddPolicy): a key that
   differs raises ``HostKeyMismatch``, an unknown host raises ``HostKeyUnknown``.

Idempotence: ``trust_console`` rewrites the same lines for the same console; ``wait_ready`` and
``run`` do not change the host unless the command does.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import select
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import paramiko

from gcloudctl.errors import Refused, TimeoutExpired, Unreachable
from gcloudctl.i18n import gettext  # not `_`: this module uses `_` for values it drops

log = logging.getLogger(__name__)

FP_BEGIN, FP_END = "-----BEGIN SSH HOST KEY FINGERPRINTS-----", "-----END SSH HOST KEY FINGERPRINTS-----"
KEYS_BEGIN, KEYS_END = "-----BEGIN SSH HOST KEY KEYS-----", "-----END SSH HOST KEY KEYS-----"
_FP_LINE = re.compile(r"(\d+)\s+(SHA256:[A-Za-z0-9+/]+=*)\s+.*?\((\w+)\)\s*$")
_KEY_LINE = re.compile(r"((?:ssh|ecdsa-sha2|sk-ssh|sk-ecdsa)[\w@.-]*)\s+([A-Za-z0-9+/]+=*)")


class HostKeyMismatch(Refused):
    """The server presented a key that is not the one its console printed."""


class HostKeyUnknown(Refused):
    """No verified key for this host yet: read its console first."""


# ---- console fingerprints ---------------------------------------------------------------------
def sha256_fingerprint(key_b64: str) -> str:
    digest = hashlib.sha256(base64.b64decode(key_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _last_block(text: str, begin: str, end: str) -> list[str] | None:
    start = text.rfind(begin)
    if start < 0:
        return None
    stop = text.find(end, start)
    if stop < 0:
        return None
    return text[start + len(begin):stop].splitlines()


@dataclass(frozen=True)
class ConsoleHostKeys:
    """Fingerprints (key type -> SHA256:...) and, when printed, full public keys."""

    fingerprints: dict[str, str]
    keys: tuple[tuple[str, str], ...] = ()  # (ssh key type, base64)

    @classmethod
    def parse(cls, console: str) -> "ConsoleHostKeys":
        lines = _last_block(console, FP_BEGIN, FP_END)
        if lines is None:
            raise HostKeyUnknown(gettext("the console log has no SSH host key fingerprint block"),
                                 hint=gettext("wait until cloud-init has finished first boot, then retry"))
        fps: dict[str, str] = {}
        for line in lines:
            m = _FP_LINE.search(line.strip())
            if m:
                fps[m.group(3).upper()] = m.group(2)
        if not fps:
            raise HostKeyUnknown(gettext("the console's fingerprint block is empty"))
        keys = []
        for line in _last_block(console, KEYS_BEGIN, KEYS_END) or []:
            m = _KEY_LINE.search(line)
            if m:
                keys.append((m.group(1), m.group(2)))
        return cls(fingerprints=fps, keys=tuple(keys))

    def allows(self, fingerprint: str) -> bool:
        return fingerprint in self.fingerprints.values()


_TENANT_FILE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")


def known_hosts_path(tenant: str, base: Path | str | None = None) -> Path:
    """Per-tenant known_hosts: $GCLOUDCTL_STATE_DIR/known_hosts/<tenant> (default ~/.local/state/gcloudctl).

    The tenant name becomes a file name, so it must be a plain one (letters, digits, `.`, `_`, `-`,
    not starting with a dot) and the path must stay inside the known_hosts directory (a symlink
    planted there is refused too); anything else is InvalidInput, before any file is touched."""
    from gcloudctl.errors import InvalidInput

    root = Path(base or os.environ.get("GCLOUDCTL_STATE_DIR")
                or Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local/state")) / "gcloudctl")
    if not isinstance(tenant, str) or not _TENANT_FILE.match(tenant):
        raise InvalidInput(gettext("tenant name {name!r} cannot name a known_hosts file", name=str(tenant)[:80]),
                           hint=gettext("a tenant name is a lowercase DNS label, e.g. byt-his-staging"))
    directory = (root / "known_hosts").resolve()
    path = (directory / tenant).resolve()
    if path.parent != directory:
        raise InvalidInput(gettext("known_hosts file for {tenant!r} resolves to {path}, outside {directory}",
                             tenant=tenant, path=path, directory=directory),
                           hint=gettext("remove the symlink from the known_hosts directory"))
    return directory / tenant


def _host_pattern(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def trust_console(known_hosts: Path, host: str, console: str, port: int = 22) -> ConsoleHostKeys:
    """Replace *host*'s lines in *known_hosts* with the console-verified keys (idempotent)."""
    parsed = ConsoleHostKeys.parse(console)
    pattern = _host_pattern(host, port)
    for ktype, b64 in parsed.keys:
        if not parsed.allows(sha256_fingerprint(b64)):
            raise HostKeyMismatch(gettext("{host}: console key {type} does not match the console fingerprints", host=host,
                                    type=ktype))
    known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    kept = []
    if known_hosts.exists():
        kept = [ln for ln in known_hosts.read_text().splitlines() if ln.split(" ", 1)[0] != pattern]
    lines = kept + [f"{pattern} {ktype} {b64}" for ktype, b64 in parsed.keys]
    known_hosts.write_text("\n".join(lines) + ("\n" if lines else ""))
    return parsed


class _ConsoleFingerprintPolicy(paramiko.MissingHostKeyPolicy):
    """Accepts an unknown key only if its fingerprint is in the console block, then records it."""

    def __init__(self, known_hosts: Path, console_keys: ConsoleHostKeys | None):
        self.known_hosts = known_hosts
        self.console_keys = console_keys

    def missing_host_key(self, client, hostname, key):
        fp = key.fingerprint
        if self.console_keys is None:
            raise HostKeyUnknown(gettext("{host}: no verified host key in {file}", host=hostname, file=self.known_hosts),
                                 hint=gettext("read the server's console fingerprints first (trust_console)"))
        if not self.console_keys.allows(fp):
            raise HostKeyMismatch(
                gettext("{host}: host key {type} {fingerprint} is not among the console fingerprints {known}", host=hostname,
                  type=key.get_name(), fingerprint=fp, known=sorted(self.console_keys.fingerprints.values())),
                hint=gettext("the server may be impersonated or rebuilt; re-read its console log"))
        with open(self.known_hosts, "a") as fh:
            fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


# ---- connection -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SshTarget:
    """Where and how to log in. `proxy_command` (%h %p %r) or `bastion` (direct-tcpip hop)."""

    host: str
    user: str
    port: int = 22
    key_file: str | None = None
    proxy_command: str | None = None
    bastion: "SshTarget | None" = None
    name: str | None = None

    def via(self, bastion: "SshTarget") -> "SshTarget":
        return replace(self, bastion=bastion, proxy_command=None)


def _proxy_sock(target: SshTarget):
    cmd = (target.proxy_command.replace("%h", target.host).replace("%p", str(target.port))
           .replace("%r", target.user))
    return paramiko.ProxyCommand(cmd)


@dataclass
class SshSession:
    """An open, verified connection (and the bastion chain under it). Use as a context manager."""

    client: paramiko.SSHClient
    target: SshTarget
    hops: list[paramiko.SSHClient] = field(default_factory=list)

    def run(self, command: str, timeout: float = 120.0, sudo: bool = False) -> tuple[int, str, str]:
        if sudo:
            command = "sudo -n -- sh -c " + _shquote(command)
        _, stdout, stderr = self.client.exec_command(command, timeout=timeout)
        out = stdout.read().decode("utf-8", "replace")
        err = stderr.read().decode("utf-8", "replace")
        channel = stdout.channel
        rc = channel.recv_exit_status()
        # let the transport answer the server's channel close before anyone closes the proxy
        deadline = time.monotonic() + 1.0
        while not channel.closed and time.monotonic() < deadline:
            time.sleep(0.01)
        return rc, out, err

    def close(self) -> None:
        self.client.close()
        for hop in reversed(self.hops):
            hop.close()

    def __enter__(self) -> "SshSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _shquote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def connect(target: SshTarget, known_hosts: Path, *, timeout: float = 10.0,
            console_keys: ConsoleHostKeys | None = None, password: str | None = None) -> SshSession:
    """Open a verified session; raises HostKeyMismatch/HostKeyUnknown, Unreachable, Refused (auth)."""
    hops: list[paramiko.SSHClient] = []
    sock = None
    if target.bastion is not None:
        hop = connect(target.bastion, known_hosts, timeout=timeout)
        hops = hop.hops + [hop.client]
        try:
            sock = hop.client.get_transport().open_channel(
                "direct-tcpip", (target.host, target.port), ("127.0.0.1", 0), timeout=timeout)
        except (paramiko.SSHException, OSError) as exc:
            hop.close()
            raise Unreachable(gettext("{host}:{port} via bastion {bastion}: {error}", host=target.host, port=target.port,
                                bastion=target.bastion.host, error=exc)) from exc
    elif target.proxy_command:
        sock = _proxy_sock(target)
    client = paramiko.SSHClient()
    if known_hosts.exists():
        client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(_ConsoleFingerprintPolicy(known_hosts, console_keys))
    try:
        client.connect(target.host, port=target.port, username=target.user, key_filename=target.key_file,
                       password=password, timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                       allow_agent=False, look_for_keys=False, sock=sock)
    except paramiko.BadHostKeyException as exc:
        _close_all(client, hops)
        raise HostKeyMismatch(
            gettext("{host}: host key {type} {fingerprint} differs from the verified key {expected} in {file}",
              host=target.host, type=exc.key.get_name(), fingerprint=exc.key.fingerprint,
              expected=exc.expected_key.fingerprint, file=known_hosts),
            hint=gettext("refusing to connect; if the server was rebuilt, re-read its console fingerprints")) from exc
    except (HostKeyMismatch, HostKeyUnknown):
        _close_all(client, hops)
        raise
    except paramiko.AuthenticationException as exc:
        _close_all(client, hops)
        raise Refused(gettext("{user}@{host}: authentication failed ({error})", user=target.user, host=target.host,
                        error=exc), hint=gettext("check the automation user's key")) from exc
    except (paramiko.SSHException, OSError, EOFError) as exc:
        _close_all(client, hops)
        raise Unreachable(f"{target.host}:{target.port}: {type(exc).__name__}: {exc}") from exc
    return SshSession(client=client, target=target, hops=hops)


def _close_all(client: paramiko.SSHClient, hops: list[paramiko.SSHClient]) -> None:
    client.close()
    for hop in reversed(hops):
        hop.close()


def banner_seen(target: SshTarget, timeout: float) -> bool:
    """Cheap probe: does something answer with an SSH banner? (no paramiko, no log noise)"""
    if target.bastion is not None:
        return True  # probed through the bastion's session by connect()
    deadline = time.monotonic() + timeout
    if target.proxy_command:
        proc = subprocess.Popen(
            _proxy_argv(target), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            ready, _, _ = select.select([proc.stdout], [], [], timeout)
            return bool(ready) and proc.stdout.read1(64).startswith(b"SSH-")
        finally:
            proc.kill()
            proc.wait()
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout) as sock:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def _proxy_argv(target: SshTarget) -> list[str]:
    cmd = (target.proxy_command.replace("%h", target.host).replace("%p", str(target.port))
           .replace("%r", target.user))
    return shlex.split(cmd)


@dataclass(frozen=True)
class ReadyResult:
    host: str
    attempts: int
    seconds: float


def wait_ready(target: SshTarget, known_hosts: Path, *, timeout: float = 180.0, first_delay: float = 0.5,
               factor: float = 1.7, max_delay: float = 8.0, connect_timeout: float = 10.0,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
               console: Callable[[], str] | None = None) -> ReadyResult:
    """Retry until `true` runs over a verified session; exponential backoff, overall timeout.

    A host-key mismatch or an authentication failure is permanent: raised at once, not retried.
    If *console* is given, the known_hosts entry is (re)written from it once its fingerprint
    block has appeared (keys printed without the KEYS block are verified by fingerprint at connect).
    """
    start = clock()
    delay, attempts, last, keys = first_delay, 0, None, None
    while True:
        attempts += 1
        try:
            if console is not None and keys is None:
                text = console()
                if FP_END not in text:
                    # first boot not finished (cloud-init restarts sshd before printing keys)
                    raise HostKeyUnknown(gettext("{host}: no fingerprint block on the console yet", host=target.host))
                keys = trust_console(known_hosts, target.host, text, target.port)
            # short timeouts first: a relay to a port nobody listens on yet looks like a silent peer
            attempt_timeout = min(connect_timeout, 2.0 * attempts)
            if not banner_seen(target, attempt_timeout):
                raise Unreachable(gettext("{host}:{port}: no SSH banner yet", host=target.host, port=target.port))
            with connect(target, known_hosts, timeout=attempt_timeout, console_keys=keys) as session:
                rc, _, err = session.run("true", timeout=connect_timeout)
                if rc == 0:
                    return ReadyResult(target.host, attempts, clock() - start)
                last = f"`true` exited {rc}: {err.strip()}"
        except (HostKeyUnknown, Unreachable, socket.timeout) as exc:
            last = str(exc)
        if clock() - start + delay > timeout:
            raise TimeoutExpired(gettext("{host}: SSH not ready after {attempts} attempts in {seconds}s; last error: "
                                   "{error}", host=target.host, attempts=attempts, seconds=round(clock() - start),
                                   error=last))
        log.debug("ssh %s not ready (%s); retry in %.1fs", target.host, last, delay)
        sleep(delay)
        delay = min(delay * factor, max_delay)


def allowed_auth_methods(target: SshTarget, known_hosts: Path, *, timeout: float = 10.0) -> list[str]:
    """The authentication methods the server offers *target.user* (host key verified first).

    Read-only: asks with the "none" method, which servers answer with the list of methods left.
    """
    sock = _proxy_sock(target) if target.proxy_command else None
    if target.bastion is not None:
        raise NotImplementedError("allowed_auth_methods through a bastion")
    transport = paramiko.Transport(sock or (target.host, target.port))
    try:
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        known = paramiko.HostKeys(str(known_hosts)) if known_hosts.exists() else paramiko.HostKeys()
        if not known.check(_host_pattern(target.host, target.port), key):
            raise HostKeyMismatch(gettext("{host}: host key {fingerprint} is not the verified one", host=target.host,
                                    fingerprint=key.fingerprint))
        try:
            transport.auth_none(target.user)
        except paramiko.BadAuthenticationType as exc:
            return sorted(exc.allowed_types)
        return ["none"]
    except (paramiko.SSHException, OSError) as exc:
        raise Unreachable(f"{target.host}:{target.port}: {exc}") from exc
    finally:
        transport.close()
