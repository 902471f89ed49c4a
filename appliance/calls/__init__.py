"""The dial plan and what a call does."""
