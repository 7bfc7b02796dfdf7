"""The GraphQL schema: Strawberry types, inputs, enums and payloads."""
