"""Specification of machine output: `-o table|json|yaml` means the same on every command (global
or per command), a saved plan is `--out FILE`, every -o json output matches the JSON Schema that
`gcloudctl schema NAME` publishes, errors under -o json are one document with the exit code
unchanged, and `gcloudctl outputs` gives a CI job every id and address. In-memory cloud only."""

from __future__ import annotations

import copy
import json

import click
import jsonschema
import pytest
import yaml

from gcloudctl.cli import main as cli_main
from gcloudctl.cli.context import AppContext
from gcloudctl.drivers.fake import FakeApi, FakeCloud
from tests.fixtures.core import EXAMPLE, ROOT


@pytest.fixture
def cloud(monkeypatch):
    """The CLI in-process on one in-memory cloud; `cloud.clouds` lists the clouds.yaml entries asked for."""
    api = FakeApi()
    clouds: list[str] = []
    original = AppContext.from_options.__func__

    def from_options(cls, **options):
        ctx = original(cls, **options)
        ctx.driver_factory = lambda name, region: clouds.append(name) or FakeCloud(api)
        return ctx

    monkeypatch.setattr(AppContext, "from_options", classmethod(from_options))
    monkeypatch.delenv("OS_CLOUD", raising=False)
    monkeypatch.delenv("GCLOUDCTL_OUTPUT", raising=False)

    def run(*args):
        return cli_main.main(list(args))

    run.api, run.clouds = api, clouds
    return run


def schema_of(name: str, capsys) -> dict:
    capsys.readouterr()
    assert cli_main.main(["schema", name]) == 0
    return json.loads(capsys.readouterr().out)


def checked(name: str, out: str, capsys) -> object:
    """`out` parsed, after checking it against `gcloudctl schema NAME` (fails the test if it does not match)."""
    data = json.loads(out)
    jsonschema.Draft202012Validator(schema_of(name, capsys)).validate(data)
    return data


def test_every_command_takes_output_option():
    """`status`, `request list`, `describe`, `get tenants`... once answered "No such option: -o"."""
    missing = []

    def walk(command, path):
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}")
            return
        opts = {opt for param in command.params for opt in getattr(param, "opts", ())}
        if not {"-o", "--output"} <= opts:
            missing.append(path)

    walk(cli_main.cli, "gcloudctl")
    assert missing == []


def test_plan_o_json_prints_json_and_saves_no_file(cloud, tmp_path, monkeypatch, capsys):
    """`plan x.yaml -o json` once saved the plan to a file named `json`."""
    monkeypatch.chdir(tmp_path)
    assert cloud("plan", str(EXAMPLE), "-o", "json") == 0
    data = checked("plan", capsys.readouterr().out, capsys)
    assert data["summary"]["create"] == 32
    assert list(tmp_path.iterdir()) == [], "no file is written without --out"


def test_plan_out_saves_and_apply_uses_it(cloud, tmp_path, capsys):
    saved = tmp_path / "plan.json"
    assert cloud("plan", str(EXAMPLE), "--out", str(saved), "-o", "yaml") == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert json.loads(saved.read_text())["request_digest"] == shown["request_digest"]
    assert cloud("apply", str(saved), "--yes") == 0


def test_plan_o_file_still_saves_with_a_warning(cloud, tmp_path, capsys):
    saved = tmp_path / "old.json"
    assert cloud("plan", str(EXAMPLE), "-o", str(saved)) == 0
    assert "use --out" in capsys.readouterr().err
    assert json.loads(saved.read_text())["tenant"] == "byt-his-staging"


# id, argv (after an apply of the example), schema name, why
COMMANDS = [
    ("validate", ["validate", str(EXAMPLE)], "validate", "a list of problems (empty: valid)"),
    ("plan", ["plan", str(EXAMPLE)], "plan", "the plan a CI job can check"),
    ("get-tenants", ["get", "tenants"], "tenants", "answered 'No such option' before"),
    ("describe", ["describe", "byt-his-staging"], "describe", "answered 'No such option' before"),
    ("outputs-name", ["outputs", "byt-his-staging"], "outputs", "ids and addresses by tenant name"),
    ("outputs-file", ["outputs", str(EXAMPLE)], "outputs", "ids and addresses by request file"),
    ("catalog-regions", ["catalog", "regions"], "catalog-regions", "agency users read no YAML"),
    ("catalog-flavors", ["catalog", "flavors"], "catalog-flavors", "agency users read no YAML"),
    ("catalog-images", ["catalog", "images"], "catalog-images", "agency users read no YAML"),
    ("catalog-zones", ["catalog", "zones"], "catalog-zones", "agency users read no YAML"),
    ("catalog-agencies", ["catalog", "agencies"], "catalog-agencies", "agency users read no YAML"),
    ("reap-dry-run", ["reap", "--dry-run"], "reap", "expired stacks a CI job would destroy"),
]


@pytest.mark.parametrize("argv,schema", [pytest.param(a, s, id=i) for i, a, s, _ in COMMANDS])
@pytest.mark.parametrize("where", ["per-command", "global"])
def test_json_output_matches_its_schema(cloud, argv, schema, where, capsys):
    assert cloud("apply", str(EXAMPLE), "--yes") == 0
    capsys.readouterr()
    args = [*argv, "-o", "json"] if where == "per-command" else ["-o", "json", *argv]
    assert cloud(*args) == 0
    checked(schema, capsys.readouterr().out, capsys)


def test_yaml_output_is_the_same_document(cloud, capsys):
    assert cloud("catalog", "flavors", "-o", "json") == 0
    as_json = json.loads(capsys.readouterr().out)
    assert cloud("catalog", "flavors", "-o", "yaml") == 0
    assert yaml.safe_load(capsys.readouterr().out) == as_json


# id, argv, exit code, kind, why
ERRORS = [
    ("not-found", ["describe", "nope-tenant"], 7, "NotFound", "exit codes unchanged under -o json"),
    ("usage", ["plan"], 2, "UsageError", "a missing argument is a usage error"),
    ("no-such-file", ["validate", "/nonexistent.yaml"], 2, "UsageError", "click checks the path"),
    ("bad-region", ["outputs", "x-tenant", "--region", "nowhere"], 2, "InvalidInput", "region names are checked"),
]


@pytest.mark.parametrize("argv,code,kind", [pytest.param(a, c, k, id=i) for i, a, c, k, _ in ERRORS])
def test_errors_under_json_are_one_document(cloud, argv, code, kind, capsys):
    assert cloud("-o", "json", *argv) == code
    out, err = capsys.readouterr()
    data = checked("error", out, capsys)
    assert (data["exit_code"], data["kind"]) == (code, kind)
    assert err, "the human message still goes to stderr"


def test_invalid_request_error_lists_problems(cloud, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("region: hn1", "region: hn9"))
    assert cloud("plan", str(bad), "-o", "json") == 2
    data = checked("error", capsys.readouterr().out, capsys)
    assert [p["path"] for p in data["problems"]] == ["spec.region"]
    assert data["problems"][0]["line"] > 0


def test_table_errors_leave_stdout_empty(cloud, capsys):
    assert cloud("describe", "nope-tenant") == 7
    out, err = capsys.readouterr()
    assert out == "" and "not found" in err


def test_outputs_give_every_id_and_address(cloud, capsys):
    """A CI job could not get the address of the server it just made (IPs only in describe's text)."""
    assert cloud("apply", str(EXAMPLE), "--yes") == 0
    capsys.readouterr()
    assert cloud("outputs", "byt-his-staging", "-o", "json") == 0
    first = capsys.readouterr().out
    data = json.loads(first)
    assert len(data["resources"]) == 32 and all(r["id"] for r in data["resources"].values())
    assert sorted(data["servers"]) == ["db-1", "web-1", "web-2"]
    web = data["servers"]["web-1"]
    assert web["fixed_ip"] and web["fixed_ips"][0]["network"] == "app"
    assert web["floating_ip"] and web["floating_ip"].startswith("172.24.4.")
    assert data["servers"]["db-1"]["floating_ip"] is None
    assert data["networks"]["app"]["cidr"] == "10.40.1.0/24"
    assert cloud("outputs", "byt-his-staging", "-o", "json") == 0
    assert capsys.readouterr().out == first, "the shape and order are stable"


def test_outputs_of_unknown_tenant_is_not_found(cloud, capsys):
    assert cloud("outputs", "nope-tenant") == 7


# --------------------------------------------------------------------------- region vs OS_CLOUD

def test_region_cloud_wins_over_os_cloud(cloud, monkeypatch, capsys):
    """With OS_CLOUD exported, a request for region hn1 was planned against another cloud silently."""
    monkeypatch.setenv("OS_CLOUD", "devcloud-byt-requester")
    assert cloud("plan", str(EXAMPLE)) == 0
    assert cloud.clouds == ["devcloud"]
    err = capsys.readouterr().err
    assert "OS_CLOUD=devcloud-byt-requester" in err and "devcloud" in err


def test_explicit_cloud_still_overrides(cloud, monkeypatch, capsys):
    monkeypatch.setenv("OS_CLOUD", "devcloud-byt-requester")
    assert cloud("--cloud", "other-entry", "plan", str(EXAMPLE)) == 0
    assert cloud.clouds == ["other-entry"]
    assert "OS_CLOUD" not in capsys.readouterr().err


def test_os_cloud_still_names_the_api_identity(monkeypatch):
    monkeypatch.setenv("OS_CLOUD", "devcloud-byt-requester")
    ctx = AppContext.from_options(cloud=None)
    assert (ctx.cloud, ctx.cloud_explicit) == ("devcloud-byt-requester", None)


def test_request_commands_answer_o_json_with_their_schema(tmp_path, capsys):
    """`request list -o json` and `status T -o json` answered "No such option" before."""
    db = f"sqlite:///{tmp_path / 'store' / 'controller.db'}"
    (tmp_path / "store").mkdir(mode=0o700)
    assert cli_main.main(["request", "list", "--db", db, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert cli_main.main(["status", "nope-tenant", "--db", db, "-o", "json"]) == 7
    checked("error", capsys.readouterr().out, capsys)
    assert cli_main.main(["request", "submit", str(EXAMPLE), "--db", db, "-o", "json"]) == 0
    assert checked("request-version", capsys.readouterr().out, capsys)["state"] == "pending-approval"
    assert cli_main.main(["request", "list", "--db", db, "-o", "json"]) == 0
    assert len(checked("request-versions", capsys.readouterr().out, capsys)) == 1
    assert cli_main.main(["status", "byt-his-staging", "--db", db, "-o", "json"]) == 0
    assert checked("status", capsys.readouterr().out, capsys)["phase"] == "pending-approval"


def test_input_document_schemas_are_not_shadowed(capsys):
    assert schema_of("request", capsys)["title"] == "TenantRequest"


def test_outputs_of_request_is_what_outputs_prints(cloud, capsys):
    """The helper `apply -o json` can use gives the same document as `gcloudctl outputs`."""
    from gcloudctl import pipeline
    from gcloudctl.cli.outputs import outputs_of_request

    assert cloud("apply", str(EXAMPLE), "--yes") == 0
    capsys.readouterr()
    assert cloud("outputs", str(EXAMPLE), "-o", "json") == 0
    printed = json.loads(capsys.readouterr().out)
    app = AppContext()
    request = pipeline.load_request(EXAMPLE, app.config())
    assert outputs_of_request(app, request, FakeCloud(cloud.api)).model_dump(mode="json") == printed


def test_each_region_goes_to_its_own_cloud_whatever_os_cloud_says(cloud, tmp_path, monkeypatch, capsys):
    """The finding as reported: OS_CLOUD exported for hn1, a request for hcm1 planned against hn1's cloud."""
    platform = yaml.safe_load((ROOT / "gcloudctl" / "data" / "platform.yaml").read_text())
    platform["spec"]["regions"]["hcm1"] = copy.deepcopy(platform["spec"]["regions"]["hn1"]) | {"cloud": "cloud-hcm1"}
    platform["spec"]["regions"]["hn1"]["cloud"] = "cloud-hn1"
    (tmp_path / "platform.yaml").write_text(yaml.safe_dump(platform))
    request = tmp_path / "hcm.yaml"
    request.write_text(EXAMPLE.read_text().replace("region: hn1", "region: hcm1"))
    monkeypatch.setenv("OS_CLOUD", "cloud-hn1")
    assert cloud("--platform", str(tmp_path / "platform.yaml"), "plan", str(request)) == 0
    assert cloud.clouds == ["cloud-hcm1"]
    assert "OS_CLOUD=cloud-hn1 is not used for region hcm1" in capsys.readouterr().err


def test_apply_o_json_carries_every_id_and_address_in_one_shape(cloud, capsys):
    """`apply -o json` gave {step, address, status, seconds} without ids or addresses, and a no-op
    apply another shape: both now carry the same `outputs` document as `gcloudctl outputs`."""
    assert cloud("apply", str(EXAMPLE), "--yes", "-o", "json") == 0
    first = json.loads(capsys.readouterr().out)
    assert cloud("apply", str(EXAMPLE), "--yes", "-o", "json") == 0
    noop = json.loads(capsys.readouterr().out)
    assert cloud("outputs", str(EXAMPLE), "-o", "json") == 0
    printed = json.loads(capsys.readouterr().out)
    assert first["outputs"] == noop["outputs"] == printed
    assert first["changes"] == 32 and noop["changes"] == 0
    assert printed["servers"]["web-1"]["floating_ip"] and all(r["id"] for r in printed["resources"].values())


# --------------------------------------------------------------------------- every -o json has a schema

# Each command whose -o json|yaml prints a document: the schema that describes it (checked by a test
# below, named in the comment). Commands that print no document under -o json: the reason.
SCHEMA_OF_COMMAND = {
    "validate": "validate", "plan": "plan", "apply": "apply", "destroy": "destroy", "get tenants": "tenants",
    "describe": "describe", "outputs": "outputs", "reap": "reap",
    "catalog regions": "catalog-regions", "catalog flavors": "catalog-flavors", "catalog images": "catalog-images",
    "catalog zones": "catalog-zones", "catalog agencies": "catalog-agencies",
    "request submit": "request-version", "request show": "request-version", "request approve": "request-version",
    "request reject": "request-version", "request delete": "request-version", "request list": "request-versions",
    "status": "status", "controller harden": "status",  # the tenant's status view after the request
    "controller migrate": "controller-migrate",
    "controller run": "controller-run",  # --once; without it, it runs until stopped and prints nothing
    "audit verify": "audit-verify", "audit export": "audit-export",
    "inventory": "inventory",  # --format json (its -o does not change the inventory's format)
    "harden": "harden", "audit-hosts": "audit-hosts",
    "compliance": "compliance-summary",  # --out DIR; `--out - --format json` prints the dossier: `compliance`
}
NO_DOCUMENT = {
    "schema": "prints a JSON Schema itself (a meta-schema is the JSON Schema standard's)",
    "completion": "prints a shell script, not data",
    "api serve": "runs the HTTP server; its answers are the `api` OpenAPI contract",
}
DEVCLOUD_EXEMPT = "devcloud commands manage the test cloud on this machine, not tenants: no CI contract"


def _leaf_commands() -> list[str]:
    found = []

    def walk(command, path):
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}".strip())
            return
        found.append(path)

    walk(cli_main.cli, "")
    return found


def test_every_command_output_has_a_schema_or_a_reason(capsys):
    """issue 14: every `-o json` output has a JSON Schema (`gcloudctl schema NAME`)."""
    published = set(cli_main.cli.commands["schema"].params[0].type.choices)
    missing, unknown = [], []
    for path in _leaf_commands():
        if path.startswith("devcloud "):  # DEVCLOUD_EXEMPT
            continue
        if path in SCHEMA_OF_COMMAND:
            if SCHEMA_OF_COMMAND[path] not in published:
                unknown.append(f"{path} -> {SCHEMA_OF_COMMAND[path]}")
        elif path not in NO_DOCUMENT:
            missing.append(path)
    assert missing == [] and unknown == []
    assert set(NO_DOCUMENT) <= set(_leaf_commands()), "an exemption names a command that no longer exists"
    from gcloudctl.cli.core import document_schemas

    schemas = document_schemas()
    for name in set(SCHEMA_OF_COMMAND.values()):
        jsonschema.Draft202012Validator.check_schema(schemas[name])


def test_apply_o_json_matches_its_schema_created_and_no_op(cloud, capsys):
    assert cloud("apply", str(EXAMPLE), "--yes", "-o", "json") == 0
    first = checked("apply", capsys.readouterr().out, capsys)
    assert first["counts"]["done"] == 32 and first["outputs"]["servers"]
    assert cloud("apply", str(EXAMPLE), "--yes", "-o", "json") == 0
    noop = checked("apply", capsys.readouterr().out, capsys)
    assert noop["changes"] == 0 and "outcomes" not in noop


def test_apply_timeout_under_json_matches_its_schema(cloud, capsys):
    """A timeout under -o json is one document: what was done, and error/exit_code/hint."""
    cloud.api.inject("POST", r"^/servers$", 0, times=10**6, delay=30.0)
    assert cloud("apply", str(EXAMPLE), "--yes", "--timeout", "1", "-o", "json") == 5
    data = checked("apply", capsys.readouterr().out, capsys)
    assert data["exit_code"] == 5 and data["timed_out"] and "outputs" not in data
    assert {o["status"] for o in data["outcomes"]} >= {"done"}


def test_destroy_o_json_matches_its_schema(cloud, capsys):
    assert cloud("apply", str(EXAMPLE), "--yes") == 0
    capsys.readouterr()
    assert cloud("destroy", str(EXAMPLE), "--yes", "-o", "json") == 0
    data = checked("destroy", capsys.readouterr().out, capsys)
    assert data["ok"] and data["counts"]["done"] == len(data["outcomes"]) > 0
    assert cloud("destroy", str(EXAMPLE), "--yes", "-o", "json") == 0
    assert checked("destroy", capsys.readouterr().out, capsys) == {"tenant": "byt-his-staging", "ok": True,
                                                                    "changes": 0}


HOSTS = {
    "level": 3,
    "admin_sources": ["10.20.0.0/24"],
    "log_target": {"host": "10.20.0.9", "port": 6514},
    "hosts": [
        {"name": "moh-web-1", "role": "web", "zones": ["dmz"], "fixed_ips": {"moh-dmz": "10.20.1.11"},
         "floating_ip": "203.0.113.21", "image": "debian-12", "status": "ACTIVE",
         "firewall": {"security_groups": ["moh-web"], "ingress": [{"proto": "tcp", "ports": 443,
                                                                   "sources": ["0.0.0.0/0"]}]}},
        {"name": "moh-db-1", "role": "db", "zones": ["db"], "fixed_ips": {"moh-db": "10.20.3.11"},
         "floating_ip": None, "image": "debian-12", "status": "ACTIVE"},
        {"name": "moh-bastion", "role": "bastion", "zones": ["mgmt"], "fixed_ips": {"moh-mgmt": "10.20.0.5"},
         "floating_ip": "203.0.113.5", "image": "debian-12", "status": "ACTIVE",
         "firewall": {"tenant_subnets": ["10.20.3.0/24"]}},
        {"name": "moh-batch-1", "role": "app", "zones": ["app"], "fixed_ips": {}, "floating_ip": None,
         "image": "debian-12", "status": "BUILD"},
    ],
}


def test_inventory_format_json_matches_its_schema(tmp_path, capsys):
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(yaml.safe_dump(HOSTS))
    assert cli_main.main(["inventory", "moh", "--hosts", str(hosts), "--format", "json", "--key", "/k/id",
                          "--known-hosts", str(tmp_path / "kh")]) == 0
    data = checked("inventory", capsys.readouterr().out, capsys)
    hostvars = data["all"]["hosts"]
    assert sorted(hostvars) == ["moh-bastion", "moh-db-1", "moh-web-1"]
    assert hostvars["moh-bastion"]["gcloudctl_is_bastion"] and hostvars["moh-db-1"]["gcloudctl_bastion"]
    golden = ROOT / "tests" / "hardening" / "golden" / "inventory-l3-bastion.json"
    jsonschema.Draft202012Validator(schema_of("inventory", capsys)).validate(json.loads(golden.read_text()))


class _HostOps:
    """Host effects without hosts: each server answers as its name says (the use case is real)."""

    def reach(self, name, target, known_hosts, console, timeout):
        from gcloudctl.errors import Unreachable

        if "down" in name:
            raise Unreachable(f"{target.host}:22: no SSH banner")

    def harden(self, inventory, known_hosts, *, limit, check, timeout, progress):
        from gcloudctl.drivers.ansible import Drift, HostEvent, HostSummary, RunResult

        if "broken" in limit:
            failure = HostEvent(limit, "GC-SSH-01 sshd drop-in", "failed", "sshd -t: bad config")
            return RunResult("failed", 2, check, 1.0, {limit: HostSummary(ok=3, failed=1)}, failures=[failure])
        drift = [Drift(limit, "GC-FW-01 nftables", "--- before\n+++ after")] if check else []
        return RunResult("successful", 0, check, 1.0, {limit: HostSummary(ok=40, changed=2)}, drift=drift,
                         not_applicable={limit: ["GC-KRN-03 sysctl"]})

    def verify(self, name, target, known_hosts, level, timeout):
        from gcloudctl.hardening.audit import ControlResult

        return [ControlResult(cid, "t", level, "", "", "fail" if "weak" in name and cid == "GC-SSH-02" else "pass",
                              "evidence") for cid in ("GC-SSH-01", "GC-SSH-02", "GC-FW-01")]


@pytest.mark.parametrize("check", [False, True], ids=["harden", "check"])
def test_harden_o_json_matches_its_schema(tmp_path, monkeypatch, capsys, check):
    from gcloudctl.usecases import harden as usecase

    monkeypatch.setattr(usecase, "DriverHostOps", _HostOps)
    names = ["ok-1", "weak-1", "broken-1", "down-1"]
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(yaml.safe_dump({"level": 2, "hosts": [
        {"name": n, "role": "app", "zones": ["app"], "fixed_ips": {"net": f"10.0.0.{i + 10}"},
         "floating_ip": f"203.0.113.{i + 10}", "image": "debian-12", "status": "ACTIVE"}
        for i, n in enumerate(names)]}))
    code = cli_main.main(["-o", "json", "harden", "t1", "--hosts", str(hosts), "--known-hosts", str(tmp_path / "kh"),
                          *(["--check"] if check else [])])
    data = checked("harden", capsys.readouterr().out, capsys)
    assert code == 6 and not data["ok"], "a host was unreachable"
    statuses = {n: h["status"] for n, h in data["hosts"].items()}
    if check:
        assert statuses == {"ok-1": "checked", "weak-1": "checked", "broken-1": "failed", "down-1": "unreachable"}
        assert {d["host"] for d in data["drift"]} == {"ok-1", "weak-1"}
    else:
        assert statuses == {"ok-1": "hardened", "weak-1": "verify-failed", "broken-1": "failed",
                            "down-1": "unreachable"}
        assert data["hosts"]["weak-1"]["verify"]["failed"] == ["GC-SSH-02"]
    assert data["failures"][0]["host"] == "broken-1" and data["not_applicable"]["ok-1"]


class _ScriptedHost:
    """An SSH session to a host that answers the control checks: each passes (0), fails (1) or
    does not apply (PASS/FAIL/NOT_APPLICABLE codes) by turns; a host named down-* has no SSH."""

    def __init__(self, target, known_hosts, **kwargs):
        from gcloudctl.errors import Unreachable

        if str(target.host).endswith(".99"):
            raise Unreachable(f"{target.host}:22: no SSH banner")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def run(self, command, timeout=0, sudo=False):
        from gcloudctl.hardening import audit
        from gcloudctl.hardening.controls import FAIL, NOT_APPLICABLE, PASS, controls_for_level

        codes = [PASS, FAIL, NOT_APPLICABLE]
        return 0, "".join(f"{audit._MARK} begin {c.id}\nscripted\n{audit._MARK} end {c.id} {codes[i % 3]}\n"
                          for i, c in enumerate(controls_for_level(4))), ""


def test_audit_hosts_o_json_matches_its_schema(tmp_path, monkeypatch, capsys):
    """The real command over scripted SSH sessions: a report per host (the second run's carries
    the first as its baseline), and an unreachable host under errors."""
    from gcloudctl.drivers import ssh

    monkeypatch.setattr(ssh, "connect", _ScriptedHost)
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(yaml.safe_dump({"level": 2, "hosts": [
        {"name": name, "role": "app", "zones": ["app"], "fixed_ips": {"net": f"10.0.0.{last}"},
         "floating_ip": f"192.0.2.{last}", "image": "debian-12", "status": "ACTIVE"}
        for name, last in (("web-1", 5), ("db-1", 6), ("app-1", 99))]}))
    argv = ["-o", "json", "audit-hosts", "t1", "--no-lynis", "--hosts", str(hosts), "--known-hosts",
            str(tmp_path / "kh"), "--out", str(tmp_path / "out")]
    assert cli_main.main(argv) == 6
    first = checked("audit-hosts", capsys.readouterr().out, capsys)
    assert sorted(first["reports"]) == ["db-1", "web-1"] and list(first["errors"]) == ["app-1"]
    assert cli_main.main(argv) == 6
    again = checked("audit-hosts", capsys.readouterr().out, capsys)
    web = again["reports"]["web-1"]
    assert web["baseline"] == first["reports"]["web-1"]["score"] and web["score"]["failed"] > 0
    assert {c["status"] for c in web["controls"]} == {"pass", "fail", "not applicable"}
    with pytest.raises(jsonschema.ValidationError):  # the schema says what a report holds: it can fail
        checked("audit-hosts", json.dumps({"reports": {"web-1": {**web, "score": {}}}, "errors": {}}), capsys)


def test_controller_and_audit_commands_match_their_schemas(tmp_path, capsys):
    """controller migrate, audit verify/export, controller run --once, controller harden: direct
    database mode (break-glass), no cloud touched (the submitted request waits for approval)."""
    db = f"sqlite:///{tmp_path / 'store' / 'controller.db'}"
    (tmp_path / "store").mkdir(mode=0o700)
    assert cli_main.main(["-o", "json", "controller", "migrate", "--db", db]) == 0
    assert checked("controller-migrate", capsys.readouterr().out, capsys)["revision"]
    assert cli_main.main(["request", "submit", str(EXAMPLE), "--db", db]) == 0
    capsys.readouterr()
    assert cli_main.main(["-o", "json", "audit", "verify", "--db", db]) == 0
    report = checked("audit-verify", capsys.readouterr().out, capsys)
    assert report["ok"] and report["records"] >= 1
    assert cli_main.main(["-o", "json", "audit", "export", "--db", db]) == 0
    records = checked("audit-export", capsys.readouterr().out, capsys)
    assert records[-1]["hash"] == report["head"]["hash"] and records[0]["tenant"] == "byt-his-staging"
    assert cli_main.main(["-o", "json", "controller", "harden", "byt-his-staging", "--reason", "test", "--db", db]) == 0
    assert checked("status", capsys.readouterr().out, capsys)["phase"] == "pending-approval"
    assert cli_main.main(["-o", "json", "controller", "run", "--once", "--db", db]) == 0
    assert checked("controller-run", capsys.readouterr().out, capsys)["tenants"] == [], "nothing approved yet"


def test_controller_run_summary_with_tenants_matches_its_schema(capsys):
    """The rows `controller run --once -o json` prints once tenants were reconciled (the
    summary the runner builds; reconciling needs a cloud: tests/controller)."""
    from gcloudctl.cli.render import dump
    from gcloudctl.controller.reconciler import Outcome, Result
    from gcloudctl.controller.runner import Summary

    summary = Summary([Outcome("a", Result.APPLIED, changes=31), Outcome("b", Result.TERMINAL, message="quota")])
    data = checked("controller-run", dump(summary.to_dict(), "json"), capsys)
    assert not data["ok"] and data["counts"] == {"applied": 1, "terminal-error": 1}


def test_compliance_summary_matches_its_schema(cloud, tmp_path, capsys):
    assert cloud("apply", str(EXAMPLE), "--yes") == 0
    capsys.readouterr()
    code = cloud("-o", "json", "compliance", str(EXAMPLE), "--format", "both", "--out", str(tmp_path / "out"),
                 "--no-controller")
    data = checked("compliance-summary", capsys.readouterr().out, capsys)
    assert code in (0, 1) and len(data["files"]) == 2 and data["tenant"] == "byt-his-staging"
    assert cloud("compliance", str(EXAMPLE), "--format", "json", "--out", "-", "--no-controller") == code
    checked("compliance", capsys.readouterr().out, capsys)


def test_apply_with_hardening_matches_its_schema(cloud, tmp_path, monkeypatch, capsys):
    """`apply --harden -o json` carries the hardening document (host effects scripted; the use
    case, the inventory and the cloud's servers are real)."""
    from gcloudctl.usecases import harden as usecase

    monkeypatch.setattr(usecase, "DriverHostOps", _HostOps)
    key = tmp_path / "id_test"
    key.write_text("not a real key\n")
    key.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    code = cloud("apply", str(EXAMPLE), "--yes", "--harden", "--key", str(key), "-o", "json")
    data = checked("apply", capsys.readouterr().out, capsys)
    assert code == 0, data
    assert data["hardening"]["hosts"] and all(h["status"] == "hardened" for h in data["hardening"]["hosts"].values())
    assert data["outputs"]["servers"]


def test_destroy_timeout_under_json_is_one_document(cloud, capsys):
    """`destroy --timeout -o json` printed its result and then the error: two documents."""
    assert cloud("apply", str(EXAMPLE), "--yes") == 0
    cloud.api.inject("DELETE", r"^/servers/", 0, times=10**6, delay=30.0)
    capsys.readouterr()
    assert cloud("destroy", str(EXAMPLE), "--yes", "--timeout", "1", "-o", "json") == 5
    data = checked("destroy", capsys.readouterr().out, capsys)
    assert data["exit_code"] == 5 and "within" in data["error"]


def test_inventory_o_json_is_json(tmp_path, capsys):
    """`inventory -o json` printed YAML: only --format was read."""
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(json.dumps({"level": 1, "hosts": [
        {"name": "web-1", "role": "web", "zones": ["app"], "fixed_ips": {"app": "10.0.0.5"}, "floating_ip": None,
         "image": "debian-12", "status": "ACTIVE"}]}))
    assert cli_main.main(["inventory", "t1", "--hosts", str(hosts), "-o", "json", "--known-hosts", "/dev/null"]) == 0
    assert "web-1" in json.loads(capsys.readouterr().out)["all"]["hosts"]


# ---- omitted vs null: a field the code leaves out is not required and never null; a field the
# code always prints (null when unknown) is required. Each case edits a real output of the
# command (made on the in-memory cloud) and says whether the schema must accept it.

def _set(path: list, value):
    def edit(doc):
        node = doc
        for key in path[:-1]:
            node = node[key]
        if value is _DROP:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return doc
    return edit


_DROP = object()


def _outputs_for_omission_cases(cloud, tmp_path, capsys) -> dict:
    """Real documents: apply (changes, then no-op), plan of a change, destroy no-op, an invalid
    request's error, reap of an expired stack."""
    docs = {}
    assert cloud("apply", str(EXAMPLE), "--yes", "-o", "json") == 0
    docs["apply"] = json.loads(capsys.readouterr().out)
    assert cloud("apply", str(EXAMPLE), "--yes", "-o", "json") == 0
    docs["apply-no-op"] = json.loads(capsys.readouterr().out)
    changed = tmp_path / "changed.yaml"
    changed.write_text(EXAMPLE.read_text().replace("flavor: g1.small", "flavor: g1.medium"))
    assert cloud("plan", str(changed), "-o", "json") == 0
    docs["plan"] = json.loads(capsys.readouterr().out)
    assert cloud("destroy", "nobody-here", "--yes", "-o", "json") == 0
    docs["destroy-no-op"] = json.loads(capsys.readouterr().out)
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("region: hn1", "region: hn9"))
    assert cloud("plan", str(bad), "-o", "json") == 2
    docs["error-invalid"] = json.loads(capsys.readouterr().out)
    assert cloud("-o", "json", "describe", "nobody-here") == 7
    docs["error-not-found"] = json.loads(capsys.readouterr().out)
    return docs


# id, schema, source document, edit, accepted?, why
OMISSIONS = [
    ("apply-as-printed", "apply", "apply", lambda d: d, True, "the real output"),
    ("apply-no-op-as-printed", "apply", "apply-no-op", lambda d: d, True, "no run fields when nothing changed"),
    ("apply-no-op-null-seconds", "apply", "apply-no-op", _set(["seconds"], None), False,
     "a no-op apply leaves seconds out; it never prints null"),
    ("apply-null-outputs", "apply", "apply", _set(["outputs"], None), False, "outputs is left out, never null"),
    ("apply-null-hardening", "apply", "apply", _set(["hardening"], None), False, "hardening is left out, never null"),
    ("apply-null-outcome-error", "apply", "apply", _set(["outcomes", 0, "error"], None), False,
     "a change that worked has no error key"),
    ("plan-as-printed", "plan", "plan", lambda d: d, True, "the real output"),
    ("plan-change-null-id", "plan", "plan", lambda d: _set(["changes", _index_with(d, "id"), "id"], None)(d), False,
     "a change's id is printed only when the object exists, and then it is a string"),
    ("plan-change-null-before", "plan", "plan",
     lambda d: _set(["changes", _index_with(d, "before"), "before"], None)(d), False, "before is left out, never null"),
    ("destroy-no-op-as-printed", "destroy", "destroy-no-op", lambda d: d, True, "only tenant, ok, changes"),
    ("destroy-no-op-null-counts", "destroy", "destroy-no-op", _set(["counts"], None), False,
     "counts is left out when nothing was destroyed"),
    ("error-invalid-as-printed", "error", "error-invalid", lambda d: d, True, "the real output"),
    ("error-hint-null", "error", "error-invalid", _set(["hint"], None), True, "hint is always printed, null if none"),
    ("error-hint-missing", "error", "error-not-found", _set(["hint"], _DROP), False, "hint is always printed"),
    ("problem-line-null", "error", "error-invalid", _set(["problems", 0, "line"], None), False,
     "a problem without a line leaves `line` out"),
    ("problem-line-omitted", "error", "error-invalid", _set(["problems", 0, "line"], _DROP), True,
     "a problem of a file as a whole has no line"),
    ("problem-hint-null", "error", "error-invalid", _set(["problems", 0, "hint"], None), False,
     "a problem without a hint leaves `hint` out"),
]


def _index_with(doc: dict, key: str) -> int:
    return next(i for i, change in enumerate(doc["changes"]) if key in change)


def test_omitted_fields_are_not_null(cloud, tmp_path, capsys):
    docs = _outputs_for_omission_cases(cloud, tmp_path, capsys)
    schemas = {name: schema_of(name, capsys) for name in {case[1] for case in OMISSIONS}}
    wrong = []
    for case, schema, source, edit, accepted, why in OMISSIONS:
        valid = jsonschema.Draft202012Validator(schemas[schema]).is_valid(edit(copy.deepcopy(docs[source])))
        if valid != accepted:
            wrong.append(f"{case}: {'rejected' if accepted else 'accepted'} ({why})")
    assert wrong == []


def test_reap_error_is_null_unless_failed(capsys):
    """`reap` prints `error` for every stack: null unless it failed (required, nullable)."""
    schema = schema_of("reap", capsys)
    stack = {"tenant": "t", "region": "hn1", "agency": None, "expires_at": "2026-01-01T00:00:00Z",
             "status": "would-destroy", "error": None}
    document = {"now": "2026-02-01T00:00:00Z", "dry_run": True, "stacks": [stack]}
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(document)
    assert not validator.is_valid({**document, "stacks": [{k: v for k, v in stack.items() if k != "error"}]})


# ---- --allow-data-loss (issue 15's guard, passed through by apply and destroy) -------------------

def test_allow_data_loss_passes_through_apply_and_destroy(config, example_doc, tmp_path, monkeypatch, capsys):
    """Without the flag, apply of a request that drops a volume and destroy of a level-3 tenant
    with volumes are refused (exit 4, the volume still there); with it, both go through."""
    from tests.unit.volumes_support import block_storage_config, request_text, with_db_volume

    api = FakeApi(block_storage=True)
    original = AppContext.from_options.__func__

    def from_options(cls, **options):
        ctx = original(cls, **options)
        ctx.driver_factory = lambda name, region: FakeCloud(api)
        return ctx

    monkeypatch.setattr(AppContext, "from_options", classmethod(from_options))
    platform = tmp_path / "platform.yaml"
    platform.write_text(yaml.safe_dump(block_storage_config(config).catalog.model_dump(mode="json", by_alias=True)))
    doc = with_db_volume(example_doc, vtype="encrypted")
    doc["spec"]["classification"] = 3
    doc["spec"]["securityGroups"][0]["rules"][0]["remote"] = "10.0.0.0/8"
    for group in doc["spec"]["securityGroups"]:
        group["rules"].append({"direction": "egress", "protocol": "tcp", "ports": "443", "remote": "10.0.0.0/8"})
    for server in doc["spec"]["servers"]:
        server["floatingIP"] = False
    request = tmp_path / "request.yaml"
    request.write_text(request_text(doc))

    def gcloudctl(*args):
        return cli_main.main(["--platform", str(platform), *args])

    assert gcloudctl("apply", str(request), "--yes") == 0 and len(api.volumes) == 1
    capsys.readouterr()
    assert gcloudctl("destroy", str(request), "--yes", "-o", "json") == 4
    assert checked("error", capsys.readouterr().out, capsys)["kind"] == "DataLossRefused"
    assert len(api.volumes) == 1, "refused: nothing deleted"

    without = copy.deepcopy(doc)
    next(s for s in without["spec"]["servers"] if s["name"] == "db")["volumes"] = []
    request.write_text(request_text(without))
    assert gcloudctl("apply", str(request), "--yes") == 4 and len(api.volumes) == 1
    assert gcloudctl("apply", str(request), "--yes", "--allow-data-loss") == 0 and api.volumes == {}
    request.write_text(request_text(doc))
    assert gcloudctl("apply", str(request), "--yes") == 0 and len(api.volumes) == 1
    assert gcloudctl("destroy", str(request), "--yes", "--allow-data-loss") == 0 and api.volumes == {}


def test_missing_key_is_located_at_the_option(cloud, tmp_path, monkeypatch, capsys):
    """`apply` of a request that wants hardening, without --key: exit 2 before any write, and the
    problem names the option (`--key` on the command line), not `<input>: <document>`."""
    monkeypatch.delenv("GCLOUDCTL_SSH_KEY", raising=False)
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["servers"][0]["hardening"] = {"profile": "L2"}
    request = tmp_path / "hardened.yaml"
    request.write_text(yaml.safe_dump(doc))
    assert cloud("apply", str(request), "--yes", "-o", "json") == 2
    data = checked("error", capsys.readouterr().out, capsys)
    assert data["kind"] == "HardeningKeyMissing" and cloud.api.total_writes() == 0
    assert [(p["file"], p["path"]) for p in data["problems"]] == [("command line", "--key")]
