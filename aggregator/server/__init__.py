"""The HTTP side: the Starlette app serving /graphql, health probes and GraphiQL."""
