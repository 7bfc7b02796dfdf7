"""ordergraph: a GraphQL API for the order state of many stores."""

__version__ = "0.1.0"
