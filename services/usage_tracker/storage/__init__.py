"""The tracker's storage: the append-only ledger, its rollups, the price book and margins."""
