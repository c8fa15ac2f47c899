"""The REST API's shared parts: authentication, errors, pagination, permissions, tokens."""
