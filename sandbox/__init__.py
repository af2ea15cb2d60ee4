"""Local SOAP sandboxes of the billing system and the CRM (DESIGN.md §5.4)."""
