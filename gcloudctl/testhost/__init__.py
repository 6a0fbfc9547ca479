"""Namespace-based Debian 12 test hosts (systemd as PID 1, real cloud-init first boot, SSH).

Stage: test infrastructure, used by tests, benchmarks and later a Nova virt driver.
Needs root. See `host.TestHost` and docs/hardening.md ("Test hosts").
"""

from gcloudctl.testhost.host import TestHost
from gcloudctl.testhost.net import Network
from gcloudctl.testhost.rootfs import RootfsSpec, build_rootfs

__all__ = ["TestHost", "Network", "RootfsSpec", "build_rootfs"]
