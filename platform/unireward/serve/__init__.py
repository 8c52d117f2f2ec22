"""The online reward endpoint (Ray Serve) and its clients.

``unireward.serve.app`` imports Ray; ``api`` and ``client`` do not."""
