"""The compliance dossier: the example tenant end to end through the CLI (controller store, the
in-memory cloud, audit evidence on disk) as JSON checked against `gcloudctl schema compliance`,
and the pure builder's honesty rules, table-driven."""

from __future__ import annotations

import json

import jsonschema
import pytest

from gcloudctl.cli.main import main
from gcloudctl.compliance.dossier import HostEvidence, Inputs, build, worst
from gcloudctl.compliance.evidence import read_reports
from gcloudctl.compliance.model import Status
from gcloudctl.compliance.render import render_html
from gcloudctl.hardening.controls import CONTROLS, controls_for_level
from tests.compliance.conftest import LEVEL, NA_REASON


def _schema(capsys) -> dict:
    capsys.readouterr()
    assert main(["schema", "compliance"]) == 0
    return json.loads(capsys.readouterr().out)


def run_dossier(world, capsys, *extra) -> dict:
    capsys.readouterr()
    code = main(["-o", "json", "compliance", "byt-his-staging", "--db", world.db, "--evidence", str(world.evidence),
                 "--out", str(world.out), "--format", "both", *extra])
    assert code == 0, capsys.readouterr()
    summary = json.loads(capsys.readouterr().out)
    assert sorted(summary["files"]) == sorted(str((world.out / f"byt-his-staging.{k}").resolve()) for k in ("html", "json"))
    return json.loads((world.out / "byt-his-staging.json").read_text("utf-8"))


def test_example_dossier_json_is_valid_and_honest(world, capsys, config):
    dossier = run_dossier(world, capsys)
    jsonschema.Draft202012Validator(_schema(capsys)).validate(dossier)

    # level and rulebook version
    assert dossier["classification"]["level"] == LEVEL
    assert dossier["classification"]["rulebook"] == config.rulebook.metadata.name
    assert dossier["classification"]["rulebookVersion"] == config.rulebook.metadata.version
    # every control the catalogue requires at the level, and only those (read from the catalogue)
    assert [c["id"] for c in dossier["controls"]] == sorted(
        (c.id for c in controls_for_level(LEVEL)), key=lambda i: ([c.level for c in CONTROLS if c.id == i][0], i))
    by_id = {c["id"]: {h["host"]: h for h in c["hosts"]} for c in dossier["controls"]}
    assert set(by_id[world.failing]) == {"db-1", "web-1", "web-2"}  # the observed servers
    # db-1 has no report: nothing about it is passed
    assert {h["db-1"]["status"] for h in by_id.values()} == {"not_checked"}
    # web-2's report has no result for the newest control: not checked, never passed
    assert by_id[world.missing]["web-2"]["status"] == "not_checked"
    assert by_id[world.failing]["web-1"]["status"] == "fail"
    assert next(c for c in dossier["controls"] if c["id"] == world.failing)["status"] == "fail"
    for cid in world.not_applicable:
        assert by_id[cid]["web-1"]["status"] == "not_applicable"
        assert by_id[cid]["web-1"]["evidence"] == NA_REASON
    assert {n["subject"].split()[0] for n in dossier["notApplicable"]} == set(world.not_applicable)
    assert all(n["reason"] == NA_REASON for n in dossier["notApplicable"])
    # a "pass" always names its evidence, its time and its report
    passes = [h for c in dossier["controls"] for h in c["hosts"] if h["status"] == "pass"]
    assert passes and all(h["checkedAt"] and h["source"] and h["evidence"] for h in passes)
    counted = dossier["summary"]["byStatus"]
    assert counted["pass"] == len(passes) and counted["not_checked"] >= len(dossier["controls"]) + 1

    # topology: requested and observed, and who can reach what
    nets = {n["name"]: n for n in dossier["topology"]["networks"]}
    assert nets["app"]["zone"] == "app" and nets["app"]["observedCidr"] == "10.40.1.0/24"
    assert nets["db"]["cidr"] is None and nets["db"]["observedCidr"]  # allocated by the platform
    reach = {(r["target"], r["ports"]): r for r in dossier["topology"]["reach"]}
    assert reach[("web", "443")]["internet"] is True and reach[("web", "443")]["floatingIP"] is True
    assert reach[("db", "5432")]["internet"] is False and reach[("db", "5432")]["source"] == "group web (web)"
    # as the cloud has it: every observed server, its groups' ingress, all of it approved
    seen = {(r["target"], r["ports"], r["source"]): r for r in dossier["topology"]["observedReach"]}
    assert seen[("web-1", "443", "0.0.0.0/0")]["internet"] is True and seen[("web-1", "443", "0.0.0.0/0")]["floatingIP"]
    assert seen[("db-1", "5432", "group web")]["internet"] is False
    assert {r["target"] for r in seen.values()} == {"web-1", "web-2", "db-1"}
    assert all(r["inRequest"] is True for r in seen.values())
    groups = {g["name"]: g for g in dossier["topology"]["securityGroups"]}
    assert any(r["direction"] == "egress" for r in groups["web"]["observedRules"])  # the cloud's default egress shows
    # policy rules: evaluated against the approved request from the store
    assert dossier["policyRules"] and all(r["status"] in ("pass", "fail") for r in dossier["policyRules"])
    assert all("approved generation 1" in r["checkedAgainst"] for r in dossier["policyRules"])

    # approvals and the audit chain head, from the controller's read use cases
    gov = dossier["governance"]
    assert gov["managed"] is True and gov["generation"] == 1
    version = gov["versions"][0]
    assert version["approvals"] == version["approvalsRequired"] >= 1
    assert {d["decision"] for d in version["decisions"]} == {"approve"}
    head = world.service.audit_verify(caller=None)["head"]
    assert gov["audit"]["chainOk"] is True
    assert (gov["audit"]["headSeq"], gov["audit"]["headHash"]) == (head["seq"], head["hash"])
    assert gov["audit"]["tenantLastHash"] == head["hash"]  # the last record is this tenant's approval

    # what the CLI and the controller said about the sources is translatable (and translated)
    from gcloudctl import i18n

    said = [s["detail"] for s in dossier["sources"]] + dossier["notes"] + [gov["note"]]
    assert i18n.untranslated(sorted({n["message"] for n in said} | {v for n in said for v in n["params"].values()
                                                                     if v in ("controller database", "request API")}),
                             lang="vi", domain="compliance") == []


def test_dossier_without_controller_or_evidence_checks_nothing(tmp_path, cli_on_fake, capsys):
    from tests.fixtures.core import EXAMPLE

    assert cli_on_fake("apply", str(EXAMPLE), "--yes") == 0
    capsys.readouterr()
    assert main(["compliance", str(EXAMPLE), "--no-controller", "--format", "json", "--out", "-"]) == 0
    dossier = json.loads(capsys.readouterr().out)
    statuses = {h["status"] for c in dossier["controls"] for h in c["hosts"]}
    assert statuses == {"not_checked"}
    assert dossier["governance"]["managed"] is False and "not asked" in dossier["governance"]["note"]["text"]
    assert dossier["summary"]["byStatus"]["pass"] == 0


def test_unknown_tenant_is_not_found(cli_on_fake, capsys):
    assert main(["compliance", "no-such-tenant", "--no-controller", "--out", "-"]) == 7
    assert "not found" in capsys.readouterr().err


# --------------------------------------------------------------------------- the builder's rules

def _inputs(config, **kw) -> Inputs:
    base = dict(tenant="t1", generated_at="2026-12-03T00:00:00Z", gcloudctl_version="test", rulebook=config.rulebook,
                controls=CONTROLS, level=1, catalog=config.catalog, agencies=config.agencies)
    return Inputs(**(base | kw))


def _report(host: str, results: dict, at: str = "2026-12-03T01:00:00Z") -> HostEvidence:
    return HostEvidence(host=host, generated_at=at, profile="L1", results=results, source=f"{host}.json")


FIRST = controls_for_level(1)[0].id
CASES = [
    ("no report", {}, Status.NOT_CHECKED),
    ("report without this control", {"h1": _report("h1", {})}, Status.NOT_CHECKED),
    ("pass", {"h1": _report("h1", {FIRST: ("pass", "ok")})}, Status.PASS),
    ("fail", {"h1": _report("h1", {FIRST: ("fail", "bad")})}, Status.FAIL),
    ("not applicable keeps its reason", {"h1": _report("h1", {FIRST: ("not applicable", "why")})},
     Status.NOT_APPLICABLE),
    ("a status the report invents is an error, not a pass", {"h1": _report("h1", {FIRST: ("passed", "?")})},
     Status.ERROR),
]


@pytest.mark.parametrize("why,evidence,expected", CASES, ids=[c[0] for c in CASES])
def test_host_status_comes_only_from_evidence(config, why, evidence, expected):
    d = build(_inputs(config, hosts=[{"name": "h1"}], evidence=evidence))
    result = next(c for c in d.controls if c.id == FIRST).hosts[0]
    assert result.status is expected, why
    if expected is Status.NOT_CHECKED:
        assert result.checkedAt is None
    if expected is Status.NOT_APPLICABLE:
        assert d.notApplicable[0].reason == "why"


WORST = [
    ([Status.PASS, Status.FAIL], Status.FAIL),
    ([Status.PASS, Status.NOT_CHECKED], Status.NOT_CHECKED),
    ([Status.PASS, Status.NOT_APPLICABLE], Status.PASS),
    ([Status.NOT_APPLICABLE, Status.NOT_APPLICABLE], Status.NOT_APPLICABLE),
    ([Status.ERROR, Status.PASS], Status.ERROR),
    ([], Status.NOT_CHECKED),
]


@pytest.mark.parametrize("statuses,expected", WORST)
def test_overall_status_is_the_worst(statuses, expected):
    assert worst(statuses) is expected


def test_evidence_for_a_server_not_in_the_tenant_is_left_out_and_said(config):
    d = build(_inputs(config, hosts=[{"name": "h1"}], evidence={"gone": _report("gone", {FIRST: ("pass", "ok")})}))
    assert [h.host for h in d.controls[0].hosts] == ["h1"]
    assert any("report for gone was left out" in n.text for n in d.notes)


def test_level_5_uses_the_l4_controls_and_says_so(config):
    d = build(_inputs(config, level=5, hosts=[]))
    assert {c.id for c in d.controls} == {c.id for c in controls_for_level(4)}
    assert any("stop at L4" in n.text for n in d.notes)


def test_no_request_means_policy_rules_not_checked(config):
    d = build(_inputs(config, level=3))
    assert d.policyRules and {r.status for r in d.policyRules} == {Status.NOT_CHECKED}


def test_html_escapes_cloud_side_names_and_speaks_vietnamese(config):
    name = "<script>alert(1)</script>"
    d = build(_inputs(config, hosts=[{"name": name}], evidence={name: _report(name, {FIRST: ("pass", "<b>x</b>")})}))
    page = render_html(d, lang="vi")
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>x</b>" not in page
    assert "Hồ sơ tuân thủ (compliance dossier)" in page and "Đạt (pass)" in page
    assert "Compliance dossier" in render_html(d, lang="en")


def test_evidence_reader_takes_the_newest_report_per_host_and_names_the_rest(tmp_path):
    def report(host, at):
        return {"host": host, "generated_at": at, "profile": "L1", "controls": [{"id": FIRST, "status": "pass"}]}

    (tmp_path / "a.json").write_text(json.dumps(report("h1", "2026-12-01T00:00:00Z")))
    (tmp_path / "b.json").write_text(json.dumps(report("h1", "2026-12-02T00:00:00Z")))
    (tmp_path / "c.json").write_text('{"not": "a report"}')
    (tmp_path / "d.json").write_text("{broken")
    found, notes = read_reports(tmp_path)
    assert found["h1"].source == "b.json"
    assert sorted(n.text.split(":")[0] for n in notes) == ["c.json", "d.json"]


def test_live_runs_the_checks_now_and_unreachable_hosts_stay_not_checked(tmp_path, capsys, monkeypatch):
    """--live runs the audit-hosts machinery (here over a scripted SSH host that fails every check,
    and one host that refuses the connection): the reports land in the evidence directory and the
    dossier shows exactly what they say; the unreachable host is not checked, exit 6."""
    from gcloudctl.drivers import ssh
    from gcloudctl.errors import Unreachable
    from tests.fixtures.core import EXAMPLE
    from tests.hardening.test_audit_paths import ScriptedHost

    def connect(target, known_hosts, **kw):
        if target.host == "192.0.2.7":
            raise Unreachable(f"{target.host}: connection refused")
        return ScriptedHost()

    monkeypatch.setattr(ssh, "connect", connect)
    hosts = [{"name": n, "role": "web", "zones": ["app"], "fixed_ips": {"app": f"10.0.0.{i}"},
              "floating_ip": f"192.0.2.{i}", "image": "debian-12", "status": "ACTIVE"}
             for i, n in ((6, "web-1"), (7, "web-2"))]
    (tmp_path / "hosts.yml").write_text(json.dumps({"hosts": hosts}))
    code = main(["compliance", str(EXAMPLE), "--no-controller", "--hosts", str(tmp_path / "hosts.yml"), "--live",
                 "--known-hosts", str(tmp_path / "kh"), "--format", "json", "--out", str(tmp_path / "out")])
    assert code == 6
    dossier = json.loads((tmp_path / "out" / "byt-his-staging.json").read_text())
    assert sorted(p.name for p in (tmp_path / "out" / "evidence").iterdir()) == ["web-1.html", "web-1.json"]
    assert {h["host"]: h["status"] for h in dossier["controls"][0]["hosts"]} == {"web-1": "fail", "web-2": "not_checked"}
    assert all(h["evidence"] == "scripted host" for c in dossier["controls"] for h in c["hosts"] if h["host"] == "web-1")
    assert any("web-2: not audited now" in n["text"] for n in dossier["notes"])


def test_every_text_of_the_html_has_a_vietnamese_translation(config, tmp_path):
    """The template's messages, the status words, the not-checked reasons and every note the
    builder, the evidence reader and the sources can produce are in compliance.po."""
    import re
    from importlib import resources

    from gcloudctl import i18n
    from gcloudctl.compliance import dossier as builder
    from gcloudctl.compliance.render import STATUS_TEXT

    template = resources.files("gcloudctl.compliance").joinpath("templates", "dossier.html.j2").read_text("utf-8")
    messages = set(re.findall(r'_\("([^"]+)"', template)) | set(STATUS_TEXT.values())
    messages |= {builder.NO_REPORT, builder.NO_RESULT, "request", "observed", "evidence", "controller"}
    (tmp_path / "x.json").write_text("{broken")
    (tmp_path / "y.json").write_text("{}")
    _, read_notes = read_reports(tmp_path)
    dossiers = [build(_inputs(config, level=None)), build(_inputs(config, level=5, hosts=[])),
                build(_inputs(config, evidence={"gone": _report("gone", {})}))]
    for d in dossiers:
        messages |= {n.message for n in d.notes} | {s.detail.message for s in d.sources}
        messages |= {n.message for n in (d.classification.note, d.governance.note) if n is not None}
    messages |= {n.message for n in read_notes}
    assert i18n.untranslated(sorted(messages), lang="vi", domain="compliance") == []


def test_a_rule_added_in_the_cloud_shows_as_not_approved(world, capsys, cli_on_fake):
    """Someone opens SSH to the world on the web group behind the controller's back: the observed
    reach shows it, from the internet, and not in the request."""
    api = cli_on_fake.api
    group = next(g for g in api.neutron["security-groups"].values() if g["name"] == "web")
    api._neutron_create("security-group-rules", {
        "security_group_id": group["id"], "project_id": group["project_id"], "direction": "ingress",
        "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
        "remote_ip_prefix": "0.0.0.0/0"})
    dossier = run_dossier(world, capsys)
    extra = [r for r in dossier["topology"]["observedReach"] if r["ports"] == "22" and r["source"] == "0.0.0.0/0"]
    assert {r["target"] for r in extra} == {"web-1", "web-2"}
    assert all(r["internet"] is True and r["inRequest"] is False for r in extra)
    html = (world.out / "byt-his-staging.html").read_text("utf-8")
    assert "không: chưa được phê duyệt" in html


BAD_INPUT = [
    ("two documents on stdout", ["--format", "both", "--out", "-"], "one document"),
    ("missing evidence directory", ["--evidence", "/nonexistent/gcloudctl-evidence", "--out", "OUT"], "no such directory"),
    ("request file of another tenant", ["--request", "examples/byt-his-staging.yaml", "--out", "OUT"], "metadata.name"),
]


@pytest.mark.parametrize("why,args,message", BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_input_is_exit_2_and_writes_nothing(tmp_path, capsys, monkeypatch, why, args, message):
    from tests.fixtures.core import ROOT

    monkeypatch.chdir(ROOT)
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    code = main(["compliance", "other-tenant", "--no-cloud", "--no-controller", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, why
    assert not (tmp_path / "out").exists()
