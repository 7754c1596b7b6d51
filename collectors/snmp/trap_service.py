"""The trap receiver's place in the daemon: bind at start (when `traps.enabled`), take new
devices and credentials on SIGHUP, close at stop."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Callable, Sequence

from prometheus_client import CollectorRegistry

from monitord.collectors.snmp.traps import (
    TrapListener,
    TrapMetrics,
    TrapReceiver,
    start_listener,
    trap_sources,
)
from monitord.config import Config
from monitord.records import Event

log = logging.getLogger("monitord.snmp.traps")


async def start_traps(config: Config, emit: Callable[[Sequence[Event]], Any],
                      registry: CollectorRegistry, now: Callable[[], datetime]
                      ) -> TrapListener | None:
    """Bind the receiver's socket, or raise the daemon's StartupError naming the key."""
    if not config.traps.enabled:
        return None
    receiver = TrapReceiver(trap_sources(config), TrapMetrics(registry), now)
    settings = config.traps
    try:
        listener = await start_listener(settings.host, settings.port, receiver, emit)
    except OSError as exc:
        from monitord.daemon import StartupError  # the daemon imports this module

        hint = " (ports below 1024 need CAP_NET_BIND_SERVICE)" if settings.port < 1024 else ""
        raise StartupError(f"traps.listen {settings.listen}: cannot listen "
                           f"({exc.strerror}){hint}") from None
    log.info("SNMP trap receiver listening listen=%s devices=%d", settings.listen,
             len(config.devices))
    return listener


def reconfigure_traps(listener: TrapListener | None, new: Config, old: Config) -> None:
    """SIGHUP: new devices and credentials at once; a new port at the next restart."""
    if listener is None:
        if new.traps.enabled:
            log.warning("traps.enabled takes effect at the next restart")
        return
    if new.traps.listen != old.traps.listen or not new.traps.enabled:
        log.warning("traps.listen and traps.enabled changes take effect at the next restart")
    listener.receiver.configure(trap_sources(new))
