"""Batch jobs: small batches answered at once, big ones queued for workers, the OpenAI Batch API."""
