"""A Cinder volume driver that keeps each volume as a sparse file: devcloud's block storage.

Stage: loaded by cinder-volume in the services venv (`volume_driver =
gcloudctl_devcloud_plugins.cinder_file.FileVolumeDriver`). Volumes, snapshots and clones are
sparse files under `devcloud_volumes_dir`; create/delete/extend/clone/snapshot/revert are
file operations (data regions copied with SEEK_DATA/SEEK_HOLE, holes kept). Connections use
os-brick's `local` protocol with the file path, so cinder-backup (and any local attacher)
reads and writes the real bytes. Must not touch anything outside its directory, and
needs no root, block device, iSCSI or LVM.
"""

from __future__ import annotations

import errno
import os

from oslo_config import cfg
from oslo_log import log as logging

from cinder import exception
from cinder.volume import driver

LOG = logging.getLogger(__name__)
GiB = 1 << 30

file_opts = [
    cfg.StrOpt("devcloud_volumes_dir", default="$state_path/volumes",
               help="Directory holding one sparse file per volume and snapshot."),
]


def sparse_copy(source: str, target: str, size: int | None = None) -> None:
    """Copy *source* to *target* keeping holes; the target ends up *size* bytes (default: the source's)."""
    with open(source, "rb") as src, open(target + ".part", "wb") as dst:
        end = os.fstat(src.fileno()).st_size
        offset = 0
        while offset < end:
            try:
                data = os.lseek(src.fileno(), offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            hole = os.lseek(src.fileno(), data, os.SEEK_HOLE)
            src.seek(data)
            dst.seek(data)
            left = hole - data
            while left:
                chunk = src.read(min(left, 4 << 20))
                if not chunk:
                    break
                dst.write(chunk)
                left -= len(chunk)
            offset = hole
        dst.truncate(end if size is None else size)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(target + ".part", target)


class FileVolumeDriver(driver.VolumeDriver):
    """Sparse-file volumes, attached through the `local` connector (the file path)."""

    VERSION = "1.0.0"
    CI_WIKI_NAME = "devcloud"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(file_opts)
        self.backend_name = self.configuration.safe_get("volume_backend_name") or "file"
        self.protocol = "local"

    # --- paths ------------------------------------------------------------------------------
    @property
    def root(self) -> str:
        return self.configuration.devcloud_volumes_dir

    def local_path(self, volume) -> str:
        return os.path.join(self.root, volume.name)

    def _snapshot_path(self, snapshot) -> str:
        return os.path.join(self.root, snapshot.name)

    # --- setup and stats ------------------------------------------------------------------------
    def do_setup(self, context):
        os.makedirs(self.root, mode=0o700, exist_ok=True)

    def check_for_setup_error(self):
        if not os.access(self.root, os.W_OK):
            raise exception.VolumeBackendAPIException(data=f"{self.root} is not writable")

    def _update_volume_stats(self):
        fs = os.statvfs(self.root)
        provisioned = 0
        for name in os.listdir(self.root):
            if name.startswith("volume-") and not name.endswith(".part"):
                provisioned += os.stat(os.path.join(self.root, name)).st_size
        self._stats = {
            "volume_backend_name": self.backend_name, "vendor_name": "gcloudctl devcloud",
            "driver_version": self.VERSION, "storage_protocol": self.protocol,
            "total_capacity_gb": round(fs.f_blocks * fs.f_frsize / GiB, 2),
            "free_capacity_gb": round(fs.f_bavail * fs.f_frsize / GiB, 2),
            "provisioned_capacity_gb": round(provisioned / GiB, 2),
            "reserved_percentage": 0, "thin_provisioning_support": True, "thick_provisioning_support": False,
            "max_over_subscription_ratio": 20.0, "multiattach": False, "online_extend_support": True,
        }

    # --- volumes ---------------------------------------------------------------------------------
    def create_volume(self, volume):
        path = self.local_path(volume)
        with open(path, "xb") as fh:
            fh.truncate(volume.size * GiB)
        os.chmod(path, 0o600)
        LOG.info("created %s (%s GiB, sparse)", path, volume.size)

    def delete_volume(self, volume):
        try:
            os.unlink(self.local_path(volume))
        except FileNotFoundError:
            LOG.info("%s already gone", self.local_path(volume))

    def extend_volume(self, volume, new_size):
        path = self.local_path(volume)
        if os.path.getsize(path) > new_size * GiB:
            raise exception.InvalidInput(reason="a volume only grows")
        os.truncate(path, new_size * GiB)

    def create_cloned_volume(self, volume, src_vref):
        sparse_copy(self.local_path(src_vref), self.local_path(volume), volume.size * GiB)

    def create_volume_from_snapshot(self, volume, snapshot):
        sparse_copy(self._snapshot_path(snapshot), self.local_path(volume), volume.size * GiB)

    def revert_to_snapshot(self, context, volume, snapshot):
        sparse_copy(self._snapshot_path(snapshot), self.local_path(volume), volume.size * GiB)

    # --- snapshots ------------------------------------------------------------------------------
    def create_snapshot(self, snapshot):
        sparse_copy(self.local_path(snapshot.volume), self._snapshot_path(snapshot))

    def delete_snapshot(self, snapshot):
        try:
            os.unlink(self._snapshot_path(snapshot))
        except FileNotFoundError:
            pass

    # --- exports and connections: the file itself, os-brick's `local` connector -------------
    def ensure_export(self, context, volume):
        pass

    def create_export(self, context, volume, connector):
        pass

    def remove_export(self, context, volume):
        self._keep_size(volume)

    def create_export_snapshot(self, context, snapshot, connector):
        pass

    def remove_export_snapshot(self, context, snapshot):
        pass

    def initialize_connection(self, volume, connector, **kwargs):
        return {"driver_volume_type": "local", "data": {"device_path": self.local_path(volume)}}

    def initialize_connection_snapshot(self, snapshot, connector, **kwargs):
        return {"driver_volume_type": "local", "data": {"device_path": self._snapshot_path(snapshot)}}

    def terminate_connection(self, volume, connector, **kwargs):
        self._keep_size(volume)

    def _keep_size(self, volume) -> None:
        """A local attacher that opened the file with O_TRUNC (cinder-backup's restore does,
        as a block device would not care) leaves it short: grow it back to the volume's size."""
        path = self.local_path(volume)
        if os.path.exists(path) and os.path.getsize(path) < volume.size * GiB:
            os.truncate(path, volume.size * GiB)

    def terminate_connection_snapshot(self, snapshot, connector, **kwargs):
        pass
