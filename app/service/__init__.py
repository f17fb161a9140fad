"""The service: the Python API (`Assistant`, api), the review page (web), the HTTP server mounting both (server) and
the LangChain surface (lc)."""
