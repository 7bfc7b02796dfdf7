"""The boundary: limits, cost, rates, deadlines, revocation, scopes, input, HTTP, browsers."""
