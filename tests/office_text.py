"""Provisioning text shared by the config, store and CLI tests."""

ANN_AND_BOB = """
[[extensions]]
number = "201"
name = "Ann"
secret = "s3cret-201"

[[extensions]]
number = "202"
name = "Bob"
secret = "b0b-likes-tea"
"""
