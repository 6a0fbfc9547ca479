"""Shared set-up (no tests here) for the fleet-observation tests and `bench/controller_cycle.py`:
an agency registry with one agency of our own (`BCH`, domain `BCH`, large ceilings: the other
suites' agencies BYT/BTC/QNI and their quota totals are never touched), cheap tenant requests
(a network with its subnet, a router, a security group; no servers) and the controller stack
over the real pipeline with or without fleet observation."""

from __future__ import annotations

import copy
import ipaddress
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import yaml

from gcloudctl import pipeline
from gcloudctl.controller import approvals
from gcloudctl.controller.engine import PipelineEngine
from gcloudctl.controller.reconciler import Reconciler
from gcloudctl.controller.runner import Runner
from gcloudctl.controller.service import RequestService
from gcloudctl.controller.store import open_store
from gcloudctl.drivers.openstack_fleet import fleet_observer
from gcloudctl.model.identity import Caller, GcloudRole

log = logging.getLogger("fleet")
AGENCY = "BCH"
PREFIX = "fleet-c-"

REGISTRY = {
    "apiVersion": "gcloud.gov.vn/v1", "kind": "AgencyRegistry",
    "metadata": {"name": "fleet-bench-agencies", "version": "1"},
    "spec": {"agencies": {AGENCY: {
        "name": "Fleet benchmark agency", "domain": AGENCY, "maxClassification": 3,
        "cidrPools": ["10.96.0.0/12"],
        "quotaCeilings": {"instances": 100000, "cores": 100000, "ramMiB": 100000000, "floatingIPs": 100000,
                          "volumes": 100000, "volumeGiB": 10000000}}}},
}


def write_registry(folder: Path, domain: str = AGENCY) -> Path:
    registry = copy.deepcopy(REGISTRY)
    registry["spec"]["agencies"][AGENCY]["domain"] = domain
    path = folder / "fleet-agencies.yaml"
    path.write_text(yaml.safe_dump(registry, sort_keys=False))
    return path


def config(folder: Path, domain: str = AGENCY) -> pipeline.Config:
    return pipeline.Config.load(agencies_file=write_registry(folder, domain))


def tenant_text(name: str, *, sg_port: int = 443, router: bool = True, index: int | None = None) -> str:
    """A cheap tenant of agency BCH: one /27 network (allocated from the pool; the `index`-th /27
    of it when given), a router (unless `router=False`: devcloud's `public` is a shared /24), a
    security group; no servers."""
    doc = {
        "apiVersion": "gcloud.gov.vn/v1", "kind": "TenantRequest",
        "metadata": {"name": name, "agency": AGENCY, "requester": "fleet.requester",
                     "description": "fleet observation benchmark tenant"},
        "spec": {
            "classification": 1, "region": "hn1",
            "quotas": {"instances": 1, "cores": 1, "ramMiB": 1024, "floatingIPs": 0, "volumes": 0, "volumeGiB": 0},
            "members": [{"user": "fleet.member", "roles": ["member"]}],
            "networks": [{"name": "app", "zone": "app", **({"prefixLength": 27} if index is None else
                                                             {"cidr": _nth_27(index)})}],
            **({"router": {"externalNetwork": "public"}} if router else {}),
            "securityGroups": [{"name": "web", "rules": [
                {"direction": "ingress", "protocol": "tcp", "ports": str(sg_port), "remote": "10.0.0.0/8"}]}],
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _nth_27(index: int) -> str:
    pool = ipaddress.ip_network(REGISTRY["spec"]["agencies"][AGENCY]["cidrPools"][0])
    return str(ipaddress.ip_network((int(pool.network_address) + 32 * index, 27)))


def person(name: str, role: GcloudRole) -> Caller:
    return Caller(user_id=f"fleet-{name}", user_name=name, domain_name=AGENCY, roles=frozenset({role}),
                  agency=AGENCY)


REQUESTER = person("fleet.requester", GcloudRole.REQUESTER)
APPROVERS = (person("fleet.approver1", GcloudRole.APPROVER), person("fleet.approver2", GcloudRole.APPROVER))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Stack:
    """Store, request service, engine and runner over one driver; `fleet=True`: fleet observation."""

    def __init__(self, db_url: str, cfg: pipeline.Config, driver, *, fleet: bool, quota_every: int = 10,
                 workers: int = 4, clock=utcnow, max_age: float = 3600.0):
        self.config, self.driver = cfg, driver
        self.store = open_store(db_url)
        factory = (lambda d: fleet_observer(d, quota_every=quota_every, max_age=max_age)) if fleet else None
        self.engine = PipelineEngine(cfg, lambda region: driver, fleet=factory)
        self.service = RequestService(self.store, cfg.agencies, approvals.parse_rules(approvals.default_rules_text()),
                                      lambda text, name: pipeline.load_request(text, cfg, filename=name), clock)
        self.runner = Runner(self.store, Reconciler(self.store, self.engine, holder="fleet", interval=60, clock=clock),
                             clock=clock, workers=workers, claim_poll=0.2, on_cycle=self.engine.begin_cycle)

    def submit(self, name: str, **kw) -> None:
        version = self.service.submit(tenant_text(name, **kw), caller=REQUESTER)
        for approver in APPROVERS[: version["approvalsRequired"]]:
            self.service.approve(version["id"], caller=approver, reason="fleet test")

    def delete(self, name: str) -> None:
        version = self.service.delete(name, caller=REQUESTER, reason="fleet test done")
        for approver in APPROVERS[: version["approvalsRequired"]]:
            self.service.approve(version["id"], caller=approver, reason="fleet test done")

    def close(self) -> None:
        self.store.dispose()


class DevcloudDomain:
    """A Keystone domain of our own on devcloud (made as admin, unique per run), for agency BCH;
    `close()` destroys every tenant left in it (through the pipeline's destroy), its users and
    the domain itself, whatever happened before."""

    def __init__(self, driver):
        self.driver = driver
        self.name = f"fleet-c-{secrets.token_hex(3)}"
        reply = driver.api.request("identity", "POST", "/domains", json={"domain": {
            "name": self.name, "description": "gcloudctl fleet benchmark (deleted at the end)", "enabled": True}})
        self.id = reply["domain"]["id"]

    def _purge_network(self, pids: set[str]) -> None:
        _purge(self.driver.api, pids)

    def close(self, cfg: pipeline.Config | None, workers: int = 4) -> list[str]:
        """Destroy what is left; returns the problems met (empty when all is gone)."""
        from gcloudctl.ownership import Owner

        api, problems = self.driver.api, []
        projects = api.request("identity", "GET", "/projects", params={"domain_id": self.id})["projects"]

        def destroy(project: dict) -> None:
            tags = project.get("tags") or []
            tenant = next((t.split("=", 1)[1] for t in tags if t.startswith("gc-tenant=")), project["name"])
            try:
                plan = pipeline.plan_destroy(Owner(tenant=tenant, agency=AGENCY, domain=self.name), self.driver)
                result = pipeline.apply_plan(plan, self.driver, parallelism=10)
                if not result.ok:
                    problems.append(f"{tenant}: destroy failed")
            except Exception as exc:  # noqa: BLE001 - clean-up goes on with the next tenant
                problems.append(f"{tenant}: {type(exc).__name__}: {exc}")

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(destroy, projects))
        left = api.request("identity", "GET", "/projects", params={"domain_id": self.id})["projects"]
        if left:
            self._purge_network({p["id"] for p in left})
        for project in left:
            problems.append(f"project {project['name']} left; its network resources and itself deleted")
            api.request("identity", "DELETE", f"/projects/{project['id']}")
        for user in api.request("identity", "GET", "/users", params={"domain_id": self.id})["users"]:
            api.request("identity", "DELETE", f"/users/{user['id']}")
        api.request("identity", "PATCH", f"/domains/{self.id}", json={"domain": {"enabled": False}})
        api.request("identity", "DELETE", f"/domains/{self.id}")
        for problem in problems:
            log.warning("fleet clean-up: %s", problem)
        return problems


def _purge(api, pids: set[str]) -> None:
    """Delete, as admin, the Neutron resources of projects whose destroy failed (no servers are
    made by these tests): listed without a project filter, so Neutron makes no `default` group."""
    def of(path: str, key: str) -> list[dict]:
        return [x for x in api.request("network", "GET", path)[key] if x.get("project_id") in pids]

    for fip in of("/floatingips", "floatingips"):
        _ignore_missing(lambda: api.request("network", "DELETE", f"/floatingips/{fip['id']}"))
    for port in of("/ports", "ports"):
        if (port.get("device_owner") or "").startswith("network:router_interface"):
            _ignore_missing(lambda: api.request("network", "PUT", f"/routers/{port['device_id']}/remove_router_interface",
                                                json={"port_id": port["id"]}))
    for router in of("/routers", "routers"):
        _ignore_missing(lambda: api.request("network", "DELETE", f"/routers/{router['id']}"))
    for port in of("/ports", "ports"):
        if port.get("device_owner") != "network:dhcp":
            _ignore_missing(lambda: api.request("network", "DELETE", f"/ports/{port['id']}"))
    for kind, key in (("/subnets", "subnets"), ("/networks", "networks"), ("/security-groups", "security_groups")):
        for item in of(kind, key):
            _ignore_missing(lambda: api.request("network", "DELETE", f"{kind}/{item['id']}"))


def devcloud_driver(cloud: str = "devcloud"):
    """The OpenStack driver on devcloud as admin (Cinder included where devcloud runs it)."""
    from gcloudctl.drivers.openstack import OpenStackDriver, SdkApi

    return OpenStackDriver(SdkApi(cloud), create_missing_users=True)


def _ignore_missing(call) -> None:
    from gcloudctl.errors import CloudError

    try:
        call()
    except CloudError as exc:
        if exc.status != 404:
            raise
