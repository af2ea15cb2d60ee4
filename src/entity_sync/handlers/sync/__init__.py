"""On-demand sync (docs/design.md §5): billing accounts (named, or every one of a CRM account) and
products from the billing SOAP API into the CRM. Plain functions over explicit dependencies:
no broker, no database.

Entry points: `run_sync` (engine.py) with `SyncDeps`, or `SyncService` (service.py), which
builds the SOAP clients from settings.
"""
