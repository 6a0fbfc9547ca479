"""ML2 mechanism driver for devcloud: bind every port that has a host, no agent needed.

Stage: loaded by neutron-server through the `neutron.ml2.mechanism_drivers` entry point.
There is no data plane in devcloud, so binding is bookkeeping: the port gets vif_type `ovs`
and status ACTIVE on its first segment. Stateless, so it is safe with several API workers
and across restarts. Must not talk to any agent, host or device.
"""

from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api

BINDABLE_NETWORK_TYPES = frozenset({"flat", "vlan", "vxlan", "geneve", "local"})


class BindEveryHostDriver(api.MechanismDriver):
    """Bind any port with a `binding:host_id` to its first segment."""

    def initialize(self):
        self.vif_type = portbindings.VIF_TYPE_OVS
        self.vif_details = {portbindings.CAP_PORT_FILTER: True,
                            portbindings.VIF_DETAILS_CONNECTIVITY: portbindings.CONNECTIVITY_L2}

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context):
        if not context.host:
            return
        for segment in context.segments_to_bind:
            if segment[api.NETWORK_TYPE] in BINDABLE_NETWORK_TYPES:
                context.set_binding(segment[api.ID], self.vif_type, self.vif_details,
                                    status=constants.PORT_STATUS_ACTIVE)
                return
