"""The HTTP face of jiahe: ingest for field apps, the chairs' alert inbox, ledgers, KPIs."""
