"""gcloudctl: declarative G-Cloud tenants on OpenStack.

Pipeline (see docs/architecture.md): load -> validate -> expand -> observe -> plan -> apply.
"""

__version__ = "0.1.0"
