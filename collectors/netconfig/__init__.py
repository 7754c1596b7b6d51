"""Network device configuration over SSH with netmiko: backups, versions and diffs (issue 7)."""
