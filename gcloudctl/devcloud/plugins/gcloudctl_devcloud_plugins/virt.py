"""Nova virt driver for devcloud's guests mode: every server is a namespace test host.

Stage: loaded by nova-compute (`compute_driver = gcloudctl_guests.GuestDriver`; Nova imports
drivers only from `nova.virt`, so `gcloudctl.devcloud.guests` writes a one-line shim
`nova/virt/gcloudctl_guests.py` into the services venv that re-exports this class). It subclasses the fake driver that
devcloud runs by default (stable node identity, fake resource accounting) and adds a real
guest per instance through `gcloudctl.devcloud.guests_runtime` (stdlib and stdlib-only
gcloudctl modules; the services venv sees the repository through a .pth file written by `devcloud up
--guests`). Must not import anything else from gcloudctl.

- spawn: fixed IP/cidr/gateway from network_info, NoCloud seed from user_data + metadata
  (instance uuid, hostname, the keypair's public key), copy-on-write root, systemd as PID 1.
  Any failure aborts the build (server ERROR, the reason as its fault), never a hang.
- destroy / power_off / power_on / reboot: delete / stop keeping the disk / start / both.
- get_info: a guest whose processes are gone reports SHUTDOWN (so a guest killed from outside
  shows up in the compute API's power state).
- get_console_output: the guest's console log (cloud-init's fingerprint block included).
- a background loop keeps floating IPs (from Neutron) wired to their guests.
"""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

from oslo_log import log as logging

import nova.conf
from nova import context as nova_context
from nova import exception
from nova.compute import power_state
from nova.virt import fake

from gcloudctl.devcloud import guests_runtime as rt

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)
FIP_SYNC_INTERVAL = 2.0


def _decode_user_data(instance) -> str:
    raw = instance.user_data
    if not raw:
        return ""
    try:
        return base64.b64decode(raw).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return raw


def _first_fixed(network_info) -> tuple[str, str, str, str]:
    """(network id, ip, cidr, gateway) of the first IPv4 fixed address."""
    for vif in network_info or []:
        network = vif.get("network") or {}
        for subnet in network.get("subnets") or []:
            if subnet.get("version") not in (None, 4):
                continue
            for ip in subnet.get("ips") or []:
                gateway = (subnet.get("gateway") or {}).get("address")
                if ip.get("address") and subnet.get("cidr") and gateway:
                    return network["id"], ip["address"], subnet["cidr"], gateway
    raise rt.GuestError("the server has no IPv4 fixed address with a subnet gateway (devcloud guests need one)")


class GuestDriver(fake.FakeDriverWithoutFakeNodes):
    """FakeDriverWithoutFakeNodes plus one running namespace guest per instance."""

    def init_host(self, host):
        super().init_host(host)
        self._runtime = rt.Runtime(Path(CONF.state_path) / "guests")
        for uuid in self._runtime.uuids():  # re-adopt guests across nova-compute restarts
            state = power_state.RUNNING if self._runtime.running(uuid) else power_state.SHUTDOWN
            self.instances[uuid] = fake.FakeInstance(rt.guest_name(uuid), state, uuid)
        self._fip_stop = threading.Event()
        threading.Thread(target=self._fip_loop, name="guest-fips", daemon=True).start()

    def cleanup_host(self, host):
        self._fip_stop.set()
        super().cleanup_host(host)

    # -- lifecycle --------------------------------------------------------------------------
    def spawn(self, context, instance, image_meta, injected_files, admin_password, allocations,
              network_info=None, block_device_info=None, power_on=True, accel_info=None):
        try:
            spec = self._spec(instance, image_meta, network_info)
        except rt.GuestError as exc:
            raise exception.BuildAbortException(instance_uuid=instance.uuid, reason=str(exc))
        super().spawn(context, instance, image_meta, injected_files, admin_password, allocations,
                      network_info=network_info, block_device_info=block_device_info, power_on=power_on,
                      accel_info=accel_info)
        started = time.monotonic()
        try:
            self._runtime.create(spec)
            if not power_on:
                self._runtime.stop(instance.uuid)
        except Exception as exc:  # any failure: no half guest, server goes to ERROR with the reason
            LOG.exception("devcloud guest for %s failed to start", instance.uuid)
            self._discard(instance)
            super().destroy(context, instance, network_info)
            raise exception.BuildAbortException(instance_uuid=instance.uuid,
                                                reason=f"devcloud guest failed to start: {exc}")
        LOG.info("devcloud guest %s (%s, %s) started in %.1fs", spec.name, spec.hostname, spec.ip,
                 time.monotonic() - started)

    def destroy(self, context, instance, network_info, block_device_info=None, destroy_disks=True,
                destroy_secrets=True):
        self._runtime.delete(instance.uuid)
        super().destroy(context, instance, network_info, block_device_info=block_device_info,
                        destroy_disks=destroy_disks, destroy_secrets=destroy_secrets)

    def power_off(self, instance, timeout=0, retry_interval=0):
        super().power_off(instance, timeout, retry_interval)
        self._runtime.stop(instance.uuid)

    def power_on(self, context, instance, network_info, block_device_info=None, accel_info=None,
                 share_info=None):
        if instance.uuid not in self.instances and self._runtime.spec(instance.uuid):
            self.instances[instance.uuid] = fake.FakeInstance(instance.name, power_state.SHUTDOWN, instance.uuid)
        super().power_on(context, instance, network_info, block_device_info=block_device_info,
                         accel_info=accel_info, share_info=share_info)
        self._runtime.start(instance.uuid)

    def reboot(self, context, instance, network_info, reboot_type, block_device_info=None,
               bad_volumes_callback=None, accel_info=None, share_info=None):
        if self._runtime.spec(instance.uuid) is None:  # never had a guest: build it like a hard reboot would
            super().reboot(context, instance, network_info, reboot_type, block_device_info=block_device_info,
                           bad_volumes_callback=bad_volumes_callback, accel_info=accel_info, share_info=share_info)
            return
        self._runtime.stop(instance.uuid)
        self.power_on(context, instance, network_info, block_device_info=block_device_info,
                      accel_info=accel_info, share_info=share_info)

    def get_info(self, instance, use_cache=True):
        info = super().get_info(instance, use_cache)
        if info.state == power_state.RUNNING and not self._runtime.running(instance.uuid):
            self.instances[instance.uuid].state = power_state.SHUTDOWN
            return super().get_info(instance, use_cache)
        return info

    def get_console_output(self, context, instance):
        if instance.uuid not in self.instances:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        # bytes, as libvirt returns them: the compute manager encodes a str as latin-1, which
        # fails on cloud-init's UTF-8 output, and decodes bytes itself ('replace').
        return self._runtime.console(instance.uuid).encode("utf-8")

    # -- helpers ----------------------------------------------------------------------------
    def _spec(self, instance, image_meta, network_info) -> rt.GuestSpec:
        network_id, ip, cidr, gateway = _first_fixed(network_info)
        image_name = getattr(image_meta, "name", None) or ""
        meta = {"uuid": instance.uuid, "hostname": instance.hostname or instance.display_name}
        if instance.key_data:
            meta["public-keys"] = [instance.key_data]
        return rt.GuestSpec(uuid=instance.uuid, hostname=instance.hostname or rt.guest_name(instance.uuid)[:63],
                            image_name=image_name, network_id=network_id, ip=ip, cidr=cidr, gateway=gateway,
                            user_data=_decode_user_data(instance), meta_data=meta)

    def _discard(self, instance) -> None:
        try:
            self._runtime.delete(instance.uuid)
        except Exception:  # noqa: BLE001 - best effort after a failed start; the fault says why
            LOG.exception("cleaning up the failed guest %s", instance.uuid)

    def _fip_loop(self) -> None:
        while not self._fip_stop.wait(FIP_SYNC_INTERVAL):
            try:
                self._sync_fips()
            except Exception:  # noqa: BLE001 - keep the loop alive; next round retries
                LOG.exception("devcloud guests: floating IP sync failed")

    def _sync_fips(self) -> None:
        uuids = [u for u in self._runtime.uuids() if self._runtime.running(u)]
        if not uuids:
            self._runtime.sync_floating_ips({})
            return
        from nova.network import neutron as neutron_api

        client = neutron_api.get_client(nova_context.get_admin_context(), admin=True)
        wanted = {}
        fips = [f for f in client.list_floatingips().get("floatingips", [])
                if f.get("port_id") and f.get("fixed_ip_address")]
        ports = {}
        if fips:  # only the ports that carry a floating IP, and only those bound to a server here
            ports = {p["id"]: p for p in client.list_ports(id=sorted({f["port_id"] for f in fips})).get("ports", [])
                     if (p.get("device_owner") or "").startswith("compute:")}
        for fip in fips:
            port = ports.get(fip["port_id"])
            if port and port.get("device_id") in uuids:
                wanted[fip["floating_ip_address"]] = (port["device_id"], fip["fixed_ip_address"])
        self._runtime.sync_floating_ips(wanted)
