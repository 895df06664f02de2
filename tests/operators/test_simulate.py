from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators.errors import ConfigError
from operators.events import MAX_TS_MS, MIN_TS_MS, encode_event, parse_event
from operators.simulate import MAX_CUSTOMER_GAP_MS, SimConfig, Simulator, paced_gap_ms


def test_every_simulated_event_meets_the_contract() -> None:
    for e in Simulator(SimConfig(customers=100, seed=3)).take(3000):
        assert parse_event(encode_event(e)) == e


def test_contacts_are_routed_to_agents_and_queues() -> None:
    events = Simulator(SimConfig(customers=200, seed=4)).take(5000)
    contacts = [e for e in events if e.type == "contact_start"]
    assert contacts
    assert all(e.attrs["queue"] in ("care", "billing", "retention") for e in contacts)
    assert all(str(e.attrs["agent_id"]).startswith("agent-") for e in contacts)
    ends = Counter(e.attrs.get("contact_id") for e in events if e.type == "contact_end")
    assert ends.most_common(1)[0][1] == 1


def test_latent_propensity_drives_cancellation() -> None:
    sim = Simulator(SimConfig(customers=400, seed=5))
    propensity = {}
    cancelled = set()
    for _ in range(40_000):
        e = sim.next_event()
        p = sim.propensity(e.key)  # None once the customer has cancelled
        if p is not None:
            propensity[e.key] = p
        if e.type == "cancel":
            cancelled.add(e.key)
    churners = [propensity[c] for c in cancelled if c in propensity]
    stayers = [p for c, p in propensity.items() if c not in cancelled]
    assert len(churners) > 50
    assert sum(churners) / len(churners) > sum(stayers) / len(stayers) + 0.1


def test_acceptance_ground_truth_follows_the_customer() -> None:
    sim = Simulator(SimConfig(customers=300, seed=6))
    seen = {}
    for _ in range(5000):
        e = sim.next_event()
        p = sim.acceptance(e.key, "retention_offer")
        if p is not None:
            seen[e.key] = (sim.propensity(e.key), p, sim.acceptance(e.key, "retention_offer"))
    assert all(0.0 <= p <= 1.0 and p == again for _, p, again in seen.values())
    by_risk = sorted(seen.values())
    low = [p for _, p, _ in by_risk[:50]]
    high = [p for _, p, _ in by_risk[-50:]]
    assert sum(high) / 50 > sum(low) / 50 + 0.1  # churners take the retention offer more
    assert sim.acceptance("nobody", "retention_offer") is None


@given(
    speed=st.floats(1e-3, 1e9),
    customers=st.integers(1, 10**6),
    rate=st.floats(1e-3, 1e6),
)
def test_a_pace_is_a_gap_the_simulator_takes_or_a_clear_error(
    speed: float, customers: int, rate: float
) -> None:
    """Any pace the commands accept either makes a gap between 1 ms and a year, which
    the simulator runs with, or is refused with a ConfigError (no other error)."""
    wanted = speed * 1000.0 * customers / rate
    if not 1.0 <= wanted <= MAX_CUSTOMER_GAP_MS:
        with pytest.raises(ConfigError, match="must be 1 ms to 365 days"):
            paced_gap_ms(speed, customers, rate)
        return
    gap = paced_gap_ms(speed, customers, rate)
    assert 1 <= gap <= MAX_CUSTOMER_GAP_MS
    events = Simulator(SimConfig(customers=min(customers, 50), customer_gap_ms=gap)).take(20)
    assert all(MIN_TS_MS <= e.ts <= MAX_TS_MS for e in events)


@pytest.mark.parametrize("gap", [0, -5, MAX_CUSTOMER_GAP_MS + 1])
def test_a_gap_out_of_range_is_refused(gap: int) -> None:
    with pytest.raises(ConfigError, match=f"customer_gap_ms={gap}: must be 1 ms to 365 days"):
        SimConfig(customer_gap_ms=gap)
