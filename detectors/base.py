"""The detector contract: state in, records in, findings out. No I/O, no clock of its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence

from monitord.records import Event, Finding, Sample

if TYPE_CHECKING:
    from monitord.config import Config


class Detector(Protocol):
    name: str

    def observe(self, record: Sample | Event) -> Sequence[Finding]: ...

    def reconfigure(self, config: "Config") -> None:
        """Take new thresholds, keeping what the detector has learnt (what is firing)."""
        ...
