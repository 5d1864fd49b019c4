"""Rule jobs: simulations too large to answer within a request."""

from __future__ import annotations

from adapters.bootstrap import current_services
from engine.decisions import trials


def run_simulation(simulation_id: int) -> str:
    """Run one queued simulation; return its state (a second run finds it done)."""
    with current_services().uow() as uow:
        simulation = trials.run_simulation(uow, simulation_id)
        uow.commit()
        return simulation.state if simulation is not None else "missing"
