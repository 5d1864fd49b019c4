"""Every background job, by the dotted name it is enqueued, scheduled and run by.

The engine only names work for later (`uow.enqueue_after_commit`); the queue adapter
imports the function under `jobs/` by this name when the job runs.
"""

from __future__ import annotations

# fulfilment: after allocation, up to delivery and returns
# one call per warehouse per wave (a location code, or none: every wave that is due)
RELEASE_WAVE_JOB = "jobs.fulfilment.release_waves"
WMS_CANCEL_JOB = "jobs.fulfilment.cancel_at_warehouse"
WITHDRAW_JOB = "jobs.fulfilment.withdraw_held_group"
STOP_JOB = "jobs.fulfilment.stop_at_warehouse"
# per carrier per wave (a carrier code, or none: every wave that is due)
LABEL_WAVE_JOB = "jobs.fulfilment.buy_labels"
# every shipment to bill, in runs of a wave's size
BILLING_WAVE_JOB = "jobs.fulfilment.run_billing"
NOTIFY_JOB = "jobs.fulfilment.notify_customer"
COMPLETE_JOB = "jobs.fulfilment.complete_order"
SETTLE_JOB = "jobs.fulfilment.settle_return"
RESUME_STALLED_JOB = "jobs.fulfilment.resume_stalled_work"
POLL_TRACKING_JOB = "jobs.fulfilment.poll_tracking"
LATE_SHIPMENTS_JOB = "jobs.fulfilment.detect_late_shipments"
# inventory
BACKORDER_JOB = "jobs.inventory.allocate_backorders"
SWEEP_BACKORDERS_JOB = "jobs.inventory.sweep_backorders"
# rules
SIMULATION_JOB = "jobs.rules.run_simulation"
# orders
IMPORT_JOB = "jobs.transfers.run_order_import"
# webhooks
DELIVER_JOB = "jobs.webhooks.deliver"
RETRY_WEBHOOKS_JOB = "jobs.webhooks.retry_due"
# maintenance
PURGE_KEYS_JOB = "jobs.maintenance.purge_idempotency_keys"

ALL_JOBS = (RELEASE_WAVE_JOB, WMS_CANCEL_JOB, WITHDRAW_JOB, STOP_JOB, LABEL_WAVE_JOB,
            BILLING_WAVE_JOB,
            NOTIFY_JOB, COMPLETE_JOB, SETTLE_JOB, RESUME_STALLED_JOB, POLL_TRACKING_JOB,
            LATE_SHIPMENTS_JOB,
            BACKORDER_JOB, SWEEP_BACKORDERS_JOB, SIMULATION_JOB, DELIVER_JOB,
            RETRY_WEBHOOKS_JOB, PURGE_KEYS_JOB, IMPORT_JOB)
