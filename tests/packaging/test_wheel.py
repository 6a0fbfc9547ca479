"""The wheel as a new user gets it: built from the repository, installed in a fresh virtualenv
and run outside the checkout — validate, catalog, schema, plan/apply/outputs on the in-memory
cloud — with the default dependencies only (no ansible: `harden` says which extra to install);
then with the `hardening` extra, `harden --check` against a real test host (a level-1 Debian 12
namespace host, marker `testhost`): the playbooks and templates come from the wheel.

Nothing is downloaded: the wheel is built with the installed setuptools (no build isolation)
and the fresh venv sees the test environment's packages (minus gcloudctl itself and the
`hardening` extra) through a .pth file; gcloudctl comes from the wheel alone. The venv with
the extra sees ansible-core and ansible-runner the same way and gets their console scripts
(`ansible-playbook`, ...) written from their entry points, as pip writes them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.core import EXAMPLE, ROOT

pytestmark = pytest.mark.slow

LEFT_OUT = ("gcloudctl", "__editable__", "ansible")  # site-packages entries the fresh venv must not see
SOURCE_IGNORE = shutil.ignore_patterns(".venv", ".git", "__pycache__", "build", "dist", "*.egg-info", ".demo",
                                       "var", "bench", "tests", ".pytest_cache", ".hypothesis", "inventories",
                                       ".import_linter_cache", "node_modules")

IN_MEMORY = """
import contextlib, io, json, sys
import gcloudctl
from gcloudctl.cli import main as cli
from gcloudctl.cli.context import AppContext
from gcloudctl.drivers.fake import FakeApi, FakeCloud

api = FakeApi()
original = AppContext.from_options.__func__

def from_options(cls, **options):
    ctx = original(cls, **options)
    ctx.driver_factory = lambda cloud, region: FakeCloud(api)
    return ctx

AppContext.from_options = classmethod(from_options)
request = sys.argv[1]
codes = [cli.main(["plan", request, "--out", "plan.json"]), cli.main(["apply", "plan.json", "--yes"])]
out = io.StringIO()
with contextlib.redirect_stdout(out):
    codes.append(cli.main(["outputs", request, "-o", "json"]))
print(json.dumps({"codes": codes, "package": gcloudctl.__file__, "outputs": json.loads(out.getvalue())}))
"""


def run(argv, cwd, env=None, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"{argv} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def fresh_venv(work: Path, name: str, wheel: Path, left_out: tuple[str, ...]) -> Path:
    """A new venv under `work` with gcloudctl from `wheel` and the test environment's packages
    except those whose names start with `left_out`; returns its bin directory."""
    deps = work / f"{name}-deps"
    deps.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        if not entry.name.lower().startswith(left_out) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    venv = work / name
    run([sys.executable, "-m", "venv", venv], cwd=work)
    venv_site = next((venv / "lib").glob("python3*/site-packages"))
    (venv_site / "zz_test_deps.pth").write_text(f"{deps}\n")
    run([venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel], cwd=work)
    return venv / "bin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin dir, work dir outside the checkout, the wheel)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=SOURCE_IGNORE)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", work / "dist", source], cwd=work)
    wheel = next((work / "dist").glob("gcloudctl-*.whl"))
    bin_dir = fresh_venv(work, "venv", wheel, LEFT_OUT)  # less gcloudctl and the hardening extra
    shutil.copy(EXAMPLE, work / "request.yaml")
    return bin_dir, work, wheel


def env_for(bin_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "GCLOUDCTL_", "OS_", "VIRTUAL_ENV"))}
    return env | {"PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", "LANG": "C.UTF-8"}


def test_the_wheel_ships_every_file_of_the_package(installed):
    """Templates, playbooks, catalogs, pages: every file of the package in git is in the wheel."""
    _, _, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    tracked = subprocess.run(["git", "ls-files", "gcloudctl"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if tracked:  # a source tree without git (an sdist) is checked by the list below only
        assert sorted(set(tracked) - set(names)) == []
    for needed in ("gcloudctl/templates/default.yaml.j2", "gcloudctl/playbooks/harden.yml",
                   "gcloudctl/locale/vi/LC_MESSAGES/cli.po", "gcloudctl/data/platform.yaml",
                   "gcloudctl/data/agencies.yaml", "gcloudctl/data/rulebooks/vn-nd85-tcvn11930.yaml"):
        assert needed in names, needed


def test_validate_catalog_and_schema_outside_the_checkout(installed):
    bin_dir, work, _ = installed
    env = env_for(bin_dir)
    where = run([bin_dir / "python", "-c", "import gcloudctl; print(gcloudctl.__file__)"], cwd=work, env=env)
    assert str(bin_dir.parent) in where.stdout and str(ROOT) not in where.stdout, "gcloudctl comes from the wheel"
    assert "1 file valid" in run(["gcloudctl", "validate", "request.yaml"], cwd=work, env=env).stdout
    vietnamese = run(["gcloudctl", "--lang", "vi", "validate", "request.yaml"], cwd=work, env=env).stdout
    assert "tệp hợp lệ" in vietnamese, "the catalogs ship in the wheel"
    flavors = json.loads(run(["gcloudctl", "catalog", "flavors", "-o", "json"], cwd=work, env=env).stdout)
    assert flavors[0]["name"] == "g1.small"
    assert json.loads(run(["gcloudctl", "schema", "outputs"], cwd=work, env=env).stdout)["title"] == "TenantOutputs"
    check = run([bin_dir / "python", "-m", "pip", "check"], cwd=work, env=env, check=False)
    assert "gcloudctl" not in check.stdout, "the default dependencies are declared and installed"


def test_plan_apply_outputs_on_the_in_memory_cloud(installed):
    bin_dir, work, _ = installed
    done = run([bin_dir / "python", "-c", IN_MEMORY, "request.yaml"], cwd=work, env=env_for(bin_dir))
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["codes"] == [0, 0, 0]
    assert str(bin_dir.parent) in result["package"]
    servers = result["outputs"]["servers"]
    assert servers["web-1"]["floating_ip"] and servers["db-1"]["fixed_ip"]


def test_harden_without_the_extra_says_what_to_install(installed):
    bin_dir, work, _ = installed
    done = run(["gcloudctl", "harden", "byt-his-staging"], cwd=work, env=env_for(bin_dir), check=False)
    assert done.returncode == 1
    assert "pip install 'gcloudctl[hardening]'" in done.stderr and "Traceback" not in done.stderr


# ---- with the `hardening` extra: harden --check against a test host ------------------------------

EXTRA_DISTRIBUTIONS = ("ansible_core", "ansible_runner")  # gcloudctl[hardening]


def _console_scripts(bin_dir: Path) -> list[str]:
    """Write the extra's console scripts into `bin_dir` from their entry points (as pip does)."""
    import configparser

    site = Path(sysconfig.get_paths()["purelib"])
    written = []
    for dist in EXTRA_DISTRIBUTIONS:
        info = next(site.glob(f"{dist}-*.dist-info"))
        points = configparser.ConfigParser(delimiters=("=",))
        points.optionxform = str
        points.read(info / "entry_points.txt")
        for name, target in (points["console_scripts"].items() if points.has_section("console_scripts") else []):
            module, func = (part.strip() for part in target.split(":"))
            script = bin_dir / name
            script.write_text(f"#!{bin_dir / 'python'}\nimport sys\nfrom {module} import {func}\n"
                              f"sys.exit({func}())\n")
            script.chmod(0o755)
            written.append(name)
    return written


@pytest.fixture(scope="module")
def installed_with_hardening(installed):
    """(bin dir of a second fresh venv: the wheel plus the `hardening` extra, work dir)."""
    _, work, wheel = installed
    bin_dir = fresh_venv(work, "venv-hardening", wheel, ("gcloudctl", "__editable__"))
    assert "ansible-playbook" in _console_scripts(bin_dir)
    return bin_dir, work


@pytest.mark.testhost
def test_harden_check_from_the_wheel_against_a_test_host(installed_with_hardening, guest_factory, tmp_path):
    """`harden --check` at L1 from the installed wheel, outside the checkout, against a fresh
    Debian 12 host: the shipped playbooks run in check mode, report drift (exit 3) and change
    nothing. A host is reached through the test network's relay (the only part from the checkout:
    it stands for the network, not for gcloudctl)."""
    from tests.fixtures.testhost import TEST_NETWORK

    bin_dir, work = installed_with_hardening
    guest = guest_factory.boot("gt-wheel", level=1)
    hosts = tmp_path / "hosts.json"
    hosts.write_text(json.dumps({"level": 1, "hosts": [guest.observed()]}))
    consoles = guest.host.state_dir.parent  # <name>/console.log
    before = guest.host.exec(["sh", "-c", "ls -l --time-style=+%s /etc/ssh/sshd_config.d/ /etc/sysctl.d/ 2>&1"]).stdout
    done = run(["gcloudctl", "-o", "json", "harden", "moh-test", "--check", "--hosts", hosts, "--key", guest.key_file,
                "--proxy-command", TEST_NETWORK.proxy_command(), "--known-hosts", tmp_path / "known_hosts",
                "--console-dir", consoles, "--timeout", "600"], cwd=work, env=env_for(bin_dir), check=False)
    assert done.returncode == 3, f"exit {done.returncode}: drift expected on a fresh host\n{done.stdout}\n{done.stderr}"
    report = json.loads(done.stdout)
    assert report["check"] and report["hosts"][guest.name]["status"] == "checked", report
    assert len(report["drift"]) >= 5 and {d["host"] for d in report["drift"]} == {guest.name}
    assert "Traceback" not in done.stderr
    print(f"\nharden --check (L1) from the wheel: {report['seconds']}s, {len(report['drift'])} task(s) would change")
    after = guest.host.exec(["sh", "-c", "ls -l --time-style=+%s /etc/ssh/sshd_config.d/ /etc/sysctl.d/ 2>&1"]).stdout
    assert after == before, "check mode changed nothing on the host"
