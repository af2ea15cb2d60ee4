"""Message contracts: pydantic models, generated JSON Schema files and the AsyncAPI document."""
