"""Order transfer jobs: an uploaded CSV file's orders, captured in batches."""

from __future__ import annotations

from adapters.bootstrap import current_services
from adapters.queue import final_attempt
from engine import pipeline
from engine.orders import transfers


def run_order_import(import_id: int) -> None:
    """Capture an import's orders, one transaction per batch, and record what became of
    each row. Running it again (a retry, a second worker) resumes after the last batch
    committed and captures no order twice; once it is done, it does nothing."""
    services = current_services()
    try:
        more = True
        while more:
            with services.uow() as uow:
                more = transfers.capture_next_batch(uow, import_id, pipeline.receive_orders)
                uow.commit()
    except Exception as error:
        if final_attempt():
            with services.uow() as uow:
                transfers.fail_import(uow, import_id, f"{type(error).__name__}: {error}")
                uow.commit()
        raise
