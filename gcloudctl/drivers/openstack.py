"""OpenStack driver: observe in bulk, create/update/delete one resource at a time.

Only this package talks to the cloud. The driver speaks to a small REST interface
(`RestApi.request(service, method, path, ...)`): `SdkApi` implements it with openstacksdk's
service proxies (keystoneauth sessions, clouds.yaml, token reuse); `gcloudctl.drivers.fake`
implements it in memory for fast tests, so both run the same driver code.

Idempotence contract per call: see gcloudctl.drivers.base. Errors are classified once here
(`classify_status`): 5xx, 409, 429 and connection failures are transient; the rest permanent.

Ownership (`gcloudctl.ownership`): the driver observes a tenant by its `Owner` (tenant, agency,
Keystone domain) and refuses with `NotOwned`, before reading the tenant's resources and before
any write, a project that is not provably the owner's. Users are looked up in the agency's
domain only.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, fields as dataclass_fields
from typing import Any, Callable, Iterable, Protocol

from gcloudctl import naming
from gcloudctl.drivers.base import IdMap, current_deadline, deadline_scope, remaining
from gcloudctl.drivers.openstack_state import ROUTER_INTERFACE_OWNERS, RawSnapshot, to_observed
from gcloudctl.errors import CloudError, GcloudctlError, NotOwned, Refused, TimeoutExpired, Unreachable
from gcloudctl.expand import OPERATOR
from gcloudctl.i18n import gettext  # not `_`: this module uses `_` for values it drops
from gcloudctl.ownership import Owner, claims, refusal
from gcloudctl.resources import POWER, Address, Kind, ObservedState, Ref, Resource

log = logging.getLogger("gcloudctl.drivers.openstack")

IN_FLIGHT_SECONDS = 60.0  # how long after an intent a server create may still appear (Nova still processing it)
INTENT_PREFIX = "gcloudctl: creating server "
ERROR_WITHOUT_FAULT_GRACE = 10.0  # seconds an ERROR without a fault must last before a wait gives up on it
COMPUTE_MICROVERSION = "2.64"  # 2.47: flavor.original_name in server detail; 2.64: server group "policy"
BOOT_VOLUME_MICROVERSION = "2.67"  # a volume_type in a server create's block_device_mapping_v2
VOLUME_MICROVERSION = "3.42"  # 3.42: extend an attached (in-use) volume
API_VERSION_PATH = {"identity": "v3", "compute": "v2.1", "network": "v2.0", "image": "v2", "block-storage": "v3"}
NEUTRON_COLLECTION = {
    Kind.NETWORK: ("networks", "network"), Kind.SUBNET: ("subnets", "subnet"), Kind.ROUTER: ("routers", "router"),
    Kind.PORT: ("ports", "port"), Kind.SECURITY_GROUP: ("security-groups", "security_group"),
    Kind.SECURITY_GROUP_RULE: ("security-group-rules", "security_group_rule"),
    Kind.FLOATING_IP: ("floatingips", "floatingip"),
}


class NotFoundError(CloudError):
    def __init__(self, message: str):
        super().__init__(message, transient=False, status=404)


def classify_status(status: int, message: str, retry_after: float | None = None) -> CloudError:
    if status == 404:
        return NotFoundError(message)
    transient = status >= 500 or status in (408, 409, 429)
    hint = None
    if status == 403:
        hint = "the credentials in clouds.yaml lack a role; gcloudctl needs admin on the cloud"
    elif status == 401:
        hint = "authentication failed: check the clouds.yaml entry (--cloud / OS_CLOUD)"
    return CloudError(message, transient=transient, status=status, hint=hint, retry_after=retry_after)


class RestApi(Protocol):
    """Minimal REST access to one cloud (paths relative to each service's versioned endpoint)."""

    operator_user_id: str
    operator_user_name: str

    def request(self, service: str, method: str, path: str, *, params: dict | None = None,
                json: Any = None, microversion: str | None = None, project_id: str | None = None,
                project_domain_id: str | None = None) -> Any: ...

    def has_service(self, service: str) -> bool: ...


class Catalogs:
    """Per-driver caches of cloud-wide lookups (flavors, images, roles, domains, users); filled on
    first use. Domains and projects never move, so their ids are cached for the driver's life."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.flavors: dict[str, str] | None = None
        self.images: dict[str, str] = {}
        self.roles: dict[str, str] | None = None
        self.users: dict[tuple[str, str], str] = {}  # (domain id, user name) -> user id
        self.domains: dict[str, str] = {}  # domain name -> id
        self.domain_names: dict[str, str] = {}  # domain id -> name
        self.project_domains: dict[str, str] = {}  # project id -> its domain id (token scopes)
        self.no_tag_creation: set[str] = set()  # Neutron collections refusing tags in POST
        self.neutron_extensions: set[str] | None = None
        self.compute_quotas: dict[str, tuple[float, dict]] = {}  # project id -> (read at, Nova quota set)
        self.compute_defaults: dict | None = None  # Nova's default quota set (the same for every project)
        self.group_rules: dict[str, list[dict]] = {}  # security group made here -> the rules Neutron gave it


class ServerWatch:
    """Shared status of servers being waited for. One waiter at a time polls (a project's
    servers in one list call, or one GET for a server of unknown project); the others wait on
    a condition and read the result. A poll's answer is the whole truth for what it covers: a
    server missing from a project's list is gone for every waiter at once. Thread-safe."""

    def __init__(self, api: RestApi, *, interval: float, sleep: Callable[[float], None], clock: Callable[[], float]):
        self.api, self.interval, self.sleep, self.clock = api, interval, sleep, clock
        self.cond = threading.Condition()
        self.seen: dict[str, dict[str, dict]] = {}  # project (or server) -> server id -> server
        self.answered_at: dict[str, float] = {}  # project (or server) -> time of the last answer
        self.tried_at: dict[str, float] = {}  # ... of the last poll, answered or failed
        self.polling: set[str] = set()

    def status(self, server_id: str, project_id: str | None) -> dict | None:
        """The server as of a poll newer than this call; polls at most once per interval."""
        key = project_id or server_id
        asked = self.clock()
        with self.cond:
            while True:
                if self.answered_at.get(key, -1.0) >= asked:
                    return self.seen[key].get(server_id)
                if key not in self.polling:
                    wait = self.tried_at.get(key, -1e9) + self.interval - self.clock()
                    if wait <= 0:
                        self.polling.add(key)
                        break
                    self.cond.wait(timeout=_bounded(wait, self.clock))
                else:
                    self.cond.wait(timeout=_bounded(self.interval or 0.05, self.clock))
        found: list[dict] | None = None
        started = self.clock()  # an answer counts for those who asked before the poll began
        try:
            found = self._poll(server_id, project_id)
        finally:
            with self.cond:  # the answer and its time become visible together
                self.polling.discard(key)
                self.tried_at[key] = self.clock()  # a failed poll is not retried at once by every waiter
                if found is not None:
                    self.seen[key] = {server["id"]: server for server in found}
                    self.answered_at[key] = started
                self.cond.notify_all()
        return self.seen[key].get(server_id)

    def _poll(self, server_id: str, project_id: str | None) -> list[dict]:
        if project_id:
            return self.api.request("compute", "GET", "/servers/detail", microversion=COMPUTE_MICROVERSION,
                                    params={"all_tenants": "1", "project_id": project_id})["servers"]
        try:
            return [self.api.request("compute", "GET", f"/servers/{server_id}",
                                     microversion=COMPUTE_MICROVERSION)["server"]]
        except NotFoundError:
            return []


def port_mac(project_id: str, address: Address) -> str:
    """The deterministic MAC address of a tenant's port: locally administered, unicast (02:…)."""
    digest = hashlib.sha256(f"{project_id}/{address}".encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def _intent(name: str, at: float) -> str:
    """The description a port carries while its server is being created (`_in_flight_server`)."""
    return f"{INTENT_PREFIX}{name} at {at:.0f}"


def _parse_intent(description: str | None) -> tuple[str, float] | None:
    found = re.fullmatch(re.escape(INTENT_PREFIX) + r"(\S+) at (\d+)", description or "")
    return (found.group(1), float(found.group(2))) if found else None


def _bounded(seconds: float, clock: Callable[[], float]) -> float:
    """`seconds`, cut to what is left before the context's deadline (TimeoutExpired past it)."""
    left = remaining(clock)
    return seconds if left is None else max(0.0, min(seconds, left))


class OpenStackDriver:
    def __init__(self, api: RestApi, *, create_missing_users: bool = False, server_timeout: float = 600.0,
                 poll_interval: float = 0.5, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, quota_cache_seconds: float = 60.0,
                 wall: Callable[[], float] = time.time):
        self.api = api
        self.wall = wall  # wall-clock seconds: intents are compared across processes
        self.quota_cache_seconds = quota_cache_seconds
        self.create_missing_users = create_missing_users
        self.server_timeout = server_timeout
        self.poll_interval = poll_interval
        self.sleep = sleep
        self.clock = clock
        self.cache = Catalogs()
        self.wait_for_servers = True
        self.watch = ServerWatch(api, interval=poll_interval, sleep=sleep, clock=clock)

    # ---------------------------------------------------------------- observe
    def observe(self, owner: Owner, *, external_networks: Iterable[str] = ()) -> ObservedState:
        return to_observed(owner, self.snapshot(owner, external_networks=external_networks))

    def snapshot(self, owner: Owner, *, external_networks: Iterable[str] = ()) -> RawSnapshot:
        """One list call per kind, filtered by project: the count never grows with the tenant.
        The project is proven the owner's first (`tenant_project`); NotOwned otherwise."""
        api = self.api
        raw = RawSnapshot(operator_user_id=api.operator_user_id, domain=owner.domain)
        if external_networks:
            nets = api.request("network", "GET", "/networks", params={"router:external": "True"})["networks"]
            raw.external_networks = {n["name"]: n["id"] for n in nets}
        project, ra = self._prove(owner, read_assignments=True)
        if project is None:
            return raw
        raw.project = project
        pid = project["id"]
        if ra is None:
            ra = self._role_assignments(pid)
        raw.role_assignments = [{"user": a["user"]["name"], "user_id": a["user"]["id"],
                                 "user_domain": (a["user"].get("domain") or {}).get("name"),
                                 "role": a["role"]["name"], "role_id": a["role"]["id"]} for a in ra if "user" in a]
        cq = api.request("compute", "GET", f"/os-quota-sets/{pid}", microversion=COMPUTE_MICROVERSION)["quota_set"]
        raw.compute_quota = {k: cq[k] for k in ("instances", "cores", "ram") if k in cq}
        nq = api.request("network", "GET", f"/quotas/{pid}")["quota"]
        raw.network_quota = {k: nq[k] for k in ("floatingip", "network", "port", "security_group",
                                                "security_group_rule", "router", "subnet") if k in nq}
        if api.has_service("block-storage"):
            vq = api.request("block-storage", "GET", f"/os-quota-sets/{pid}")["quota_set"]
            raw.volume_quota = {k: vq[k] for k in ("volumes", "gigabytes", "snapshots") if k in vq}
            raw.volumes = api.request("block-storage", "GET", "/volumes/detail", microversion=VOLUME_MICROVERSION,
                                      params={"all_tenants": "1", "project_id": pid})["volumes"]
        by_project = {"project_id": pid}
        raw.networks = api.request("network", "GET", "/networks", params=by_project)["networks"]
        raw.subnets = api.request("network", "GET", "/subnets", params=by_project)["subnets"]
        raw.routers = api.request("network", "GET", "/routers", params=by_project)["routers"]
        raw.ports = api.request("network", "GET", "/ports", params=by_project)["ports"]
        raw.security_groups = api.request("network", "GET", "/security-groups", params=by_project)["security_groups"]
        raw.floating_ips = api.request("network", "GET", "/floatingips", params=by_project)["floatingips"]
        raw.servers = api.request("compute", "GET", "/servers/detail", params={"all_tenants": "1", "project_id": pid},
                                  microversion=COMPUTE_MICROVERSION)["servers"]
        raw.keypairs = [k["keypair"] for k in api.request("compute", "GET", "/os-keypairs",
                                                          microversion=COMPUTE_MICROVERSION)["keypairs"]]
        groups = api.request("compute", "GET", "/os-server-groups", params={"all_projects": "True"},
                             microversion=COMPUTE_MICROVERSION)["server_groups"]
        raw.server_groups = [g for g in groups if g.get("project_id") == pid]
        return raw

    def tenant_project(self, owner: Owner) -> dict | None:
        """The owner's project, its ownership proven, or None when the agency's domain has no
        project of that name. Raises NotOwned for a project named like the tenant in the
        agency's domain without the owner's tags, and for one that carries the owner's tags
        but lives in another domain (moved, or made in `Default` by an older gcloudctl).
        A same-named project of another domain without the owner's tags is someone else's:
        it is neither touched nor reported."""
        return self._prove(owner, read_assignments=False)[0]

    def _prove(self, owner: Owner, *, read_assignments: bool) -> tuple[dict | None, list[dict] | None]:
        """`tenant_project`, and the project's role assignments when they were read to learn
        its domain. One list call; the domain id is cached per driver, and when it is not known
        yet and a single project bears the name, the role assignments (which observe reads
        anyway) name that project's domain, so a no-op plan needs no domain lookup."""
        projects = self.api.request("identity", "GET", "/projects",
                                    params={"name": naming.project_name(owner.tenant)})["projects"]
        if not projects:
            return None, None
        assignments = None
        if read_assignments and len(projects) == 1 and owner.domain not in self.cache.domains:
            assignments = self._role_assignments(projects[0]["id"])
            for a in assignments:
                domain = ((a.get("scope") or {}).get("project") or {}).get("domain") or {}
                if domain.get("id") == projects[0].get("domain_id") and domain.get("name"):
                    self._remember_domain(domain["name"], domain["id"])
                    break
        domain_id = self.domain_id(owner.domain)
        mine = [p for p in projects if p.get("domain_id") == domain_id]
        moved = [p for p in projects if p.get("domain_id") != domain_id and claims(owner, p.get("tags"))]
        for project in mine + moved:
            why = refusal(owner, project_name=project["name"], project_domain=self.domain_name(project.get("domain_id")),
                          in_owner_domain=project in mine, tags=project.get("tags"))
            if why:
                raise NotOwned(why, hint=_NOT_OWNED_HINT)
        if not mine:
            return None, None
        self.cache.project_domains[mine[0]["id"]] = domain_id
        return mine[0], assignments if assignments is not None and mine[0] is projects[0] else None

    def _role_assignments(self, project_id: str) -> list[dict]:
        return self.api.request("identity", "GET", "/role_assignments",
                                params={"scope.project.id": project_id, "include_names": "True"})["role_assignments"]

    def _remember_domain(self, name: str, domain_id: str) -> None:
        with self.cache.lock:
            self.cache.domains[name] = domain_id
            self.cache.domain_names[domain_id] = name

    def find_tenant(self, tenant: str) -> list[dict]:
        """Projects anywhere whose `gc-tenant` tag names `tenant` (candidates, not proven):
        {"project_id", "name", "domain", "agency", "tags"}. Used to find a tenant by name alone."""
        projects = self.api.request("identity", "GET", "/projects",
                                    params={"tags": naming.TENANT_TAG_PREFIX + tenant})["projects"]
        return [{"project_id": p["id"], "name": p["name"], "domain": self.domain_name(p.get("domain_id")),
                 "agency": naming.agency_from_tags(p.get("tags")), "tags": sorted(p.get("tags") or [])}
                for p in projects if naming.tenant_from_tags(p.get("tags")) == tenant]

    def list_tenants(self) -> list[dict]:
        projects = self.api.request("identity", "GET", "/projects", params={"tags": naming.MANAGED_TAG})["projects"]
        out = []
        for p in projects:
            tenant = naming.tenant_from_tags(p.get("tags"))
            if tenant:
                tags = p.get("tags") or []
                level = naming.level_from_tags(tags)
                out.append({"tenant": tenant, "project_id": p["id"], "agency": naming.agency_from_tags(tags),
                            "domain": self.domain_name(p.get("domain_id")),
                            "classification": None if level is None else str(level),
                            "enabled": p.get("enabled", True), "description": p.get("description") or ""})
        return sorted(out, key=lambda t: (t["tenant"], t["agency"] or "", t["domain"]))

    def console_for(self, owner: Owner) -> Callable[[str], str | None]:
        """A reader of the tenant's server consoles by server name (Nova os-getConsoleOutput):
        where cloud-init prints the SSH host key fingerprints that hardening verifies."""
        def console(name: str) -> str | None:
            observed = self.observe(owner) if not cache else cache[0]
            cache[:] = [observed]
            server = next((r for r in observed.resources.values()
                           if r.address.kind is Kind.SERVER and r.attrs.get("name") == name), None)
            if server is None:
                return None
            reply = self.api.request("compute", "POST", f"/servers/{server.id}/action",
                                     json={"os-getConsoleOutput": {"length": -1}}, microversion=COMPUTE_MICROVERSION)
            return reply.get("output")
        cache: list[ObservedState] = []
        return console

    def taken_cidrs(self, agency: str, *, exclude_tenant: str | None = None) -> list[str]:
        subnets = self.api.request("network", "GET", "/subnets",
                                   params={"tags": naming.AGENCY_TAG_PREFIX + agency})["subnets"]
        return [s["cidr"] for s in subnets
                if exclude_tenant is None or naming.tenant_from_tags(s.get("tags")) != exclude_tenant]

    # ---------------------------------------------------------------- create
    def create(self, resource: Resource, ids: IdMap) -> str:
        handler = getattr(self, f"_create_{resource.address.kind.value}")
        return handler(resource, ids)

    def _create_project(self, res: Resource, ids: IdMap) -> str:
        a = res.attrs
        domain_id = self.domain_id(a["domain"])
        body = {"project": {"name": a["name"], "description": a["description"], "enabled": a["enabled"],
                            "tags": list(a["tags"]), "domain_id": domain_id}}
        pid = self.api.request("identity", "POST", "/projects", json=body)["project"]["id"]
        self.cache.project_domains[pid] = domain_id
        return pid

    def _create_membership(self, res: Resource, ids: IdMap) -> str:
        pid = ids[_project(res)]
        user_id = self._user_id(res.attrs["user"], res.attrs.get("domain"))
        role_id = self._role_id(res.attrs["role"])
        self.api.request("identity", "PUT", f"/projects/{pid}/users/{user_id}/roles/{role_id}")
        return f"{user_id}:{role_id}"

    def _create_quota(self, res: Resource, ids: IdMap) -> str:
        self._set_quota(res, ids[_project(res)])
        return res.address.name

    def _create_keypair(self, res: Resource, ids: IdMap) -> str:
        body = {"keypair": {"name": res.attrs["name"], "public_key": res.attrs["public_key"], "type": "ssh"}}
        self.api.request("compute", "POST", "/os-keypairs", json=body, microversion=COMPUTE_MICROVERSION)
        return res.attrs["name"]

    def _create_server_group(self, res: Resource, ids: IdMap) -> str:
        body = {"server_group": {"name": res.attrs["name"], "policy": res.attrs["policy"]}}
        return self.api.request("compute", "POST", "/os-server-groups", json=body, microversion=COMPUTE_MICROVERSION,
                                **self._scope(ids[_project(res)]))["server_group"]["id"]

    def _neutron_create(self, res: Resource, ids: IdMap, body: dict) -> dict:
        """Create with ownership tags in the same call where Neutron allows it (`tag-creation`);
        otherwise create, then tag. A crash between the two leaves an untagged twin with the
        deterministic name, which the next plan adopts instead of duplicating."""
        collection, single = NEUTRON_COLLECTION[res.address.kind]
        body = {k: v for k, v in body.items() if v is not None or k in ("port_range_min", "port_range_max")}
        body["project_id"] = ids[_project(res)]
        tags = body.pop("tags", None)
        if tags is not None and self._tags_in_post(collection):
            try:
                return self.api.request("network", "POST", f"/{collection}", json={single: {**body, "tags": tags}})[single]
            except CloudError as exc:
                if exc.status != 400 or "tags" not in (exc.message or ""):
                    raise
                self.cache.no_tag_creation.add(collection)
                log.info("Neutron refuses tags on create for %s: creating, then tagging", collection)
        created = self.api.request("network", "POST", f"/{collection}", json={single: body})[single]
        if tags:
            created["tags"] = self.api.request("network", "PUT", f"/{collection}/{created['id']}/tags",
                                               json={"tags": list(tags)})["tags"]
        return created

    def _tags_in_post(self, collection: str) -> bool:
        """Neutron accepts `tags` in a create only for ports, and only with the
        `tag-ports-during-bulk-creation` extension; elsewhere tags are set right after."""
        if collection != "ports" or collection in self.cache.no_tag_creation:
            return False
        with self.cache.lock:
            if self.cache.neutron_extensions is None:
                extensions = self.api.request("network", "GET", "/extensions")["extensions"]
                self.cache.neutron_extensions = {e["alias"] for e in extensions}
        return "tag-ports-during-bulk-creation" in self.cache.neutron_extensions

    def _create_network(self, res: Resource, ids: IdMap) -> str:
        return self._neutron_create(res, ids, {"name": res.attrs["name"], "tags": list(res.attrs["tags"])})["id"]

    def _create_subnet(self, res: Resource, ids: IdMap) -> str:
        a = res.attrs
        return self._neutron_create(res, ids, {
            "name": a["name"], "network_id": ids.resolve(a["network"]), "ip_version": a["ip_version"], "cidr": a["cidr"],
            "enable_dhcp": a["enable_dhcp"], "dns_nameservers": list(a["dns_nameservers"]), "tags": list(a["tags"])})["id"]

    def _create_router(self, res: Resource, ids: IdMap) -> str:
        a = res.attrs
        return self._neutron_create(res, ids, {
            "name": a["name"], "tags": list(a["tags"]),
            "external_gateway_info": {"network_id": self._external_network(a["external_network"], ids)}})["id"]

    def _create_router_interface(self, res: Resource, ids: IdMap) -> str:
        router_id, subnet_id = ids.resolve(res.attrs["router"]), ids.resolve(res.attrs["subnet"])
        try:
            reply = self.api.request("network", "PUT", f"/routers/{router_id}/add_router_interface",
                                     json={"subnet_id": subnet_id})
        except CloudError as exc:
            # an earlier attempt whose answer was lost made it: "Router already has a port on subnet"
            existing = self._router_interface(router_id, subnet_id) if exc.status == 400 else None
            if existing is None:
                raise
            return existing
        return reply["port_id"]

    def _router_interface(self, router_id: str, subnet_id: str) -> str | None:
        """The id of the router's interface port on the subnet, or None."""
        ports = self.api.request("network", "GET", "/ports", params={"device_id": router_id})["ports"]
        for port in ports:
            if (port.get("device_owner") or "") in ROUTER_INTERFACE_OWNERS and \
                    any(f.get("subnet_id") == subnet_id for f in port.get("fixed_ips") or []):
                return port["id"]
        return None

    def _create_security_group(self, res: Resource, ids: IdMap) -> str:
        a = res.attrs
        group = self._neutron_create(res, ids, {"name": a["name"], "description": a["description"], "tags": list(a["tags"])})
        if res.extra.get("keep_default_egress", True):
            # the egress rules Neutron made are the request's defaults: their rule creates adopt them
            with self.cache.lock:
                self.cache.group_rules[group["id"]] = list(group.get("security_group_rules") or [])
        else:
            # Neutron adds allow-all egress rules to every new group; the request declared its own.
            for rule in group.get("security_group_rules") or []:
                self._ignore_missing("network", f"/security-group-rules/{rule['id']}")
        return group["id"]

    def _create_security_group_rule(self, res: Resource, ids: IdMap) -> str:
        a = res.attrs
        body = {"security_group_id": ids.resolve(a["security_group"]), "direction": a["direction"],
                "ethertype": a["ethertype"], "protocol": a["protocol"], "port_range_min": a["port_min"],
                "port_range_max": a["port_max"], "remote_ip_prefix": a["remote_ip_prefix"],
                "remote_group_id": ids.resolve(a["remote_group"]) if a["remote_group"] else None}
        body = {k: v for k, v in body.items() if v is not None}
        with self.cache.lock:
            made = self.cache.group_rules.get(body["security_group_id"], [])
        for rule in made:  # made by Neutron with the group: adopted, not sent again (it would answer 409)
            if all(rule.get(k) == body.get(k) for k in ("direction", "ethertype", "protocol", "port_range_min",
                                                         "port_range_max", "remote_ip_prefix", "remote_group_id")):
                return rule["id"]
        try:
            return self.api.request("network", "POST", "/security-group-rules",
                                    json={"security_group_rule": body})["security_group_rule"]["id"]
        except CloudError as exc:
            found = re.search(r"Rule id is ([0-9a-f-]{36})", exc.message or "")
            if exc.status == 409 and found:
                return found.group(1)  # the same rule exists (e.g. Neutron's default egress): converged
            raise

    def _create_port(self, res: Resource, ids: IdMap) -> str:
        """A port's MAC address is derived from its project and address: a second create of the
        same port (a run that died with its POST in flight, then the next run) is refused by
        Neutron ("mac address … in use", 409), and the port already made is adopted: no spare
        ports. Neutron requires a MAC to be unique per network only; the hash spans 40 bits."""
        a = res.attrs
        network_id, mac = ids.resolve(a["network"]), port_mac(ids[_project(res)], res.address)
        try:
            return self._neutron_create(res, ids, {
                "name": a["name"], "network_id": network_id, "mac_address": mac,
                "fixed_ips": [{"subnet_id": ids.resolve(a["subnet"])}],
                "security_groups": ids.resolve(a["security_groups"]), "tags": list(a["tags"])})["id"]
        except CloudError as exc:
            if exc.status != 409 or "mac address" not in (exc.message or "").lower():
                raise
            found = self.api.request("network", "GET", "/ports", params={"network_id": network_id,
                                                                          "mac_address": mac})["ports"]
            if not found or found[0].get("project_id") != ids[_project(res)]:
                raise
            if sorted(found[0].get("tags") or []) != sorted(a["tags"]):
                self.api.request("network", "PUT", f"/ports/{found[0]['id']}/tags", json={"tags": list(a["tags"])})
            log.info("%s: adopted the port an earlier run made (%s)", res.address, found[0]["id"])
            return found[0]["id"]

    def _create_floating_ip(self, res: Resource, ids: IdMap) -> str:
        a = res.attrs
        return self._neutron_create(res, ids, {
            "floating_network_id": self._external_network(a["external_network"], ids),
            "port_id": ids.resolve(a["port"]) if a["port"] else None, "tags": list(a["tags"])})["id"]

    def _create_server(self, res: Resource, ids: IdMap) -> str:
        a = res.attrs
        nics = res.extra.get("nics") or a["ports"]
        server = {"name": a["name"], "flavorRef": self._flavor_id(a["flavor"]), "imageRef": self._image_id(a["image"]),
                  "networks": [{"port": ids.resolve(p)} for p in nics], "metadata": dict(a["metadata"])}
        if a.get("key_name"):
            server["key_name"] = a["key_name"]
        if res.extra.get("user_data"):
            server["user_data"] = base64.b64encode(res.extra["user_data"].encode()).decode()
        body: dict[str, Any] = {"server": server}
        microversion = COMPUTE_MICROVERSION
        if a.get("boot_volume"):  # booted from a volume made from the image, deleted with the server
            volume_type, _, size = a["boot_volume"].partition(":")
            server["imageRef"] = ""
            server["block_device_mapping_v2"] = [{
                "boot_index": 0, "uuid": self._image_id(a["image"]), "source_type": "image",
                "destination_type": "volume", "volume_size": int(size), "volume_type": volume_type,
                "delete_on_termination": True}]
            microversion = BOOT_VOLUME_MICROVERSION
        if a.get("server_group"):
            body["os:scheduler_hints"] = {"group": ids.resolve(a["server_group"])}
        pid = ids[_project(res)]
        primary = server["networks"][0]["port"] if server["networks"] else None
        if primary:
            earlier = self._in_flight_server(a["name"], primary, pid)
            if earlier:
                return earlier
            self.api.request("network", "PUT", f"/ports/{primary}",
                             json={"port": {"description": _intent(a["name"], self.wall())}})
        try:
            created = self.api.request("compute", "POST", "/servers", json=body, microversion=microversion,
                                       **self._scope(pid))["server"]
        except CloudError as exc:
            if primary and exc.status is not None and exc.status not in (500, 502, 504):  # refused: nothing will appear
                with contextlib.suppress(CloudError):
                    self.api.request("network", "PUT", f"/ports/{primary}", json={"port": {"description": ""}})
            raise
        if primary:  # answered: the server is listed from now on, the intent is spent (a replacement must not wait for it)
            self.api.request("network", "PUT", f"/ports/{primary}", json={"port": {"description": ""}})
        return created["id"]

    def _in_flight_server(self, name: str, port_id: str, project_id: str) -> str | None:
        """The server an earlier run already asked for, if any: before a server create, the
        driver writes an intent on the server's primary port (its description: which server,
        when); a run that died right after its POST left one. Then the server this run would
        create may still appear (Nova was processing the POST when this run observed the
        tenant): wait for it until IN_FLIGHT_SECONDS after the intent and adopt it, instead of
        creating a second one that finds its port taken. A port already bound to a server of
        that name is adopted at once. Costs one port read per server create."""
        port = self.api.request("network", "GET", f"/ports/{port_id}")["port"]
        intent = _parse_intent(port.get("description"))
        if not port.get("device_id") and (intent is None or intent[0] != name):
            return None
        until = self.clock() + (IN_FLIGHT_SECONDS - max(0.0, self.wall() - intent[1]) if intent else 0.0)
        while True:
            servers = self.api.request("compute", "GET", "/servers/detail", microversion=COMPUTE_MICROVERSION,
                                       params={"all_tenants": "1", "project_id": project_id, "name": f"^{name}$"})["servers"]
            alive = [s for s in servers if s.get("status") not in ("DELETED", "SOFT_DELETED")
                     and s.get("OS-EXT-STS:task_state") != "deleting"]
            if alive:
                log.info("server %s: adopting %s, created by an earlier run that did not see its answer", name,
                         alive[0]["id"])
                return alive[0]["id"]
            if self.clock() >= until:
                return None
            self.sleep(_bounded(min(1.0, until - self.clock()), self.clock))

    def wait_created(self, resource: Resource, ids: IdMap, *, deadline: float | None = None) -> None:
        """After create: a server is usable once ACTIVE (unless --no-wait). Nothing else waits.
        Every wait stops at `deadline` (monotonic) or the context's (`deadline_scope`) with
        TimeoutExpired."""
        if resource.address.kind is Kind.SERVER and self.wait_for_servers:
            with deadline_scope(deadline):
                self._wait_server(ids[resource.address], resource.attrs["name"], ids.get(_project(resource)))
        elif resource.address.kind in (Kind.VOLUME, Kind.VOLUME_ATTACHMENT):
            with deadline_scope(deadline):
                self._wait_volume_created(resource, ids)

    def wait_active(self, resource: Resource, ids: IdMap, *, deadline: float | None = None) -> None:
        """An existing server (e.g. one an interrupted run left building) until ACTIVE."""
        if resource.address.kind is Kind.SERVER and self.wait_for_servers:
            with deadline_scope(deadline):
                self._wait_server(resource.id, resource.attrs["name"], ids.get(_project(resource)))

    def wait_deleted(self, resource: Resource, ids: IdMap, *, deadline: float | None = None) -> None:
        """After delete: a server is gone once the compute API no longer lists it (its ports
        can be deleted only then); a volume once Cinder no longer has it; an attachment once its
        volume is no longer attached to the server (the volume can be deleted only then)."""
        if resource.address.kind in (Kind.VOLUME, Kind.VOLUME_ATTACHMENT):
            with deadline_scope(deadline):
                self._wait_volume_deleted(resource, ids)
            return
        if resource.address.kind is not Kind.SERVER:
            return
        give_up = self.clock() + self.server_timeout
        project_id = ids.get(_project(resource))
        with deadline_scope(deadline):
            while self.watch.status(resource.id, project_id) is not None:
                remaining(self.clock)
                if self.clock() > give_up:
                    raise CloudError(f"server {resource.name} still exists {self.server_timeout:.0f}s after delete",
                                     transient=True)

    def _wait_server(self, server_id: str, name: str, project_id: str | None = None) -> None:
        """Wait for ACTIVE (ERROR fails at once). All servers a run is waiting for share one
        list call per poll interval, so waiting for 20 servers costs what waiting for 1 does."""
        give_up = self.clock() + self.server_timeout
        error_since: float | None = None
        while True:
            remaining(self.clock)  # TimeoutExpired past the command's deadline
            server = self.watch.status(server_id, project_id)
            status = server.get("status") if server else None
            if status == "ACTIVE":
                return
            if status == "ERROR" and not (server.get("fault") or {}).get("message"):
                # Nova shows a build it is rescheduling as ERROR for a moment, without a fault
                # record (seen on devcloud: BUILD -> ERROR -> BUILD -> ACTIVE); a real failure
                # keeps its ERROR (and gets its fault) past the grace.
                error_since = self.clock() if error_since is None else error_since
                if self.clock() - error_since < ERROR_WITHOUT_FAULT_GRACE:
                    continue
            else:
                error_since = None
            if status == "ERROR":
                fault = (server.get("fault") or {}).get("message", "no fault message")
                raise CloudError(f"server {name} went to ERROR: {fault}", transient=False,
                                 hint="the next apply replaces it; check quotas, flavor and image")
            if self.clock() > give_up:
                raise CloudError(f"server {name} not ACTIVE after {self.server_timeout:.0f}s (status {status})",
                                 transient=False)

    # ---------------------------------------------------------------- find (retried creates)
    def find(self, resource: Resource, ids: IdMap) -> str | None:
        """The id of `resource` if an earlier attempt created it (same deterministic name in the
        tenant's project; a floating IP: the one on the same port). Missing ownership tags are
        set. Called by the executor before it retries a create, so a retry never duplicates."""
        kind = resource.address.kind
        a = resource.attrs
        if kind is Kind.PROJECT:
            domain_id = self.domain_id(a["domain"])
            found = self.api.request("identity", "GET", "/projects",
                                     params={"name": a["name"], "domain_id": domain_id})["projects"]
            if not found:
                return None
            if naming.tenant_from_tags(found[0].get("tags")) != resource.address.name or \
                    sorted(found[0].get("tags") or []) != sorted(a["tags"]):
                raise CloudError(f"project {a['name']!r} in domain {a['domain']!r} appeared while it was being created, "
                                 f"with other tags ({', '.join(found[0].get('tags') or []) or 'none'}): not adopted",
                                 transient=False, hint=_NOT_OWNED_HINT)
            self.cache.project_domains[found[0]["id"]] = domain_id
            return found[0]["id"]
        pid = ids.get(_project(resource))
        if pid is None:
            return None
        if kind in NEUTRON_COLLECTION and kind is not Kind.SECURITY_GROUP_RULE:
            collection, _ = NEUTRON_COLLECTION[kind]
            params = {"project_id": pid}
            if kind is Kind.FLOATING_IP:
                params["port_id"] = ids.resolve(a["port"])
            else:
                params["name"] = a["name"]
            items = self.api.request("network", "GET", f"/{collection}", params=params)[collection.replace("-", "_")]
            if not items:
                return None
            item = items[0]
            if a.get("tags") and sorted(item.get("tags") or []) != sorted(a["tags"]):
                self.api.request("network", "PUT", f"/{collection}/{item['id']}/tags", json={"tags": list(a["tags"])})
            return item["id"]
        if kind is Kind.SERVER:
            servers = self.api.request("compute", "GET", "/servers/detail", microversion=COMPUTE_MICROVERSION,
                                       params={"all_tenants": "1", "project_id": pid, "name": f"^{a['name']}$"})["servers"]
            return servers[0]["id"] if servers else None
        if kind is Kind.KEYPAIR:
            try:
                self.api.request("compute", "GET", f"/os-keypairs/{a['name']}", microversion=COMPUTE_MICROVERSION)
            except NotFoundError:
                return None
            return a["name"]
        if kind is Kind.SERVER_GROUP:
            groups = self.api.request("compute", "GET", "/os-server-groups", params={"all_projects": "True"},
                                      microversion=COMPUTE_MICROVERSION)["server_groups"]
            match = [g for g in groups if g.get("project_id") == pid and g["name"] == a["name"]]
            return match[0]["id"] if match else None
        if kind is Kind.ROUTER_INTERFACE:
            return self._router_interface(ids.resolve(a["router"]), ids.resolve(a["subnet"]))
        if kind is Kind.VOLUME:
            return self._find_volume(resource, pid)
        if kind is Kind.VOLUME_ATTACHMENT:
            server_id, volume_id = ids.resolve(a["server"]), ids.resolve(a["volume"])
            return f"{server_id}/{volume_id}" if self._attached(volume_id, server_id, pid) else None
        return None  # quotas, memberships, rules: their creates are idempotent

    # ---------------------------------------------------------------- update
    def update(self, before: Resource, after: Resource, changed: tuple[str, ...], ids: IdMap) -> None:
        kind = after.address.kind
        handler = getattr(self, f"_update_{kind.value}", None)
        if handler is None:
            raise CloudError(f"{after.address}: {', '.join(changed)} cannot be updated in place", transient=False)
        handler(before, after, set(changed), ids)

    def _update_project(self, before: Resource, after: Resource, changed: set, ids: IdMap) -> None:
        body = {k: after.attrs[k] for k in ("description", "enabled", "tags") if k in changed}
        if body:
            self.api.request("identity", "PATCH", f"/projects/{before.id}", json={"project": body})

    def _update_quota(self, before: Resource, after: Resource, changed: set, ids: IdMap) -> None:
        self._set_quota(after, ids[_project(after)])

    def _neutron_update(self, before: Resource, after: Resource, changed: set, fields: dict[str, Callable[[], Any]]) -> None:
        collection, single = NEUTRON_COLLECTION[after.address.kind]
        if "tags" in changed:
            self.api.request("network", "PUT", f"/{collection}/{before.id}/tags", json={"tags": list(after.attrs["tags"])})
        body = {key: make() for key, make in fields.items() if key in changed}
        renamed = {"external_network": "external_gateway_info", "port": "port_id", "security_groups": "security_groups"}
        body = {renamed.get(k, k): v for k, v in body.items()}
        if body:
            self.api.request("network", "PUT", f"/{collection}/{before.id}", json={single: body})

    def _update_network(self, before, after, changed, ids):
        self._neutron_update(before, after, changed, {"name": lambda: after.attrs["name"]})

    def _update_subnet(self, before, after, changed, ids):
        a = after.attrs
        self._neutron_update(before, after, changed, {"name": lambda: a["name"], "enable_dhcp": lambda: a["enable_dhcp"],
                                                      "dns_nameservers": lambda: list(a["dns_nameservers"])})

    def _update_router(self, before, after, changed, ids):
        a = after.attrs
        self._neutron_update(before, after, changed, {
            "name": lambda: a["name"],
            "external_network": lambda: {"network_id": self._external_network(a["external_network"], ids)}})

    def _update_security_group(self, before, after, changed, ids):
        a = after.attrs
        self._neutron_update(before, after, changed, {"name": lambda: a["name"], "description": lambda: a["description"]})

    def _update_port(self, before, after, changed, ids):
        a = after.attrs
        self._neutron_update(before, after, changed, {"name": lambda: a["name"],
                                                      "security_groups": lambda: ids.resolve(a["security_groups"])})

    def _update_floating_ip(self, before, after, changed, ids):
        a = after.attrs
        self._neutron_update(before, after, changed, {"port": lambda: ids.resolve(a["port"]) if a["port"] else None})

    def _update_server(self, before: Resource, after: Resource, changed: set, ids: IdMap) -> None:
        if "name" in changed:
            self.api.request("compute", "PUT", f"/servers/{before.id}", json={"server": {"name": after.attrs["name"]}},
                             microversion=COMPUTE_MICROVERSION)
        if "metadata" in changed:
            self.api.request("compute", "PUT", f"/servers/{before.id}/metadata",
                             json={"metadata": dict(after.attrs["metadata"])}, microversion=COMPUTE_MICROVERSION)
        if POWER in changed:  # a stopped server is started (the planner's self-healing)
            try:
                self.api.request("compute", "POST", f"/servers/{before.id}/action", json={"os-start": None},
                                 microversion=COMPUTE_MICROVERSION)
            except CloudError as exc:  # 409: already started (by Nova or someone else): wait below
                if exc.status != 409:
                    raise
            if self.wait_for_servers:
                self._wait_server(before.id, after.attrs["name"], ids.get(_project(after)))

    # ---------------------------------------------------------------- delete
    def delete(self, resource: Resource, ids: IdMap) -> None:
        handler = getattr(self, f"_delete_{resource.address.kind.value}")
        handler(resource, ids)

    def _ignore_missing(self, service: str, path: str, **kw: Any) -> None:
        try:
            self.api.request(service, "DELETE", path, **kw)
        except NotFoundError:
            pass

    def _delete_project(self, res: Resource, ids: IdMap) -> None:
        pid = res.id
        # Neutron creates a `default` security group per project; it would outlive the project.
        for group in self.api.request("network", "GET", "/security-groups", params={"project_id": pid})["security_groups"]:
            self._ignore_missing("network", f"/security-groups/{group['id']}")
        self._ignore_missing("identity", f"/projects/{pid}")

    def _delete_membership(self, res: Resource, ids: IdMap) -> None:
        pid = ids.get(_project(res)) or res.extra.get("project_id")
        self._ignore_missing("identity", f"/projects/{pid}/users/{res.extra['user_id']}/roles/{res.extra['role_id']}")

    def _delete_quota(self, res: Resource, ids: IdMap) -> None:
        pid = ids[_project(res)]
        service, path = {"compute": ("compute", f"/os-quota-sets/{pid}"), "network": ("network", f"/quotas/{pid}"),
                         "volume": ("block-storage", f"/os-quota-sets/{pid}")}[res.address.name]
        self._ignore_missing(service, path)

    def _delete_keypair(self, res: Resource, ids: IdMap) -> None:
        self._ignore_missing("compute", f"/os-keypairs/{res.attrs['name']}", microversion=COMPUTE_MICROVERSION)

    def _delete_server_group(self, res: Resource, ids: IdMap) -> None:
        self._ignore_missing("compute", f"/os-server-groups/{res.id}", microversion=COMPUTE_MICROVERSION)

    def _neutron_delete(self, res: Resource) -> None:
        collection, _ = NEUTRON_COLLECTION[res.address.kind]
        try:
            self._ignore_missing("network", f"/{collection}/{res.id}")
        except CloudError as exc:
            if exc.status == 409:
                exc.message = f"{res.address} is in use: {exc.message}{self._blockers(res)}"
            raise

    def _blockers(self, res: Resource) -> str:
        if res.address.kind not in (Kind.NETWORK, Kind.SUBNET, Kind.SECURITY_GROUP):
            return ""
        key = {Kind.NETWORK: "network_id", Kind.SUBNET: "fixed_ips", Kind.SECURITY_GROUP: "security_groups"}[res.address.kind]
        value = f"subnet_id={res.id}" if key == "fixed_ips" else res.id
        try:
            ports = self.api.request("network", "GET", "/ports", params={key: value})["ports"]
        except CloudError:
            return ""
        names = [f"port {p['id']} ({p.get('device_owner') or 'no owner'} {p.get('name') or ''})".strip() for p in ports[:5]]
        return ("; blocked by " + ", ".join(names)) if names else ""

    _delete_network = _delete_subnet = _delete_router = _delete_security_group = \
        _delete_security_group_rule = _delete_port = _delete_floating_ip = \
        lambda self, res, ids: self._neutron_delete(res)

    def _delete_router_interface(self, res: Resource, ids: IdMap) -> None:
        router_id = res.extra.get("router_id") or ids.resolve(res.attrs["router"])
        subnet_id = res.extra.get("subnet_id") or ids.resolve(res.attrs["subnet"])
        try:
            self.api.request("network", "PUT", f"/routers/{router_id}/remove_router_interface", json={"subnet_id": subnet_id})
        except NotFoundError:
            pass

    def _delete_server(self, res: Resource, ids: IdMap) -> None:
        self._ignore_missing("compute", f"/servers/{res.id}", microversion=COMPUTE_MICROVERSION)

    # ---------------------------------------------------------------- volumes (Cinder; Nova attaches)
    # Idempotence: a volume is created with its ownership metadata in the same call, so a create
    # whose answer was lost leaves a volume the next observe sees as ours; a retried create first
    # looks for it by its deterministic name (`find`). Attach and detach converge on "is the volume
    # attached to that server"; delete treats a volume already gone as deleted and takes the
    # volume's snapshots with it (cascade). Every volume call runs in the tenant's project.

    def _volume_call(self, method: str, path: str, project_id: str | None, **kw: Any) -> Any:
        scope = self._scope(project_id) if project_id else {}
        return self.api.request("block-storage", method, path, microversion=VOLUME_MICROVERSION, **scope, **kw)

    def _create_volume(self, res: Resource, ids: IdMap) -> str:
        a = res.attrs
        body = {"volume": {"name": a["name"], "size": a["size"], "volume_type": a["type"],
                           "metadata": dict(a["metadata"])}}
        return self._volume_call("POST", "/volumes", ids[_project(res)], json=body)["volume"]["id"]

    def _find_volume(self, res: Resource, project_id: str) -> str | None:
        """A volume of the project with the resource's deterministic name; its ownership metadata
        is set if it lacks it (adopted)."""
        found = self.api.request("block-storage", "GET", "/volumes/detail", microversion=VOLUME_MICROVERSION,
                                 params={"all_tenants": "1", "project_id": project_id,
                                         "name": res.attrs["name"]})["volumes"]
        found = [v for v in found if v.get("name") == res.attrs["name"] and v.get("status") != "deleting"]
        if not found:
            return None
        volume = found[0]
        wanted = dict(res.attrs["metadata"])
        if any((volume.get("metadata") or {}).get(k) != v for k, v in wanted.items()):
            self._volume_call("POST", f"/volumes/{volume['id']}/metadata", project_id, json={"metadata": wanted})
        log.info("%s: adopted the volume an earlier attempt made (%s)", res.address, volume["id"])
        return volume["id"]

    def _update_volume(self, before: Resource, after: Resource, changed: set, ids: IdMap) -> None:
        pid = ids.get(_project(after))
        a = after.attrs
        if "name" in changed:
            self._volume_call("PUT", f"/volumes/{before.id}", pid, json={"volume": {"name": a["name"]}})
        if "metadata" in changed:
            self._volume_call("POST", f"/volumes/{before.id}/metadata", pid, json={"metadata": dict(a["metadata"])})
            for key in sorted(set(before.attrs.get("metadata") or {}) - set(a["metadata"])):
                with contextlib.suppress(NotFoundError):
                    self._volume_call("DELETE", f"/volumes/{before.id}/metadata/{key}", pid)
        if "size" in changed:
            self._extend_volume(before, a["size"], pid)

    def _extend_volume(self, before: Resource, size: int, project_id: str | None) -> None:
        """Grow the volume to `size` GiB (online when attached) and wait until Cinder reports it."""
        current = self._volume_call("GET", f"/volumes/{before.id}", project_id)["volume"]
        if current.get("size", 0) > size:
            raise CloudError(f"{before.address}: a volume cannot shrink ({current['size']} GiB -> {size} GiB)",
                             transient=False)
        if current.get("size") != size:
            self._volume_call("POST", f"/volumes/{before.id}/action", project_id,
                              json={"os-extend": {"new_size": size}})
        self._poll_volume(before.id, project_id, f"{before.address} extended to {size} GiB",
                          lambda v: v is not None and v.get("size") == size and v.get("status") in ("available", "in-use"))

    def _delete_volume(self, res: Resource, ids: IdMap) -> None:
        """Delete with the volume's snapshots (cascade). Snapshots another project made of it (an
        operator's, as admin) are not the tenant's to cascade: they are deleted first, as admin."""
        pid = ids.get(_project(res))
        try:
            self._volume_call("DELETE", f"/volumes/{res.id}", pid, params={"cascade": "true"})
            return
        except NotFoundError:
            return
        except CloudError as exc:
            if exc.status != 400:
                raise
            snapshots = self.api.request("block-storage", "GET", "/snapshots/detail", microversion=VOLUME_MICROVERSION,
                                         params={"all_tenants": "1", "volume_id": res.id})["snapshots"]
            snapshots = [x for x in snapshots if x.get("volume_id") == res.id]
            if not snapshots:
                raise
        for snapshot in snapshots:
            self._ignore_missing("block-storage", f"/snapshots/{snapshot['id']}", microversion=VOLUME_MICROVERSION)
        give_up = self.clock() + self.server_timeout
        while self.api.request("block-storage", "GET", "/snapshots/detail", microversion=VOLUME_MICROVERSION,
                               params={"all_tenants": "1", "volume_id": res.id})["snapshots"]:
            if self.clock() > give_up:
                raise CloudError(f"{res.address}: its snapshots are still there {self.server_timeout:.0f}s after "
                                 "their delete", transient=True)
            self.sleep(_bounded(self.poll_interval, self.clock))
        try:
            self._volume_call("DELETE", f"/volumes/{res.id}", pid, params={"cascade": "true"})
        except NotFoundError:
            pass

    def _create_volume_attachment(self, res: Resource, ids: IdMap) -> str:
        server_id, volume_id = ids.resolve(res.attrs["server"]), ids.resolve(res.attrs["volume"])
        pid = ids[_project(res)]
        try:
            self.api.request("compute", "POST", f"/servers/{server_id}/os-volume_attachments",
                             json={"volumeAttachment": {"volumeId": volume_id}}, microversion=COMPUTE_MICROVERSION,
                             **self._scope(pid))
        except CloudError as exc:  # an earlier attempt whose answer was lost attached it: converged
            if exc.status not in (400, 409) or not self._attached(volume_id, server_id, pid):
                raise
        return f"{server_id}/{volume_id}"

    def _delete_volume_attachment(self, res: Resource, ids: IdMap) -> None:
        server_id, volume_id = _attachment_ids(res, ids)
        self._ignore_missing("compute", f"/servers/{server_id}/os-volume_attachments/{volume_id}",
                             microversion=COMPUTE_MICROVERSION, **self._scope(ids[_project(res)]))

    def _attached(self, volume_id: str, server_id: str, project_id: str | None) -> bool:
        try:
            volume = self._volume_call("GET", f"/volumes/{volume_id}", project_id)["volume"]
        except NotFoundError:
            return False
        return any(a.get("server_id") == server_id for a in volume.get("attachments") or [])

    def _wait_volume_created(self, res: Resource, ids: IdMap) -> None:
        pid = ids.get(_project(res))
        if res.address.kind is Kind.VOLUME:
            self._poll_volume(ids[res.address], pid, f"{res.address} available",
                              lambda v: v is not None and v.get("status") in ("available", "in-use"))
            return
        server_id, volume_id = _attachment_ids(res, ids)
        self._poll_volume(volume_id, pid, f"{res.address} attached", lambda v: v is not None and any(
            a.get("server_id") == server_id for a in v.get("attachments") or []) and v.get("status") == "in-use")

    def _wait_volume_deleted(self, res: Resource, ids: IdMap) -> None:
        pid = ids.get(_project(res))
        if res.address.kind is Kind.VOLUME:
            self._poll_volume(res.id, pid, f"{res.address} deleted", lambda v: v is None, failed_ok=True)
            return
        server_id, volume_id = _attachment_ids(res, ids)
        self._poll_volume(volume_id, pid, f"{res.address} detached", lambda v: v is None or (
            not any(a.get("server_id") == server_id for a in v.get("attachments") or [])
            and v.get("status") not in ("detaching", "attaching")), failed_ok=True)

    def _poll_volume(self, volume_id: str, project_id: str | None, what: str, done: Callable[[dict | None], bool],
                     *, failed_ok: bool = False) -> None:
        """Poll one volume until `done(volume)` (None: gone); a volume in an error state fails at
        once (unless `failed_ok`). Bounded by `server_timeout` and the context's deadline."""
        give_up = self.clock() + self.server_timeout
        while True:
            remaining(self.clock)
            try:
                volume = self._volume_call("GET", f"/volumes/{volume_id}", project_id)["volume"]
            except NotFoundError:
                volume = None
            if done(volume):
                return
            status = (volume or {}).get("status", "")
            if status.startswith("error") and not failed_ok:
                raise CloudError(f"waiting for {what}: the volume went to {status}", transient=False,
                                 hint="the next apply replaces a failed volume (with --allow-data-loss)")
            if self.clock() > give_up:
                raise CloudError(f"waiting for {what}: not done after {self.server_timeout:.0f}s (status {status})",
                                 transient=True)
            self.sleep(_bounded(self.poll_interval, self.clock))

    # ---------------------------------------------------------------- lookups
    def _set_quota(self, res: Resource, pid: str) -> None:
        values = dict(res.attrs)
        if res.address.name == "compute":
            self.api.request("compute", "PUT", f"/os-quota-sets/{pid}", json={"quota_set": values},
                             microversion=COMPUTE_MICROVERSION)
        elif res.address.name == "network":
            self.api.request("network", "PUT", f"/quotas/{pid}", json={"quota": values})
        else:
            self.api.request("block-storage", "PUT", f"/os-quota-sets/{pid}", json={"quota_set": values})

    def _external_network(self, name: str, ids: IdMap) -> str:
        key = f"external_network:{name}"
        if key not in ids.lookups:
            nets = self.api.request("network", "GET", "/networks", params={"router:external": "True", "name": name})["networks"]
            if not nets:
                raise CloudError(f"external network {name!r} not found", transient=False,
                                 hint="check router.externalNetwork against the platform catalog")
            ids.lookups[key] = nets[0]["id"]
        return ids.lookups[key]

    def _flavor_id(self, name: str) -> str:
        with self.cache.lock:
            if self.cache.flavors is None:
                flavors = self.api.request("compute", "GET", "/flavors", microversion=COMPUTE_MICROVERSION)["flavors"]
                self.cache.flavors = {f["name"]: f["id"] for f in flavors}
            if name not in self.cache.flavors:
                raise CloudError(f"flavor {name!r} not found in the cloud", transient=False)
            return self.cache.flavors[name]

    def _image_id(self, name: str) -> str:
        with self.cache.lock:
            if name not in self.cache.images:
                images = self.api.request("image", "GET", "/images", params={"name": name})["images"]
                if not images:
                    raise CloudError(f"image {name!r} not found in the cloud", transient=False)
                self.cache.images[name] = images[0]["id"]
            return self.cache.images[name]

    # ---------------------------------------------------------------- pre-flight reads
    def missing_flavors(self, names: Iterable[str]) -> list[str]:
        """Which of the flavors `names` the cloud lacks (one list call per driver, cached)."""
        with self.cache.lock:
            if self.cache.flavors is None:
                flavors = self.api.request("compute", "GET", "/flavors", microversion=COMPUTE_MICROVERSION)["flavors"]
                self.cache.flavors = {f["name"]: f["id"] for f in flavors}
            return sorted(set(names) - set(self.cache.flavors))

    def missing_images(self, names: Iterable[str]) -> list[str]:
        """Which of the images `names` the cloud lacks: one Glance list call (`name=in:...`) for
        those not cached yet; found ones are cached for the server creates."""
        wanted = sorted(set(names))
        with self.cache.lock:
            unknown = [n for n in wanted if n not in self.cache.images]
        if unknown:
            quoted = ",".join('"' + n.replace('"', '') + '"' for n in unknown)
            found = self.api.request("image", "GET", "/images", params={"name": f"in:{quoted}"})["images"]
            with self.cache.lock:
                for image in found:
                    if image.get("name") in unknown:
                        self.cache.images.setdefault(image["name"], image["id"])
        with self.cache.lock:
            return [n for n in wanted if n not in self.cache.images]

    def agency_quotas(self, owner: Owner) -> dict[str, dict[str, int]]:
        """The quotas of the agency's other tenants: tenant -> {instances, cores, ram, floatingip},
        and {volumes, gigabytes} where the cloud has block storage. One project list (by the agency
        tag, proven by domain and tags), one bulk Neutron quota list, and one Nova quota read (one
        Cinder read) per other tenant with quotas set (neither has a bulk listing)."""
        projects = self.api.request("identity", "GET", "/projects",
                                    params={"tags": naming.AGENCY_TAG_PREFIX + owner.agency})["projects"]
        domain_id = self.domain_id(owner.domain)
        others = {}
        for project in projects:
            tenant = naming.tenant_from_tags(project.get("tags"))
            if tenant and tenant != owner.tenant and project.get("domain_id") == domain_id and \
                    not refusal(Owner(tenant=tenant, agency=owner.agency, domain=owner.domain),
                                project_name=project["name"], project_domain=owner.domain, in_owner_domain=True,
                                tags=project.get("tags")):
                others[project["id"]] = tenant
        if not others:
            return {}
        # Only tenants whose quotas are set count: gcloudctl sets them when it makes a tenant
        # and resets them first when it destroys one, so a tenant being destroyed (its quotas
        # back at the cloud's defaults) is not counted with the defaults. Neutron lists the
        # projects with quotas set in one call; Nova is read per such tenant.
        network = {q.get("project_id") or q.get("tenant_id"): q
                   for q in self.api.request("network", "GET", "/quotas")["quotas"]}
        out = {}
        for pid, tenant in sorted(others.items(), key=lambda item: item[1]):
            if pid not in network:
                continue
            compute = self._compute_quota(pid)
            if compute is None:  # deleted since the project list: counts nothing
                continue
            if self._is_default_compute(pid, compute):  # being made (Nova's quota not set yet) or destroyed
                continue
            out[tenant] = {"instances": compute.get("instances", 0), "cores": compute.get("cores", 0),
                           "ram": compute.get("ram", 0), "floatingip": network[pid].get("floatingip", 0)}
            if self.api.has_service("block-storage"):
                out[tenant].update(self._volume_quota(pid))
        return out

    def _volume_quota(self, pid: str) -> dict[str, int]:
        """What a project counts against the agency's volume ceilings: its Cinder quota of volumes
        and gigabytes where gcloudctl set one; where the quota is still Cinder's default (a tenant
        made before its region had block storage, never re-applied since) what it uses, since
        the default is not a grant the agency asked for. {} when the project is gone."""
        try:
            quota = self.api.request("block-storage", "GET", f"/os-quota-sets/{pid}",
                                     params={"usage": "True"})["quota_set"]
            defaults = self.api.request("block-storage", "GET", f"/os-quota-sets/{pid}/defaults")["quota_set"]
        except CloudError as exc:
            if exc.status in (400, 404):
                return {}
            raise
        out = {}
        for key in ("volumes", "gigabytes"):
            entry = quota.get(key)
            if isinstance(entry, dict):
                limit, used = entry.get("limit", 0), entry.get("in_use", 0)
                out[key] = used if limit == defaults.get(key) else limit
        return out

    def _is_default_compute(self, pid: str, compute: dict[str, Any]) -> bool:
        """True when a project's Nova quota is still Nova's default: gcloudctl has not set it yet
        (another run is making the tenant: its Neutron quota may already be set) or has reset it
        (destroying). The default is not a grant the agency asked for, so it does not count."""
        with self.cache.lock:
            defaults = self.cache.compute_defaults
        if defaults is None:
            defaults = self._nova_quota_set(f"/os-quota-sets/{pid}/defaults")
            if defaults is None:
                return False
            with self.cache.lock:
                self.cache.compute_defaults = defaults
        return all(compute.get(key) == defaults.get(key) for key in ("instances", "cores", "ram"))

    def _compute_quota(self, pid: str) -> dict | None:
        """A project's Nova quota, cached `quota_cache_seconds` (a controller planning many new
        tenants of one agency reads each other tenant's quota once per interval, not once per
        plan). None when the project is gone."""
        now = self.clock()
        with self.cache.lock:
            cached = self.cache.compute_quotas.get(pid)
        if cached is not None and now - cached[0] < self.quota_cache_seconds:
            return cached[1]
        quota = self._nova_quota_set(f"/os-quota-sets/{pid}")
        if quota is None:
            return None
        with self.cache.lock:
            self.cache.compute_quotas[pid] = (now, quota)
        return quota

    def _nova_quota_set(self, path: str) -> dict | None:
        """A Nova quota set (a project's, or the defaults); None when the project is gone."""
        try:
            return self.api.request("compute", "GET", path, microversion=COMPUTE_MICROVERSION)["quota_set"]
        except CloudError as exc:
            if exc.status in (400, 404):
                return None
            raise

    def _role_id(self, name: str) -> str:
        with self.cache.lock:
            if self.cache.roles is None:
                self.cache.roles = {r["name"]: r["id"] for r in self.api.request("identity", "GET", "/roles")["roles"]}
            if name not in self.cache.roles:
                raise CloudError(f"role {name!r} does not exist in Keystone", transient=False)
            return self.cache.roles[name]

    def domain_id(self, name: str) -> str:
        """The id of the Keystone domain `name` (cached: one request per driver and domain)."""
        with self.cache.lock:
            if name not in self.cache.domains:
                found = self.api.request("identity", "GET", "/domains", params={"name": name})["domains"]
                if not found:
                    raise Refused(f"Keystone domain {name!r} does not exist in this cloud",
                                  hint="each agency's domain (agency registry `domain`) must exist: ask platform ops")
                self.cache.domains[name] = found[0]["id"]
                self.cache.domain_names[found[0]["id"]] = name
            return self.cache.domains[name]

    def domain_name(self, domain_id: str | None) -> str:
        """The name of a domain by id (cached; the id itself if Keystone does not know it)."""
        if not domain_id:
            return "?"
        with self.cache.lock:
            if domain_id not in self.cache.domain_names:
                for domain in self.api.request("identity", "GET", "/domains")["domains"]:
                    self.cache.domain_names[domain["id"]] = domain["name"]
                    self.cache.domains.setdefault(domain["name"], domain["id"])
            return self.cache.domain_names.get(domain_id, domain_id)

    def check_users(self, domain: str, names: Iterable[str]) -> dict[str, str]:
        """Why each of the members `names` of a tenant of `domain` cannot be one (user -> reason),
        found before any write: a user who is in another domain but not the agency's, or in
        none (unless this cloud creates missing users). Read-only: one lookup per user not yet
        cached, one more for each user not in the agency's domain."""
        problems = {}
        domain_id = self.domain_id(domain)
        for name in sorted(set(names) - {OPERATOR}):
            if self._find_user(name, domain_id) is not None:
                continue
            elsewhere = self.api.request("identity", "GET", "/users", params={"name": name})["users"]
            if elsewhere:
                where = ", ".join(sorted({repr(self.domain_name(u.get("domain_id"))) for u in elsewhere}))
                problems[name] = (f"user {name!r} is not in the agency's domain {domain!r} (found in domain {where}): "
                                  "a tenant's members are its agency's people")
            elif not self.create_missing_users:
                problems[name] = f"user {name!r} does not exist in the agency's domain {domain!r}"
        return problems

    def _find_user(self, name: str, domain_id: str) -> str | None:
        with self.cache.lock:
            if (domain_id, name) not in self.cache.users:
                users = self.api.request("identity", "GET", "/users",
                                         params={"name": name, "domain_id": domain_id})["users"]
                if not users:
                    return None
                self.cache.users[(domain_id, name)] = users[0]["id"]
            return self.cache.users[(domain_id, name)]

    def _user_id(self, name: str, domain: str | None) -> str:
        """The id of user `name` of `domain` (the agency's): never a user of another domain.
        The operator is gcloudctl's own service user."""
        if name == OPERATOR:
            return self.api.operator_user_id
        if not domain:
            raise CloudError(f"member {name!r} has no domain to be looked up in", transient=False)
        domain_id = self.domain_id(domain)
        found = self._find_user(name, domain_id)
        if found is not None:
            return found
        if not self.create_missing_users:
            raise CloudError(f"user {name!r} not found in domain {domain!r}", transient=False,
                             hint="members must exist in the agency's domain of the identity provider")
        body = {"user": {"name": name, "domain_id": domain_id, "enabled": True,
                         "description": "created by gcloudctl (dev cloud without identity provider)"}}
        user_id = self.api.request("identity", "POST", "/users", json=body)["user"]["id"]
        with self.cache.lock:
            self.cache.users[(domain_id, name)] = user_id
        return user_id

    def _scope(self, project_id: str) -> dict:
        """Keyword arguments for a request that must run inside the project (Nova creates)."""
        return {"project_id": project_id, "project_domain_id": self.cache.project_domains.get(project_id)}


_NOT_OWNED_HINT = ("gcloudctl touches only projects in the agency's domain tagged gcloudctl, gc-tenant=<name> and "
                   "gc-agency=<agency>; choose another metadata.name, or ask platform ops (projects an older "
                   "gcloudctl made in the Default domain must be migrated: docs/architecture.md)")


def _attachment_ids(res: Resource, ids: IdMap) -> tuple[str, str]:
    """(server id, volume id) of a volume attachment: observed, or made by this run."""
    if res.extra.get("server_id") and res.extra.get("volume_id"):
        return res.extra["server_id"], res.extra["volume_id"]
    if res.id and "/" in res.id:
        server_id, _, volume_id = res.id.partition("/")
        return server_id, volume_id
    known = ids.get(res.address)
    if known and "/" in known:
        server_id, _, volume_id = known.partition("/")
        return server_id, volume_id
    return ids.resolve(res.attrs["server"]), ids.resolve(res.attrs["volume"])


def _project(res: Resource) -> Address:
    if res.address.kind is Kind.PROJECT:
        return res.address
    for dep in res.depends_on:
        if dep.kind is Kind.PROJECT:
            return dep
    raise CloudError(f"{res.address} has no project dependency", transient=False)


# ------------------------------------------------------------------------------ real API
@dataclass(frozen=True)
class ApiSettings:
    """How the driver talks HTTP to one cloud: timeouts, retries, rate budget. Defaults suit a
    national cloud under load; each can be set per cloud in clouds.yaml under a `gcloudctl:` key
    (`read_timeout` also from openstacksdk's own `api_timeout`), see docs/reliability.md."""

    connect_timeout: float = 5.0  # seconds to open a TCP connection
    read_timeout: float = 60.0  # seconds to wait for an answer (a Nova create can be slow)
    auth_timeout: float = 15.0  # seconds to wait for a login (Keystone token) answer
    retries: int = 4  # further attempts after a retriable failure (5xx, 429, connection lost)
    backoff: float = 0.5  # first back-off; doubles per attempt, with jitter (50-100 %)
    backoff_cap: float = 8.0  # longest back-off between two attempts
    retry_after_cap: float = 30.0  # a server's Retry-After is honoured up to this
    rate: float = 100.0  # requests per second per cloud (a token bucket shared by all threads)
    burst: int = 100  # requests that may go at once before the rate applies

    @classmethod
    def from_cloud_config(cls, config: dict, where: str) -> "ApiSettings":
        section = dict(config.get("gcloudctl") or {})
        if config.get("api_timeout") and "read_timeout" not in section:
            section["read_timeout"] = config["api_timeout"]
        known = {f.name: f.type for f in dataclass_fields(cls)}
        unknown = sorted(set(section) - set(known))
        if unknown:
            raise Unreachable(f"{where}: unknown gcloudctl setting(s) {', '.join(unknown)}",
                              hint=f"known settings: {', '.join(known)} (docs/reliability.md)")
        try:
            values = {k: (int if known[k] == "int" else float)(v) for k, v in section.items()}
        except (TypeError, ValueError) as exc:
            raise Unreachable(f"{where}: a gcloudctl setting is not a number ({exc})",
                              hint="docs/reliability.md lists the settings and their defaults") from None
        if any(v < 0 for v in values.values()) or values.get("rate", 1) <= 0:
            raise Unreachable(f"{where}: gcloudctl settings must be positive", hint="docs/reliability.md")
        return cls(**values)


class RateBudget:
    """A token bucket shared by every thread that talks to one cloud, plus a shared pause: when
    the cloud answers 429 (or 503) with Retry-After, nobody sends until that time has passed,
    instead of each thread hammering on its own. Waits are bounded by the context's deadline."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rate, self.burst, self.clock, self.sleep = rate, max(1, burst), clock, sleep
        self.lock = threading.Lock()
        self.tokens = float(self.burst)
        self.stamp = clock()
        self.paused_until = 0.0
        self.waited = 0.0  # seconds spent waiting for the budget (for benchmarks)

    def acquire(self) -> None:
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                wait = self.paused_until - now
                if wait <= 0 and self.tokens >= 1:
                    self.tokens -= 1
                    return
                if wait <= 0:
                    wait = (1 - self.tokens) / self.rate
            left = remaining(self.clock)  # TimeoutExpired once the deadline has passed
            wait = wait if left is None else min(wait, left + 0.01)
            self.waited += wait
            self.sleep(wait)

    def pause(self, seconds: float) -> None:
        with self.lock:
            self.paused_until = max(self.paused_until, self.clock() + seconds)


class ConnectionLost(CloudError):
    """No HTTP answer: connection refused, reset, or no answer in time. `unsent` when the
    request surely never reached the server (refused, connect timeout): safe to send again."""

    def __init__(self, message: str, *, unsent: bool, timed_out: bool = False):
        super().__init__(message, transient=True)
        self.unsent = unsent
        self.timed_out = timed_out  # no answer in time: retried once at most (a hung server stays hung)


IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "PATCH", "LOGIN"})  # LOGIN: a token request


def retry_safe(exc: BaseException, method: str) -> bool:
    """May this failure be retried by sending the same request again? Reads and idempotent
    writes: on 5xx, 429 and lost connections. A POST (a create: sending it twice may make two)
    only when it surely was not acted on: 429, 503, or a connection that never opened; the
    executor retries the others after looking for what the first attempt made (`find`)."""
    if not isinstance(exc, CloudError):
        return False
    idempotent = method in IDEMPOTENT_METHODS
    if isinstance(exc, ConnectionLost):
        return idempotent or exc.unsent
    if exc.status in (429, 503):
        return True
    if exc.status == 409:  # a conflict on a write is the executor's to retry; on a read or a login it is a glitch
        return method in ("GET", "HEAD", "LOGIN")
    return idempotent and exc.status in (500, 502, 504)


class SdkApi:
    """RestApi over openstacksdk: clouds.yaml / OS_CLOUD credentials, keystoneauth session,
    one token per process, project-scoped connections for Nova calls that must be made
    inside the tenant project. Counts HTTP requests per service (for benchmarks and metrics).

    Every request is bounded (`ApiSettings`: connect/read timeouts, cut to the context's
    deadline, `gcloudctl.drivers.base.deadline_scope`), paced by the cloud's `RateBudget`,
    and retried with tenacity (exponential back-off with jitter, Retry-After honoured) when
    `retry_safe`. Authentication and configuration failures raise `Unreachable` (exit 6)
    with a hint naming the clouds.yaml files searched; the deadline raises TimeoutExpired."""

    def __init__(self, cloud: str | None = None, *, connection: Any = None, settings: ApiSettings | None = None,
                 budget: RateBudget | None = None, config_files: list[str] | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        """`config_files`: read clouds.yaml from these only (tests, the fault injector's own file);
        default: openstacksdk's search (OS_CLIENT_CONFIG_FILE, ./, ~/.config/openstack, /etc/openstack)."""
        import openstack  # only drivers import openstacksdk
        from keystoneauth1 import exceptions as ks_exc

        self._ks_exc = ks_exc
        self.cloud = cloud
        self.sleep, self.clock = sleep, clock
        self.requests: Counter[str] = Counter()
        self.retried: Counter[str] = Counter()  # "service METHOD status" -> retries (for benchmarks)
        self._service_by_netloc: dict[str, str] = {}
        self._scoped: dict[str, Any] = {}
        self._bases: dict[tuple[int, str], str] = {}
        self._lock = threading.Lock()
        self._auth_lock = threading.Lock()
        if connection is None:
            region = _cloud_region(cloud, config_files)
            self.settings = settings or ApiSettings.from_cloud_config(region.config, _where(cloud))
            self.conn = openstack.connection.Connection(config=region)
        else:
            self.conn = connection
            self.settings = settings or ApiSettings()
        self.budget = budget or RateBudget(self.settings.rate, self.settings.burst, clock=clock, sleep=sleep)
        self._hook(self.conn)
        try:
            access = self._retrying("LOGIN", lambda: self._access(self.conn))
        except TimeoutExpired:
            raise
        except CloudError as exc:
            raise _auth_failure(cloud, exc, self.settings) from None
        self._map_endpoints(access)
        self.operator_user_id = access.user_id
        self.operator_user_name = access.username
        self._services = {entry["type"] for entry in (access.service_catalog.catalog or [])}

    def _hook(self, conn: Any) -> None:
        """Count every HTTP request the session makes (login and version discovery included),
        keyed by "service METHOD"; the service is told by the endpoint's host:port. Sets the
        session's default timeouts (used by keystoneauth's own token requests)."""
        def count(response, *args, **kwargs):
            netloc = response.request.url.split("/")[2]
            service = self._service_by_netloc.get(netloc, netloc)
            self.requests[f"{service} {response.request.method}"] += 1
        conn.session.session.hooks.setdefault("response", []).append(count)
        conn.session.timeout = (self.settings.connect_timeout, self.settings.read_timeout)

    def _access(self, conn: Any) -> Any:
        """The connection's token (one login, reused until it expires), its login bounded by
        the settings' timeouts and the context's deadline."""
        auth = conn.session.auth
        ref = getattr(auth, "auth_ref", None)
        if ref is not None and not ref.will_expire_soon(30):
            return ref
        self.budget.acquire()
        with self._auth_lock:
            conn.session.timeout = self._timeouts(self.settings.auth_timeout)
            try:
                return auth.get_access(conn.session)
            except Exception as exc:  # noqa: BLE001 - classified here, once
                raise self._classify_exception(exc, "identity POST /auth/tokens") from None
            finally:
                conn.session.timeout = (self.settings.connect_timeout, self.settings.read_timeout)

    def _timeouts(self, read: float | None = None) -> tuple[float, float]:
        left = remaining(self.clock)
        connect, read = self.settings.connect_timeout, read or self.settings.read_timeout
        if left is None:
            return connect, read
        return min(connect, left), min(read, left)

    def _classify_exception(self, exc: Exception, what: str) -> Exception:
        """A keystoneauth/requests failure -> CloudError (or TimeoutExpired past the deadline)."""
        ks = self._ks_exc
        if isinstance(exc, (GcloudctlError,)):
            return exc
        deadline = current_deadline()
        if isinstance(exc, (ks.ConnectTimeout, ks.ConnectFailure, ks.RetriableConnectionFailure)) \
                and deadline is not None and self.clock() >= deadline - 0.05:
            return TimeoutExpired(f"{what}: no answer before the command's time limit (--timeout) ran out",
                                  hint="re-run the same command: finished steps are not repeated")
        if isinstance(exc, ks.ConnectTimeout):
            unsent = "connect" in str(exc).lower() and "read" not in str(exc).lower()
            limit = self.settings.auth_timeout if "/auth/tokens" in what else self.settings.read_timeout
            return ConnectionLost(f"{what}: no answer within {limit:g}s", unsent=unsent, timed_out=True)
        if isinstance(exc, (ks.ConnectFailure, ks.RetriableConnectionFailure)):
            unsent = "refused" in str(exc).lower()
            return ConnectionLost(f"{what}: connection failed ({'refused' if unsent else type(exc).__name__})",
                                  unsent=unsent)
        if isinstance(exc, ks.HttpError):
            status = getattr(exc, "http_status", None) or 500
            retry_after = _retry_after((getattr(exc, "response", None) or _NoResponse()).headers.get("Retry-After"))
            return classify_status(status, f"{what}: {status} {getattr(exc, 'message', '') or type(exc).__name__}",
                                   retry_after)
        if isinstance(exc, ks.MissingRequiredOptions):
            names = ", ".join(o.dest for o in getattr(exc, "options", [])) or str(exc)
            return Unreachable(f"the clouds.yaml entry {self.cloud!r} lacks {names}", hint=_paths_hint(self.cloud))
        if isinstance(exc, ks.DiscoveryFailure):
            return Unreachable(f"cloud {self.cloud!r}: the auth URL is not a Keystone endpoint ({exc})",
                               hint="auth_url should end in /v3; " + _paths_hint(self.cloud))
        if isinstance(exc, ks.ClientException):
            return Unreachable(f"cloud {self.cloud!r}: authentication failed ({type(exc).__name__}: {exc})",
                               hint=_paths_hint(self.cloud))
        return exc

    def _retrying(self, method: str, call: Callable[[], Any]) -> Any:
        """`call()` with tenacity: up to `retries` more attempts while `retry_safe`, exponential
        back-off with jitter or the server's Retry-After, never past the deadline."""
        import tenacity

        settings = self.settings

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception()
            if getattr(exc, "retry_after", None):
                delay = min(exc.retry_after, settings.retry_after_cap)
                if exc.status in (429, 503):
                    self.budget.pause(delay)  # everybody waits, not just this thread
            else:
                delay = min(settings.backoff_cap, settings.backoff * 2 ** (state.attempt_number - 1))
                delay *= 0.5 + random.random() / 2
            left = remaining(self.clock)
            return delay if left is None else min(delay, left + 0.01)

        def note(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception()
            self.retried[f"{getattr(exc, 'status', None) or 'conn'}"] += 1
            log.info("retrying (%d): %s", state.attempt_number, getattr(exc, "message", exc))

        def should_retry(state: tenacity.RetryCallState) -> bool:
            exc = state.outcome.exception()
            if getattr(exc, "timed_out", False) and state.attempt_number >= 2:
                return False
            return exc is not None and retry_safe(exc, method)

        return tenacity.Retrying(stop=tenacity.stop_after_attempt(settings.retries + 1), wait=wait, retry=should_retry,
                                 sleep=self.sleep, before_sleep=note, reraise=True)(call)

    def _map_endpoints(self, access: Any) -> None:
        for entry in access.service_catalog.catalog or []:
            for endpoint in entry.get("endpoints", []):
                netloc = endpoint.get("url", "").split("/")[2:3]
                if netloc:
                    self._service_by_netloc[netloc[0]] = entry["type"]
        for key in [k for k in self.requests if k.split(" ")[0] in self._service_by_netloc]:
            netloc, method = key.split(" ")
            self.requests[f"{self._service_by_netloc[netloc]} {method}"] += self.requests.pop(key)  # the login

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def write_requests(self) -> int:
        return sum(n for key, n in self.requests.items() if not key.endswith((" GET", " HEAD")))

    def has_service(self, service: str) -> bool:
        aliases = {"block-storage": {"block-storage", "volumev3", "volume"}}
        return bool(aliases.get(service, {service}) & self._services)

    def _connection(self, project_id: str | None, domain_id: str | None = None) -> Any:
        """The service user's connection, or one scoped to the project (in its real domain:
        tenants live in their agency's domain, not in `default`)."""
        if project_id is None:
            return self.conn
        with self._lock:
            if project_id not in self._scoped:
                scope = {"id": project_id}
                if domain_id:
                    scope["domain_id"] = domain_id
                scoped = self.conn.connect_as_project(scope)
                self._hook(scoped)
                self._scoped[project_id] = scoped
            return self._scoped[project_id]

    def _base_url(self, conn: Any, service: str) -> str:
        """The service's endpoint from the token's catalog, with its API version: no version
        discovery round trips (they would double the cost of a no-op plan)."""
        key = (id(conn), service)
        if key not in self._bases:
            access = self._access(conn)
            aliases = {"block-storage": ("block-storage", "volumev3", "volume")}.get(service, (service,))
            url = None
            for service_type in aliases:
                try:
                    url = access.service_catalog.url_for(service_type=service_type, interface=conn.config.get_interface(),
                                                         region_name=conn.config.get_region_name(service_type) or None)
                    break
                except self._ks_exc.EndpointNotFound:
                    continue
            if url is None:
                raise CloudError(f"the cloud's catalog has no {service} endpoint", transient=False)
            url = url.rstrip("/")
            if not re.search(r"/v\d+(\.\d+)?(/|$)", url):
                url += "/" + API_VERSION_PATH[service]
            self._bases[key] = url
        return self._bases[key]

    def request(self, service: str, method: str, path: str, *, params: dict | None = None, json: Any = None,
                microversion: str | None = None, project_id: str | None = None,
                project_domain_id: str | None = None) -> Any:
        return self._retrying(method, lambda: self._send(service, method, path, params=params, json=json,
                                                         microversion=microversion, project_id=project_id,
                                                         project_domain_id=project_domain_id))

    def _send(self, service: str, method: str, path: str, *, params: dict | None, json: Any,
              microversion: str | None, project_id: str | None, project_domain_id: str | None) -> Any:
        conn = self._connection(project_id, project_domain_id)
        url = self._base_url(conn, service) + path
        self._retrying("LOGIN", lambda: self._access(conn))  # a login (first use, expired token): bounded, retried
        headers = {"Accept": "application/json"}
        if microversion:
            headers["OpenStack-API-Version"] = f"{_HEADER_SERVICE.get(service, service)} {microversion}"
            headers["X-OpenStack-Nova-API-Version"] = microversion
        self.budget.acquire()
        kwargs: dict[str, Any] = {"params": params or None, "raise_exc": False, "headers": headers,
                                  "timeout": self._timeouts(), "connect_retries": 0}
        if json is not None:
            kwargs["json"] = json
        try:
            response = conn.session.request(url, method, **kwargs)
        except Exception as exc:  # noqa: BLE001 - classified here, once
            raise self._classify_exception(exc, f"{service} {method} {path}") from None
        if response.status_code >= 400:
            raise classify_status(response.status_code, f"{service} {method} {path}: {response.status_code} "
                                  f"{_error_text(response)}", _retry_after(response.headers.get("Retry-After")))
        if response.status_code == 204 or not response.content:
            return {}
        return response.json()


_HEADER_SERVICE = {"block-storage": "volume"}  # the service name Cinder expects in OpenStack-API-Version


class _NoResponse:
    headers: dict = {}


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is not used by OpenStack services)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _searched_paths(cloud: str | None) -> list[str]:
    import openstack.config

    try:
        files = list(openstack.config.OpenStackConfig(load_envvars=True)._config_files)
    except Exception:  # noqa: BLE001 - the hint falls back to openstacksdk's defaults
        from openstack.config import loader

        files = list(loader.CONFIG_FILES)
    return files


def _where(cloud: str | None) -> str:
    return gettext("clouds.yaml entry {cloud!r}", cloud=cloud) if cloud else gettext("the OS_* environment")


def _paths_hint(cloud: str | None) -> str:
    import os

    paths = list(dict.fromkeys(_searched_paths(cloud)))
    found = [p for p in paths if os.path.exists(p)]
    folders = list(dict.fromkeys(os.path.dirname(p) for p in paths))
    text = gettext("clouds.yaml searched in {folders} (clouds.yaml/.yml/.json; OS_CLIENT_CONFIG_FILE first)",
                   folders=", ".join(folders))
    text += gettext("; found: {files}", files=", ".join(found)) if found else gettext("; none found")
    return text + gettext("; choose the entry with --cloud or OS_CLOUD")


def _cloud_region(cloud: str | None, config_files: list[str] | None = None) -> Any:
    """The clouds.yaml entry (or OS_* variables), with the v3 plugin when the auth URL names /v3
    (the generic `password` plugin first GETs the auth URL to discover the identity version:
    one request more per login). Configuration problems raise Unreachable (exit 6)."""
    import openstack.config
    from keystoneauth1 import exceptions as ks_exc

    try:
        config = openstack.config.OpenStackConfig(load_envvars=config_files is None, config_files=config_files)
        region = config.get_one(cloud=cloud)
        auth_type = region.config.get("auth_type") or "password"
        auth = region.config.get("auth") or {}
        auth_url = auth.get("auth_url", "")
        if not auth_url:
            raise Unreachable(gettext("{where} has no auth_url", where=_where(cloud)), hint=_paths_hint(cloud))
        if auth_type == "password" and not auth.get("password"):
            raise Unreachable(gettext("{where} has no password", where=_where(cloud)),
                              hint=gettext("add auth.password to the entry (or clouds-public/secure.yaml, or "
                                           "OS_PASSWORD); ") + _paths_hint(cloud))
        if auth_type == "password" and auth_url.rstrip("/").endswith("/v3"):
            region = config.get_one(cloud=cloud, auth_type="v3password")
        return region
    except openstack.exceptions.ConfigException as exc:
        known = _known_clouds()
        raise Unreachable(gettext("cloud {cloud!r}: {error}", cloud=cloud, error=exc),
                          hint=(gettext("known clouds: {clouds}; ", clouds=", ".join(known)) if known else "")
                          + _paths_hint(cloud)) from None
    except ks_exc.MissingRequiredOptions as exc:
        names = ", ".join(o.dest for o in exc.options)
        raise Unreachable(gettext("{where} lacks {names}", where=_where(cloud), names=names),
                          hint=_paths_hint(cloud)) from None


def _known_clouds() -> list[str]:
    import openstack.config

    try:
        return sorted(openstack.config.OpenStackConfig(load_envvars=True).cloud_config.get("clouds") or {})
    except Exception:  # noqa: BLE001 - only for a hint
        return []


def _auth_failure(cloud: str | None, exc: CloudError, settings: ApiSettings) -> GcloudctlError:
    """The first login failed after its retries: exit 6 with what to check."""
    if isinstance(exc, Unreachable):
        return exc
    hint = _paths_hint(cloud)
    if isinstance(exc, ConnectionLost):
        return Unreachable(gettext("cannot reach the identity service of cloud {cloud!r}: {error}", cloud=cloud,
                                   error=exc.message),
                           hint=gettext("is it running? for the local cloud: gcloudctl devcloud up; ") + hint)
    if exc.status == 401:
        return Unreachable(gettext("authentication to {cloud!r} failed: the identity service refused the "
                                   "credentials (401)", cloud=cloud),
                           hint=gettext("check username, password and domains of the entry; ") + hint)
    if exc.status == 404:
        return Unreachable(gettext("cloud {cloud!r}: the auth URL answered 404: not a Keystone v3 endpoint",
                                   cloud=cloud),
                           hint=gettext("auth_url should be the identity endpoint, e.g. "
                                        "https://keystone.example:5000/v3; ") + hint)
    if exc.status and exc.status >= 500:
        return Unreachable(gettext("the identity service of cloud {cloud!r} is unavailable: {error} (after "
                                   "{attempts} attempts)", cloud=cloud, error=exc.message,
                                   attempts=settings.retries + 1),
                           hint=gettext("try again later, or ask platform ops"))
    return Unreachable(gettext("authentication to {cloud!r} failed: {error}", cloud=cloud, error=exc.message),
                       hint=hint)


def _error_text(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, dict) and "message" in value:
                return str(value["message"])[:500]
        if "NeutronError" in body:
            return str(body["NeutronError"].get("message"))[:500]
        if "message" in body:
            return str(body["message"])[:500]
    return str(body)[:300]
