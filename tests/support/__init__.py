"""Builders, fakes and fixtures shared by every test."""
