"""Insight: KPIs computed from the record (reads only)."""
