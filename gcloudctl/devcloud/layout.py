"""Where devcloud keeps everything, and the fixed facts of its topology.

Stage: pure data (called by every other devcloud module). Must not touch the filesystem,
the environment or the network: `Layout` only computes paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
REGION = "RegionOne"
COMPUTE_HOST = "devcloud"  # stable nova-compute host/node name, independent of the hostname
DB_USER = "devcloud"
RABBIT_VHOST = "devcloud"
DATABASES = ("keystone", "placement", "glance", "nova_api", "nova", "nova_cell0", "neutron", "cinder")
CINDER_BACKEND = "file"  # cinder-volume's backend section (enabled_backends); its host is devcloud@file
DEFAULT_DIR_PARTS = (".local", "share", "gcloudctl", "devcloud")


def default_dir(home: Path) -> Path:
    return home.joinpath(*DEFAULT_DIR_PARTS)


def db_name(short: str) -> str:
    """Our own database names, so a shared MariaDB never clashes with another user's."""
    return f"devcloud_{short}"


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def venv_bin(self) -> Path:
        return self.venv / "bin"

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def clouds_yaml(self) -> Path:
        return self.root / "clouds.yaml"

    @property
    def venv_stamp(self) -> Path:
        return self.venv / ".devcloud-lock-sha256"

    @property
    def db_stamp(self) -> Path:
        return self.data / ".db-initialized"

    @property
    def bootstrap_stamp(self) -> Path:
        return self.data / ".bootstrapped"

    @property
    def cinder_db_stamp(self) -> Path:
        return self.data / ".cinder-db-initialized"

    @property
    def cinder_bootstrap_stamp(self) -> Path:
        return self.data / ".cinder-bootstrapped"

    @property
    def volumes(self) -> Path:
        """cinder-volume's sparse volume files (the file backend)."""
        return self.data / "cinder" / "volumes"

    @property
    def backups(self) -> Path:
        """cinder-backup's POSIX backup repository."""
        return self.data / "cinder" / "backups"

    @property
    def site_packages(self) -> Path:
        return self.venv / "lib" / "python3.11" / "site-packages"

    def pid_file(self, service: str) -> Path:
        return self.run / f"{service}.pid"

    def log_file(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def config_dir(self, project: str) -> Path:
        return self.etc / project
