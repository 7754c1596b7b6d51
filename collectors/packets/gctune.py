"""The cyclic garbage collector's setting while traffic is analysed (engine, analyze-pcap).

A measured speed setting, not a correctness one: detection results do not depend on it.
"""

from __future__ import annotations

import gc

#: The cyclic GC's first threshold while traffic is analysed (CPython's default is 700).
GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Make young GC collections rarer in this process (never more frequent).

    Why: every new entry of detector state (a spoofed source's scan and flood entries) is a few
    GC-tracked objects, so at CPython's default of 700 allocations the collector ran every few
    dozen packets, and every 10th / 100th run also walked the older generations, which hold all
    the detectors' state (hundreds of thousands of objects): about a sixth of the CPU of
    decode+detectors on the bench mix. With 10,000 those older walks are 14 times rarer; the
    garbage held a little longer is at most 10,000 small objects. Process-wide, so it only ever
    raises the first threshold (never makes collections more frequent)."""
    young, middle, old = gc.get_threshold()
    if 0 < young < GC_YOUNG_THRESHOLD:
        gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
