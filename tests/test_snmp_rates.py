"""Counter rates: 32-bit wraps give the true delta, agent restarts and counter resets give no
rate (never a spike), and sysUpTime's own wrap is not a restart. Property-based."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitord.collectors.snmp.poller import Interface
from monitord.collectors.snmp.rates import (WRAP32, RateState, agent_restarted, counter_delta)


@given(start=st.integers(0, WRAP32 - 1), delta=st.integers(0, WRAP32 - 1))
def test_32bit_wrap_gives_the_true_delta(start, delta):
    current = (start + delta) % WRAP32
    assert counter_delta(start, current, 32) == delta


@given(start=st.integers(0, 2**64 - 1), delta=st.integers(0, 2**40))
def test_64bit_delta_and_reset(start, delta):
    current = start + delta
    if current < 2**64:
        assert counter_delta(start, current, 64) == delta
    if start > 0:
        assert counter_delta(start, start - 1, 64) is None  # went backwards: reset, no rate


@given(previous=st.integers(10**6, WRAP32 - 1), current=st.integers(0, 10**5))
def test_reset_that_would_be_a_spike_gives_no_rate(previous, current):
    """A 32-bit counter that went back: a wrap is only believed when the link could carry it."""
    link_max = 10**6  # octets the link can carry in the interval
    delta = counter_delta(previous, current, 32, max_delta=link_max)
    true_wrap = current + WRAP32 - previous
    assert delta == (true_wrap if true_wrap <= link_max else None)


def _iface(octets: int, bits: int = 32, speed: int = 1_000_000_000) -> Interface:
    return Interface(if_index=1, if_name="ge-0/0/1", admin_status="up", oper_status="up",
                     speed_bps=speed, in_octets=octets, out_octets=octets, in_errors=0,
                     out_errors=0, in_discards=0, out_discards=0, counter_bits=bits)


@settings(max_examples=300)
@given(uptime=st.integers(6000, 10**8), before=st.integers(0, WRAP32 - 1),
       after=st.integers(0, WRAP32 - 1), back=st.integers(1, 5999))
def test_agent_restart_gives_no_spike(uptime, before, after, back):
    state = RateState()
    state.update(0.0, uptime, [_iface(before)])
    restarted, rates = state.update(60.0, back, [_iface(after)])  # sysUpTime went backwards
    assert restarted
    assert rates[0].in_bps is None and rates[0].out_bps is None
    # and the poll after the restart measures normally again
    restarted, rates = state.update(120.0, back + 6000, [_iface(after + 7_500_000)])
    assert not restarted
    assert rates[0].in_bps == 7_500_000 * 8 / 60


@settings(max_examples=300)
@given(start=st.integers(WRAP32 - 10**9, WRAP32 - 1), delta=st.integers(0, 7 * 10**9 // 8))
def test_wrap_within_link_speed_is_a_rate(start, delta):
    """1 Gbit/s for 60 s can move 7.5e9 octets; a 32-bit counter wraps every ~34 s there, so
    deltas up to the link's capacity are believed once."""
    if delta >= WRAP32:
        return
    state = RateState()
    state.update(0.0, 1000, [_iface(start)])
    restarted, rates = state.update(60.0, 7000, [_iface((start + delta) % WRAP32)])
    assert not restarted
    assert rates[0].in_bps == delta * 8 / 60


@given(elapsed=st.integers(1, 3600))
def test_uptime_wrap_is_not_a_restart(elapsed):
    previous = WRAP32 - 50  # 497 days
    current = (previous + elapsed * 100) % WRAP32
    assert not agent_restarted(previous, current, elapsed)


def test_real_restart_is_a_restart():
    assert agent_restarted(360_000, 1_500, 60)
    assert not agent_restarted(360_000, 366_000, 60)
    assert not agent_restarted(None, 100, 60)


def test_first_poll_and_changed_counter_width_give_no_rate():
    state = RateState()
    _r, rates = state.update(0.0, 100, [_iface(1000)])
    assert rates[0].in_bps is None
    _r, rates = state.update(60.0, 6100, [_iface(5000, bits=64)])  # 32 -> 64 bit: no rate
    assert rates[0].in_bps is None
    _r, rates = state.update(120.0, 12100, [_iface(6000, bits=64)])
    assert rates[0].in_bps == 1000 * 8 / 60


def test_errors_are_summed_and_rated():
    state = RateState()
    a, b = _iface(0), _iface(0)
    b.in_errors, b.out_errors, b.in_discards = 90, 30, 600
    state.update(0.0, 100, [a])
    _r, rates = state.update(60.0, 6100, [b])
    assert rates[0].errors_per_s == 2.0 and rates[0].discards_per_s == 10.0
