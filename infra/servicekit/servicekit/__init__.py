"""What the registry and the configuration service share: their Redis client's settings, the request
guard (body limit, request metrics) and the error handlers. Both images copy this package beside
their own (compose `additional_contexts: servicekit`)."""
