"""Renders every service's configuration files from the layout and the secrets.

Stage: pure (called by lifecycle before any start). Input: `Layout`, `Secrets`, the Rabbit and
database endpoints; output: {relative path under etc/: file text}. Must not write files, read
the environment or look at what is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from gcloudctl.devcloud import services as svc
from gcloudctl.devcloud.layout import (CINDER_BACKEND, COMPUTE_HOST, DB_USER, HOST, RABBIT_VHOST, REGION, Layout,
                                       db_name)

Ini = Mapping[str, Mapping[str, object]]

# Per-project defaults, high enough for the tests (40+ servers) while admins can still lower
# them per project through the quota APIs.
# Nova loads virt drivers only from its own `nova.virt` namespace. Issue 6 ("guests") swaps this
# for a subclass of the fake driver; keep the stable node identity of FakeDriverWithoutFakeNodes.
COMPUTE_DRIVER = "fake.FakeDriverWithoutFakeNodes"

NOVA_QUOTAS = {"instances": 500, "cores": 2000, "ram": 4096000, "key_pairs": 500,
               "server_groups": 100, "server_group_members": 500}
# Cinder's per-project defaults: agency tenants create volumes without an admin raising quotas first.
CINDER_QUOTAS = {"quota_volumes": 500, "quota_snapshots": 500, "quota_gigabytes": 20000,
                 "quota_backups": 500, "quota_backup_gigabytes": 20000}
CINDER_VOLUME_DRIVER = "gcloudctl_devcloud_plugins.cinder_file.FileVolumeDriver"
CINDER_BACKUP_DRIVER = "cinder.backup.drivers.posix.PosixBackupDriver"
CINDER_KEY_MANAGER = "cinder.keymgr.conf_key_mgr.ConfKeyManager"
NEUTRON_QUOTAS = {"quota_network": 500, "quota_subnet": 1000, "quota_port": 5000, "quota_router": 200,
                  "quota_floatingip": 500, "quota_security_group": 500,
                  "quota_security_group_rule": 10000}


@dataclass(frozen=True)
class Secrets:
    admin_password: str
    service_password: str
    gcloudctl_password: str
    db_password: str
    rabbit_user: str = "guest"
    rabbit_password: str = "guest"
    people_password: str = ""  # devcloud's agency people and operator (catalog.PEOPLE); made on first use
    volume_key: str = ""  # 256-bit hex key of Cinder's fixed-key manager (encrypted volumes); made on first use

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Backends:
    db_host: str = HOST
    db_port: int = 3306
    rabbit_host: str = HOST
    rabbit_port: int = 5672


# The shared MariaDB allows 151 connections; keep devcloud's share bounded (~45 idle today).
DB_POOL = {"max_pool_size": 5, "max_overflow": 10}


def render_ini(sections: Ini) -> str:
    out: list[str] = []
    for section, options in sections.items():
        out.append(f"[{section}]")
        for key, value in options.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            out.append(f"{key} = {value}")
        out.append("")
    return "\n".join(out)


def _db_url(secrets: Secrets, backends: Backends, short: str) -> str:
    return (f"mysql+pymysql://{DB_USER}:{secrets.db_password}@{backends.db_host}:{backends.db_port}/"
            f"{db_name(short)}?charset=utf8mb4")


def _transport(secrets: Secrets, backends: Backends) -> str:
    return (f"rabbit://{secrets.rabbit_user}:{secrets.rabbit_password}@{backends.rabbit_host}:"
            f"{backends.rabbit_port}/{RABBIT_VHOST}")


def _keystone_url() -> str:
    return svc.BY_NAME["keystone"].url


def _service_auth(secrets: Secrets, username: str) -> dict[str, object]:
    """Credentials of a service user, for keystone_authtoken and service-to-service sections."""
    return {"auth_url": _keystone_url(), "auth_type": "password", "user_domain_name": "Default",
            "project_domain_name": "Default", "project_name": "service", "username": username,
            "password": secrets.service_password, "region_name": REGION}


def _authtoken(secrets: Secrets, username: str) -> dict[str, object]:
    return {"www_authenticate_uri": _keystone_url(), **_service_auth(secrets, username),
            "service_token_roles_required": True, "token_cache_time": 300}


def _common(layout: Layout, project: str) -> dict[str, dict[str, object]]:
    return {"oslo_concurrency": {"lock_path": str(layout.data / project / "lock")},
            "oslo_messaging_notifications": {"driver": "noop"},
            "oslo_policy": {"enforce_new_defaults": True, "enforce_scope": False}}


def keystone_conf(layout: Layout, secrets: Secrets, backends: Backends) -> str:
    conf = layout.config_dir("keystone")
    return render_ini({
        "DEFAULT": {"debug": False, "use_stderr": True, "max_token_size": 255},
        "database": {"connection": _db_url(secrets, backends, "keystone"), **DB_POOL},
        "token": {"provider": "fernet", "expiration": 43200},
        "fernet_tokens": {"key_repository": str(conf / "fernet-keys")},
        "fernet_receipts": {"key_repository": str(conf / "fernet-keys")},
        "credential": {"key_repository": str(conf / "credential-keys")},
        "cache": {"enabled": True, "backend": "oslo_cache.dict", "expiration_time": 600},
        "identity": {"password_hash_algorithm": "bcrypt", "password_hash_rounds": 4},
        "oslo_policy": {"enforce_new_defaults": True, "enforce_scope": False},
    })


def placement_conf(layout: Layout, secrets: Secrets, backends: Backends) -> str:
    return render_ini({
        "DEFAULT": {"debug": False, "use_stderr": True},
        "api": {"auth_strategy": "keystone"},
        "placement_database": {"connection": _db_url(secrets, backends, "placement"), **DB_POOL},
        "keystone_authtoken": _authtoken(secrets, "placement"),
        "oslo_policy": {"enforce_new_defaults": True, "enforce_scope": False},
    })


def glance_conf(layout: Layout, secrets: Secrets, backends: Backends) -> str:
    data = layout.data / "glance"
    return render_ini({
        "DEFAULT": {"debug": False, "use_stderr": True, "enabled_backends": "file:file",
                    "image_size_cap": 10737418240, "workers": 1},
        "glance_store": {"default_backend": "file"},
        "file": {"filesystem_store_datadir": str(data / "images")},
        "os_glance_staging_store": {"filesystem_store_datadir": str(data / "staging")},
        "os_glance_tasks_store": {"filesystem_store_datadir": str(data / "tasks")},
        "database": {"connection": _db_url(secrets, backends, "glance"), **DB_POOL},
        "keystone_authtoken": _authtoken(secrets, "glance"),
        "paste_deploy": {"flavor": "keystone",
                         "config_file": str(layout.venv / "etc" / "glance" / "glance-api-paste.ini")},
        **_common(layout, "glance"),
    })


def _nova_base(layout: Layout, secrets: Secrets, backends: Backends) -> dict[str, dict[str, object]]:
    return {
        "DEFAULT": {"debug": False, "use_stderr": True, "host": COMPUTE_HOST, "my_ip": HOST,
                    "state_path": str(layout.data / "nova"), "transport_url": _transport(secrets, backends),
                    "report_interval": 5, "service_down_time": 60, "graceful_shutdown_timeout": 5,
                    "compute_driver": COMPUTE_DRIVER,
                    "instance_build_timeout": 300, "allow_resize_to_same_host": True},
        "api": {"auth_strategy": "keystone"},
        "keystone_authtoken": _authtoken(secrets, "nova"),
        "placement": _service_auth(secrets, "placement"),
        "neutron": {**_service_auth(secrets, "neutron"), "default_floating_pool": "public"},
        "glance": {"region_name": REGION},
        # volumes: Cinder's `volumev3` catalog entry; the service user for admin-context calls
        "cinder": {**_service_auth(secrets, "nova"), "os_region_name": REGION,
                   "catalog_info": "volumev3::publicURL"},
        "service_user": {**_service_auth(secrets, "nova"), "send_service_user_token": True},
        "conductor": {"workers": 1},
        "scheduler": {"workers": 1, "discover_hosts_in_cells_interval": 2, "max_attempts": 3},
        "filter_scheduler": {
            "enabled_filters": "ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,"
                               "ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter",
            "weight_classes": "nova.scheduler.weights.all_weighers",
            "soft_anti_affinity_weight_multiplier": 1.0,
            "soft_affinity_weight_multiplier": 1.0,
            "host_subset_size": 1,
        },
        "quota": dict(NOVA_QUOTAS),
        "oslo_messaging_rabbit": {"heartbeat_timeout_threshold": 60},
        **_common(layout, "nova"),
    }


def nova_conf(layout: Layout, secrets: Secrets, backends: Backends) -> str:
    base = _nova_base(layout, secrets, backends)
    base["api_database"] = {"connection": _db_url(secrets, backends, "nova_api"), **DB_POOL}
    base["database"] = {"connection": _db_url(secrets, backends, "nova"), **DB_POOL}
    return render_ini(base)


def nova_compute_conf(layout: Layout, secrets: Secrets, backends: Backends) -> str:
    """nova-compute reaches the database only through the conductor: no [database] here."""
    base = _nova_base(layout, secrets, backends)
    base["compute"] = {"resource_provider_association_refresh": 300}
    return render_ini(base)


def neutron_conf(layout: Layout, secrets: Secrets, backends: Backends) -> str:
    return render_ini({
        "DEFAULT": {"debug": False, "use_stderr": True, "core_plugin": "ml2", "service_plugins": "router,tag",
                    "auth_strategy": "keystone", "transport_url": _transport(secrets, backends),
                    "allow_overlapping_ips": True, "notify_nova_on_port_status_changes": True,
                    "notify_nova_on_port_data_changes": True, "state_path": str(layout.data / "neutron"),
                    "api_workers": 1, "rpc_workers": 0, "rpc_state_report_workers": 0,
                    "api_paste_config": str(layout.venv / "etc" / "neutron" / "api-paste.ini"),
                    "host": COMPUTE_HOST, "dhcp_agent_notification": False},
        "database": {"connection": _db_url(secrets, backends, "neutron"), **DB_POOL},
        "keystone_authtoken": _authtoken(secrets, "neutron"),
        "nova": _service_auth(secrets, "nova"),
        "placement": _service_auth(secrets, "placement"),
        "quotas": dict(NEUTRON_QUOTAS),
        **_common(layout, "neutron"),
    })


def cinder_conf(layout: Layout, secrets: Secrets, backends: Backends) -> str:
    """API, scheduler, volume (sparse-file backend) and backup (POSIX directory) in one file."""
    data = layout.data / "cinder"
    return render_ini({
        "DEFAULT": {"debug": False, "use_stderr": True, "host": COMPUTE_HOST, "my_ip": HOST,
                    "transport_url": _transport(secrets, backends), "auth_strategy": "keystone",
                    "state_path": str(data), "report_interval": 5, "service_down_time": 60,
                    "periodic_interval": 30, "graceful_shutdown_timeout": 5,
                    "api_paste_config": str(layout.venv / "etc" / "cinder" / "api-paste.ini"),
                    # which list filters (name, status, …) users may pass: without the file, none
                    "resource_query_filters_file": str(layout.venv / "etc" / "cinder" / "resource_filters.json"),
                    "osapi_volume_workers": 1, "enabled_backends": CINDER_BACKEND,
                    "default_volume_type": "standard", "allow_availability_zone_fallback": True,
                    "backup_driver": CINDER_BACKUP_DRIVER, "backup_posix_path": str(layout.backups),
                    "backup_workers": 1, "backup_use_same_host": False,
                    **CINDER_QUOTAS},
        "database": {"connection": _db_url(secrets, backends, "cinder"), **DB_POOL},
        "keystone_authtoken": _authtoken(secrets, "cinder"),
        "nova": {**_service_auth(secrets, "cinder"), "interface": "public"},
        "key_manager": {"backend": CINDER_KEY_MANAGER, "fixed_key": secrets.volume_key},
        "coordination": {"backend_url": f"file://{data / 'coordination'}"},
        CINDER_BACKEND: {"volume_driver": CINDER_VOLUME_DRIVER, "volume_backend_name": CINDER_BACKEND,
                         "devcloud_volumes_dir": str(layout.volumes)},
        # os-brick's privileged calls (connector properties for backup attach): devcloud runs as
        # its own user with no sudo, so privsep's helper is started directly from the venv
        "privsep_osbrick": {"helper_command": f"{layout.venv_bin / 'privsep-helper'} --config-file "
                                              f"{layout.config_dir('cinder') / 'cinder.conf'}"},
        "oslo_messaging_rabbit": {"heartbeat_timeout_threshold": 60},
        **_common(layout, "cinder"),
    })


def ml2_conf() -> str:
    return render_ini({
        "ml2": {"type_drivers": "flat,vxlan", "tenant_network_types": "vxlan",
                "mechanism_drivers": "gcloudctl_devcloud", "extension_drivers": "port_security,tag_ports_during_bulk_creation"},
        "ml2_type_flat": {"flat_networks": "public"},
        "ml2_type_vxlan": {"vni_ranges": "1:65000"},
        "securitygroup": {"enable_security_group": True, "firewall_driver": "noop"},
    })


def render_all(layout: Layout, secrets: Secrets, backends: Backends) -> dict[str, str]:
    """Every config file devcloud writes, keyed by its path relative to etc/."""
    files = {
        "keystone/keystone.conf": keystone_conf(layout, secrets, backends),
        "placement/placement.conf": placement_conf(layout, secrets, backends),
        "glance/glance-api.conf": glance_conf(layout, secrets, backends),
        "nova/nova.conf": nova_conf(layout, secrets, backends),
        "nova/nova-compute.conf": nova_compute_conf(layout, secrets, backends),
        "neutron/neutron.conf": neutron_conf(layout, secrets, backends),
        "neutron/ml2_conf.ini": ml2_conf(),
        "cinder/cinder.conf": cinder_conf(layout, secrets, backends),
    }
    for service in svc.SERVICES:
        if service.kind is svc.Kind.WSGI:
            files[f"uwsgi/{service.name}.ini"] = svc.uwsgi_ini(layout, service)
    return files
