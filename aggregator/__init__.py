"""aggregator: many external APIs behind one typed, resilient GraphQL endpoint."""
