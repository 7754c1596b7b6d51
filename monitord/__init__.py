"""monitord: network and security monitoring whose incidents follow the office's own SOP."""

__version__ = "0.1.0"
