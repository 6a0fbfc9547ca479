"""The per-host launcher process: owns the console pty and the container's init.

Stage: test infrastructure. Started detached by `TestHost.start` as
`python -I supervisor.py STATE_DIR`; stdlib only. It

1. moves itself into `<cgroup>/supervisor` and its child into `<cgroup>/payload` (the child's
   cgroup becomes the container's cgroup-namespace root, delegated to systemd);
2. opens a pty whose slave becomes the container's /dev/console and systemd's stdio;
3. runs `nsenter --net=<host ns> unshare --mount --pid --uts --ipc --cgroup --fork --kill-child
   sh boot.sh` (boot.sh sets up /proc, /sys, /dev, pivots into the rootfs and execs systemd with
   a reduced capability bounding set);
4. appends everything the pty prints to console.log (the "serial console" of the VM);
5. on SIGTERM kills the container (unshare has --kill-child) and exits.

It must not touch anything outside its cgroup, its namespaces and its state dir.
"""

import errno
import json
import os
import select
import signal
import subprocess
import sys


def _join_cgroup(path: str, pid: int) -> None:
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "cgroup.procs"), "w") as fh:
        fh.write(str(pid))


def main(state_dir: str) -> int:
    with open(os.path.join(state_dir, "host.json")) as fh:
        cfg = json.load(fh)
    cgroup = cfg["cgroup"]
    _join_cgroup(os.path.join(cgroup, "supervisor"), os.getpid())
    master, slave = os.openpty()
    slave_path = os.ttyname(slave)
    payload = os.path.join(cgroup, "payload")
    os.makedirs(payload, exist_ok=True)

    def _pre() -> None:
        os.setsid()
        _join_cgroup(payload, os.getpid())

    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ROOT": cfg["root"], "CONSOLE": slave_path,
           "HOSTNAME_": cfg["hostname"], "container": "gcloudctl-testhost", "TERM": "vt220"}
    child = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{cfg['netns']}", "unshare", "--mount", "--pid", "--uts",
         "--ipc", "--cgroup", "--fork", "--kill-child", "/bin/sh", os.path.join(state_dir, "boot.sh")],
        stdin=slave, stdout=slave, stderr=slave, env=env, preexec_fn=_pre, close_fds=True)
    with open(os.path.join(state_dir, "supervisor.pid"), "w") as fh:
        fh.write(f"{os.getpid()} {child.pid}\n")

    def _stop(signum, frame):  # noqa: ARG001
        try:
            os.kill(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with open(os.path.join(state_dir, "console.log"), "ab", buffering=0) as console:
        # The slave stays open here too, so the pty never hangs up while systemd reopens it;
        # poll the child instead of waiting for EIO.
        while True:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError as exc:
                    if exc.errno not in (errno.EIO, errno.EINTR):
                        raise
                    data = b""
                if data:
                    console.write(data)
                    continue
            if child.poll() is not None:
                break
    child.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
