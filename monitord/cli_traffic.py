"""`monitord capture`: the daemon's live capture and traffic detectors for a bounded time on
one interface, printing the findings like `analyze-pcap` (same JSON shape, same folding), and
the capture's counters. For checking a mirror port before enabling `collectors.capture`."""

from __future__ import annotations

import argparse
import json
import sys
import time


def register(sub, common, with_json) -> None:
    from monitord.i18n import _

    cap = sub.add_parser("capture", parents=[common, with_json],
                         help=_("run the traffic detectors on a live interface for a while"))
    cap.add_argument("--interface", "-i", required=True, help=_("the interface to capture on"))
    cap.add_argument("--duration", type=float, default=10.0, metavar="SECONDS",
                     help=_("stop after this many seconds (default 10)"))
    cap.add_argument("--count", type=int, default=0, metavar="N",
                     help=_("stop after N packets (default: no limit)"))
    cap.add_argument("--bpf", default="", metavar="FILTER",
                     help=_("kernel filter in tcpdump syntax"))
    cap.add_argument("--promiscuous", action="store_true", help=_("put the interface in "
                                                                   "promiscuous mode"))
    cap.set_defaults(func=cmd_capture)


def cmd_capture(args: argparse.Namespace) -> int:
    from monitord import cli, render
    from monitord.collectors.packets.analyze import (FoldedFinding, finding_to_json,
                                                     fold_findings, settings_from_config)
    from monitord.collectors.packets.engine import TrafficEngine
    from monitord.collectors.packets.live import CaptureError, LiveCapture
    from monitord.i18n import _

    settings = None
    config = None
    if args.config or args.config_global:
        config = cli._load(args)
        settings = settings_from_config(config.detectors.traffic)
    snaplen = config.collectors.capture.snaplen if config else 2048
    try:
        live = LiveCapture(args.interface, args.bpf, args.promiscuous, snaplen)
    except CaptureError as exc:
        raise cli.UsageError(str(exc)) from None
    engine = TrafficEngine(settings, live.linktype)
    folded: dict[str, FoldedFinding] = {}
    deadline = time.monotonic() + max(0.0, args.duration)
    n = 0
    print(_("capturing on {interface} for {seconds:g} seconds").format(
        interface=args.interface, seconds=args.duration), file=sys.stderr, flush=True)
    with live:
        recv_batch, feed = live.recv_batch, engine.feed
        while time.monotonic() < deadline and not (args.count and n >= args.count):
            for got in recv_batch():  # one ring block at a time
                n += 1
                out = feed(*got)
                if out:
                    fold_findings(folded, out)
                if args.count and n >= args.count:
                    break
        fold_findings(folded, engine.flush(engine.last_ts, final=True), final=True)
        kernel = live.kernel_stats()
    findings = sorted(folded.values(), key=lambda ff: (ff.first_seen, ff.finding.kind,
                                                       ff.finding.dedup_key))
    rows = [finding_to_json(f) for f in findings]
    counters = engine.take_counters()
    stats = {"packets": n, "kernel_packets": kernel.packets, "kernel_drops": kernel.drops,
             "by_protocol": {k: v for k, v in counters.packets.items() if v},
             "decode": engine.stats.as_dict()}
    if args.json:
        print(json.dumps({"findings": rows, "stats": stats}, ensure_ascii=False, indent=2))
        return 0
    for f in rows:
        print(f"{f['severity']:<8} {f['kind']:<16} {render.safe_text(f['attacker'] or '-', 40):<40} "
              f"{render.safe_text(f['victim'] or '-', 40):<40} {f['count']:>6}")
    print(_("{packets} packets, kernel drops {drops}").format(packets=n, drops=kernel.drops))
    return 0
