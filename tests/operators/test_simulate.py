from collections import Counter

from operators.events import encode_event, parse_event
from operators.simulate import SimConfig, Simulator


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
