"""Stage: outputs. What a CI job reads back from a tenant (like `terraform output`): every managed
resource's id, each server's fixed and floating addresses, and each volume with its attachment
(server, device), in one stable shape.

Callers: `gcloudctl outputs TENANT` (`gcloudctl.cli.outputs`); the apply use case can hand it
the observation it makes after applying, so that `apply -o json` and `outputs` agree. Pure: it
reads an `ObservedState` and returns a `TenantOutputs` value; it must not call a driver, read
files or the clock. The JSON Schema (`gcloudctl schema outputs`) is `TenantOutputs`'s.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gcloudctl import naming
from gcloudctl.resources import Address, Kind, ObservedState, Ref

OUTPUTS_FORMAT = "gcloudctl.outputs/v1"


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResourceOutput(_Out):
    kind: str = Field(description="Resource kind (project, network, subnet, server, floating_ip, ...).")
    name: str = Field(description="Logical name within the tenant (the part of the address after the kind).")
    id: str | None = Field(description="The cloud's id (null: not created yet).")
    status: str | None = Field(None, description="Status as the cloud reports it, where it has one.")


class FixedAddress(_Out):
    network: str | None = Field(description="The tenant network of the port (logical name).")
    address: str
    port_id: str | None = None


class ServerOutput(_Out):
    id: str | None
    status: str | None
    role: str = Field(description="The `servers[]` entry this server comes from.")
    zone: str | None = None
    flavor: str | None = None
    image: str | None = None
    fixed_ip: str | None = Field(description="The first fixed address (ports in request order).")
    fixed_ips: list[FixedAddress] = Field(description="Every fixed address, per port.")
    floating_ip: str | None = Field(description="The floating (public) address, if the server has one.")


class NetworkOutput(_Out):
    id: str | None
    subnet_id: str | None = None
    cidr: str | None = None


class VolumeOutput(_Out):
    id: str | None
    name: str | None = Field(description="The volume's name in the cloud (<server>-<volume>).")
    size_gib: int | None = None
    type: str | None = None
    status: str | None = Field(None, description="ACTIVE (usable), BUILD (busy), ERROR or DELETING.")
    server: str | None = Field(None, description="The server it is attached to (null: not attached).")
    server_id: str | None = None
    device: str | None = Field(None, description="The device the server sees, e.g. /dev/vdb.")
    mount_point: str | None = Field(None, description="Where the request says the guest mounts it.")


class TenantOutputs(_Out):
    """`gcloudctl outputs TENANT -o json`: keys are sorted, absent facts are null, never missing."""

    format: str = Field(OUTPUTS_FORMAT, description="Shape version; a change of shape changes it.")
    tenant: str
    agency: str | None = None
    domain: str | None = None
    region: str | None = None
    project_id: str | None
    expires_at: str | None = Field(None, description="When the tenant expires (UTC, ISO 8601), from its project tag.")
    resources: dict[str, ResourceOutput] = Field(description="Every managed resource, by address (kind.name).")
    servers: dict[str, ServerOutput] = Field(description="Servers by name (web-1, web-2, ...).")
    networks: dict[str, NetworkOutput] = Field(description="Tenant networks by logical name.")
    volumes: dict[str, VolumeOutput] = Field(default_factory=dict,
                                             description="Data volumes by logical name (<server>.<volume>).")


def _ref_name(value) -> str | None:
    return value.address.name if isinstance(value, Ref) else None


def _server_addresses(server, observed: ObservedState) -> tuple[list[FixedAddress], str | None]:
    """Fixed addresses from the server's ports (as the ports report them), else from the server's
    own address list; the floating address from the floating IP bound to one of its ports."""
    fixed: list[FixedAddress] = []
    port_refs = [p for p in server.attrs.get("ports") or [] if isinstance(p, Ref)]
    for ref in port_refs:
        port = observed.resources.get(ref.address)
        if port is None:
            continue
        for ip in port.extra.get("fixed_ips") or []:
            if ip:
                fixed.append(FixedAddress(network=_ref_name(port.attrs.get("network")), address=ip, port_id=port.id))
    if not fixed:
        for network, addrs in sorted((server.extra.get("addresses") or {}).items()):
            for entry in addrs or []:
                if entry.get("addr") and entry.get("OS-EXT-IPS:type", "fixed") == "fixed":
                    fixed.append(FixedAddress(network=network, address=entry["addr"]))
    floating = None
    ports = {ref.address for ref in port_refs}
    for res in sorted(observed.resources.values(), key=lambda r: r.address.sort_key):
        if res.address.kind is Kind.FLOATING_IP and isinstance(res.attrs.get("port"), Ref) \
                and res.attrs["port"].address in ports and res.extra.get("floating_ip_address"):
            floating = res.extra["floating_ip_address"]
            break
    return fixed, floating


def volume_outputs(observed: ObservedState) -> dict[str, VolumeOutput]:
    """Each managed volume with the server it is attached to (by its attachment) and the device."""
    out = {}
    for res in sorted(observed.resources.values(), key=lambda r: r.address.sort_key):
        if res.address.kind is not Kind.VOLUME:
            continue
        attachment = observed.resources.get(Address(Kind.VOLUME_ATTACHMENT, res.address.name))
        server = observed.resources.get(attachment.attrs["server"].address) \
            if attachment is not None and isinstance(attachment.attrs.get("server"), Ref) else None
        out[res.address.name] = VolumeOutput(
            id=res.id, name=res.attrs.get("name"), size_gib=res.attrs.get("size"), type=res.attrs.get("type"),
            status=res.status, server=server.attrs.get("name") if server else None,
            server_id=attachment.extra.get("server_id") if attachment else None,
            device=attachment.extra.get("device") if attachment else None,
            mount_point=(res.attrs.get("metadata") or {}).get(naming.META_MOUNT))
    return out


def tenant_outputs(observed: ObservedState, *, agency: str | None = None, domain: str | None = None,
                   region: str | None = None) -> TenantOutputs:
    """The outputs of one observed tenant. Only managed resources (those gcloudctl created or
    adopted) are listed; out-of-band ones are `describe`'s business."""
    resources = sorted(observed.resources.values(), key=lambda r: r.address.sort_key)
    project = observed.resources.get(Address(Kind.PROJECT, observed.tenant))
    expires = naming.expiry_from_tags(project.attrs.get("tags")) if project is not None else None
    servers: dict[str, ServerOutput] = {}
    networks: dict[str, NetworkOutput] = {}
    for res in resources:
        if res.address.kind is Kind.SERVER:
            meta = res.attrs.get("metadata") or {}
            fixed, floating = _server_addresses(res, observed)
            servers[res.attrs.get("name", res.address.name)] = ServerOutput(
                id=res.id, status=res.status, role=meta.get(naming.META_ROLE, res.address.name),
                zone=meta.get(naming.META_ZONE), flavor=res.attrs.get("flavor"), image=res.attrs.get("image"),
                fixed_ip=fixed[0].address if fixed else None, fixed_ips=fixed, floating_ip=floating)
        elif res.address.kind is Kind.NETWORK:
            subnet = observed.resources.get(Address(Kind.SUBNET, res.address.name))
            networks[res.address.name] = NetworkOutput(id=res.id, subnet_id=subnet.id if subnet else None,
                                                       cidr=subnet.attrs.get("cidr") if subnet else None)
    return TenantOutputs(
        tenant=observed.tenant, agency=agency, domain=domain, region=region, project_id=observed.project_id,
        expires_at=expires.isoformat().replace("+00:00", "Z") if expires else None,
        resources={str(r.address): ResourceOutput(kind=r.address.kind.value, name=r.address.name, id=r.id,
                                                  status=r.status) for r in resources if r.managed},
        servers=dict(sorted(servers.items())), networks=dict(sorted(networks.items())),
        volumes=volume_outputs(observed))
