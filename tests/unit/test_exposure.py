"""Specification of "from the internet" (`gcloudctl.policy.exposure`): one definition, used by
the classification rulebook (`admin-sources-restricted` through `validate`) and by the approval
rules (`opensIngressFromInternet` through `approvals.requirement`) — every case below is judged
by both, and they must agree.

The internet is every address outside the private ranges, the agency's pools and the catalog's
`internalRanges`; a group's rules (and all the groups a server uses) are judged as one union;
any internet address at all counts (see the module docstring for why a partner's /32 does).
"""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest
import yaml

from gcloudctl import pipeline
from gcloudctl.controller import approvals
from gcloudctl.model.load import load_request
from gcloudctl.policy.exposure import InternalRanges, exposure
from gcloudctl.validate import check_document

CATALOG_INTERNAL = "192.0.2.0/24"   # e.g. the government's private WAN, declared by platform ops
BYT_PUBLIC_POOL = "198.51.100.0/24"  # a public range the agency owns (its pool)
BTC_PUBLIC_POOL = "198.51.101.0/24"  # another agency's public pool: the internet for BYT

# The 221 public /8 networks: all but 0/8, 10/8, 127/8 and 224/8..255/8 (multicast, reserved).
PUBLIC_SLASH_8S = [f"{n}.0.0.0/8" for n in range(1, 224) if n not in (10, 127)]
assert len(PUBLIC_SLASH_8S) == 221


@pytest.fixture(scope="module")
def config() -> pipeline.Config:
    """The shipped documents, plus an internal range in the catalog and a public pool for BYT and BTC."""
    shipped = pipeline.Config.load()
    catalog = shipped.catalog.model_copy(update={"spec": shipped.catalog.spec.model_copy(
        update={"internalRanges": [ipaddress.IPv4Network(CATALOG_INTERNAL)]})})
    agencies = shipped.agencies.spec.agencies
    pools = {"BYT": BYT_PUBLIC_POOL, "BTC": BTC_PUBLIC_POOL}
    updated = {code: agency.model_copy(update={"cidrPools": [*agency.cidrPools, ipaddress.IPv4Network(pools[code])]})
               if code in pools else agency for code, agency in agencies.items()}
    registry = shipped.agencies.model_copy(update={"spec": shipped.agencies.spec.model_copy(
        update={"agencies": updated})})
    return dataclasses.replace(shipped, catalog=catalog, agencies=registry)


@pytest.fixture(scope="module")
def rules() -> approvals.ApprovalRules:
    return approvals.parse_rules(approvals.default_rules_text())


def ssh_from(*remotes) -> list[dict]:
    """Ingress tcp/22 rules, one per remote (None: a rule with neither remote nor remoteGroup)."""
    return [{"direction": "ingress", "protocol": "tcp", "ports": "22", **({"remote": r} if r else {})}
            for r in remotes]


def request_text(groups: dict[str, list[dict]], *, servers_use: list[str] | None = None, level: int = 2) -> str:
    """A level-2 BYT request with the given security groups, all used by its one server."""
    doc = {
        "apiVersion": "gcloud.gov.vn/v1", "kind": "TenantRequest",
        "metadata": {"name": "exposure-spec", "agency": "BYT", "requester": "nguyen.van.a"},
        "spec": {
            "classification": level, "region": "hn1",
            "quotas": {"instances": 2, "cores": 2, "ramMiB": 4096},
            "networks": [{"name": "app", "cidr": "10.40.7.0/24", "zone": "app"}],
            "securityGroups": [{"name": name, "rules": rules} for name, rules in groups.items()],
            "servers": [{"name": "app", "flavor": "g1.small", "image": "debian-12-hardened", "networks": ["app"],
                         "securityGroups": list(groups) if servers_use is None else servers_use}],
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


# (id, groups of the server's rules on tcp/22, internet-facing?, the whole internet?, reason)
CASES = [
    ("anywhere", {"admin": ssh_from("0.0.0.0/0")}, True, True, "0.0.0.0/0 is the internet"),
    ("two-halves", {"admin": ssh_from("0.0.0.0/1", "128.0.0.0/1")}, True, True,
     "no single prefix is wider than /1, but their union is everything"),
    ("221-public-slash-8s", {"admin-a": ssh_from(*PUBLIC_SLASH_8S[:111]), "admin-b": ssh_from(*PUBLIC_SLASH_8S[111:])},
     True, True, "every public /8, split over two groups the server uses (a group holds at most 200 rules)"),
    ("no-remote", {"admin": ssh_from(None)}, True, True, "no remote and no remoteGroup admits any source"),
    ("cgnat", {"admin": ssh_from("100.64.0.0/10")}, False, False, "100.64/10 is shared (CGNAT) space, not public"),
    ("rfc1918-10", {"admin": ssh_from("10.0.0.0/8")}, False, False, "RFC 1918"),
    ("all-private-ranges", {"admin": ssh_from("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                                              "127.0.0.0/8", "169.254.0.0/16")}, False, False,
     "private, CGNAT, loopback and link-local together are still not the internet"),
    ("wider-than-private", {"admin": ssh_from("10.0.0.0/7")}, True, False, "10.0.0.0/7 holds 11.0.0.0/8, which is public"),
    ("agency-own-pool", {"admin": ssh_from(BYT_PUBLIC_POOL)}, False, False,
     "a public range in the agency's own pools is the agency's network"),
    ("other-agency-pool", {"admin": ssh_from(BTC_PUBLIC_POOL)}, True, False,
     "another agency's public pool is not this agency's network"),
    ("catalog-internal-range", {"admin": ssh_from(CATALOG_INTERNAL)}, False, False,
     "the platform catalog declares it internal"),
    ("beyond-catalog-internal", {"admin": ssh_from("192.0.2.0/23")}, True, False,
     "half of 192.0.2.0/23 lies outside the declared internal range"),
    ("partner-slash-32", {"admin": ssh_from("203.0.113.7/32")}, True, False,
     "judgement: any internet address counts; ops admit a partner with the catalog's internalRanges"),
    ("private-plus-one-public", {"admin": ssh_from("10.0.0.0/8", "8.8.8.8/32")}, True, False,
     "the union is judged: one public address among private ones is enough"),
    ("multicast-only", {"admin": ssh_from("224.0.0.0/4")}, False, False, "multicast is never a unicast source"),
    ("remote-group", {"admin": [{"direction": "ingress", "protocol": "tcp", "ports": "22", "remoteGroup": "admin"}]},
     False, False, "a remoteGroup admits only the group's members"),
]


@pytest.mark.parametrize("case_id,groups,internet,whole,reason", CASES, ids=[c[0] for c in CASES])
def test_rulebook_and_approvals_agree(case_id, groups, internet, whole, reason, config, rules):
    text = request_text(groups)
    request, problems = check_document(text, config, "exposure.yaml")
    assert {p.rule for p in problems} == ({"admin-sources-restricted"} if internet else set()), \
        (reason, [p.format() for p in problems])

    need = approvals.requirement(rules, load_request(text), None,
                                 context=approvals.Context(catalog=config.catalog, agencies=config.agencies))
    opened = any(r.startswith("opens-ingress-from-internet:") for r in need.reasons)
    assert (opened, need.approvals) == (internet, 2 if internet else 1), (reason, need)

    internal = InternalRanges.of(config.catalog, config.agencies.get("BYT"))
    remotes = [ipaddress.IPv4Network(r.get("remote", "0.0.0.0/0")) for rs in groups.values() for r in rs
               if "remoteGroup" not in r]
    judged = exposure(remotes, internal)
    assert (judged.internet_facing, judged.whole_internet) == (internet, whole), (reason, judged.describe())


def test_the_union_is_named_in_the_message(config):
    """Each half alone is half the internet; the message says what the group opens together."""
    _, problems = check_document(request_text({"admin": ssh_from("0.0.0.0/1", "128.0.0.0/1")}), config, "r.yaml")
    assert [p.path for p in problems] == ["spec.securityGroups[0].rules[0]", "spec.securityGroups[0].rules[1]"]
    assert all("with the group's other rules: the whole internet" in p.message for p in problems), problems


def test_web_only_rule_uses_the_same_definition(config):
    """Level 3 `internet-ingress-web-only`: 8443 from the two halves is refused, from the agency's pool allowed."""
    halves = [{"direction": "ingress", "protocol": "tcp", "ports": "8443", "remote": r}
              for r in ("0.0.0.0/1", "128.0.0.0/1")]
    pool = [{"direction": "ingress", "protocol": "tcp", "ports": "8443", "remote": BYT_PUBLIC_POOL}]
    _, problems = check_document(request_text({"web": halves}, level=3), config, "r.yaml")
    assert "internet-ingress-web-only" in {p.rule for p in problems}
    _, problems = check_document(request_text({"web": pool}, level=3), config, "r.yaml")
    assert "internet-ingress-web-only" not in {p.rule for p in problems}, [p.format() for p in problems]


# (id, previous version's groups/servers_use, new version's, approvals, reason) -- level 2 throughout
UPDATES = [
    ("anywhere-to-halves", ({"admin": ssh_from("0.0.0.0/0")}, None), ({"admin": ssh_from("0.0.0.0/1", "128.0.0.0/1")}, None),
     1, "the same addresses written differently open nothing new"),
    ("half-to-whole", ({"admin": ssh_from("0.0.0.0/1")}, None), ({"admin": ssh_from("0.0.0.0/1", "128.0.0.0/1")}, None),
     2, "the other half is newly let in"),
    ("private-plus-partner", ({"admin": ssh_from("10.0.0.0/8")}, None), ({"admin": ssh_from("10.0.0.0/8", "203.0.113.7/32")}, None),
     2, "one new public address is an escalation"),
    ("pool-added", ({"admin": ssh_from("10.0.0.0/8")}, None), ({"admin": ssh_from("10.0.0.0/8", BYT_PUBLIC_POOL)}, None),
     1, "the agency's own pool is not the internet"),
    ("server-joins-open-group", ({"open": ssh_from("0.0.0.0/0"), "closed": ssh_from("10.0.0.0/8")}, ["closed"]),
     ({"open": ssh_from("0.0.0.0/0"), "closed": ssh_from("10.0.0.0/8")}, ["closed", "open"]),
     2, "the group was open before, but the server is newly exposed (union of the groups a server uses)"),
    ("closing", ({"admin": ssh_from("0.0.0.0/0")}, None), ({"admin": ssh_from("10.0.0.0/8")}, None),
     1, "closing is never an escalation"),
]


@pytest.mark.parametrize("case_id,old,new,expected,reason", UPDATES, ids=[c[0] for c in UPDATES])
def test_approvals_escalate_on_newly_opened_internet_addresses(case_id, old, new, expected, reason, config, rules):
    context = approvals.Context(catalog=config.catalog, agencies=config.agencies)
    previous = load_request(request_text(old[0], servers_use=old[1]))
    need = approvals.requirement(rules, load_request(request_text(new[0], servers_use=new[1])), previous,
                                 context=context)
    assert need.approvals == expected, (reason, need)


def test_older_rules_files_still_read(config, rules):
    """`opensIngressFrom: 0.0.0.0/0` (shipped until now) means the same as opensIngressFromInternet."""
    text = approvals.default_rules_text().replace("opensIngressFromInternet: true", "opensIngressFrom: 0.0.0.0/0")
    older = approvals.parse_rules(text)
    assert older.spec.escalations[1].when.opensIngressFrom == ipaddress.IPv4Network("0.0.0.0/0")
    context = approvals.Context(catalog=config.catalog, agencies=config.agencies)
    for groups, expected in (({"admin": ssh_from("0.0.0.0/1", "128.0.0.0/1")}, 2),
                             ({"admin": ssh_from(BYT_PUBLIC_POOL)}, 1)):
        request = load_request(request_text(groups))
        assert approvals.requirement(older, request, None, context=context).approvals == expected
        assert approvals.requirement(rules, request, None, context=context).approvals == expected


def test_without_context_only_private_ranges_are_internal(rules):
    """A caller that passes no catalog/registry gets at least as many approvals, never fewer."""
    request = load_request(request_text({"admin": ssh_from(BYT_PUBLIC_POOL)}))
    assert approvals.requirement(rules, request, None).approvals == 2
