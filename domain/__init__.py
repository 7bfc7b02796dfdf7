"""ordergraph's rules as plain Python: stock, allocation, fill order, status and events.

Standard library only; a test enforces it.
"""
