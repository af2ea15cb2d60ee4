"""SOAP clients of the billing system and the CRM, built on zeep (docs/design.md §5)."""
