"""The local stack: moto server, resources from infra/template.yaml, handlers behind
an API Gateway-shaped HTTP server. Shared by `make run` and the tests."""
