"""Example seeds (a package so that they ship as package data)."""
