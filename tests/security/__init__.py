"""Hostile input, secrets, faults and load: the claims of SECURITY.md, each as a test."""
