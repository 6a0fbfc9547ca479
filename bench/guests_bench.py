"""devcloud guests: time from `apply` to "hardened and verified", memory per guest, guests per machine.

Run (root, devcloud up): .venv/bin/python bench/guests_bench.py [--density 20] [--no-harden]
Switches devcloud to guests mode (and back to plain at the end unless --keep-guests), then:

1. example tenant: the example request with `hardening` and a floating IP on its 3 servers,
   applied with the real CLI (`apply --harden`), then `audit-hosts --no-lynis`; prints the time
   to ACTIVE, to hardened, to verified (audit: every control passing), and destroys it;
2. density: a tenant of N g1.small guests (no hardening); once every guest's cloud-init has
   finished (its final message on the console), measures per guest the processes' RSS, the
   cgroup's memory (processes + page cache charged to it), its disk (the copy-on-write layer),
   and the machine's MemAvailable before and after; from that, how many guests fit.

Writes bench/results/guests.json. Every address involved lives in namespaces devcloud creates.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gcloudctl.devcloud import guests, guests_runtime, lifecycle  # noqa: E402
from gcloudctl.devcloud.layout import Layout, default_dir  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent
EXAMPLE = ROOT / "examples" / "byt-his-staging.yaml"
CGROUPS = Path("/sys/fs/cgroup/unified/gcloudctl-testhost")  # testhost.host.CGROUP_BASE


def say(msg: str) -> None:
    print(f"[guests-bench] {msg}", file=sys.stderr, flush=True)


def gcloudctl(*args: str, env: dict, timeout: float = 1800) -> subprocess.CompletedProcess:
    out = subprocess.run([str(BIN / "gcloudctl"), *args], capture_output=True, text=True, env=env, timeout=timeout)
    if out.returncode != 0:
        raise SystemExit(f"gcloudctl {' '.join(args)} -> {out.returncode}\n{out.stderr[-3000:]}")
    return out


def mem_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def request(tmp: Path, name: str, pubkey: str, *, density: int = 0) -> Path:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["name"] = name
    doc["spec"]["keypairs"][0]["publicKey"] = pubkey
    if density:
        doc["spec"]["servers"] = [{"name": "g", "count": density, "flavor": "g1.small", "image": "debian-12-hardened",
                                   "networks": ["app"], "securityGroups": ["web"], "keypair": "ops",
                                   "userData": {"template": "default.yaml.j2", "vars": {}}}]
        doc["spec"]["quotas"].update(instances=max(10, density), cores=max(32, density), ramMiB=max(65536, density * 2048),
                                     floatingIPs=0)
    else:
        doc["spec"]["quotas"]["floatingIPs"] = 3
        for server in doc["spec"]["servers"]:
            server.update(hardening={}, floatingIP=True, userData={"template": "default.yaml.j2", "vars": {}})
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def example_tenant(tmp: Path, env: dict, pubkey: str, key: Path, harden: bool) -> dict:
    name = f"byt-gbench-{uuid.uuid4().hex[:6]}"
    path = request(tmp, name, pubkey)
    out: dict = {"tenant": name, "servers": 3}
    t0 = time.monotonic()
    gcloudctl("apply", str(path), "--yes", "--no-harden", env=env)
    out["apply_to_active_s"] = round(time.monotonic() - t0, 1)
    if harden:
        applied = gcloudctl("apply", str(path), "--yes", "--harden", "--key", str(key), env=env)
        out["apply_to_hardened_s"] = round(time.monotonic() - t0, 1)
        out["harden_summary"] = next((l for l in applied.stderr.splitlines() if l.startswith(("harden complete", "harden FAILED"))), "")
        audit = gcloudctl("-o", "json", "audit-hosts", name, "--no-lynis", "--key", str(key),
                          "--out", str(tmp / "audit"), env=env)
        out["apply_to_verified_s"] = round(time.monotonic() - t0, 1)
        scores = {h: json.loads(Path(p).read_text())["score"] if isinstance(p, str) else p["score"]
                  for h, p in json.loads(audit.stdout)["reports"].items()}
        out["audit"] = {h: f"{s['passed']} passed, {s['failed']} failed, {s['not_applicable']} n/a"
                        for h, s in sorted(scores.items())}
    t1 = time.monotonic()
    gcloudctl("destroy", name, "--yes", env=env)
    out["destroy_s"] = round(time.monotonic() - t1, 1)
    return out


def cpu_usage_usec(run, uuids: list[str]) -> int:
    total = 0
    for u in uuids:
        try:
            stat = (CGROUPS / guests_runtime.guest_name(u) / "cpu.stat").read_text()
            total += int(next(l.split()[1] for l in stat.splitlines() if l.startswith("usage_usec")))
        except (OSError, StopIteration, ValueError):
            pass
    return total


def density(tmp: Path, env: dict, pubkey: str, layout: Layout, count: int) -> dict:
    name = f"byt-gdense-{uuid.uuid4().hex[:6]}"
    path = request(tmp, name, pubkey, density=count)
    run = guests.runtime(layout)
    before_uuids = set(run.uuids())
    time.sleep(2)
    avail_before = mem_available_kib()
    t0 = time.monotonic()
    gcloudctl("apply", str(path), "--yes", "--parallelism", "20", env=env)
    active_s = time.monotonic() - t0
    mine = [u for u in run.uuids() if u not in before_uuids]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # every guest's cloud-init done (its final message on the console)
        if all("first boot of" in run.console(u) and "finished after" in run.console(u) for u in mine):
            break
        time.sleep(2)
    booted_s = time.monotonic() - t0
    time.sleep(5)  # let first-boot work settle
    avail_after = mem_available_kib()
    rss = [guests_runtime.rss_kib(run, u) for u in mine]
    cgroup_mem = []
    for u in mine:
        try:
            cgroup_mem.append(int((CGROUPS / guests_runtime.guest_name(u) / "memory.current").read_text()) // 1024)
        except (OSError, ValueError):
            pass
    disk = [int(subprocess.run(["du", "-sk", str(run.state_dir(u) / "upper")], capture_output=True,
                               text=True).stdout.split()[0]) for u in mine]
    load = os.getloadavg()[0]
    cpu0, w0 = cpu_usage_usec(run, mine), time.monotonic()
    time.sleep(10)  # idle cost: CPU time the booted guests use while nobody talks to them
    idle_cpu_pct = (cpu_usage_usec(run, mine) - cpu0) / 1e6 / (time.monotonic() - w0) * 100 / max(1, len(mine))
    t1 = time.monotonic()
    gcloudctl("destroy", name, "--yes", "--parallelism", "20", env=env)
    destroy_s = time.monotonic() - t1
    delta = (avail_before - avail_after) / max(1, len(mine))
    result = {
        "guests": len(mine), "apply_to_active_s": round(active_s, 1), "all_booted_s": round(booted_s, 1),
        "rss_mib_per_guest": round(sum(rss) / len(rss) / 1024, 1) if rss else None,
        "cgroup_mib_per_guest": round(sum(cgroup_mem) / len(cgroup_mem) / 1024, 1) if cgroup_mem else None,
        "mem_available_drop_mib_per_guest": round(delta / 1024, 1),
        "disk_mib_per_guest": round(sum(disk) / len(disk) / 1024, 1) if disk else None,
        "load_avg_1m_after_boot": round(load, 2), "idle_cpu_pct_per_guest": round(idle_cpu_pct, 2),
        "destroy_s": round(destroy_s, 1),
        "mem_available_before_mib": avail_before // 1024,
    }
    per_guest = max(delta, (sum(cgroup_mem) / len(cgroup_mem)) if cgroup_mem else 0)
    if per_guest > 0:
        result["guests_fit_by_memory"] = int(avail_before / per_guest)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--density", type=int, default=20, help="guests booted at once for the memory figures")
    parser.add_argument("--no-harden", dest="harden", action="store_false", help="skip hardening in step 1")
    parser.add_argument("--skip-example", action="store_true", help="only the density step")
    parser.add_argument("--keep-guests", action="store_true", help="leave devcloud in guests mode")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("guests need root (namespaces, mounts, cgroups)")
    layout = Layout(Path(os.environ.get("GCLOUDCTL_DEVCLOUD_DIR") or default_dir(Path.home())))
    was = guests.load_mode(layout).enabled
    t0 = time.monotonic()
    guests.set_mode(layout, True, say)
    lifecycle.up(layout, progress=say, environ=dict(os.environ))
    switch_s = round(time.monotonic() - t0, 1)
    tmp = Path(tempfile.mkdtemp(prefix="guests-bench-"))
    key = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pubkey = (tmp / "id_ed25519.pub").read_text().strip()
    env = {**os.environ, "GCLOUDCTL_STATE_DIR": str(tmp / "state"),
           "GCLOUDCTL_SSH_PROXY_COMMAND": guests.public_proxy_command()}
    results: dict = {"switch_to_guests_s": switch_s, "cpus": os.cpu_count()}
    try:
        if not args.skip_example:
            say("example tenant (3 servers): apply -> hardened -> verified")
            results["example"] = example_tenant(tmp, env, pubkey, key, args.harden)
            say(json.dumps(results["example"]))
        if args.density:
            say(f"density: {args.density} guests")
            results["density"] = density(tmp, env, pubkey, layout, args.density)
            say(json.dumps(results["density"]))
    finally:
        if not was and not args.keep_guests:
            guests.set_mode(layout, False, say)
            lifecycle.up(layout, progress=say, environ=dict(os.environ))
    results["leftovers"] = {k: len(v) for k, v in {
        "guests": guests.runtime(layout).uuids(),
        "netns": [n for n in guests_runtime._namespaces() if re.match(r"^(gcn|gcd-pub)", n)]}.items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"guests{'-density' if args.skip_example else ''}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
