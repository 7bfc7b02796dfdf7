"""The ASGI application: Starlette routes around GraphQL over HTTP (ordergraph.http) and
the Strawberry view that serves websockets on the same path.

- factory.py: `create_app`, the routes and the lifespan (event hub, overdue sweeper);
- view.py: `OrdergraphView`, the GraphQL context and the websockets;
- endpoints.py: /healthz, /readyz and /metrics (`metrics_app` for its own port);
- readiness.py: `Readiness`, what /readyz reports.
"""

from __future__ import annotations

from ordergraph.app.endpoints import metrics_app, metrics_handler
from ordergraph.app.factory import create_app
from ordergraph.app.readiness import Readiness
from ordergraph.app.view import OrdergraphView

__all__ = ["OrdergraphView", "Readiness", "create_app", "metrics_app", "metrics_handler"]
