"""The rep workspace: one module per page or group of pages."""
