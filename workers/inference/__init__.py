"""Serving: an HTTP worker that batches chat/completion requests over cached models (see server.py)."""
