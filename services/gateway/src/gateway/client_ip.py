"""The client's IP address: moved to `common.client_ip`, shared with the notifier."""

from common.client_ip import client_ip, network_of

__all__ = ["client_ip", "network_of"]
