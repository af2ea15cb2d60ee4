"""SOAP clients of the billing system and the CRM, built on zeep (DESIGN.md §5)."""
