"""Installs the services virtualenv from the lock file and initialises devcloud's databases.

Stage: effect (venv, pip, `*-manage` commands). Called by lifecycle on `up`; both steps are
skipped when their stamp says they are done for this lock file. Must not start services or
talk to their APIs.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from gcloudctl.devcloud import supervisor
from gcloudctl.devcloud.config import Secrets
from gcloudctl.devcloud.layout import Layout
from gcloudctl.errors import GcloudctlError

Progress = Callable[[str], None]
HERE = Path(__file__).resolve().parent
LOCK_FILE = HERE / "files" / "requirements.lock"
PLUGINS_DIR = HERE / "plugins"


class InstallError(GcloudctlError):
    pass


def _tool_env(base: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in base.items() if k not in ("PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV", "PYTHONPATH")}


def content_hash() -> str:
    """Lock file + plugin sources (not the build/ and egg-info an in-tree build leaves behind)."""
    digest = hashlib.sha256(LOCK_FILE.read_bytes())
    sources = [PLUGINS_DIR / "pyproject.toml", *sorted((PLUGINS_DIR / "gcloudctl_devcloud_plugins").glob("*.py"))]
    for path in sources:
        digest.update(path.relative_to(PLUGINS_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK_FILE.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[_norm(name.strip())] = version.strip()
    return pins


def installed_pins(layout: Layout) -> dict[str, str]:
    """Distributions in the services venv, from their dist-info directory names."""
    out = {}
    if layout.site_packages.is_dir():
        for info in layout.site_packages.glob("*.dist-info"):
            name, _, version = info.name[: -len(".dist-info")].rpartition("-")
            if name:
                out[_norm(name)] = version
    return out


def pending_change(layout: Layout) -> tuple[set[str], set[str]]:
    """What installing the lock and plugins now would change in an existing venv:
    (pins installed with another version, plugin modules whose source differs). Added distributions
    are not listed (no running service imported them), nor are ones the lock dropped (`install`
    never removes a distribution)."""
    before = installed_pins(layout)
    locked = locked_pins()
    moved = {name for name, version in before.items() if name in locked and locked[name] != version}
    changed = set()
    target = layout.site_packages / "gcloudctl_devcloud_plugins"
    for source in (PLUGINS_DIR / "gcloudctl_devcloud_plugins").glob("*.py"):
        installed = target / source.name
        if installed.exists() and installed.read_bytes() == source.read_bytes():
            continue
        if installed.exists() or target.is_dir():
            changed.add(source.stem)
    return moved, changed


def venv_current(layout: Layout) -> bool:
    try:
        return layout.venv_stamp.read_text().strip() == content_hash()
    except OSError:
        return False


def ensure_venv(layout: Layout, progress: Progress, environ: dict[str, str]) -> bool:
    """Create or update the services venv from the lock file. Returns True when it installed.

    uv (a PyPI wheel, put under the devcloud dir) installs the ~170 locked wheels several
    times faster than pip; pip stays the fallback when uv cannot be had.
    """
    if venv_current(layout):
        return False
    env = _tool_env(environ)
    log = layout.logs / "install.log"
    started = time.monotonic()
    uv = _ensure_uv(layout, env, log, progress)
    python = layout.venv_bin / "python"
    if not python.exists():
        progress(f"creating the services virtualenv {layout.venv}")
        _run([sys.executable, "-m", "venv", *(["--without-pip"] if uv else []), str(layout.venv)], env, log)
    progress("installing OpenStack services from the lock file (first time: a minute or more)")
    if uv:
        uv_env = {**env, "SSL_CERT_FILE": env.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")}
        common = [str(uv), "pip", "install", "--no-deps", "--python", str(python), "--compile-bytecode", "-q"]
        _run([*common, "-r", str(LOCK_FILE)], uv_env, log)
        _run([*common, "--reinstall-package", "gcloudctl-devcloud-plugins", str(PLUGINS_DIR)], uv_env, log)
    else:
        common = [str(python), "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q"]
        _run([*common, "-r", str(LOCK_FILE)], env, log)
        _run([*common, "--force-reinstall", str(PLUGINS_DIR)], env, log)
    layout.venv_stamp.write_text(content_hash() + "\n")
    progress(f"services venv ready in {time.monotonic() - started:.0f}s (with the ML2 plugin)")
    return True


def _ensure_uv(layout: Layout, env: dict[str, str], log: Path, progress: Progress) -> Path | None:
    tools = layout.root / "tools"
    uv = tools / "bin" / "uv"
    if uv.exists():
        return uv
    progress("fetching uv (PyPI wheel) to install the services quickly")
    try:
        _run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--target",
              str(tools), "uv"], env, log)
    except InstallError:
        progress("uv unavailable; falling back to pip (slower)")
        return None
    return uv if uv.exists() else None


def _run(argv: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        fh.write(f"\n$ {' '.join(argv)}\n".encode())
        fh.flush()
        proc = subprocess.run(argv, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=cwd)
    if proc.returncode != 0:
        raise InstallError(f"`{' '.join(argv[:6])}…` failed (exit {proc.returncode}); log {log}:\n"
                           f"{supervisor.tail(log, 15)}")


def _manage_steps(layout: Layout, secrets: Secrets) -> dict[str, list[list[str]]]:
    """Independent chains of *-manage calls, each run in order; chains run in parallel."""
    b = layout.venv_bin
    ks = ["--config-file", str(layout.config_dir("keystone") / "keystone.conf")]
    nova = ["--config-file", str(layout.config_dir("nova") / "nova.conf")]
    neutron = ["--config-file", str(layout.config_dir("neutron") / "neutron.conf"),
               "--config-file", str(layout.config_dir("neutron") / "ml2_conf.ini")]
    keystone_url = "http://127.0.0.1:5000/v3/"
    return {
        "keystone": [
            [str(b / "keystone-manage"), *ks, "db_sync"],
            [str(b / "keystone-manage"), *ks, "fernet_setup", "--keystone-user", "root", "--keystone-group", "root"],
            [str(b / "keystone-manage"), *ks, "credential_setup", "--keystone-user", "root", "--keystone-group", "root"],
            [str(b / "keystone-manage"), *ks, "bootstrap", "--bootstrap-password", secrets.admin_password,
             "--bootstrap-admin-url", keystone_url, "--bootstrap-internal-url", keystone_url,
             "--bootstrap-public-url", keystone_url, "--bootstrap-region-id", "RegionOne"],
        ],
        "placement": [[str(b / "placement-manage"), "--config-file",
                       str(layout.config_dir("placement") / "placement.conf"), "db", "sync"]],
        "glance": [[str(b / "glance-manage"), "--config-file",
                    str(layout.config_dir("glance") / "glance-api.conf"), "db_sync"]],
        "nova": [
            [str(b / "nova-manage"), *nova, "api_db", "sync"],
            [str(b / "nova-manage"), *nova, "cell_v2", "map_cell0"],
            [str(b / "nova-manage"), *nova, "cell_v2", "create_cell", "--name", "cell1"],
            [str(b / "nova-manage"), *nova, "db", "sync"],
        ],
        "neutron": [[str(b / "neutron-db-manage"), *neutron, "upgrade", "heads"]],
        "cinder": [cinder_db_sync(layout)],
    }


def cinder_db_sync(layout: Layout) -> list[str]:
    return [str(layout.venv_bin / "cinder-manage"), "--config-file",
            str(layout.config_dir("cinder") / "cinder.conf"), "db", "sync"]


def init_cinder_database(layout: Layout, progress: Progress, environ: dict[str, str]) -> None:
    """Cinder's schema in a devcloud whose other databases exist already (Cinder added later)."""
    started = time.monotonic()
    progress("initialising Cinder's database")
    _run(cinder_db_sync(layout), _tool_env(environ), layout.logs / "init-cinder.log")
    layout.cinder_db_stamp.write_text(f"{time.time():.0f}\n")
    progress(f"Cinder's database initialised in {time.monotonic() - started:.0f}s")


# create_cell exits 2 when the same cell already exists: fine on a re-run.
_TOLERATED = {"create_cell": (0, 2)}


def snapshot_dir(environ: dict[str, str]) -> Path:
    """Where the post-init database snapshot for this lock file lives (survives `down --purge`)."""
    cache = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", str(Path.home()))) / ".cache")
    key = hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()[:16]
    return Path(cache) / "gcloudctl" / "devcloud" / f"db-{key}"


def snapshot_secrets(snapshot: Path) -> Secrets | None:
    try:
        if (snapshot / "dump.sql").exists():
            return Secrets(**json.loads((snapshot / "secrets.json").read_text()))
    except (OSError, ValueError, TypeError):
        pass
    return None


def save_snapshot_secrets(snapshot: Path, secrets: Secrets) -> None:
    snapshot.mkdir(parents=True, exist_ok=True)
    snapshot.chmod(0o700)
    path = snapshot / "secrets.json"
    path.write_text(json.dumps(secrets.to_dict(), indent=2))
    path.chmod(0o600)


def keystone_key_repositories(layout: Layout, secrets: Secrets, environ: dict[str, str]) -> None:
    """Fernet and credential keys (they live in the dir, not in the database snapshot)."""
    chain = _manage_steps(layout, secrets)["keystone"][1:3]
    for argv in chain:
        _run(argv, _tool_env(environ), layout.logs / "init-keystone.log")


def init_databases(layout: Layout, secrets: Secrets, progress: Progress, environ: dict[str, str]) -> None:
    """Schema migrations and Keystone bootstrap, chains in parallel; stamp on success."""
    env = _tool_env(environ)
    chains = _manage_steps(layout, secrets)
    progress(f"initialising databases in parallel: {', '.join(chains)}")
    started = time.monotonic()
    procs = {}
    for name, chain in chains.items():
        log = layout.logs / f"init-{name}.log"
        procs[name] = (subprocess.Popen(["/bin/sh", "-c", _chain_shell(chain)], env=env,
                                        stdout=open(log, "ab"), stderr=subprocess.STDOUT), log)
    failed = []
    for name, (proc, log) in procs.items():
        if proc.wait() != 0:
            failed.append((name, log))
    if failed:
        name, log = failed[0]
        raise InstallError(f"database initialisation of {', '.join(n for n, _ in failed)} failed; log {log}:\n"
                           f"{supervisor.tail(log, 15)}",
                           hint="fix the cause, then re-run `gcloudctl devcloud up` (migrations are idempotent).")
    layout.db_stamp.write_text(f"{time.time():.0f}\n")
    layout.cinder_db_stamp.write_text(f"{time.time():.0f}\n")
    progress(f"databases initialised in {time.monotonic() - started:.0f}s")


def _chain_shell(chain: list[list[str]]) -> str:
    parts = []
    for argv in chain:
        quoted = " ".join(_quote(a) for a in argv)
        ok = _TOLERATED.get(argv[-3] if len(argv) >= 3 else "", (0,))
        if ok != (0,):
            parts.append(f"{{ {quoted}; rc=$?; [ $rc -eq 0 ] || [ $rc -eq 2 ]; }}")
        else:
            parts.append(quoted)
    return "set -e; " + " && ".join(parts)


def _quote(arg: str) -> str:
    return shlex.quote(arg)
