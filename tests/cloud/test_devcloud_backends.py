"""devcloud's own MariaDB + RabbitMQ (the path for machines without them), exercised for real
inside a fresh network namespace so the shared servers on this machine's loopback stay untouched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.devcloud, pytest.mark.slow]

SCRIPT = textwrap.dedent("""
    import subprocess, sys
    from pathlib import Path
    from gcloudctl.devcloud import system
    from gcloudctl.devcloud.layout import Layout
    layout = Layout(Path(sys.argv[1]))
    for p in (layout.root, layout.logs, layout.run, layout.data):
        p.mkdir(parents=True, exist_ok=True)
    try:
        backing = system.ensure(layout, print)
        assert backing.self_hosted, backing
        system.prepare(backing, "pw-test")
        # now both ports answer: ensure() must still know they are ours (down --purge relies on it)
        assert system.ensure(layout, print).self_hosted
        print("DATABASES", system.run_sql(backing, "SHOW DATABASES;").split())
        vhosts = subprocess.run([*backing.rabbitmqctl, "list_vhosts"], capture_output=True, text=True).stdout
        print("VHOSTS", vhosts.split())
        ss = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        print("LISTEN", " ".join(line.split()[3] for line in ss.splitlines() if line.strip()))
    finally:
        system.stop_self_hosted(layout)
        subprocess.run(["epmd", "-kill"], capture_output=True)  # the namespace's own epmd
""")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("mariadbd") is None,
                    reason="needs root, unshare and the Debian MariaDB/RabbitMQ packages")
def test_self_hosted_backends_bind_loopback_and_get_devclouds_databases(tmp_path):
    proc = subprocess.run(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
                           sys.executable, "-c", SCRIPT, str(tmp_path / "dc")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = {line.split(" ", 1)[0]: line for line in proc.stdout.splitlines() if " " in line}
    for name in ("devcloud_keystone", "devcloud_nova_cell0", "devcloud_neutron"):
        assert name in lines["DATABASES"]
    assert "devcloud" in lines["VHOSTS"]
    listeners = lines["LISTEN"].split()[1:]
    assert any(t.endswith(":3306") for t in listeners) and any(t.endswith(":5672") for t in listeners)
    assert all(t.startswith(("127.0.0.1:", "[::1]:")) for t in listeners), listeners
