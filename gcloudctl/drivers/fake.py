"""In-memory OpenStack REST API for fast unit tests: `FakeCloud()` is the real
`OpenStackDriver` running against `FakeApi`, so every line of driver logic is exercised.

It models what the driver relies on and what real clouds do that bites: Keystone domains
(projects and users belong to one; project names are unique per domain, so two agencies may
each have a project `portal`; a token scoped to a project must name its real domain), Neutron's
per-project `default` security group and default egress rules, duplicate-rule 409s, 409 "in use"
on deletes, servers that take polls to become ACTIVE, and injectable faults. With
`block_storage=True` (the default, as devcloud), Cinder too: volumes (types, quotas, creating/extending/attaching/
detaching that take polls, delete refused while attached or with snapshots unless cascade),
Nova's volume attachments, and boot volumes deleted with their server. `writes` counts
every non-GET request per service. It is NOT proof that provisioning works: the devcloud suite is.
"""

from __future__ import annotations

import copy
import re
import threading
import time
import uuid
from collections import Counter
from typing import Any, Callable

from gcloudctl.drivers.base import remaining
from gcloudctl.drivers.openstack import OpenStackDriver, classify_status

NEUTRON = {"networks": "network", "subnets": "subnet", "routers": "router", "ports": "port",
           "security-groups": "security_group", "security-group-rules": "security_group_rule",
           "floatingips": "floatingip"}
TAGGABLE = {"networks", "subnets", "routers", "ports", "security-groups", "floatingips"}


def _id() -> str:
    return str(uuid.uuid4())


class FakeApi:
    operator_user_name = "gcloudctl"

    def __init__(self, *, build_polls: int = 1, tag_creation: bool = True,
                 domains: tuple[str, ...] = ("BYT", "BTC", "QNI"), block_storage: bool = True,
                 volume_types: tuple[str, ...] = ("standard", "encrypted")):
        # Like Neutron 29: tags in a create body only for ports (tag-ports-during-bulk-creation)
        self.tag_creation = tag_creation
        self.lock = threading.RLock()
        self.requests: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()
        self.write_log: list[tuple[str, str, str]] = []  # (service, method, path) of every write
        self.faults: list[dict] = []
        self.build_polls = build_polls
        # Cinder (off by default, like a region without block storage): volumes, snapshots, quotas
        self.block_storage = block_storage
        self.volume_types = set(volume_types)
        self.volumes: dict[str, dict] = {}
        self.snapshots: dict[str, dict] = {}
        self.volume_quotas: dict[str, dict] = {}
        # like devcloud: the service user lives in `Default`; each agency has its own domain
        self.domains = {"default": {"id": "default", "name": "Default"}}
        for name in domains:
            self.add_domain(name)
        self.operator_user_id = _id()
        self.users = {self.operator_user_id: {"id": self.operator_user_id, "name": self.operator_user_name,
                                              "domain_id": "default"}}
        self.roles = {name: {"id": _id(), "name": name} for name in ("admin", "member", "reader")}
        self.projects: dict[str, dict] = {}
        self.assignments: set[tuple[str, str, str]] = set()  # (project, user, role)
        self.compute_quotas: dict[str, dict] = {}
        self.network_quotas: dict[str, dict] = {}
        self.neutron: dict[str, dict[str, dict]] = {c: {} for c in NEUTRON}
        self.servers: dict[str, dict] = {}
        self.keypairs: dict[str, dict] = {}
        self.server_groups: dict[str, dict] = {}
        self.flavors = {n: {"id": _id(), "name": n} for n in ("g1.small", "g1.medium", "g1.large")}
        self.images = {n: {"id": _id(), "name": n} for n in ("debian-12-hardened", "ubuntu-24.04-hardened")}
        public = {"id": _id(), "name": "public", "router:external": True, "project_id": "admin", "tags": [], "status": "ACTIVE"}
        self.neutron["networks"][public["id"]] = public

    # ----------------------------------------------------------------- plumbing
    def has_service(self, service: str) -> bool:
        return service != "block-storage" or self.block_storage

    def inject(self, method: str, path_pattern: str, status: int, times: int = 1, message: str = "injected",
               after: bool = False, delay: float = 0.0) -> None:
        """The next `times` matching requests fail with `status`: before any effect, or with
        `after=True` once the effect happened (a lost reply: the classic source of duplicates).
        `delay`: the answer comes that many seconds late (status 0: then it succeeds); like the
        real API, the wait is cut at the context's deadline (TimeoutExpired)."""
        self.faults.append({"method": method, "re": re.compile(path_pattern), "status": status, "times": times,
                            "message": message, "after": after, "delay": delay})

    def request(self, service: str, method: str, path: str, *, params: dict | None = None, json: Any = None,
                microversion: str | None = None, project_id: str | None = None,
                project_domain_id: str | None = None) -> Any:
        left = remaining()  # like SdkApi: no call starts past the context's deadline
        slow = next((f for f in self.faults if f["times"] > 0 and f.get("delay") and f["method"] == method
                     and f["re"].search(path)), None)
        if slow is not None:
            with self.lock:
                slow["times"] -= 1
            time.sleep(slow["delay"] if left is None else min(slow["delay"], left))
            remaining()
        with self.lock:
            self.requests[service] += 1
            if method != "GET":
                self.writes[service] += 1
                self.write_log.append((service, method, path))
            fault = next((f for f in self.faults if f["times"] > 0 and not f.get("delay") and f["method"] == method
                          and f["re"].search(path)), None)
            if fault is not None:
                fault["times"] -= 1
                if not fault["after"]:
                    raise classify_status(fault["status"], f"{service} {method} {path}: {fault['status']} {fault['message']}")
            handler = getattr(self, f"_{service.replace('-', '_')}")
            try:
                if project_id is not None:
                    self._check_scope(project_id, project_domain_id)
                reply = copy.deepcopy(handler(method, path.strip("/").split("/"), params or {}, copy.deepcopy(json), project_id))
            except _Http as exc:
                raise classify_status(exc.status, f"{service} {method} {path}: {exc.status} {exc.message}") from None
            if fault is not None:
                raise classify_status(fault["status"], f"{service} {method} {path}: {fault['status']} {fault['message']}")
            return reply

    # ----------------------------------------------------------------- keystone
    def _check_scope(self, project_id, domain_id):
        """A project-scoped token: Keystone refuses a scope naming another domain than the project's."""
        project = self.projects.get(project_id)
        if project is None:
            raise _Http(401, f"cannot scope to project {project_id}: not found")
        if domain_id is not None and project["domain_id"] != domain_id:
            raise _Http(401, f"project {project_id} is not in domain {domain_id}")

    def _identity(self, method, parts, params, body, scoped):
        if parts == ["domains"] and method == "GET":
            return {"domains": [d for d in self.domains.values() if params.get("name") in (None, d["name"])]}
        if len(parts) == 2 and parts[0] == "domains" and method == "GET":
            return {"domain": self._get(self.domains, parts[1])}
        if parts == ["projects"] and method == "GET":
            items = list(self.projects.values())
            if "name" in params:
                items = [p for p in items if p["name"] == params["name"]]
            if "domain_id" in params:
                items = [p for p in items if p["domain_id"] == params["domain_id"]]
            if "tags" in params:  # Keystone: all of the comma-separated tags
                items = [p for p in items if set(params["tags"].split(",")) <= set(p.get("tags", []))]
            return {"projects": items}
        if parts == ["projects"] and method == "POST":
            p = body["project"]
            p.setdefault("domain_id", "default")
            if p["domain_id"] not in self.domains:
                raise _Http(400, f"domain {p['domain_id']} not found")
            if any(x["name"] == p["name"] and x["domain_id"] == p["domain_id"] for x in self.projects.values()):
                raise _Http(409, "Conflict: a project with this name exists in the domain")
            p["id"] = _id()
            self.projects[p["id"]] = p
            self.compute_quotas[p["id"]] = {"instances": 10, "cores": 20, "ram": 51200}
            self.network_quotas[p["id"]] = {"floatingip": 50, "network": 100, "port": 500, "security_group": 10,
                                            "security_group_rule": 100, "router": 10, "subnet": 100}
            return {"project": p}
        if len(parts) == 2 and parts[0] == "projects":
            project = self._get(self.projects, parts[1])
            if method == "PATCH":
                project.update(body["project"])
                return {"project": project}
            if method == "DELETE":
                del self.projects[parts[1]]
                self.assignments = {a for a in self.assignments if a[0] != parts[1]}
                return {}
        if len(parts) == 6 and parts[0] == "projects" and parts[2] == "users" and parts[4] == "roles":
            key = (parts[1], parts[3], parts[5])
            self._get(self.projects, parts[1])
            if method == "PUT":
                self.assignments.add(key)
                return {}
            if method == "DELETE":
                if key not in self.assignments:
                    raise _Http(404, "assignment not found")
                self.assignments.discard(key)
                return {}
        if parts == ["role_assignments"]:
            pid = params.get("scope.project.id")
            return {"role_assignments": self._assignments(lambda p: p == pid)}
        if parts == ["roles"]:
            return {"roles": list(self.roles.values())}
        if parts == ["users"] and method == "GET":
            return {"users": [u for u in self.users.values() if u["name"] == params.get("name")
                              and params.get("domain_id") in (None, u["domain_id"])]}
        if parts == ["users"] and method == "POST":
            domain_id = body["user"].get("domain_id", "default")
            if domain_id not in self.domains:
                raise _Http(400, f"domain {domain_id} not found")
            if any(u["name"] == body["user"]["name"] and u["domain_id"] == domain_id for u in self.users.values()):
                raise _Http(409, "Conflict: a user with this name exists in the domain")
            user = {"id": _id(), "name": body["user"]["name"], "domain_id": domain_id}
            self.users[user["id"]] = user
            return {"user": user}
        raise _Http(404, f"no route identity {method} {'/'.join(parts)}")

    def _assignments(self, wanted_project: Callable[[str], bool]) -> list[dict]:
        """Role assignments as Keystone lists them with `include_names`, of the projects wanted."""
        role_names = {r["id"]: r["name"] for r in self.roles.values()}
        out = []
        for (p, u, r) in sorted(self.assignments):
            if not wanted_project(p):
                continue
            user, project = self.users[u], self.projects[p]
            out.append({"user": {"id": u, "name": user["name"], "domain": self._domain_ref(user["domain_id"])},
                        "role": {"id": r, "name": role_names[r]},
                        "scope": {"project": {"id": p, "name": project["name"],
                                              "domain": self._domain_ref(project["domain_id"])}}})
        return out

    # ----------------------------------------------------------------- nova
    def _compute(self, method, parts, params, body, scoped):
        if parts[0] == "os-quota-sets":
            pid = parts[1]
            if method == "GET" and parts[2:] == ["defaults"]:
                return {"quota_set": {"instances": 10, "cores": 20, "ram": 51200}}
            if method == "GET":
                return {"quota_set": dict(self.compute_quotas.get(pid, {"instances": 10, "cores": 20, "ram": 51200}))}
            if method == "PUT":
                self.compute_quotas.setdefault(pid, {}).update(body["quota_set"])
                return {"quota_set": self.compute_quotas[pid]}
            if method == "DELETE":
                self.compute_quotas[pid] = {"instances": 10, "cores": 20, "ram": 51200}
                return {}
        if parts == ["flavors"]:
            return {"flavors": list(self.flavors.values())}
        if parts == ["servers", "detail"]:
            servers = [s for s in self.servers.values() if s["tenant_id"] == params.get("project_id")]
            for server in servers:
                self._advance(server)
            if "name" in params:
                servers = [s for s in servers if re.fullmatch(params["name"].strip("^$"), s["name"])]
            return {"servers": servers}
        if parts == ["servers"] and method == "POST":
            return self._create_server(body, scoped)
        if parts[0] == "servers" and len(parts) >= 3 and parts[2] == "os-volume_attachments":
            return self._volume_attachment(method, self._get(self.servers, parts[1]), parts[3:], body)
        if parts[0] == "servers" and len(parts) >= 2:
            server = self._get(self.servers, parts[1])
            if len(parts) == 3 and parts[2] == "action" and method == "POST" and "os-start" in body:
                if server["status"] != "SHUTOFF":
                    raise _Http(409, f"Cannot 'start' instance {server['id']} while it is in vm_state {server['status'].lower()}")
                server["status"] = "ACTIVE"
                return {}
            if len(parts) == 3 and parts[2] == "metadata" and method == "PUT":
                server["metadata"] = dict(body["metadata"])
                return {"metadata": server["metadata"]}
            if method == "GET":
                self._advance(server)
                return {"server": server}
            if method == "PUT":
                server.update(body["server"])
                return {"server": server}
            if method == "DELETE":
                self._release_volumes(parts[1])
                del self.servers[parts[1]]
                for group in self.server_groups.values():
                    if parts[1] in group["members"]:
                        group["members"].remove(parts[1])
                for port in self.neutron["ports"].values():
                    if port.get("device_id") == parts[1]:
                        port.update(device_id="", device_owner="", status="DOWN")
                return {}
        if parts == ["os-keypairs"]:
            if method == "GET":
                return {"keypairs": [{"keypair": k} for k in self.keypairs.values()]}
            kp = body["keypair"]
            if kp["name"] in self.keypairs:
                raise _Http(409, f"Key pair '{kp['name']}' already exists.")
            self.keypairs[kp["name"]] = kp
            return {"keypair": kp}
        if parts[0] == "os-keypairs" and method == "GET":
            return {"keypair": self._get(self.keypairs, parts[1])}
        if parts[0] == "os-keypairs" and method == "DELETE":
            self._get(self.keypairs, parts[1])
            del self.keypairs[parts[1]]
            return {}
        if parts == ["os-server-groups"]:
            if method == "GET":
                return {"server_groups": list(self.server_groups.values())}
            group = dict(body["server_group"], id=_id(), members=[], project_id=self._require_scope(scoped))
            self.server_groups[group["id"]] = group
            return {"server_group": group}
        if parts[0] == "os-server-groups" and method == "DELETE":
            self._get(self.server_groups, parts[1])
            del self.server_groups[parts[1]]
            return {}
        raise _Http(404, f"no route compute {method} {'/'.join(parts)}")

    def _advance(self, server):
        """A server in BUILD becomes ACTIVE after `build_polls` looks at it."""
        if server["status"] == "BUILD":
            server["_polls"] += 1
            if server["_polls"] >= self.build_polls:
                server["status"] = "ACTIVE"

    def _require_scope(self, scoped):
        if scoped is None:
            raise _Http(400, "compute create without a project-scoped token would land in the admin project")
        return scoped

    def _create_server(self, body, scoped):
        pid = self._require_scope(scoped)
        s = body["server"]
        if (pid, self.operator_user_id) not in {(a[0], a[1]) for a in self.assignments}:
            raise _Http(401, "operator has no role on the project")
        flavor = next((f for f in self.flavors.values() if f["id"] == s["flavorRef"]), None)
        if flavor is None:
            raise _Http(400, "flavor not found")
        if s.get("key_name") and s["key_name"] not in self.keypairs:
            raise _Http(400, f"Invalid key_name {s['key_name']} provided.")
        quota = self.compute_quotas[pid]["instances"]
        if sum(1 for x in self.servers.values() if x["tenant_id"] == pid) >= quota:
            raise _Http(403, "Quota exceeded for instances")
        server = {"id": _id(), "name": s["name"], "status": "BUILD", "tenant_id": pid, "metadata": dict(s.get("metadata") or {}),
                  "flavor": {"original_name": flavor["name"]}, "image": {"id": s["imageRef"]}, "key_name": s.get("key_name"),
                  "addresses": {}, "_polls": 0}
        for nic in s.get("networks") or []:
            port = self._get(self.neutron["ports"], nic["port"])
            if port.get("device_id"):
                raise _Http(409, f"Port {port['id']} is still in use.")
            port.update(device_id=server["id"], device_owner="compute:nova", status="ACTIVE")
        group_id = (body.get("os:scheduler_hints") or {}).get("group")
        if group_id:
            self._get(self.server_groups, group_id)["members"].append(server["id"])
        for bdm in s.get("block_device_mapping_v2") or []:  # boot from a volume made from the image
            if not self.block_storage:
                raise _Http(400, "Block Device Mapping is Invalid: no block storage")
            volume = self._new_volume(pid, {"name": "", "size": bdm["volume_size"], "volume_type": bdm.get("volume_type")})
            volume.update(status="in-use", bootable="true", _delete_with=server["id"],
                          attachments=[{"server_id": server["id"], "device": "/dev/vda", "volume_id": volume["id"],
                                        "attachment_id": _id()}])
        self.servers[server["id"]] = server
        return {"server": {"id": server["id"]}}

    # ----------------------------------------------------------------- cinder (and nova attachments)
    def _block_storage(self, method, parts, params, body, scoped):
        if not self.block_storage:
            raise _Http(404, "no block-storage endpoint")
        if parts[0] == "os-quota-sets":
            pid = parts[1]
            if method == "GET" and parts[2:] == ["defaults"]:
                return {"quota_set": dict(_VOLUME_QUOTA)}
            if method == "GET" and str(params.get("usage")).lower() == "true":
                mine = [v for v in self.volumes.values() if v["os-vol-tenant-attr:tenant_id"] == pid]
                used = {"volumes": len(mine), "gigabytes": sum(v["size"] for v in mine), "snapshots": 0}
                return {"quota_set": {k: {"limit": v, "in_use": used[k], "reserved": 0}
                                      for k, v in self.volume_quotas.get(pid, _VOLUME_QUOTA).items()}}
            if method == "GET":
                return {"quota_set": dict(self.volume_quotas.get(pid, _VOLUME_QUOTA))}
            if method == "PUT":
                self.volume_quotas.setdefault(pid, dict(_VOLUME_QUOTA)).update(body["quota_set"])
                return {"quota_set": self.volume_quotas[pid]}
            self.volume_quotas.pop(pid, None)
            return {}
        if parts == ["volumes", "detail"] and method == "GET":
            pid = params.get("project_id") or scoped
            found = [v for v in self.volumes.values() if v["os-vol-tenant-attr:tenant_id"] == pid
                     and params.get("name") in (None, v["name"])]
            for volume in found:
                self._settle_volume(volume)
            return {"volumes": [self._public(v) for v in found]}
        if parts == ["volumes"] and method == "POST":
            pid = self._require_scope(scoped)
            want = body["volume"]
            if want.get("volume_type") not in self.volume_types:
                raise _Http(404, f"Volume type with name {want.get('volume_type')} could not be found.")
            quota = self.volume_quotas.get(pid, _VOLUME_QUOTA)
            mine = [v for v in self.volumes.values() if v["os-vol-tenant-attr:tenant_id"] == pid]
            if len(mine) + 1 > quota["volumes"] or sum(v["size"] for v in mine) + want["size"] > quota["gigabytes"]:
                raise _Http(413, "VolumeLimitExceeded: Maximum number of volumes allowed exceeded")
            return {"volume": self._public(self._new_volume(pid, want))}
        if parts == ["snapshots"] and method == "POST":  # the snapshot belongs to the caller's project
            volume = self._get(self.volumes, body["snapshot"]["volume_id"])
            snap = {"id": _id(), "volume_id": volume["id"], "name": body["snapshot"].get("name", ""),
                    "status": "available", "os-extended-snapshot-attributes:project_id": scoped or "admin"}
            self.snapshots[snap["id"]] = snap
            return {"snapshot": snap}
        if parts == ["snapshots", "detail"]:
            pid = params.get("project_id") or scoped
            return {"snapshots": [x for x in self.snapshots.values()
                                  if (pid is None or x["os-extended-snapshot-attributes:project_id"] == pid)
                                  and params.get("volume_id") in (None, x["volume_id"])]}
        if parts[0] == "snapshots" and len(parts) == 2 and method == "DELETE":
            self._get(self.snapshots, parts[1])
            del self.snapshots[parts[1]]
            return {}
        if parts[0] == "volumes" and len(parts) >= 2:
            volume = self._get(self.volumes, parts[1])
            self._check_volume_scope(volume, scoped)
            rest = parts[2:]
            if rest == [] and method == "GET":
                self._settle_volume(volume)
                return {"volume": self._public(volume)}
            if rest == [] and method == "PUT":
                volume.update({k: v for k, v in body["volume"].items() if k in ("name", "description")})
                return {"volume": self._public(volume)}
            if rest == [] and method == "DELETE":
                return self._delete_volume(volume, str(params.get("cascade")).lower() == "true")
            if rest == ["metadata"] and method in ("POST", "PUT"):
                volume["metadata"] = ({**volume["metadata"], **body["metadata"]} if method == "POST"
                                      else dict(body["metadata"]))
                return {"metadata": volume["metadata"]}
            if len(rest) == 2 and rest[0] == "metadata" and method == "DELETE":
                self._get(volume["metadata"], rest[1])
                del volume["metadata"][rest[1]]
                return {}
            if rest == ["action"] and method == "POST" and "os-extend" in body:
                new = body["os-extend"]["new_size"]
                if new <= volume["size"]:
                    raise _Http(400, f"Invalid input received: New size for extend must be greater than current size. "
                                     f"(current: {volume['size']}, extended: {new}).")
                if volume["status"] not in ("available", "in-use"):
                    raise _Http(400, f"Invalid volume: Volume {volume['id']} status must be available or in-use")
                volume.update(size=new, _then=volume["status"], status="extending", _polls=0)
                return {}
        raise _Http(404, f"no route block-storage {method} {'/'.join(parts)}")

    def _new_volume(self, pid, want):
        volume = {"id": _id(), "name": want.get("name") or "", "size": want["size"], "volume_type": want.get("volume_type"),
                  "metadata": dict(want.get("metadata") or {}), "status": "creating", "attachments": [],
                  "bootable": "false", "os-vol-tenant-attr:tenant_id": pid, "_polls": 0, "_then": "available"}
        self.volumes[volume["id"]] = volume
        return volume

    @staticmethod
    def _public(volume):
        return {k: v for k, v in volume.items() if not k.startswith("_")}

    def _check_volume_scope(self, volume, scoped):
        """Like Cinder: a project-scoped token sees its project's volumes only."""
        if scoped is not None and volume["os-vol-tenant-attr:tenant_id"] != scoped:
            raise _Http(404, f"Volume {volume['id']} could not be found.")

    def _settle_volume(self, volume):
        """creating / extending / attaching / detaching end after `build_polls` looks."""
        if volume["status"] in ("creating", "extending", "attaching", "detaching"):
            volume["_polls"] += 1
            if volume["_polls"] >= self.build_polls:
                volume["status"] = volume["_then"]

    def _delete_volume(self, volume, cascade):
        if volume["attachments"]:
            raise _Http(400, f"Invalid volume: Volume status must be available or error or error_restoring or "
                             f"error_extending or error_managing and must not be migrating, attached, belong to a "
                             f"group, have snapshots or be disassociated from snapshots after volume transfer.")
        snaps = [x for x in self.snapshots.values() if x["volume_id"] == volume["id"]]
        foreign = [x for x in snaps if x["os-extended-snapshot-attributes:project_id"] != volume["os-vol-tenant-attr:tenant_id"]]
        if snaps and (not cascade or foreign):  # like Cinder: cascade takes only the volume project's snapshots
            raise _Http(400, f"Invalid volume: Volume still has {len(snaps)} dependent snapshots.")
        for snap in snaps:
            del self.snapshots[snap["id"]]
        del self.volumes[volume["id"]]
        return {}

    def _volume_attachment(self, method, server, rest, body):
        if method == "POST" and not rest:
            volume = self._get(self.volumes, body["volumeAttachment"]["volumeId"])
            if server["status"] not in ("ACTIVE", "SHUTOFF"):
                raise _Http(409, f"Cannot 'attach_volume' instance {server['id']} while it is in vm_state "
                                 f"{server['status'].lower()}")
            if volume["status"] != "available" or volume["attachments"]:
                raise _Http(400, f"Invalid volume: volume {volume['id']} status must be 'available'. "
                                 f"Currently in '{volume['status']}'")
            taken = {a["device"] for v in self.volumes.values() for a in v["attachments"] if a["server_id"] == server["id"]}
            device = next(f"/dev/vd{c}" for c in "bcdefghijklmnopqrstuvwxyz" if f"/dev/vd{c}" not in taken)
            volume["attachments"] = [{"server_id": server["id"], "device": device, "volume_id": volume["id"],
                                      "attachment_id": _id()}]
            volume.update(status="attaching", _then="in-use", _polls=0)
            return {"volumeAttachment": {"id": volume["id"], "volumeId": volume["id"], "serverId": server["id"],
                                         "device": device}}
        if method == "DELETE" and len(rest) == 1:
            volume = self._get(self.volumes, rest[0])
            if not any(a["server_id"] == server["id"] for a in volume["attachments"]):
                raise _Http(404, f"volume_id {rest[0]} not found")
            volume["attachments"] = []
            volume.update(status="detaching", _then="available", _polls=0)
            return {}
        if method == "GET" and not rest:
            return {"volumeAttachments": [{"volumeId": v["id"], "serverId": server["id"], "device": a["device"]}
                                          for v in self.volumes.values() for a in v["attachments"]
                                          if a["server_id"] == server["id"]]}
        raise _Http(404, "no route os-volume_attachments")

    def _release_volumes(self, server_id):
        """A deleted server's data volumes are detached; its boot volume is deleted with it."""
        for volume in list(self.volumes.values()):
            if volume.get("_delete_with") == server_id:
                del self.volumes[volume["id"]]
            elif any(a["server_id"] == server_id for a in volume["attachments"]):
                volume["attachments"] = []
                volume["status"] = "available"

    # ----------------------------------------------------------------- test helpers (block storage)
    def volumes_of(self, project_id: str) -> list[dict]:
        return [self._public(v) for v in self.volumes.values() if v["os-vol-tenant-attr:tenant_id"] == project_id]

    # ----------------------------------------------------------------- glance
    def _image(self, method, parts, params, body, scoped):
        name = params.get("name") or ""
        names = {n.strip('"') for n in name[3:].split(",")} if name.startswith("in:") else {name}
        return {"images": [i for i in self.images.values() if i["name"] in names]}

    # ----------------------------------------------------------------- neutron
    def _network(self, method, parts, params, body, scoped):
        if parts[0] == "quotas" and len(parts) == 1:  # the bulk listing: projects with quotas set
            return {"quotas": [{"project_id": pid, **quota} for pid, quota in self.network_quotas.items()]}
        if parts[0] == "quotas":
            pid = parts[1]
            if method == "GET":
                return {"quota": dict(self.network_quotas.get(pid, {}))}
            if method == "PUT":
                self.network_quotas.setdefault(pid, {}).update(body["quota"])
                return {"quota": self.network_quotas[pid]}
            return {}
        collection = parts[0]
        if collection == "extensions":
            aliases = ["standard-attr-tag", "tag-creation"] + (["tag-ports-during-bulk-creation"] if self.tag_creation else [])
            return {"extensions": [{"alias": a} for a in aliases]}
        if collection not in NEUTRON:
            raise _Http(404, f"no route network {method} {'/'.join(parts)}")
        items = self.neutron[collection]
        if len(parts) == 1 and method == "GET":
            return {collection.replace("-", "_"): [self._render(collection, x) for x in items.values() if _match(x, params)]}
        if len(parts) == 1 and method == "POST":
            if (collection != "ports" or not self.tag_creation) and "tags" in body[NEUTRON[collection]]:
                raise _Http(400, "Attribute 'tags' not allowed in POST")
            return {NEUTRON[collection]: self._render(collection, self._neutron_create(collection, body[NEUTRON[collection]]))}
        item = self._get(items, parts[1])
        if len(parts) == 3 and parts[2] == "tags" and method == "PUT":
            item["tags"] = list(body["tags"])
            return {"tags": item["tags"]}
        if len(parts) == 3 and collection == "routers":
            return self._router_interface(item, parts[2], body)
        if method == "GET":
            return {NEUTRON[collection]: self._render(collection, item)}
        if method == "PUT":
            item.update(body[NEUTRON[collection]])
            return {NEUTRON[collection]: self._render(collection, item)}
        if method == "DELETE":
            self._neutron_delete(collection, item)
            return {}
        raise _Http(404, "no route")

    def _render(self, collection, item):
        if collection != "security-groups":
            return item
        rules = [r for r in self.neutron["security-group-rules"].values() if r["security_group_id"] == item["id"]]
        return dict(item, security_group_rules=rules)

    def _ensure_default_group(self, pid):
        if not any(g["name"] == "default" and g["project_id"] == pid for g in self.neutron["security-groups"].values()):
            self._neutron_create("security-groups", {"name": "default", "project_id": pid, "description": "Default"}, default=False)

    def _neutron_create(self, collection, body, default=True):
        item = dict(body, id=_id())
        item.setdefault("tags", [])
        pid = item.get("project_id")
        if collection == "security-group-rules":
            key = lambda r: (r["security_group_id"], r["direction"], r.get("ethertype", "IPv4"), r.get("protocol"),
                             r.get("port_range_min"), r.get("port_range_max"), r.get("remote_ip_prefix"), r.get("remote_group_id"))
            for rule in self.neutron[collection].values():
                if key(rule) == key(item):
                    raise _Http(409, f"Security group rule already exists. Rule id is {rule['id']}.")
            item.setdefault("ethertype", "IPv4")
            for k in ("protocol", "port_range_min", "port_range_max", "remote_ip_prefix", "remote_group_id"):
                item.setdefault(k, None)
            item["project_id"] = self.neutron["security-groups"][item["security_group_id"]]["project_id"]
        if pid and default and collection in ("ports", "security-groups"):
            self._ensure_default_group(pid)
        if collection == "subnets":
            item.setdefault("enable_dhcp", True)
            item.setdefault("dns_nameservers", [])
        if collection == "ports":
            mac = item.setdefault("mac_address", "fa:16:3e:" + ":".join(item["id"][i:i + 2] for i in (0, 2, 4)))
            if any(p.get("mac_address") == mac and p.get("network_id") == item.get("network_id")
                   for p in self.neutron["ports"].values()):  # like Neutron: unique per network
                raise _Http(409, f"Unable to complete operation for network {item.get('network_id')}. "
                                 f"The mac address {mac} is in use.")
            subnet_ids = [f["subnet_id"] for f in item.get("fixed_ips") or []]
            item["fixed_ips"] = [{"subnet_id": s, "ip_address": f"10.0.0.{len(self.neutron['ports']) + 2}"} for s in subnet_ids]
            item.setdefault("device_id", "")
            item.setdefault("device_owner", "")
            item.setdefault("security_groups", [])
            item["status"] = "DOWN"
        if collection == "floatingips":
            item["floating_ip_address"] = f"172.24.4.{len(self.neutron['floatingips']) + 10}"
            if item.get("port_id"):
                self._get(self.neutron["ports"], item["port_id"])
        self.neutron[collection][item["id"]] = item
        if collection == "security-groups":
            for ethertype in ("IPv4", "IPv6"):
                self._neutron_create("security-group-rules", {"security_group_id": item["id"], "direction": "egress",
                                                              "ethertype": ethertype})
        return item

    def _router_interface(self, router, action, body):
        subnet = self._get(self.neutron["subnets"], body["subnet_id"])
        ports = self.neutron["ports"]
        existing = [p for p in ports.values() if p.get("device_id") == router["id"]
                    and any(f["subnet_id"] == subnet["id"] for f in p["fixed_ips"])]
        if action == "add_router_interface":
            if existing:
                raise _Http(400, f"Router already has a port on subnet {subnet['id']}")
            port = self._neutron_create("ports", {"network_id": subnet["network_id"], "project_id": router["project_id"],
                                                  "fixed_ips": [{"subnet_id": subnet["id"]}]}, default=False)
            port.update(device_id=router["id"], device_owner="network:router_interface", status="ACTIVE")
            return {"port_id": port["id"], "subnet_id": subnet["id"]}
        if not existing:
            raise _Http(404, "Router has no interface on that subnet")
        for fip in self.neutron["floatingips"].values():
            port = ports.get(fip.get("port_id") or "")
            if port and any(f["subnet_id"] == subnet["id"] for f in port["fixed_ips"]):
                raise _Http(409, f"Router interface for subnet {subnet['id']} is required by floating IP {fip['id']}")
        for p in existing:
            del ports[p["id"]]
        return {}

    def _neutron_delete(self, collection, item):
        ports = self.neutron["ports"].values()
        blockers = {
            "networks": [p for p in ports if p["network_id"] == item["id"] and p["device_owner"] != "network:dhcp"],
            "subnets": [p for p in ports if any(f["subnet_id"] == item["id"] for f in p["fixed_ips"])],
            "routers": [p for p in ports if p.get("device_id") == item["id"]],
            "security-groups": [p for p in ports if item["id"] in p.get("security_groups", [])],
            "ports": [],
        }.get(collection, [])
        if collection == "networks":
            blockers += [s for s in self.neutron["subnets"].values() if s["network_id"] == item["id"]]
        if blockers:
            raise _Http(409, f"{NEUTRON[collection]} {item['id']} is in use by {blockers[0]['id']}")
        if collection == "ports" and item.get("device_owner", "").startswith("network:router"):
            raise _Http(409, "Port is owned by a router")
        del self.neutron[collection][item["id"]]
        if collection == "security-groups":
            for rule in [r for r in self.neutron["security-group-rules"].values() if r["security_group_id"] == item["id"]]:
                del self.neutron["security-group-rules"][rule["id"]]
        if collection == "ports":
            for fip in self.neutron["floatingips"].values():
                if fip.get("port_id") == item["id"]:
                    fip["port_id"] = None

    @staticmethod
    def _get(table, key):
        if key not in table:
            raise _Http(404, f"{key} not found")
        return table[key]

    def _domain_ref(self, domain_id):
        return {"id": domain_id, "name": self.domains[domain_id]["name"]}

    # ----------------------------------------------------------------- test helpers
    def add_domain(self, name: str) -> str:
        domain = {"id": _id(), "name": name}
        self.domains[domain["id"]] = domain
        return domain["id"]

    def domain_id(self, name: str) -> str:
        return next(d["id"] for d in self.domains.values() if d["name"] == name)

    def add_user(self, name: str, domain: str) -> str:
        """A person of `domain` (by name), as an identity provider would have made them."""
        user = {"id": _id(), "name": name, "domain_id": self.domain_id(domain)}
        self.users[user["id"]] = user
        return user["id"]

    def add_project(self, name: str, domain: str, tags: list[str]) -> str:
        """A project made outside gcloudctl (by hand, by an older version, by another agency)."""
        return self._identity("POST", ["projects"], {}, {"project": {"name": name, "domain_id": self.domain_id(domain),
                                                                     "tags": list(tags), "enabled": True}}, None)["project"]["id"]

    def move_project(self, project_id: str, domain: str) -> None:
        """What Keystone's API refuses but a database edit can do: the project changes domain."""
        self.projects[project_id]["domain_id"] = self.domain_id(domain)

    def total_writes(self) -> int:
        return sum(self.writes.values())

    def count(self, collection: str, project_id: str | None = None) -> int:
        items = self.neutron[collection].values()
        return sum(1 for x in items if project_id is None or x.get("project_id") == project_id)


_VOLUME_QUOTA = {"volumes": 10, "gigabytes": 1000, "snapshots": 10}


def _match(item: dict, params: dict) -> bool:
    for key, value in params.items():
        if key == "tags":
            if value not in (item.get("tags") or []):
                return False
        elif key == "router:external":
            if bool(item.get("router:external")) != (str(value).lower() == "true"):
                return False
        elif key == "fixed_ips":
            subnet = value.split("=", 1)[1]
            if not any(f["subnet_id"] == subnet for f in item.get("fixed_ips") or []):
                return False
        elif key == "security_groups":
            if value not in (item.get("security_groups") or []):
                return False
        elif item.get(key) != value:
            return False
    return True


class _Http(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class FakeCloud(OpenStackDriver):
    """The real driver over the in-memory API."""

    def __init__(self, api: FakeApi | None = None, **kwargs: Any):
        kwargs.setdefault("poll_interval", 0.0)
        kwargs.setdefault("create_missing_users", True)
        super().__init__(api or FakeApi(), **kwargs)
