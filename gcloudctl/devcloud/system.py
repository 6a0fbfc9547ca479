"""MariaDB and RabbitMQ for devcloud: reuse the ones on loopback, else install and run our own.

Stage: effect (TCP probes, `mysql`/`rabbitmqctl`, apt-get, processes). Called by lifecycle
before any OpenStack service starts. Reused servers only get devcloud's own databases, user
and vhost added; they are never reconfigured, restarted or stopped. Must not bind anything
to an address other than 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gcloudctl.devcloud import supervisor
from gcloudctl.devcloud.layout import DATABASES, DB_USER, HOST, RABBIT_VHOST, Layout, db_name
from gcloudctl.errors import GcloudctlError

Progress = Callable[[str], None]
DEBIAN_PACKAGES = ("mariadb-server", "rabbitmq-server")
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
# Debian's /usr/sbin/rabbitmq-* wrappers `su` to the rabbitmq user (dropping our environment
# and cookie); the real scripts run as the caller.
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


class BackendError(GcloudctlError):
    pass


@dataclass(frozen=True)
class Backing:
    mysql_args: tuple[str, ...]  # connection arguments for the `mysql` client as root
    rabbitmqctl: tuple[str, ...]  # rabbitmqctl plus node arguments
    self_hosted: bool


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure(layout: Layout, progress: Progress) -> Backing:
    """Reuse MariaDB 127.0.0.1:3306 and RabbitMQ 127.0.0.1:5672, or bring up our own."""
    ours = any(supervisor.running(layout.pid_file(name)) for name in ("mariadb", "rabbitmq"))
    if not ours and tcp_open(HOST, 3306) and tcp_open(HOST, 5672):
        progress("reusing MariaDB 127.0.0.1:3306 and RabbitMQ 127.0.0.1:5672")
        return Backing(("-h", HOST, "-P", "3306", "-uroot"), ("rabbitmqctl",), self_hosted=False)
    return _self_hosted(layout, progress)


def prepare(backing: Backing, db_password: str) -> None:
    """Idempotent: devcloud's databases, its DB user, and its RabbitMQ vhost."""
    stmts = [f"CREATE DATABASE IF NOT EXISTS `{db_name(d)}` CHARACTER SET utf8mb4" for d in DATABASES]
    for host in ("127.0.0.1", "localhost"):
        stmts.append(f"CREATE USER IF NOT EXISTS '{DB_USER}'@'{host}' IDENTIFIED BY '{db_password}'")
        stmts.append(f"ALTER USER '{DB_USER}'@'{host}' IDENTIFIED BY '{db_password}'")
        stmts.append(f"GRANT ALL PRIVILEGES ON `devcloud\\_%`.* TO '{DB_USER}'@'{host}'")
    run_sql(backing, ";\n".join(stmts) + ";")
    _rabbitmqctl(backing, "add_vhost", RABBIT_VHOST, ok_if="already exists")
    _rabbitmqctl(backing, "set_permissions", "-p", RABBIT_VHOST, "guest", ".*", ".*", ".*")


def drop(backing: Backing) -> None:
    """Remove devcloud's databases and vhost (down --purge)."""
    run_sql(backing, ";\n".join(f"DROP DATABASE IF EXISTS `{db_name(d)}`" for d in DATABASES) + ";")
    _rabbitmqctl(backing, "delete_vhost", RABBIT_VHOST, ok_if="does not exist")


def dump(backing: Backing, target: Path) -> None:
    """mysqldump of devcloud's databases (schema + data), for the post-init snapshot."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        proc = subprocess.run(["mysqldump", *backing.mysql_args, "--single-transaction", "--skip-lock-tables",
                               "--databases", *(db_name(d) for d in DATABASES)],
                              stdout=out, stderr=subprocess.PIPE, timeout=300)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BackendError(f"mysqldump failed: {proc.stderr.decode(errors='replace').strip()[:400]}")
    tmp.replace(target)


def load(backing: Backing, source: Path) -> None:
    with open(source, "rb") as src:
        proc = subprocess.run(["mysql", *backing.mysql_args], stdin=src, stderr=subprocess.PIPE, timeout=300)
    if proc.returncode != 0:
        raise BackendError(f"loading the database snapshot {source} failed: "
                           f"{proc.stderr.decode(errors='replace').strip()[:400]}")


def run_sql(backing: Backing, sql: str) -> str:
    proc = subprocess.run(["mysql", *backing.mysql_args, "--batch"], input=sql, capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:
        raise BackendError(f"MariaDB refused devcloud's setup: {proc.stderr.strip()[:400]}",
                           hint="devcloud needs root without password on 127.0.0.1:3306 (or no MariaDB there).")
    return proc.stdout


def _rabbitmqctl(backing: Backing, *args: str, ok_if: str | None = None) -> None:
    proc = subprocess.run([*backing.rabbitmqctl, *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and not (ok_if and ok_if in (proc.stdout + proc.stderr)):
        raise BackendError(f"rabbitmqctl {' '.join(args)} failed: {(proc.stderr or proc.stdout).strip()[:400]}")


# --- self-hosted fallback (no MariaDB/RabbitMQ on loopback) ---------------------------------

def _self_hosted(layout: Layout, progress: Progress) -> Backing:
    if not (shutil.which("mariadbd") and (RABBIT_BIN / "rabbitmq-server").exists()):
        _apt_install(progress)
    sock = layout.run / "mysqld.sock"
    node = "devcloud@localhost"
    backing = Backing(("--socket", str(sock), "-uroot"), (str(RABBIT_BIN / "rabbitmqctl"), "-n", node),
                      self_hosted=True)
    _start_mariadb(layout, sock, progress)
    _start_rabbitmq(layout, node, progress)
    return backing


def _apt_install(progress: Progress) -> None:
    if os.geteuid() != 0:
        raise BackendError("no MariaDB/RabbitMQ on 127.0.0.1 and installing them needs root (apt-get)",
                           hint="run `gcloudctl devcloud up` as root once, or start MariaDB and RabbitMQ on 127.0.0.1.")
    progress(f"installing {', '.join(DEBIAN_PACKAGES)} from Debian (services kept from auto-starting)")
    had_policy = POLICY_RC_D.exists()
    if not had_policy:
        POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *DEBIAN_PACKAGES]):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                raise BackendError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-400:]}")
    finally:
        if not had_policy:
            POLICY_RC_D.unlink(missing_ok=True)


def _wait_tcp(port: int, name: str, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tcp_open(HOST, port):
            return
        time.sleep(0.5)
    raise BackendError(f"{name} did not listen on {HOST}:{port} within {timeout:.0f}s; log {log}:\n"
                       f"{supervisor.tail(log)}")


def _start_mariadb(layout: Layout, sock: Path, progress: Progress) -> None:
    datadir = layout.data / "mysql"
    if supervisor.running(layout.pid_file("mariadb")):
        return
    if not (datadir / "mysql").is_dir():
        progress("initialising a MariaDB data directory for devcloud")
        datadir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=root",
                               "--auth-root-authentication-method=normal", "--skip-test-db"],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise BackendError(f"mariadb-install-db failed: {(proc.stderr or proc.stdout).strip()[-600:]}")
    layout.run.mkdir(parents=True, exist_ok=True)
    argv = ["mariadbd", "--no-defaults", f"--datadir={datadir}", f"--socket={sock}", "--user=root",
            f"--bind-address={HOST}", "--port=3306", f"--pid-file={layout.run / 'mysqld.pidfile'}",
            "--innodb-buffer-pool-size=128M", "--max-connections=500", "--skip-log-bin"]
    supervisor.start([shutil.which("mariadbd") or argv[0], *argv[1:]], env=dict(os.environ),
                     log_file=layout.log_file("mariadb"), pid_file=layout.pid_file("mariadb"), cwd=layout.root)
    _wait_tcp(3306, "MariaDB", layout.log_file("mariadb"))


def _start_rabbitmq(layout: Layout, node: str, progress: Progress) -> None:
    if supervisor.running(layout.pid_file("rabbitmq")):
        return
    conf_dir = layout.etc / "rabbitmq"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "enabled_plugins").write_text("[].\n")
    (conf_dir / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = {HOST}:5672\n"
        f"distribution.listener.interface = {HOST}\n"
        "management.tcp.ip = 127.0.0.1\n"
        "loopback_users.guest = true\n")
    env = {**os.environ, "RABBITMQ_CONFIG_FILE": str(conf_dir / "rabbitmq.conf"),
           "RABBITMQ_MNESIA_BASE": str(layout.data / "rabbitmq"), "RABBITMQ_LOG_BASE": str(layout.logs),
           "RABBITMQ_NODENAME": node, "ERL_EPMD_ADDRESS": HOST, "RABBITMQ_NODE_IP_ADDRESS": HOST,
           "RABBITMQ_ENABLED_PLUGINS_FILE": str(conf_dir / "enabled_plugins")}
    progress("starting a RabbitMQ for devcloud on 127.0.0.1:5672")
    # the script ends in `exec erl`: keep a shell as group leader so the pid file's argv stays true
    supervisor.start(["/bin/sh", "-c", f"{RABBIT_BIN / 'rabbitmq-server'}; exit $?", "devcloud-rabbitmq"], env=env,
                     log_file=layout.log_file("rabbitmq"), pid_file=layout.pid_file("rabbitmq"), cwd=layout.root)
    _wait_tcp(5672, "RabbitMQ", layout.log_file("rabbitmq"), timeout=120)


def stop_self_hosted(layout: Layout) -> None:
    for name in ("rabbitmq", "mariadb"):
        supervisor.stop(layout.pid_file(name), timeout=30)
