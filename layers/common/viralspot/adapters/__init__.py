"""Adapters: the only modules that talk to AWS. Each translates botocore errors
into `viralspot.errors` so nothing above them handles AWS exceptions."""
