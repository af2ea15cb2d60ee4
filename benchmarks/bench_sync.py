"""Accounts synced per second against both SOAP sandboxes with a fixed latency per call, at
concurrency 1 and 8, measured in the same run.

    .venv/bin/python benchmarks/bench_sync.py [--accounts 32] [--latency-ms 20] [--invoices 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import structlog
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "soap"))

from soapkit import account_seed  # the tests' seed builder, shared on purpose

from entity_sync.handlers.soap.config import BillingSettings, CrmSettings
from entity_sync.handlers.sync.memory import InMemorySyncLocks, InMemorySyncStore
from entity_sync.handlers.sync.service import SyncLimits, SyncService
from entity_sync.schemas.inputs import SyncRequest
from entity_sync_sandbox import start_billing_sandbox, start_crm_sandbox

IDS_PER_REQUEST = 8  # within the UI limit, so concurrency 8 has 8 accounts to overlap


def _request(ids: list[str]) -> SyncRequest:
    return SyncRequest.model_validate(
        {
            "request_id": str(uuid.uuid4()),
            "object_type": "billing_account",
            "zuora_ids": ids,
            "origin": "api",
            "requested_by": "bench",
            "requested_at": dt.datetime.now(dt.UTC).isoformat(),
        }
    )


def measure(concurrency: int, accounts: int, latency_ms: float, invoices: int) -> dict[str, Any]:
    seed, ids = account_seed(accounts + 1, invoices=invoices)
    warmup, ids = ids[0], ids[1:]
    billing = start_billing_sandbox(seed, latency_ms=latency_ms)
    crm = start_crm_sandbox(latency_ms=latency_ms)
    password = SecretStr("sandbox")
    service = SyncService(
        BillingSettings(endpoint=billing.url, username="sandbox", password=password),
        CrmSettings(endpoint=crm.url, username="sandbox", password=password),
        locks=InMemorySyncLocks(),
        store=InMemorySyncStore(),
        limits=SyncLimits(max_workers=concurrency),
    )
    try:
        service.handle(_request([warmup]))  # logins and WSDL parsing are not measured
        calls_before = billing.calls() + crm.calls()
        started = time.perf_counter()
        synced = 0
        for i in range(0, len(ids), IDS_PER_REQUEST):
            body = service.handle(_request(ids[i : i + IDS_PER_REQUEST]))
            synced += sum(r["status"] == "synced" for r in body["results"])
        elapsed = time.perf_counter() - started
        calls = billing.calls() + crm.calls() - calls_before
    finally:
        service.close()
        billing.stop()
        crm.stop()
    if synced != len(ids):
        raise SystemExit(
            f"only {synced} of {len(ids)} accounts synced at concurrency {concurrency}"
        )
    return {"rate": synced / elapsed, "seconds": elapsed, "calls": calls, "accounts": synced}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--invoices", type=int, default=3)
    args = parser.parse_args()
    # Per-request log lines would drown the figures.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    results = {c: measure(c, args.accounts, args.latency_ms, args.invoices) for c in (1, 8)}
    print(
        f"sync benchmark: {args.accounts} accounts, {args.latency_ms:g} ms per SOAP call, "
        f"{args.invoices} invoices per account, {IDS_PER_REQUEST} ids per request"
    )
    for concurrency, r in results.items():
        print(
            f"  concurrency {concurrency}: {r['rate']:7.2f} accounts/s "
            f"({r['accounts']} in {r['seconds']:.2f} s, "
            f"{r['calls'] / r['accounts']:.1f} SOAP calls each)"
        )
    print(f"  ratio (8 vs 1): {results[8]['rate'] / results[1]['rate']:.2f}x")


if __name__ == "__main__":
    main()
