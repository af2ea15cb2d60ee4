"""The project's own WSDLs (a package so that they ship as package data)."""
