"""SNMP collection: the poller, device profiles, counter rates and the trap receiver (issue 5)."""
